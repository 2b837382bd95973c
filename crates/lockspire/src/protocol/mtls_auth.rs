//! Client authentication by certificate (RFC 8705 §2): `tls_client_auth` (a CA-issued
//! certificate with the one registered subject attribute) and `self_signed_tls_client_auth`
//! (a certificate whose public key is one of the client's registered keys).

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::model::client::AuthMethod;
use crate::mtls::ClientCertificate;
use crate::protocol::provider::Provider;
use crate::secrets::b64_decode;
use crate::store::ClientRecord;

/// Checks the request's certificate against the client's registration; the error is the reason
/// for the audit log.
pub(crate) async fn check_certificate(
    p: &Provider,
    client: &ClientRecord,
    cert: Option<&ClientCertificate>,
) -> Result<(), String> {
    let cert = cert.ok_or("no client certificate was presented")?;
    let (_, parsed) = X509Certificate::from_der(cert.end_entity().as_ref())
        .map_err(|_| "the client certificate does not parse")?;
    let m = &client.metadata;
    match m.token_endpoint_auth_method {
        AuthMethod::TlsClientAuth => {
            let mtls = p.mtls.as_ref().ok_or("mutual TLS is not configured")?;
            if !mtls.chains_to_ca(cert) {
                return Err("the certificate does not chain to a configured client CA".into());
            }
            if matches_registered_attribute(client, &parsed) {
                Ok(())
            } else {
                Err("the certificate's subject does not match the registered attribute".into())
            }
        }
        AuthMethod::SelfSignedTlsClientAuth => {
            let raw = parsed.public_key().subject_public_key.data.as_ref();
            let rsa = match parsed.public_key().parsed() {
                Ok(PublicKey::RSA(rsa)) => {
                    Some((trim(rsa.modulus).to_vec(), trim(rsa.exponent).to_vec()))
                }
                _ => None,
            };
            let keys = super::client_keys::client_jwk_set(p, client, false).await?;
            if keys.keys.iter().any(|k| same_key(k, raw, rsa.as_ref())) {
                return Ok(());
            }
            // The client may have added the key since the last fetch.
            let keys = super::client_keys::client_jwk_set(p, client, true).await?;
            if keys.keys.iter().any(|k| same_key(k, raw, rsa.as_ref())) {
                Ok(())
            } else {
                Err("the certificate's key is not one of the client's registered keys".into())
            }
        }
        other => Err(format!(
            "client registered {}, not a certificate method",
            other.as_str()
        )),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Compares a JWK with a certificate's public key: the EC point, the Ed25519 key, or the RSA
/// modulus and exponent.
fn same_key(jwk: &Jwk, raw: &[u8], rsa: Option<&(Vec<u8>, Vec<u8>)>) -> bool {
    match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            let (Some(x), Some(y)) = (b64_decode(&ec.x), b64_decode(&ec.y)) else {
                return false;
            };
            raw.first() == Some(&0x04) && raw.get(1..) == Some([x, y].concat().as_slice())
        }
        AlgorithmParameters::OctetKeyPair(okp) => b64_decode(&okp.x).is_some_and(|x| x == raw),
        AlgorithmParameters::RSA(r) => match (rsa, b64_decode(&r.n), b64_decode(&r.e)) {
            (Some((n, e)), Some(jn), Some(je)) => {
                trim(&jn) == n.as_slice() && trim(&je) == e.as_slice()
            }
            _ => false,
        },
        _ => false,
    }
}

/// One attribute of a distinguished name: its type (dotted OID) and value.
type Attribute = (String, String);

