//! The rustls server configuration of `tls_server_config`: certificate and key,
//! protocol versions, cipher suites, curves, and the client-certificate policy of
//! `client_auth_type` and `client_ca_file` (whose verifiers live in
//! [`super::client_cert`]).

use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use super::client_cert::{AllowedSans, AnyClientCert};
use super::raw::{given, RawTls, Validator};
use super::{ClientAuth, WebConfigError};

// The toolkit's names, mapped onto rustls where it has them.

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

impl Validator<'_> {
    /// `Ok(None)`: TLS is not enabled. As in the toolkit, TLS is on when any of
    /// `cert_file`, `key_file`, `client_ca_file` or `client_auth_type` is set.
    pub(super) fn tls(
        &self,
        raw: RawTls,
    ) -> Result<Option<(ServerConfig, ClientAuth)>, WebConfigError> {
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

        let (min, versions) = self.versions(&raw)?;
        let crypto = self.crypto(&raw, min)?;
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

    /// `min_version` and `max_version`: the lowest, and every version allowed.
    fn versions(
        &self,
        raw: &RawTls,
    ) -> Result<(TlsVersion, Vec<&'static SupportedProtocolVersion>), WebConfigError> {
        const P: &str = "tls_server_config";
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
        let versions = [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| (min..=max).contains(v))
            .map(TlsVersion::rustls)
            .collect();
        Ok((min, versions))
    }

    /// The crypto provider with `cipher_suites` and `curve_preferences` applied (an empty
    /// list means the defaults, as in Go).
    fn crypto(&self, raw: &RawTls, min: TlsVersion) -> Result<Arc<CryptoProvider>, WebConfigError> {
        const P: &str = "tls_server_config";
        let mut crypto = provider::default_provider();
        if let Some(names) = raw.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
            let tls12 = self.tls12_suites(names)?;
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
        Ok(Arc::new(crypto))
    }

    /// The TLS 1.2 suites of `cipher_suites`, each once; TLS 1.3 names are accepted and
    /// ignored, as in Go (TLS 1.3 suites are not configurable).
    fn tls12_suites(&self, names: &[String]) -> Result<Vec<SupportedCipherSuite>, WebConfigError> {
        let mut tls12 = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let key = format!("tls_server_config.cipher_suites[{i}]");
            if let Some(suite) = tls12_suite(name) {
                if !tls12.contains(&suite) {
                    tls12.push(suite);
                }
            } else if GO_SUITES_NOT_IN_RUSTLS.contains(&name.as_str()) {
                return Err(self.err(
                    key,
                    format!("{name} is not supported: rustls implements only ECDHE suites with AES-GCM or ChaCha20-Poly1305"),
                ));
            } else if !GO_TLS13_SUITES.contains(&name.as_str()) {
                return Err(self.err(key, format!("unknown cipher: {name}")));
            }
        }
        Ok(tls12)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rcgen::KeyPair;
    use rustls::crypto::ring as provider;
    use rustls::server::danger::ClientCertVerifier;

    use super::super::fixtures::{files, Files, TLS};
    use super::super::raw::{RawWebConfig, Validator};
    use super::ClientAuth;

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
                    "web config file {}: line 4: key tls_server_config.{key}: {version} is not supported: rustls implements only TLS 1.2 and 1.3 (use TLS12 or TLS13)",
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
                "web config file {}: line 2: key tls_server_config.cert_file: cannot read {}: ",
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
            Validator {
                file: crate::yaml::File::new("web config file", &path),
            }
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
}
