//! Client authentication by certificate (RFC 8705 §2): `tls_client_auth` (a CA-issued
//! certificate with the one registered subject attribute) and `self_signed_tls_client_auth`
//! (a certificate whose public key is one of the client's registered keys).

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::client::AuthMethod;
use crate::secrets::b64_decode;
use crate::store::ClientRecord;
use crate::{ClientCertificate, Provider};

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

/// RFC 4514 DNs compare attribute by attribute, in either of the two customary orders.
fn dn_parts(dn: &str) -> Vec<String> {
    dn.split(',')
        .map(|part| part.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect()
}

fn matches_registered_attribute(client: &ClientRecord, cert: &X509Certificate<'_>) -> bool {
    let m = &client.metadata;
    if let Some(dn) = &m.tls_client_auth_subject_dn {
        let registered = dn_parts(dn);
        let actual = dn_parts(&cert.subject().to_string());
        let reversed: Vec<String> = actual.iter().rev().cloned().collect();
        return registered == actual || registered == reversed;
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