/// RFC 4514 §3 short names Lockspire accepts in a registered `tls_client_auth_subject_dn`.
const SHORT_NAMES: [(&str, &str); 10] = [
    ("CN", "2.5.4.3"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
];

/// Parses an RFC 4514 string into RDNs (most specific first, as written), each a sorted set
/// of attributes. Escapes (`\,`, `\+`, `\XX`, …) are honoured, so a comma inside a value can
/// never be taken for an RDN boundary. `None` when the string is not a DN.
pub(crate) fn parse_dn(text: &str) -> Option<Vec<Vec<Attribute>>> {
    let mut rdns: Vec<Vec<Attribute>> = vec![Vec::new()];
    let mut chars = text.chars().peekable();
    loop {
        // attributeType "="
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        let name = name.trim();
        let oid = SHORT_NAMES
            .iter()
            .find(|(short, _)| short.eq_ignore_ascii_case(name))
            .map(|(_, oid)| (*oid).to_owned())
            .or_else(|| {
                (!name.is_empty() && name.chars().all(|c| c.is_ascii_digit() || c == '.'))
                    .then(|| name.to_owned())
            })?;
        // attributeValue, up to an unescaped ',' or '+'
        let mut value = Vec::<u8>::new();
        let mut separator = None;
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let next = chars.next()?;
                    if next.is_ascii_hexdigit() {
                        let low = chars.next().filter(char::is_ascii_hexdigit)?;
                        value.push(u8::from_str_radix(&format!("{next}{low}"), 16).ok()?);
                    } else {
                        let mut buf = [0u8; 4];
                        value.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
                    }
                }
                ',' | '+' => {
                    separator = Some(c);
                    break;
                }
                _ => {
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(value).ok()?;
        rdns.last_mut()?.push((oid, value.trim().to_owned()));
        match separator {
            None => break,
            Some(',') => rdns.push(Vec::new()),
            Some(_) => {}
        }
    }
    for rdn in &mut rdns {
        rdn.sort();
    }
    Some(rdns)
}

/// The certificate subject as RDNs in RFC 4514 order (most specific first).
pub(crate) fn subject_rdns(cert: &X509Certificate<'_>) -> Option<Vec<Vec<Attribute>>> {
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            attrs.push((
                attr.attr_type().to_id_string(),
                attr.as_str().ok()?.trim().to_owned(),
            ));
        }
        attrs.sort();
        rdns.push(attrs);
    }
    rdns.reverse();
    Some(rdns)
}

/// X.520 names compare case-insensitively (caseIgnoreMatch), attribute by attribute.
fn same_dn(a: &[Vec<Attribute>], b: &[Vec<Attribute>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((t1, v1), (t2, v2))| t1 == t2 && v1.to_lowercase() == v2.to_lowercase())
        })
}

pub(crate) fn matches_registered_attribute(
    client: &ClientRecord,
    cert: &X509Certificate<'_>,
) -> bool {
    let m = &client.metadata;
    if let Some(dn) = &m.tls_client_auth_subject_dn {
        // RFC 4514 writes RDNs most specific first, but DNs are as often written in the
        // certificate's own order; both are compared structurally, attribute by attribute.
        return match (parse_dn(dn), subject_rdns(cert)) {
            (Some(registered), Some(mut actual)) => {
                same_dn(&registered, &actual) || {
                    actual.reverse();
                    same_dn(&registered, &actual)
                }
            }
            _ => false,
        };
    }
    let sans: Vec<GeneralName<'_>> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.clone())
        .unwrap_or_default();
    sans.iter().any(|name| match name {
        GeneralName::DNSName(d) => m
            .tls_client_auth_san_dns
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(d)),
        GeneralName::URI(u) => m.tls_client_auth_san_uri.as_deref() == Some(*u),
        GeneralName::RFC822Name(e) => m
            .tls_client_auth_san_email
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(e)),
        GeneralName::IPAddress(bytes) => m
            .tls_client_auth_san_ip
            .as_deref()
            .and_then(|r| r.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| match ip {
                std::net::IpAddr::V4(v4) => *bytes == v4.octets().as_slice(),
                std::net::IpAddr::V6(v6) => *bytes == v6.octets().as_slice(),
            }),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4514_escapes_keep_commas_inside_values() {
        let dn = parse_dn("CN=payments,O=Acme").unwrap_or_default();
        assert_eq!(
            dn,
            vec![
                vec![("2.5.4.3".to_owned(), "payments".to_owned())],
                vec![("2.5.4.10".to_owned(), "Acme".to_owned())]
            ]
        );
        let escaped = parse_dn("CN=payments\\, O=Acme").unwrap_or_default();
        assert_eq!(escaped.len(), 1, "an escaped comma is part of the value");
        assert_eq!(escaped[0][0].1, "payments, O=Acme");
        assert_eq!(parse_dn("CN=a\\2Cb").unwrap_or_default()[0][0].1, "a,b");
        assert_eq!(
            parse_dn("CN=x+OU=y,O=z").unwrap_or_default()[0].len(),
            2,
            "multi-valued RDN"
        );
        assert!(parse_dn("nonsense").is_none());
        assert!(parse_dn("XYZ=1").is_none());
    }
}
