//! Client-certificate verifiers: [`AnyClientCert`] for the policies that ask for a
//! certificate without checking its issuer, and [`AllowedSans`] for
//! `client_allowed_sans`, which reads subject alternative names.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// `RequestClientCert` / `RequireAnyClientCert`: ask for a client certificate (and, when
/// mandatory, insist on one) without checking who issued it. The handshake signature is
/// still checked, so the client does hold the certificate's key.
#[derive(Debug)]
pub(super) struct AnyClientCert {
    pub(super) mandatory: bool,
    pub(super) hints: Vec<DistinguishedName>,
    pub(super) algorithms: WebPkiSupportedAlgorithms,
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
pub(super) struct AllowedSans {
    pub(super) inner: Arc<dyn ClientCertVerifier>,
    pub(super) sans: Vec<String>,
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
pub(crate) fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};

    use super::subject_alt_names;

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
