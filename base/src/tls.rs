//! TLS to a server (the MQTT broker, PostgreSQL): PEM files in the config, a rustls client
//! config (ring provider) out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

/// A `tls` table: the CA that signs the server's certificate, and a client certificate for
/// servers that ask for one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) that sign the server's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate chain (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

impl TlsConfig {
    /// What serde cannot check: the client certificate and key go together.
    pub fn problem(&self) -> Option<&'static str> {
        (self.client_cert.is_some() != self.client_key.is_some())
            .then_some("client_cert and client_key go together (set both or neither)")
    }
}

/// Why a TLS table cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file is missing, unreadable or holds nothing usable.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The client certificate and key do not belong together.
    #[error("client certificate and key do not match: {0}")]
    KeyMismatch(rustls::Error),
    /// rustls refused the settings.
    #[error("rustls: {0}")]
    Rustls(rustls::Error),
}

fn file_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// A rustls client config (ring provider) trusting `tls.ca_file` only, with the client
/// certificate if one is set.
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(&tls.ca_file)? {
        roots
            .add(c)
            .map_err(|e| file_error(&tls.ca_file, format!("unusable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    Ok(match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error(key, format!("cannot read a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::KeyMismatch)?
        }
        _ => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_and_a_client_certificate_make_a_config() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let client = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let w = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca_file = w("ca.pem", ca.cert.pem());
        let tls = TlsConfig {
            ca_file: ca_file.clone(),
            client_cert: Some(w("client.pem", client.cert.pem())),
            client_key: Some(w("client.key", client.signing_key.serialize_pem())),
        };
        assert!(tls.problem().is_none());
        client_config(&tls).unwrap();

        // A key that is not the certificate's.
        let other = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let wrong = TlsConfig {
            client_key: Some(w("other.key", other.signing_key.serialize_pem())),
            ..tls.clone()
        };
        assert!(matches!(
            client_config(&wrong),
            Err(TlsError::KeyMismatch(_))
        ));

        // Not a certificate at all: the error names the file.
        let junk = TlsConfig {
            ca_file: w("junk.pem", "hello".into()),
            client_cert: None,
            client_key: None,
        };
        let e = client_config(&junk).unwrap_err().to_string();
        assert!(
            e.contains("junk.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let half = TlsConfig {
            client_key: None,
            ..tls
        };
        assert!(half.problem().is_some());
    }
}
