//! `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, basic
//! authentication and extra response headers), read once at startup.
//!
//! The file has the exporter-toolkit schema (`tls_server_config`, `http_server_config`,
//! `basic_auth_users`); unknown keys are errors, and every error names the file and the
//! key path, e.g. `web config file /etc/web.yml: key tls_server_config.cert_file: cannot
//! read ...`. As in the toolkit, relative file paths are taken from the directory of the
//! web config file.
//!
//! TLS is served by rustls with the *ring* provider, the same provider reqwest uses here,
//! passed explicitly to every config (no process-wide default is installed). rustls has
//! no TLS 1.0/1.1, no CBC or RSA-key-exchange suites and no P-521, so those settings are
//! errors rather than silently ignored.
//!
//! Password hashes are bcrypt, kept in [`Secret`] (redacted `Debug`) and never printed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderName, HeaderValue};
use base64::Engine as _;
use ring::hmac;
use rustls::crypto::ring as provider;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::config::Secret;

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    // The cause is the error's source: `{:#}` printing shows it once.
    #[error("cannot read web config file {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config file {}: key {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
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
    /// served either way; see the README.
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
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        WebConfig::from_yaml(&text, path)
    }

    /// Parses and validates YAML text. `path` names the file in messages, and relative
    /// `cert_file`, `key_file` and `client_ca_file` paths are resolved against its
    /// directory.
    pub fn from_yaml(text: &str, path: &Path) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid document: plain HTTP, as in the toolkit.
        let raw: RawWebConfig =
            crate::config::parse_yaml(text).map_err(|(key, message)| WebConfigError::Invalid {
                path: path.to_owned(),
                key,
                message,
            })?;
        Validator { path }.validate(raw)
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    pub fn basic_auth_enabled(&self) -> bool {
        self.basic_auth.is_some()
    }
}

// ---------------------------------------------------------------------------------
// Raw shapes, exactly as written in the file. Strings rather than enums, so that each
// bad value gets a message of our own under its key path.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, RawHash>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A bcrypt hash as written. Its deserializer accepts only strings and never echoes a
/// rejected value: a hash (or a password pasted by mistake) must not reach a message.
struct RawHash(Secret);

