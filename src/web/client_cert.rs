//! Client-certificate verifiers: [`AnyClientCert`] for the policies that ask for a
//! certificate without checking its issuer, and [`AllowedSans`] for
//! `client_allowed_sans`, which reads subject alternative names with `x509-parser`.
//!
//! Why a parser at all: webpki checks the chain but exposes no SANs of a client
//! certificate other than DNS names (`EndEntityCert::valid_dns_names`), while the
//! toolkit also compares emails, IPs and URIs.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::asn1_rs::{Any, Class, FromDer as _, Sequence};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME;

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

/// The subject alternative names of an X.509 certificate, formatted as Go formats them
/// for the toolkit's comparison: DNS names, email addresses, IP addresses and URIs.
/// `None`: the certificate, or one of its SAN extensions, could not be parsed.
///
/// The certificate structure is x509-parser's, but the GeneralNames are walked one
/// element at a time rather than through `X509Certificate::subject_alternative_name`,
/// because that fails the whole extension on one odd element, where Go (and the
/// hand-written reader this replaced) skip what they do not compare: elements that are
/// not context-specific primitives, otherName, directoryName, registeredID, names that
/// are not UTF-8 and addresses that are neither 4 nor 16 octets. Several SAN extensions
/// are read in turn, as before; webpki has already refused such a certificate by then.
pub(crate) fn subject_alt_names(cert: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let mut names = Vec::new();
    let sans = cert
        .extensions()
        .iter()
        .filter(|extension| extension.oid == OID_X509_EXT_SUBJECT_ALT_NAME);
    for extension in sans {
        // GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName
        let (_, general_names) = Sequence::from_der(extension.value).ok()?;
        let mut elements: &[u8] = &general_names.content;
        while !elements.is_empty() {
            let (rest, element) = Any::from_der(elements).ok()?;
            elements = rest;
            // Every name compared here is an IMPLICIT primitive ([1], [2], [6], [7]).
            if element.class() != Class::ContextSpecific || element.header.is_constructed() {
                continue;
            }
            match GeneralName::try_from(element) {
                Ok(
                    GeneralName::RFC822Name(text)
                    | GeneralName::DNSName(text)
                    | GeneralName::URI(text),
                ) => names.push(text.to_owned()),
                Ok(GeneralName::IPAddress(octets)) => {
                    names.extend(ip(octets).map(|ip| ip.to_string()))
                }
                // Invalid (such as a name that is not UTF-8) and the kinds not compared.
                _ => {}
            }
        }
    }
    Some(names)
}

/// An `iPAddress` as Go's `net.IP` prints it: 4 or 16 octets, IPv4-mapped IPv6
/// addresses in dotted form. Other lengths are no address.
fn ip(octets: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(IpAddr::from(v4));
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?);
    Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
    use rustls::crypto::ring as provider;
    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::danger::ClientCertVerifier;
    use rustls::{CertificateError, Error};

    use super::{subject_alt_names, AllowedSans, AnyClientCert};

    /// `client_allowed_sans` at the verifier, over a certificate made by rcgen with every
    /// kind of name compared: any one listed name admits it, compared as exact strings
    /// (no case folding, wildcards or address normalization), as the toolkit compares.
    #[test]
    fn allowed_sans_admit_any_listed_name_compared_exactly() {
        let mut params = CertificateParams::new(vec![
            "scraper.example".to_string(),
            "10.1.2.3".to_string(),
            "2001:db8::7".to_string(),
        ])
        .unwrap();
        params.subject_alt_names.extend([
            SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example/scraper".try_into().unwrap()),
            SanType::IpAddress(Ipv4Addr::new(192, 0, 2, 9).to_ipv6_mapped().into()),
        ]);
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let verify = |cert: &CertificateDer<'_>, allowed: &str| {
            AllowedSans {
                // Accepts any certificate, so that only the SAN check decides.
                inner: Arc::new(AnyClientCert {
                    mandatory: true,
                    hints: Vec::new(),
                    algorithms: provider::default_provider().signature_verification_algorithms,
                }),
                sans: vec!["unrelated.example".to_string(), allowed.to_string()],
            }
            .verify_client_cert(cert, &[], UnixTime::now())
            .map(|_| ())
        };
        for admitted in [
            "scraper.example",
            "10.1.2.3",
            "2001:db8::7",
            "ops@example.com",
            "spiffe://example/scraper",
            "192.0.2.9",
        ] {
            assert_eq!(verify(cert.der(), admitted), Ok(()), "{admitted}");
        }
        for refused in [
            "Scraper.example",
            "*.example",
            "scraper.example.",
            "2001:db8:0:0:0:0:0:7",
            "::ffff:192.0.2.9",
            "mailto:ops@example.com",
            "spiffe://example/scraper/",
            "scraper",
        ] {
            assert_eq!(
                verify(cert.der(), refused),
                Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure
                )),
                "{refused}"
            );
        }
        assert_eq!(
            verify(
                &CertificateDer::from(&b"\x30\x05junk"[..]),
                "scraper.example"
            ),
            Err(Error::InvalidCertificate(CertificateError::BadEncoding))
        );
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
