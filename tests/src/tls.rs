//! Certificates for TLS tests, made per test: a CA, a server certificate
//! for `localhost` signed by it, a client certificate, and an unrelated CA
//! for the "wrong CA" case. PEM files in a temp dir readable by the
//! servers (PostgreSQL runs as `postgres` under root).
use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::PathBuf;

pub struct Certs {
    pub dir: tempfile::TempDir,
}

fn ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>)> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let pem = p.self_signed(&key)?.pem();
    Ok((pem, Issuer::new(p, key)))
}

/// A certificate for `names` (DNS subject alternative names) with common
/// name `cn`, signed by `issuer`: (certificate PEM, key PEM).
fn leaf(issuer: &Issuer<'static, KeyPair>, cn: &str, names: &[&str]) -> Result<(String, String)> {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate()?;
    Ok((p.signed_by(&key, issuer)?.pem(), key.serialize_pem()))
}

impl Certs {
    /// `ca.pem`, `server.pem`/`server.key` (for `localhost` only: a
    /// connection to 127.0.0.1 does not match it), `client.pem`/`client.key`
    /// with common name `client_cn`, and `other-ca.pem`.
    pub fn generate(client_cn: &str) -> Result<Certs> {
        let dir = tempfile::Builder::new().prefix("ferry-certs-").tempdir()?;
        let (ca_pem, issuer) = ca("Ferry test CA")?;
        let (other_pem, _) = ca("Someone else's CA")?;
        let (server, server_key) = leaf(&issuer, "localhost", &["localhost"])?;
        let (client, client_key) = leaf(&issuer, client_cn, &[])?;
        let files = [
            ("ca.pem", ca_pem),
            ("other-ca.pem", other_pem),
            ("server.pem", server),
            ("server.key", server_key),
            ("client.pem", client),
            ("client.key", client_key),
        ];
        for (name, pem) in files {
            std::fs::write(dir.path().join(name), pem)?;
        }
        let certs = Certs { dir };
        // The servers' own user reads the files (PostgreSQL insists on a key
        // only its owner can read).
        if crate::is_root() {
            std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(certs.dir.path())
                .status()?;
            std::process::Command::new("chmod")
                .arg("755")
                .arg(certs.dir.path())
                .status()?;
        }
        for key in ["server.key", "client.key"] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(certs.path(key), std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(certs)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path as a URL query value.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}