impl<'de> Deserialize<'de> for RawHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str = "expected a bcrypt hash (a string)";
        impl de::Visitor<'_> for Visitor {
            type Value = RawHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bcrypt hash")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHash, E> {
                Ok(RawHash(Secret::new(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawHash, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawHash, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawHash, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawHash, E> {
                Err(E::custom(EXPECTED))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawHash, E> {
                Err(E::custom(EXPECTED))
            }
        }
        d.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------------
// Fixed vocabularies: the toolkit's names, mapped onto rustls where it has them.

/// The headers the toolkit lets an operator set, with the only values it allows (empty:
/// any value). The toolkit keeps this list closed on purpose, and so do we.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Content-Security-Policy", &[]),
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
];

/// Go's TLS 1.3 suite names. Go (and so the toolkit) accepts them and ignores them,
/// because TLS 1.3 suites are not configurable there; the same here: every TLS 1.3
/// suite of the provider stays enabled.
const GO_TLS13_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites Go's `tls.CipherSuites()` offers (so the toolkit accepts them) that rustls
/// does not implement: CBC modes and RSA key exchange.
const GO_SUITES_NOT_IN_RUSTLS: &[&str] = &[
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// The TLS 1.2 suites rustls implements, under their Go names.
fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use provider::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

/// The toolkit's curve names, mapped onto the *ring* provider's key-exchange groups.
fn kx_group(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    use provider::kx_group as kx;
    match name {
        "X25519" => Ok(kx::X25519),
        "CurveP256" => Ok(kx::SECP256R1),
        "CurveP384" => Ok(kx::SECP384R1),
        "CurveP521" => Err(
            "CurveP521 is not supported: rustls implements X25519, CurveP256 and CurveP384".into(),
        ),
        other => Err(format!(
            "unknown curve: {other} (expected X25519, CurveP256 or CurveP384)"
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        }
    }
}

fn tls_version(text: &str) -> Result<TlsVersion, String> {
    match text {
        "TLS12" => Ok(TlsVersion::Tls12),
        "TLS13" => Ok(TlsVersion::Tls13),
        "TLS10" | "TLS11" => Err(format!(
            "{text} is not supported: rustls implements only TLS 1.2 and 1.3 (use TLS12 or TLS13)"
        )),
        other => Err(format!(
            "unknown TLS version: {other} (expected TLS12 or TLS13)"
        )),
    }
}

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

fn client_auth(text: &str) -> Result<ClientAuth, String> {
    Ok(match text {
        "" | "NoClientCert" => ClientAuth::NoClientCert,
        "RequestClientCert" => ClientAuth::RequestClientCert,
        // "RequireClientCert" is the toolkit's old spelling, still accepted there.
        "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
        "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
        "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
        other => {
            return Err(format!(
                "invalid client_auth_type {other:?} (expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
            ))
        }
    })
}

// ---------------------------------------------------------------------------------
// Validation.

struct Validator<'a> {
    path: &'a Path,
}

/// A file path as written: `None` when absent or empty (the toolkit treats both alike).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Validator<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Relative paths are relative to the web config file, as in the toolkit.
    fn resolve(&self, file: &str) -> PathBuf {
        let file = Path::new(file);
        match self.path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        }
    }

    fn read(&self, key: &str, file: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(file)
            .map_err(|e| self.err(key, format!("cannot read {}: {e}", file.display())))
    }

    fn validate(&self, raw: RawWebConfig) -> Result<WebConfig, WebConfigError> {
        let http = raw.http_server_config.unwrap_or_default();
        let headers = self.headers(http.headers.unwrap_or_default())?;
        let basic_auth = match raw.basic_auth_users {
            Some(users) if !users.is_empty() => Some(Arc::new(self.users(users)?)),
            _ => None,
        };
        let (tls, client_auth) = match raw.tls_server_config {
            Some(raw) => match self.tls(raw)? {
                Some((config, auth)) => (Some(Arc::new(config)), auth),
                None => (None, ClientAuth::NoClientCert),
            },
            None => (None, ClientAuth::NoClientCert),
        };
        Ok(WebConfig {
            tls,
            client_auth,
            basic_auth,
            headers,
            http2: http.http2.unwrap_or(true),
        })
    }

    fn headers(
        &self,
        raw: BTreeMap<String, String>,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
        let mut headers = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let key = format!("http_server_config.headers.{name}");
            // Exact, case-sensitive names and values, as the toolkit compares them.
            let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
                return Err(self.err(
                    key,
                    format!(
                        "HTTP header {name:?} can not be configured (allowed: {})",
                        names.join(", ")
                    ),
                ));
            };
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(self.err(
                    key,
                    format!("invalid value for {name}: expected one of {allowed:?}, got {value:?}"),
                ));
            }
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| self.err(&key, e.to_string()))?;
            let header_value = HeaderValue::from_str(&value)
                .map_err(|_| self.err(&key, "not a valid HTTP header value"))?;
            headers.push((header_name, header_value));
        }
        Ok(headers)
    }

    fn users(&self, raw: BTreeMap<String, RawHash>) -> Result<BasicAuth, WebConfigError> {
        let mut users = HashMap::with_capacity(raw.len());
        for (user, RawHash(hash)) in raw {
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() {
                return Err(self.err(key, "the user name must not be empty"));
            }
            // Basic auth splits `user:password` at the first colon: such a user could
            // never log in.
            if user.contains(':') {
                return Err(self.err(key, "a user name cannot contain ':'"));
            }
            let cost = hash
                .expose()
                .parse::<bcrypt::HashParts>()
                .map_err(|e| self.err(&key, format!("not a bcrypt hash: {e}")))?
                .get_cost();
            // bcrypt's (and Go's) cost range.
            if !(4..=31).contains(&cost) {
                return Err(self.err(&key, format!("bcrypt cost {cost} is outside 4..=31")));
            }
            users.insert(user, (hash, cost));
        }
        BasicAuth::new(users).map_err(|message| self.err("basic_auth_users", message))
    }

    /// `Ok(None)`: TLS is not enabled. As in the toolkit, TLS is on when any of
    /// `cert_file`, `key_file`, `client_ca_file` or `client_auth_type` is set.
    fn tls(&self, raw: RawTls) -> Result<Option<(ServerConfig, ClientAuth)>, WebConfigError> {
        const P: &str = "tls_server_config";
        let enabled = given(&raw.cert_file).is_some()
            || given(&raw.key_file).is_some()
            || given(&raw.client_ca_file).is_some()
            || given(&raw.client_auth_type).is_some();
        if !enabled {
            // The toolkit would silently serve plain HTTP here; settings that can only
            // mean "TLS" without a certificate are more likely a mistake.
            let other = raw.client_allowed_sans.is_some()
                || raw.min_version.is_some()
                || raw.max_version.is_some()
                || raw.cipher_suites.is_some()
                || raw.curve_preferences.is_some()
                || raw.prefer_server_cipher_suites.is_some();
            if other {
                return Err(self.err(
                    format!("{P}.cert_file"),
                    "missing: TLS settings are given, but TLS needs cert_file and key_file",
                ));
            }
            return Ok(None);
        }
        let Some(cert_file) = given(&raw.cert_file) else {
            return Err(self.err(format!("{P}.cert_file"), "missing: required for TLS"));
        };
        let Some(key_file) = given(&raw.key_file) else {
            return Err(self.err(format!("{P}.key_file"), "missing: required for TLS"));
        };

        let version = |key: &str, value: &Option<String>, default| match value {
            None => Ok(default),
            Some(text) => tls_version(text).map_err(|m| self.err(format!("{P}.{key}"), m)),
        };
        let min = version("min_version", &raw.min_version, TlsVersion::Tls12)?;
        let max = version("max_version", &raw.max_version, TlsVersion::Tls13)?;
        if min > max {
            return Err(self.err(
                format!("{P}.min_version"),
                "must not be greater than max_version",
            ));
        }
        let versions: Vec<&'static SupportedProtocolVersion> =
            [TlsVersion::Tls12, TlsVersion::Tls13]
                .into_iter()
                .filter(|v| (min..=max).contains(v))
                .map(TlsVersion::rustls)
                .collect();

        let mut crypto = provider::default_provider();
        // An empty list means the defaults, as in Go.
        if let Some(names) = raw.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
            let mut tls12 = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let key = format!("{P}.cipher_suites[{i}]");
                if let Some(suite) = tls12_suite(name) {
                    if !tls12.contains(&suite) {
                        tls12.push(suite);
                    }
                } else if GO_TLS13_SUITES.contains(&name.as_str()) {
                    // Accepted and ignored, as in Go: TLS 1.3 suites are not configurable.
                } else if GO_SUITES_NOT_IN_RUSTLS.contains(&name.as_str()) {
                    return Err(self.err(
                        key,
                        format!("{name} is not supported: rustls implements only ECDHE suites with AES-GCM or ChaCha20-Poly1305"),
                    ));
                } else {
                    return Err(self.err(key, format!("unknown cipher: {name}")));
                }
            }
            if tls12.is_empty() && min == TlsVersion::Tls12 {
                return Err(self.err(
                    format!("{P}.cipher_suites"),
                    "lists no TLS 1.2 suite, so no TLS 1.2 client could connect; add one or set min_version: TLS13",
                ));
            }
            // TLS 1.3 suites first, in the provider's order, then the listed ones.
            crypto.cipher_suites.retain(|s| s.tls13().is_some());
            crypto.cipher_suites.extend(tls12);
        }
        if let Some(names) = raw.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
            let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let group = kx_group(name)
                    .map_err(|m| self.err(format!("{P}.curve_preferences[{i}]"), m))?;
                if !groups.iter().any(|g| g.name() == group.name()) {
                    groups.push(group);
                }
            }
            crypto.kx_groups = groups;
        }
        let crypto = Arc::new(crypto);

        let (auth, verifier) = self.client_verifier(&raw, &crypto)?;

        let (chain, key) = self.key_pair(cert_file, key_file)?;
        let mut config = ServerConfig::builder_with_provider(crypto)
            .with_protocol_versions(&versions)
            .map_err(|e| self.err(format!("{P}.min_version"), e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => self.err(
                    format!("{P}.key_file"),
                    "the private key does not match the certificate in cert_file",
                ),
                rustls::Error::InvalidCertificate(e) => self.err(
                    format!("{P}.cert_file"),
                    format!("invalid certificate: {e}"),
                ),
                e => self.err(format!("{P}.key_file"), format!("cannot use the key: {e}")),
            })?;
        // prefer_server_cipher_suites (toolkit default: true) maps onto rustls's
        // `ignore_client_order`: choose by the server's suite order, not the client's.
        // (Go has ignored the setting since 1.17; rustls still honours it.)
        config.ignore_client_order = raw.prefer_server_cipher_suites.unwrap_or(true);
        // HTTP/1.1 only; see `WebConfig::http2`.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some((config, auth)))
    }

    /// The client-certificate policy of `client_auth_type`, `client_ca_file` and
    /// `client_allowed_sans`.
    fn client_verifier(
        &self,
        raw: &RawTls,
        crypto: &Arc<CryptoProvider>,
    ) -> Result<(ClientAuth, Arc<dyn ClientCertVerifier>), WebConfigError> {
        const P: &str = "tls_server_config";
        let auth = client_auth(raw.client_auth_type.as_deref().unwrap_or(""))
            .map_err(|m| self.err(format!("{P}.client_auth_type"), m))?;
        let roots = match given(&raw.client_ca_file) {
            Some(file) => Some(self.client_cas(&format!("{P}.client_ca_file"), file)?),
            None => None,
        };
        let verifier: Arc<dyn ClientCertVerifier> = match (auth, roots) {
            (ClientAuth::NoClientCert, Some(_)) => {
                return Err(self.err(
                    format!("{P}.client_ca_file"),
                    "client CAs are configured without a client_auth_type that asks for client certificates",
                ))
            }
            (ClientAuth::NoClientCert, None) => WebPkiClientVerifier::no_client_auth(),
            (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => {
                // A CA file here only hints to clients which certificate to send.
                Arc::new(AnyClientCert {
                    mandatory: auth == ClientAuth::RequireAnyClientCert,
                    hints: roots.map(|r| r.subjects()).unwrap_or_default(),
                    algorithms: crypto.signature_verification_algorithms,
                })
            }
            (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
                // Go would fall back to the system roots; a client CA is the point here.
                return Err(self.err(
                    format!("{P}.client_ca_file"),
                    format!("missing: required with client_auth_type {auth:?}"),
                ));
            }
            (_, Some(roots)) => {
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto.clone());
                let builder = if auth == ClientAuth::VerifyClientCertIfGiven {
                    builder.allow_unauthenticated()
                } else {
                    builder
                };
                builder.build().map_err(|e| {
                    self.err(format!("{P}.client_ca_file"), format!("cannot use the client CAs: {e}"))
                })?
            }
        };
        let Some(sans) = &raw.client_allowed_sans else {
            return Ok((auth, verifier));
        };
        if !matches!(
            auth,
            ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert
        ) {
            return Err(self.err(
                format!("{P}.client_allowed_sans"),
                "requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
            ));
        }
        if sans.is_empty() {
            // Go would install the check and then match nothing: no client could connect.
            return Err(self.err(
                format!("{P}.client_allowed_sans"),
                "is empty, so no client could connect; list names or remove the key",
            ));
        }
        Ok((
            auth,
            Arc::new(AllowedSans {
                inner: verifier,
                sans: sans.clone(),
            }),
        ))
    }

    fn key_pair(
        &self,
        cert_file: &str,
        key_file: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), WebConfigError> {
        let cert_key = "tls_server_config.cert_file";
        let cert_path = self.resolve(cert_file);
        let pem = self.read(cert_key, &cert_path)?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                self.err(
                    cert_key,
                    format!("{}: invalid PEM: {e}", cert_path.display()),
                )
            })?;
        if chain.is_empty() {
            return Err(self.err(
                cert_key,
                format!("{}: no PEM certificate found", cert_path.display()),
            ));
        }

        let key_key = "tls_server_config.key_file";
        let key_path = self.resolve(key_file);
        let pem = self.read(key_key, &key_path)?;
        // The PEM error is not quoted: it could echo part of the key file.
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            self.err(
                key_key,
                format!(
                    "{}: no PEM private key found (PKCS#8, PKCS#1 or SEC1; encrypted keys are not supported)",
                    key_path.display()
                ),
            )
        })?;
        Ok((chain, key))
    }

    fn client_cas(&self, key: &str, file: &str) -> Result<RootCertStore, WebConfigError> {
        let path = self.resolve(file);
        let pem = self.read(key, &path)?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| self.err(key, format!("{}: invalid PEM: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                self.err(
                    key,
                    format!("{}: invalid CA certificate: {e}", path.display()),
                )
            })?;
        }
        if roots.is_empty() {
            return Err(self.err(key, format!("{}: no PEM certificate found", path.display())));
        }
        Ok(roots)
    }
}

