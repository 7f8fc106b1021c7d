//! `ferry certs init DIR`: a CA and the certificates to try mutual TLS
//! between Ferry's processes. The subject's OU carries the role the
//! coordinator grants (see `access`): `node` (serves the API, speaks Raft),
//! `worker`, `admin`. For production, issue the same shapes from your own CA.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The files `init` writes, as `(certificate, key)`.
pub const CA: (&str, &str) = ("ca.pem", "ca-key.pem");
pub const NODE: (&str, &str) = ("node.pem", "node-key.pem");
pub const WORKER: (&str, &str) = ("worker.pem", "worker-key.pem");
pub const ADMIN: (&str, &str) = ("admin.pem", "admin-key.pem");

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    role: &str,
    names: &[String],
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> anyhow::Result<(String, String)> {
    let mut p = CertificateParams::new(names.to_vec()).context("certificate names")?;
    p.distinguished_name.push(DnType::CommonName, format!("ferry-{role}"));
    p.distinguished_name.push(DnType::OrganizationalUnitName, role);
    p.extended_key_usages = usages;
    let key = KeyPair::generate()?;
    Ok((p.signed_by(&key, issuer)?.pem(), key.serialize_pem()))
}

/// Writes the CA, node, worker and admin certificates into `dir`; the node
/// certificate is valid for localhost, 127.0.0.1, ::1 and `hosts`. Refuses
/// to overwrite: a second CA would silently split the cluster.
pub fn init(dir: &Path, hosts: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (cert, key) in [CA, NODE, WORKER, ADMIN] {
        for f in [cert, key] {
            anyhow::ensure!(
                !dir.join(f).exists(),
                "{} already exists: certs init does not overwrite certificates",
                dir.join(f).display()
            );
        }
    }
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "Ferry CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    names.extend(hosts.iter().cloned());
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let node = leaf(&issuer, "node", &names, vec![ServerAuth, ClientAuth])?;
    let worker = leaf(&issuer, "worker", &[], vec![ClientAuth])?;
    let admin = leaf(&issuer, "admin", &[], vec![ClientAuth])?;
    for ((cert, key), (cert_pem, key_pem)) in [
        (CA, (ca_pem, ca_key_pem)),
        (NODE, node),
        (WORKER, worker),
        (ADMIN, admin),
    ] {
        std::fs::write(dir.join(cert), cert_pem).with_context(|| format!("writing {}", dir.join(cert).display()))?;
        let key_path = dir.join(key);
        std::fs::write(&key_path, key_pem).with_context(|| format!("writing {}", key_path.display()))?;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", key_path.display()))?;
    }
    Ok(())
}
