//! Certificates for TLS tests, made at test time (no key is committed): a CA, a broker
//! certificate for `localhost` and 127.0.0.1, and two CAs that must be refused.

use std::path::{Path, PathBuf};

use crate::mosquitto::TlsFiles;

/// A self-signed CA: the issuer to sign with, and its certificate's PEM.
fn make_ca(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (rcgen::Issuer::new(params, key), pem)
}

/// Writes into `dir`: `ca.pem` and a server certificate for `localhost` and 127.0.0.1 signed
/// by it (`server.pem`, `server.key`); and two wrong CAs: `same-name-ca.pem`, a CA with the
/// same name but another key (as after regenerating the CA), and `unrelated-ca.pem`. Made at
/// test time: no key is committed.
pub fn make(dir: &Path) -> (TlsFiles, [PathBuf; 2]) {
    let (ca, ca_pem) = make_ca("ioc-edge test CA");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.ca, ca_pem).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let wrong = [
        ("same-name-ca.pem", "ioc-edge test CA"),
        ("unrelated-ca.pem", "someone else's CA"),
    ]
    .map(|(file, name)| {
        let path = dir.join(file);
        std::fs::write(&path, make_ca(name).1).unwrap();
        path
    });
    (files, wrong)
}