// ---------------------------------------------------------------------------------
// Client certificates.

/// `RequestClientCert` / `RequireAnyClientCert`: ask for a client certificate (and, when
/// mandatory, insist on one) without checking who issued it. The handshake signature is
/// still checked, so the client does hold the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after `inner` accepts the client certificate, it must also
/// carry one of these subject alternative names (DNS, email, IP or URI), compared as
/// exact strings as the toolkit does.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let names = subject_alt_names(end_entity.as_ref()).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        if names.iter().any(|name| self.sans.contains(name)) {
            Ok(verified)
        } else {
            tracing::debug!(
                found = ?names,
                "client certificate carries none of client_allowed_sans"
            );
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER element: (tag, contents, rest). Single-byte tags and definite lengths only,
/// which is all DER allows for the structures read here.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject alternative names of an X.509 certificate, formatted as Go formats them
/// for the toolkit's comparison: DNS names, email addresses, IP addresses and URIs.
/// `None`: the certificate could not be parsed.
pub fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    const SEQUENCE: u8 = 0x30;
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT
    const SAN: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

    let (tag, certificate, _) = der(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = der(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut names = Vec::new();
    while !tbs.is_empty() {
        let (tag, value, rest) = der(tbs)?;
        tbs = rest;
        if tag != EXTENSIONS {
            continue;
        }
        let (tag, mut extensions, _) = der(value)?;
        if tag != SEQUENCE {
            return None;
        }
        while !extensions.is_empty() {
            let (tag, extension, rest) = der(extensions)?;
            extensions = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, mut rest) = der(extension)?;
            if tag != OID || oid != SAN {
                continue;
            }
            let (mut tag, mut value, after) = der(rest)?;
            if tag == BOOLEAN {
                rest = after;
                (tag, value, _) = der(rest)?;
            }
            if tag != OCTET_STRING {
                return None;
            }
            let (tag, mut general_names, _) = der(value)?;
            if tag != SEQUENCE {
                return None;
            }
            while !general_names.is_empty() {
                let (tag, name, rest) = der(general_names)?;
                general_names = rest;
                let text = || String::from_utf8(name.to_vec()).ok();
                match tag {
                    // [1] rfc822Name, [2] dNSName, [6] uniformResourceIdentifier (IA5String)
                    0x81 | 0x82 | 0x86 => names.extend(text()),
                    // [7] iPAddress: 4 or 16 octets
                    0x87 => {
                        let ip = match name.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(name).ok()?),
                            16 => {
                                let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(name).ok()?);
                                // Go prints IPv4-mapped addresses in dotted form.
                                match v6.to_ipv4_mapped() {
                                    Some(v4) => IpAddr::V4(v4),
                                    None => IpAddr::V6(v6),
                                }
                            }
                            _ => continue,
                        };
                        names.push(ip.to_string());
                    }
                    _ => {}
                }
            }
        }
    }
    Some(names)
}

