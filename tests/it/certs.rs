//! Certificates made at test time by rcgen: a CA, a server certificate for
//! 127.0.0.1/localhost signed by it, client certificates, and clients that trust it.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

/// A CA, a server certificate for 127.0.0.1/localhost, and client certificates.
pub struct Pki {
    pub ca: CertifiedIssuer<'static, KeyPair>,
    server_cert: String,
    server_key: String,
}

/// A self-signed CA named `name`.
pub fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A client certificate with the subject alternative names `sans`, signed by `issuer`,
/// and its key, in one PEM, as reqwest's `Identity` takes it.
pub fn client_identity(issuer: &CertifiedIssuer<'static, KeyPair>, sans: Vec<SanType>) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "scraper");
    params.subject_alt_names = sans;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

/// A DNS subject alternative name.
pub fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

impl Pki {
    pub fn new() -> Pki {
        let ca = new_ca("pipefy-exporter test CA");
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Pki {
            ca,
            server_cert: cert.pem(),
            server_key: key.serialize_pem(),
        }
    }

    /// `server.crt`, `server.key` and `ca.crt`, by file name.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        vec![
            ("server.crt", self.server_cert.clone()),
            ("server.key", self.server_key.clone()),
            ("ca.crt", self.ca.pem()),
        ]
    }

    /// Writes [`Pki::files`] into `dir`.
    pub fn write(&self, dir: &Path) {
        for (name, pem) in self.files() {
            std::fs::write(dir.join(name), pem).unwrap();
        }
    }

    /// A client that trusts the test CA, optionally presenting `identity`.
    pub fn client(&self, identity: Option<&str>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap(),
            );
        if let Some(pem) = identity {
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }
}
