//! TLS to databases, with libpq's meaning of each mode (MySQL's `ssl-mode`
//! maps onto the same [`TlsMode`]s): what a connection checks of the
//! server's certificate, and the client certificate it shows. One crypto
//! provider (ring) serves every client in the process.
//!
//! - `prefer`, `allow`, and `require` without a root certificate: encrypted,
//!   the certificate not checked (libpq's and the MySQL clients' defaults;
//!   the handshake's signatures are still verified).
//! - `verify-ca`, and `require` with a root certificate: the chain must
//!   lead to the given roots (else the public web PKI's); any host name.
//! - `verify-full`: that, and the certificate names the host connected to.

use crate::engine::ConnectorError;
use ferry_common::endpoint::{Endpoint, TlsMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// The process's crypto provider, installed as rustls's default once (the
/// MySQL driver builds its own configurations from the default).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let p = rustls::crypto::ring::default_provider();
            // Fails only if another default was installed first; ours is ring too.
            let _ = p.clone().install_default();
            Arc::new(p)
        })
        .clone()
}

/// A definite error about the endpoint's TLS settings.
fn bad(ep: &Endpoint, what: String) -> ConnectorError {
    ConnectorError::Definite(format!("{ep}: {what}"))
}

/// Every PEM certificate in `path`, the endpoint's `key` naming it in errors.
fn read_certs(ep: &Endpoint, key: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, ConnectorError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(ep, format!("{key} {path}: cannot read certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(ep, format!("{key} {path}: no PEM certificate in it")));
    }
    Ok(certs)
}

/// The roots a verifying mode trusts: the endpoint's root certificate file,
/// else the public web PKI's.
fn roots(ep: &Endpoint, key: &str) -> Result<RootCertStore, ConnectorError> {
    let mut store = RootCertStore::empty();
    match &ep.tls.root_cert {
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certs = read_certs(ep, key, path)?;
            for c in certs {
                store
                    .add(c)
                    .map_err(|e| bad(ep, format!("{key} {path}: not a usable root certificate: {e}")))?;
            }
        }
    }
    Ok(store)
}

/// The client certificate chain and key files, read on the worker.
pub(crate) fn client_identity(
    ep: &Endpoint,
    keys: (&str, &str),
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ConnectorError> {
    let (Some(cert), Some(key)) = (&ep.tls.cert, &ep.tls.key) else {
        return Ok(None);
    };
    let chain = read_certs(ep, keys.0, cert)?;
    // The key's bytes never reach an error message: only its path.
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(ep, format!("{} {key}: cannot read a private key: {e}", keys.1)))?;
    Ok(Some((chain, key_der)))
}

/// A rustls client configuration for a PostgreSQL endpoint's TLS settings.
pub(crate) fn pg_client_config(ep: &Endpoint) -> Result<ClientConfig, ConnectorError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = if ep.tls.verifies_chain() {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(ep, "sslrootcert")?), provider.clone())
            .build()
            .map_err(|e| bad(ep, format!("sslrootcert: {e}")))?;
        Arc::new(Chain {
            inner,
            check_name: ep.tls.mode == TlsMode::VerifyFull,
        })
    } else {
        Arc::new(Unchecked(provider.clone()))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(ep, format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match client_identity(ep, ("sslcert", "sslkey"))? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(ep, format!("sslcert/sslkey: {e}"))),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The web PKI's checks of a chain, the host name's only in `verify-full`.
#[derive(Debug)]
struct Chain {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Chain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            // The chain checks come first: a name error means the chain held.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// No check of the certificate (the modes that do not verify); the
/// handshake's signatures are still checked against it.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a connection failed in TLS: a handshake error from rustls, or a
/// server without TLS where the mode requires it.
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // tokio-rustls wraps rustls's error in an io::Error, whose `source`
        // skips the wrapped error itself.
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return true;
            }
        }
        // tokio-postgres reports a server that answered "no" to its TLS
        // request in words only.
        if err.to_string().contains("server does not support TLS") {
            return true;
        }
        cur = err.source();
    }
    false
}