// ---------------------------------------------------------------------------------
// Basic authentication.

/// Checks `Authorization: Basic` credentials against bcrypt hashes, as the toolkit does:
///
/// - an unknown user costs one bcrypt verification too (against the costliest configured
///   hash, with the result discarded), so response times do not tell which users exist;
/// - bcrypt runs on the blocking pool, one verification at a time (the toolkit holds a
///   mutex for the same reason: a flood of bad passwords must not take every core);
/// - a successful verification is cached per user as an HMAC-SHA-256 of user and
///   password under a random per-process key (never the password itself), checked in
///   constant time, so scrapes every few seconds do not pay for bcrypt each time. The
///   cache holds at most one entry per configured user.
pub struct BasicAuth {
    users: HashMap<String, Secret>,
    decoy: Secret,
    key: hmac::Key,
    cache: Mutex<HashMap<String, hmac::Tag>>,
    bcrypt: Arc<Semaphore>,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("BasicAuth").field("users", &users).finish()
    }
}

/// The longest password bcrypt can check; Go's bcrypt refuses longer ones rather than
/// truncating them, and so do we.
const MAX_PASSWORD_BYTES: usize = 72;

impl BasicAuth {
    /// `users`: user → (validated bcrypt hash, its cost). Must not be empty.
    fn new(users: HashMap<String, (Secret, u32)>) -> Result<BasicAuth, String> {
        let decoy = users
            .values()
            .max_by_key(|(_, cost)| *cost)
            .map(|(hash, _)| hash.clone())
            .ok_or("no users")?;
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| "cannot generate a random key for the credential cache")?;
        Ok(BasicAuth {
            users: users.into_iter().map(|(u, (h, _))| (u, h)).collect(),
            decoy,
            key,
            cache: Mutex::new(HashMap::new()),
            bcrypt: Arc::new(Semaphore::new(1)),
        })
    }

    /// Number of users whose last good password is cached (for tests).
    pub fn cached_users(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when `authorization` carries valid basic credentials.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        let user = String::from_utf8(user).ok();
        let hash = user.as_ref().and_then(|u| self.users.get(u));
        let message = user.as_ref().map(|u| cache_message(u, &password));
        if let (Some(user), Some(message)) = (&user, &message) {
            if hash.is_some() && self.cached(user, message) {
                return true;
            }
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).clone();
        let Ok(permit) = self.bcrypt.clone().acquire_owned().await else {
            return false;
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&password, hash.expose()).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(known && verified) {
            return false;
        }
        if let (Some(user), Some(message), Ok(mut cache)) = (user, message, self.cache.lock()) {
            cache.insert(user, hmac::sign(&self.key, &message));
        }
        true
    }

    fn cached(&self, user: &str, message: &[u8]) -> bool {
        let tag = match self.cache.lock() {
            Ok(cache) => cache.get(user).copied(),
            Err(_) => None,
        };
        // hmac::verify compares in constant time.
        tag.is_some_and(|tag| hmac::verify(&self.key, message, tag.as_ref()).is_ok())
    }
}

/// Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
fn cache_message(user: &str, password: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(8 + user.len() + password.len());
    message.extend_from_slice(&(user.len() as u64).to_be_bytes());
    message.extend_from_slice(user.as_bytes());
    message.extend_from_slice(password);
    message
}

/// `Basic base64(user:password)` → (user, password), as Go's `Request.BasicAuth` reads
/// it: case-insensitive scheme, standard base64, split at the first colon.
fn parse_basic(value: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = value.as_bytes();
    let prefix = b"basic ";
    if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&value[prefix.len()..])
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};

    /// Hash of "secret" at cost 4, made once with `bcrypt::hash("secret", 4)`.
    const SECRET_HASH: &str = "$2b$04$bEei7zidUVN7oKB7TO3XlO3gt3.LJA38wZyyIB9Hs1qsSPX05hjWe";

    struct Files {
        dir: tempfile::TempDir,
    }

    /// A directory with a CA, a server certificate and key signed by it, and `web.yml`.
    fn files() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Files { dir }
    }

    impl Files {
        fn parse(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
            WebConfig::from_yaml(yaml, &self.dir.path().join("web.yml"))
        }
        fn error(&self, yaml: &str) -> String {
            match self.parse(yaml) {
                Ok(config) => panic!("expected an error, got {config:?}"),
                Err(e) => e.to_string(),
            }
        }
        fn file(&self) -> String {
            self.dir.path().join("web.yml").display().to_string()
        }
    }

    const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

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

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let f = files();
        let message = f.error(&format!("{TLS}  cert_fle: x\n"));
        assert!(
            message.starts_with(&format!(
                "web config file {}: key tls_server_config.cert_fle: unknown field `cert_fle`",
                f.file()
            )),
            "{message}"
        );
        let message = f.error("http_server_config:\n  http3: true\n");
        assert!(
            message.contains("key http_server_config.http3: unknown field `http3`"),
            "{message}"
        );
        let message = f.error("rate_limit:\n  burst: 1\n");
        assert!(
            message.contains("key rate_limit: unknown field `rate_limit`"),
            "{message}"
        );
    }

    #[test]
    fn old_tls_versions_are_a_clear_error() {
        let f = files();
        for (key, version) in [
            ("min_version", "TLS10"),
            ("min_version", "TLS11"),
            ("max_version", "TLS11"),
        ] {
            let message = f.error(&format!("{TLS}  {key}: {version}\n"));
            assert_eq!(
                message,
                format!(
                    "web config file {}: key tls_server_config.{key}: {version} is not supported: rustls implements only TLS 1.2 and 1.3 (use TLS12 or TLS13)",
                    f.file()
                )
            );
        }
        let message = f.error(&format!("{TLS}  min_version: TLS14\n"));
        assert!(message.ends_with("key tls_server_config.min_version: unknown TLS version: TLS14 (expected TLS12 or TLS13)"), "{message}");
        let message = f.error(&format!(
            "{TLS}  min_version: TLS13\n  max_version: TLS12\n"
        ));
        assert!(
            message.ends_with(
                "key tls_server_config.min_version: must not be greater than max_version"
            ),
            "{message}"
        );
        // TLS 1.3 only is fine.
        let config = f.parse(&format!("{TLS}  min_version: TLS13\n")).unwrap();
        assert!(config.tls_enabled());
    }

    #[test]
    fn missing_files_name_the_key_and_the_file() {
        let f = files();
        let missing = f.dir.path().join("nope.crt");
        let message =
            f.error("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n");
        assert!(
            message.starts_with(&format!(
                "web config file {}: key tls_server_config.cert_file: cannot read {}: ",
                f.file(),
                missing.display()
            )),
            "{message}"
        );
        let message = f.error(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: /nonexistent/server.key\n",
        );
        assert!(
            message
                .contains("key tls_server_config.key_file: cannot read /nonexistent/server.key: "),
            "{message}"
        );
        let message = f.error(&format!("{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing-ca.crt\n"));
        assert!(
            message.contains(&format!(
                "key tls_server_config.client_ca_file: cannot read {}: ",
                f.dir.path().join("missing-ca.crt").display()
            )),
            "{message}"
        );
        let message = f.error("tls_server_config:\n  key_file: server.key\n");
        assert!(
            message.ends_with("key tls_server_config.cert_file: missing: required for TLS"),
            "{message}"
        );
        let message = f.error("tls_server_config:\n  cert_file: server.crt\n");
        assert!(
            message.ends_with("key tls_server_config.key_file: missing: required for TLS"),
            "{message}"
        );
        let message = f.error("tls_server_config:\n  min_version: TLS13\n");
        assert!(message.ends_with("key tls_server_config.cert_file: missing: TLS settings are given, but TLS needs cert_file and key_file"), "{message}");
    }

    #[test]
    fn bad_pem_and_mismatched_keys_are_named() {
        let f = files();
        std::fs::write(f.dir.path().join("empty.pem"), "not pem\n").unwrap();
        let message =
            f.error("tls_server_config:\n  cert_file: empty.pem\n  key_file: server.key\n");
        assert!(
            message.ends_with(&format!(
                "key tls_server_config.cert_file: {}: no PEM certificate found",
                f.dir.path().join("empty.pem").display()
            )),
            "{message}"
        );
        // The certificate is not a key.
        let message =
            f.error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n");
        assert!(
            message.contains("key tls_server_config.key_file: ")
                && message.contains("no PEM private key found"),
            "{message}"
        );
        std::fs::write(
            f.dir.path().join("other.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        let message =
            f.error("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
        assert!(message.ends_with("key tls_server_config.key_file: the private key does not match the certificate in cert_file"), "{message}");
    }

    impl Files {
        /// The client verifier of `TLS` plus `extra`, as `tls()` builds it.
        fn verifier(&self, extra: &str) -> (ClientAuth, Arc<dyn ClientCertVerifier>) {
            let raw: RawWebConfig = serde_yaml_ng::from_str(&format!("{TLS}{extra}")).unwrap();
            let path = self.dir.path().join("web.yml");
            Validator { path: &path }
                .client_verifier(
                    &raw.tls_server_config.unwrap(),
                    &Arc::new(provider::default_provider()),
                )
                .unwrap()
        }
    }

    #[test]
    fn client_auth_rules() {
        let f = files();
        let (auth, v) = f.verifier("");
        assert_eq!(auth, ClientAuth::NoClientCert);
        assert!(!v.offer_client_auth());
        let (auth, v) = f.verifier("  client_auth_type: NoClientCert\n");
        assert_eq!(auth, ClientAuth::NoClientCert);
        assert!(!v.offer_client_auth());
        let (auth, v) = f.verifier("  client_auth_type: RequestClientCert\n");
        assert_eq!(auth, ClientAuth::RequestClientCert);
        assert!(v.offer_client_auth() && !v.client_auth_mandatory());
        assert!(v.root_hint_subjects().is_empty());
        let (auth, v) =
            f.verifier("  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n");
        assert_eq!(auth, ClientAuth::RequireAnyClientCert);
        assert!(v.offer_client_auth() && v.client_auth_mandatory());
        assert_eq!(v.root_hint_subjects().len(), 1, "the CA is a hint");
        let (auth, _) = f.verifier("  client_auth_type: RequireClientCert\n");
        assert_eq!(
            auth,
            ClientAuth::RequireAnyClientCert,
            "the toolkit's old name"
        );
        let (auth, v) =
            f.verifier("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n");
        assert_eq!(auth, ClientAuth::VerifyClientCertIfGiven);
        assert!(v.offer_client_auth() && !v.client_auth_mandatory());
        assert_eq!(v.root_hint_subjects().len(), 1);
        let (auth, v) = f.verifier("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [x]\n");
        assert_eq!(auth, ClientAuth::RequireAndVerifyClientCert);
        assert!(v.offer_client_auth() && v.client_auth_mandatory());
        let config = f
            .parse(&format!(
                "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
            ))
            .unwrap();
        assert_eq!(config.client_auth, ClientAuth::RequireAndVerifyClientCert);

        let message = f.error(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n"
        ));
        assert!(message.ends_with("key tls_server_config.client_ca_file: missing: required with client_auth_type RequireAndVerifyClientCert"), "{message}");
        let message = f.error(&format!("{TLS}  client_ca_file: ca.crt\n"));
        assert!(
            message.contains(
                "key tls_server_config.client_ca_file: client CAs are configured without"
            ),
            "{message}"
        );
        let message = f.error(&format!("{TLS}  client_auth_type: RequireAndVerify\n"));
        assert!(message.contains("key tls_server_config.client_auth_type: invalid client_auth_type \"RequireAndVerify\""), "{message}");
        let message = f.error(&format!("{TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [a]\n"));
        assert!(message.ends_with("key tls_server_config.client_allowed_sans: requires client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert"), "{message}");
        let message = f.error(&format!(
            "{TLS}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: []\n"
        ));
        assert!(message.ends_with("key tls_server_config.client_allowed_sans: is empty, so no client could connect; list names or remove the key"), "{message}");
        std::fs::write(
            f.dir.path().join("garbage.crt"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let message = f.error(&format!(
            "{TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: garbage.crt\n"
        ));
        assert!(
            message.contains("key tls_server_config.client_ca_file: ")
                && message.contains("invalid CA certificate"),
            "{message}"
        );
    }

    #[test]
    fn cipher_suites_and_curves_map_or_fail() {
        let f = files();
        let message = f.error(&format!("{TLS}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA]\n"));
        assert!(message.ends_with("key tls_server_config.cipher_suites[1]: TLS_RSA_WITH_AES_128_CBC_SHA is not supported: rustls implements only ECDHE suites with AES-GCM or ChaCha20-Poly1305"), "{message}");
        let message = f.error(&format!("{TLS}  cipher_suites: [TLS_FANCY]\n"));
        assert!(
            message.ends_with("key tls_server_config.cipher_suites[0]: unknown cipher: TLS_FANCY"),
            "{message}"
        );
        let message = f.error(&format!("{TLS}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"));
        assert!(
            message.contains("key tls_server_config.cipher_suites: lists no TLS 1.2 suite"),
            "{message}"
        );
        let tls13_only = f
            .parse(&format!(
                "{TLS}  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"
            ))
            .unwrap();
        assert_eq!(
            tls13_only
                .tls
                .unwrap()
                .crypto_provider()
                .cipher_suites
                .len(),
            3
        );
        // Empty lists mean the defaults, as in Go.
        let defaults = f
            .parse(&format!(
                "{TLS}  cipher_suites: []\n  curve_preferences: []\n"
            ))
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(
            defaults.crypto_provider().cipher_suites.len(),
            provider::ALL_CIPHER_SUITES.len()
        );
        assert_eq!(
            defaults.crypto_provider().kx_groups.len(),
            provider::ALL_KX_GROUPS.len()
        );
        let message = f.error(&format!("{TLS}  curve_preferences: [X25519, CurveP521]\n"));
        assert!(message.ends_with("key tls_server_config.curve_preferences[1]: CurveP521 is not supported: rustls implements X25519, CurveP256 and CurveP384"), "{message}");
        let message = f.error(&format!("{TLS}  curve_preferences: [Curve25519]\n"));
        assert!(message.ends_with("key tls_server_config.curve_preferences[0]: unknown curve: Curve25519 (expected X25519, CurveP256 or CurveP384)"), "{message}");
    }

    #[test]
    fn headers_are_limited_to_the_toolkit_set() {
        let f = files();
        let message = f.error("http_server_config:\n  headers:\n    X-Powered-By: rust\n");
        assert_eq!(
            message,
            format!("web config file {}: key http_server_config.headers.X-Powered-By: HTTP header \"X-Powered-By\" can not be configured (allowed: Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)", f.file())
        );
        // Names are compared exactly, as in the toolkit.
        let message = f.error("http_server_config:\n  headers:\n    x-frame-options: deny\n");
        assert!(message.contains("key http_server_config.headers.x-frame-options: HTTP header \"x-frame-options\" can not be configured"), "{message}");
        let message = f.error("http_server_config:\n  headers:\n    X-Frame-Options: allow\n");
        assert!(message.ends_with("key http_server_config.headers.X-Frame-Options: invalid value for X-Frame-Options: expected one of [\"deny\", \"sameorigin\"], got \"allow\""), "{message}");
        let message =
            f.error("http_server_config:\n  headers:\n    Content-Security-Policy: \"a\\nb\"\n");
        assert!(message.ends_with("key http_server_config.headers.Content-Security-Policy: not a valid HTTP header value"), "{message}");
    }

    #[test]
    fn bad_hashes_are_named_without_their_value() {
        let f = files();
        let leaked = "$2y$10$abcdefghijklmnopqrstuv";
        let message = f.error(&format!("basic_auth_users:\n  alice: '{leaked}'\n"));
        assert!(
            message.starts_with(&format!(
                "web config file {}: key basic_auth_users.alice: not a bcrypt hash: ",
                f.file()
            )),
            "{message}"
        );
        assert!(!message.contains(leaked), "{message}");
        let message = f.error("basic_auth_users:\n  alice: 123456789\n");
        assert!(
            message.contains(
                "key basic_auth_users.alice: expected a bcrypt hash (a string) at line 2"
            ),
            "{message}"
        );
        assert!(!message.contains("123456789"), "{message}");
        let message = f.error(&format!("basic_auth_users:\n  'a:b': '{SECRET_HASH}'\n"));
        assert!(
            message.ends_with("key basic_auth_users.a:b: a user name cannot contain ':'"),
            "{message}"
        );
        let message = f.error(&format!(
            "basic_auth_users:\n  alice: '{}'\n",
            SECRET_HASH.replace("$04$", "$03$")
        ));
        assert!(
            message.ends_with("key basic_auth_users.alice: bcrypt cost 3 is outside 4..=31"),
            "{message}"
        );
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_checks_and_caches_good_passwords_only() {
        let f = files();
        let config = f
            .parse(&format!("basic_auth_users:\n  alice: '{SECRET_HASH}'\n"))
            .unwrap();
        let auth = config.basic_auth.unwrap();
        assert!(!auth.check(None).await);
        assert!(!auth.check(Some(&basic("alice", "wrong"))).await);
        assert!(!auth.check(Some(&basic("mallory", "secret"))).await);
        assert_eq!(auth.cached_users(), 0);
        assert!(auth.check(Some(&basic("alice", "secret"))).await);
        assert_eq!(auth.cached_users(), 1);
        // From the cache now; a wrong password still fails after a good one was cached.
        assert!(auth.check(Some(&basic("alice", "secret"))).await);
        assert!(!auth.check(Some(&basic("alice", "secreT"))).await);
        assert!(
            !auth
                .check(Some(&basic("alice", &format!("secret{}", "x".repeat(80)))))
                .await
        );
        let lower = HeaderValue::from_str(
            basic("alice", "secret")
                .to_str()
                .unwrap()
                .replace("Basic", "bAsIc")
                .as_str(),
        )
        .unwrap();
        assert!(
            auth.check(Some(&lower)).await,
            "the scheme is case-insensitive"
        );
        for bad in ["Bearer abc", "Basic", "Basic !!!", "Basic YWxpY2U="] {
            assert!(
                !auth.check(Some(&HeaderValue::from_static(bad))).await,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_test_hash_is_what_it_claims() {
        assert!(bcrypt::verify("secret", SECRET_HASH).unwrap());
    }

    #[test]
    fn subject_alt_names_are_read_like_go() {
        let mut params = CertificateParams::new(vec![
            "scraper.example".to_string(),
            "10.1.2.3".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        params
            .subject_alt_names
            .push(SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
        params
            .subject_alt_names
            .push(SanType::URI("spiffe://example/scraper".try_into().unwrap()));
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()).unwrap(),
            [
                "scraper.example",
                "10.1.2.3",
                "::1",
                "ops@example.com",
                "spiffe://example/scraper"
            ]
        );
        let none = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        assert_eq!(subject_alt_names(none.der()).unwrap(), Vec::<String>::new());
        assert_eq!(subject_alt_names(b"\x30\x05junk"), None);
    }
}

/// Characterization of the subject-alternative-name reader on a hand-encoded extension:
/// the name kinds it keeps, how it prints IPs, and what it skips without failing.
#[cfg(test)]
mod san_edge_cases {
    use super::subject_alt_names;
    use rcgen::{CertificateParams, CustomExtension, KeyPair};

    /// A DER element; lengths up to 255 bytes are all these tests need.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = match u8::try_from(content.len()).unwrap() {
            len @ 0..0x80 => vec![tag, len],
            len => vec![tag, 0x81, len],
        };
        out.extend_from_slice(content);
        out
    }

    /// A self-signed certificate whose only SAN extensions are `contents` (each the DER
    /// GeneralNames), marked critical when asked.
    fn cert_with_sans(contents: &[(Vec<u8>, bool)]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (content, critical) in contents {
            let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 17], content.clone());
            ext.set_criticality(*critical);
            params.custom_extensions.push(ext);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn general_names(names: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &names.concat())
    }

    #[test]
    fn kept_printed_and_skipped_names() {
        let mapped: [u8; 16] = std::net::Ipv4Addr::new(192, 0, 2, 1)
            .to_ipv6_mapped()
            .octets();
        let v6: [u8; 16] = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let names = general_names(&[
            tlv(0x82, b"a.example"),
            // A universal-class element among GeneralNames: not a name, skipped.
            tlv(0x0c, b"utf8"),
            // A constructed [2]: not a dNSName encoding, skipped.
            tlv(0xa2, &tlv(0x16, b"c.example")),
            tlv(0x81, b"ops@example.com"),
            tlv(0x86, b"spiffe://example/scraper"),
            tlv(0x87, &[10, 0, 0, 1]),
            tlv(0x87, &mapped),
            tlv(0x87, &v6),
            // Neither 4 nor 16 octets (an address with a mask, as in name constraints).
            tlv(0x87, &[10, 0, 0, 0, 255, 0, 0, 0]),
            tlv(0x87, &[1, 2, 3, 4, 5]),
            // Not UTF-8: skipped, not an error.
            tlv(0x82, &[0xff, b'a']),
            // otherName, directoryName, registeredID: not compared.
            tlv(
                0xa0,
                &[tlv(0x06, &[0x2b, 0x06, 0x01]), tlv(0xa0, &tlv(0x0c, b"A"))].concat(),
            ),
            tlv(0xa4, &tlv(0x30, &[])),
            tlv(0x88, &[0x2b, 0x06, 0x01]),
            tlv(0x82, b"z.example"),
        ]);
        let cert = cert_with_sans(&[(names.clone(), false)]);
        let expected = [
            "a.example",
            "ops@example.com",
            "spiffe://example/scraper",
            "10.0.0.1",
            "192.0.2.1",
            "2001:db8::1",
            "z.example",
        ];
        assert_eq!(subject_alt_names(&cert).unwrap(), expected);
        // A critical SAN extension reads the same.
        let cert = cert_with_sans(&[(names, true)]);
        assert_eq!(subject_alt_names(&cert).unwrap(), expected);
    }

    #[test]
    fn several_san_extensions_are_read_in_turn() {
        let cert = cert_with_sans(&[
            (general_names(&[tlv(0x82, b"one.example")]), false),
            (general_names(&[tlv(0x82, b"two.example")]), false),
        ]);
        assert_eq!(
            subject_alt_names(&cert).unwrap(),
            ["one.example", "two.example"]
        );
    }

    #[test]
    fn a_san_extension_that_is_not_a_sequence_is_an_error() {
        let cert = cert_with_sans(&[(tlv(0x04, b"x"), false)]);
        assert_eq!(subject_alt_names(&cert), None);
    }
}
