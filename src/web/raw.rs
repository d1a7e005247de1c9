//! The web config file as written (serde shapes that refuse unknown keys), and its
//! validation into a [`WebConfig`]: every error names the file and the key path.
//!
//! The TLS section is validated in [`super::tls`], by further methods of [`Validator`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::basic_auth::BasicAuth;
use super::{ClientAuth, WebConfig, WebConfigError};
use crate::secret::Secret;
use crate::yaml::File;

// ---------------------------------------------------------------------------------
// Raw shapes, exactly as written in the file. Strings rather than enums, so that each
// bad value gets a message of our own under its key path.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(super) struct RawWebConfig {
    pub(super) tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, RawHash>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
pub(super) struct RawTls {
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<String>,
    pub(super) client_allowed_sans: Option<Vec<String>>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) curve_preferences: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a table of settings")]
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

/// The headers the toolkit lets an operator set, with the only values it allows (empty:
/// any value). The toolkit keeps this list closed on purpose, and so do we.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Content-Security-Policy", &[]),
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
];

// ---------------------------------------------------------------------------------
// Validation.

/// Turns the raw shapes into a [`WebConfig`]; `file` names the file in every error.
pub(super) struct Validator<'a> {
    pub(super) file: File<'a>,
}

/// A file path as written: `None` when absent or empty (the toolkit treats both alike).
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Validator<'_> {
    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        self.file.err(key, message)
    }

    /// Relative paths are relative to the web config file, as in the toolkit.
    pub(super) fn resolve(&self, file: &str) -> PathBuf {
        self.file.resolve(Path::new(file))
    }

    pub(super) fn read(&self, key: &str, file: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(file)
            .map_err(|e| self.err(key, format!("cannot read {}: {e}", file.display())))
    }

    pub(super) fn validate(&self, raw: RawWebConfig) -> Result<WebConfig, WebConfigError> {
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
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{files, SECRET_HASH, TLS};

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        let f = files();
        let message = f.error(&format!("{TLS}  cert_fle: x\n"));
        assert!(
            message.starts_with(&format!(
                "web config file {}: line 4: key tls_server_config.cert_fle: unknown key `cert_fle`, expected one of `cert_file`, ",
                f.file()
            )),
            "{message}"
        );
        let message = f.error("http_server_config:\n  http3: true\n");
        assert!(
            message.contains("line 2: key http_server_config.http3: unknown key `http3`, expected `http2` or `headers`"),
            "{message}"
        );
        let message = f.error("rate_limit:\n  burst: 1\n");
        assert!(
            message.contains("line 1: key rate_limit: unknown key `rate_limit`, expected one of "),
            "{message}"
        );
    }

    #[test]
    fn wrong_types_get_their_line_key_and_expectation() {
        let f = files();
        for (yaml, expected) in [
            (
                "tls_server_config: 5\n",
                "line 1: key tls_server_config: expected a table of settings, found 5",
            ),
            (
                "tls_server_config:\n  client_allowed_sans: x\n",
                "line 2: key tls_server_config.client_allowed_sans: expected a list, found \"x\"",
            ),
            (
                "tls_server_config:\n  prefer_server_cipher_suites: 1\n",
                "line 2: key tls_server_config.prefer_server_cipher_suites: expected true or false, found 1",
            ),
            (
                "http_server_config:\n  http2: \"yes\"\n",
                "line 2: key http_server_config.http2: expected true or false, found \"yes\"",
            ),
            (
                "http_server_config:\n  headers: [a]\n",
                "line 2: key http_server_config.headers: expected a table (key: value lines), found a list",
            ),
            (
                "basic_auth_users: [a]\n",
                "line 1: key basic_auth_users: expected a table (key: value lines), found a list",
            ),
        ] {
            assert_eq!(
                f.error(yaml),
                format!("web config file {}: {expected}", f.file()),
                "{yaml}"
            );
        }
    }

    #[test]
    fn headers_are_limited_to_the_toolkit_set() {
        let f = files();
        let message = f.error("http_server_config:\n  headers:\n    X-Powered-By: rust\n");
        assert_eq!(
            message,
            format!("web config file {}: line 3: key http_server_config.headers.X-Powered-By: HTTP header \"X-Powered-By\" can not be configured (allowed: Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)", f.file())
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
                "web config file {}: line 2: key basic_auth_users.alice: not a bcrypt hash: ",
                f.file()
            )),
            "{message}"
        );
        assert!(!message.contains(leaked), "{message}");
        let message = f.error("basic_auth_users:\n  alice: 123456789\n");
        assert!(
            message
                .contains("line 2: key basic_auth_users.alice: expected a bcrypt hash (a string)"),
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
}
