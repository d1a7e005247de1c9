//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, basic
//! authentication and extra response headers), read once at startup.
//!
//! The file has the exporter-toolkit schema (`tls_server_config`, `http_server_config`,
//! `basic_auth_users`); unknown keys are errors, and every error names the file, the line
//! and the key path, e.g. `web config file /etc/web.yml: line 2: key
//! tls_server_config.cert_file: cannot read ...`. As in the toolkit, relative file paths
//! are taken from the directory of the web config file.
//!
//! TLS is served by rustls with the *ring* provider, the same provider reqwest uses here,
//! passed explicitly to every config (no process-wide default is installed). rustls has
//! no TLS 1.0/1.1, no CBC or RSA-key-exchange suites and no P-521, so those settings are
//! errors rather than silently ignored.
//!
//! Password hashes are bcrypt, kept in [`Secret`](crate::secret::Secret) (redacted
//! `Debug`) and never printed.
//!
//! Submodules (private: the crate sees what is re-exported here):
//! - `raw`: the file's serde shapes and their validation into [`WebConfig`].
//! - `tls`: the rustls server configuration: certificate, key, versions, suites, curves
//!   and the client-certificate policy of `client_auth_type`.
//! - `client_cert`: the client-certificate verifiers, `client_allowed_sans` included.
//! - `basic_auth`: [`BasicAuth`] and the axum middleware that enforces it.

mod basic_auth;
mod client_cert;
mod raw;
mod tls;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};

use crate::yaml::File;
use rustls::ServerConfig;

pub(crate) use basic_auth::protect;
pub(crate) use basic_auth::BasicAuth;

/// An error in the web configuration file: which file, which key, what was expected.
pub(crate) type WebConfigError = crate::yaml::FileError;
/// How errors name this file.
const KIND: &str = "web config file";

/// `tls_server_config.client_auth_type`, named as in Go's `crypto/tls`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

/// The validated web configuration. [`Default`] is plain HTTP without authentication,
/// which is what the exporter serves without `--web.config.file`.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// `Some`: serve HTTPS only, with this rustls configuration.
    pub tls: Option<Arc<ServerConfig>>,
    /// The client-certificate policy (`NoClientCert` without TLS).
    pub client_auth: ClientAuth,
    /// `Some`: every request needs HTTP basic authentication.
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// Extra headers set on every response (`http_server_config.headers`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `http_server_config.http2` as written (toolkit default: true). Only HTTP/1.1 is
    /// served either way; see docs/web.md.
    pub http2: bool,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("basic_auth", &self.basic_auth)
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates a web config file, including the certificate, key and CA
    /// files it names, so that a bad file fails before anything is bound.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = File::new(KIND, path).read()?;
        WebConfig::from_yaml(&text, path)
    }

    /// Parses and validates YAML text. `path` names the file in messages, and relative
    /// `cert_file`, `key_file` and `client_ca_file` paths are resolved against its
    /// directory.
    pub fn from_yaml(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid document: plain HTTP, as in the toolkit.
        let file = File::new(KIND, path).with_text(text);
        let raw: raw::RawWebConfig = file.parse()?;
        raw::Validator { file }.validate(raw)
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    pub fn basic_auth_enabled(&self) -> bool {
        self.basic_auth.is_some()
    }
}

/// The certificates of the integration tests, one copy for both kinds of test; the unit
/// tests use only part of it.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../tests/it/certs.rs"]
// Shared with the integration tests, where its items are the helpers of every area.
#[allow(unreachable_pub)]
mod test_certs;

/// A directory of certificates for the unit tests of every submodule.
#[cfg(test)]
mod fixtures {
    use super::{WebConfig, WebConfigError};

    /// Hash of "secret" at cost 4, made once with `bcrypt::hash("secret", 4)`.
    pub(super) const SECRET_HASH: &str =
        "$2b$04$bEei7zidUVN7oKB7TO3XlO3gt3.LJA38wZyyIB9Hs1qsSPX05hjWe";

    /// The smallest TLS section, to which tests append keys.
    pub(super) const TLS: &str =
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

    pub(super) struct Files {
        pub(super) dir: tempfile::TempDir,
    }

    /// A directory with a CA, a server certificate and key signed by it, and `web.yml`.
    pub(super) fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        super::test_certs::Pki::new().write(dir.path());
        Files { dir }
    }

    impl Files {
        pub(super) fn parse(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
            WebConfig::from_yaml(yaml, &self.dir.path().join("web.yml"))
        }
        pub(super) fn error(&self, yaml: &str) -> String {
            match self.parse(yaml) {
                Ok(config) => panic!("expected an error, got {config:?}"),
                Err(e) => e.to_string(),
            }
        }
        pub(super) fn file(&self) -> String {
            self.dir.path().join("web.yml").display().to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use rustls::crypto::ring as provider;

    use super::fixtures::{files, SECRET_HASH, TLS};
    use super::ClientAuth;

    #[test]
    fn an_empty_file_is_plain_http() {
        let f = files();
        for text in [
            "",
            "  \n",
            "{}\n",
            "tls_server_config:\nbasic_auth_users: {}\n",
        ] {
            let config = f.parse(text).unwrap();
            assert!(!config.tls_enabled(), "{text:?}");
            assert!(!config.basic_auth_enabled(), "{text:?}");
            assert!(config.headers.is_empty());
            assert!(config.http2, "the toolkit's default");
        }
    }

    #[test]
    fn every_key_is_accepted() {
        let f = files();
        let config = f
            .parse(&format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [scraper.example, 10.0.0.1]\n  min_version: TLS12\n  max_version: TLS13\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256]\n  prefer_server_cipher_suites: false\n  curve_preferences: [CurveP384, X25519]\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: '1; mode=block'\n    Content-Security-Policy: default-src 'self'\nbasic_auth_users:\n  alice: '{SECRET_HASH}'\n  bob: '{}'\n",
                f.dir.path().join("server.key").display(),
                SECRET_HASH.replace("$2b$", "$2y$"),
            ))
            .unwrap();
        let tls = config.tls.as_ref().unwrap();
        assert!(!tls.ignore_client_order);
        assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let suites: Vec<String> = tls
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            suites,
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
        let groups: Vec<String> = tls
            .crypto_provider()
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, ["secp384r1", "X25519"]);
        assert!(!config.http2);
        let headers: Vec<(String, String)> = config
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                (
                    "content-security-policy".into(),
                    "default-src 'self'".into()
                ),
                (
                    "strict-transport-security".into(),
                    "max-age=31536000".into()
                ),
                ("x-content-type-options".into(), "nosniff".into()),
                ("x-frame-options".into(), "deny".into()),
                ("x-xss-protection".into(), "1; mode=block".into()),
            ]
        );
        assert_eq!(
            format!("{:?}", config.basic_auth.unwrap()),
            "BasicAuth { users: [\"alice\", \"bob\"] }"
        );
    }

    #[test]
    fn defaults_of_a_minimal_tls_config() {
        let f = files();
        let config = f.parse(TLS).unwrap();
        let tls = config.tls.unwrap();
        assert!(
            tls.ignore_client_order,
            "prefer_server_cipher_suites defaults to true"
        );
        assert_eq!(
            tls.crypto_provider().cipher_suites.len(),
            provider::ALL_CIPHER_SUITES.len()
        );
        assert_eq!(config.client_auth, ClientAuth::NoClientCert);
        assert!(config.basic_auth.is_none());
    }
}
