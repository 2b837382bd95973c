//! Client certificates for mutual TLS tests (RFC 8705), made with rcgen at test time.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;

/// A certificate authority that issues client and server certificates.
pub struct Pki {
    pub ca_pem: String,
    ca_issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            ca_pem: cert.pem(),
            ca_issuer: Issuer::new(params, key),
        }
    }

    /// A certificate signed by this CA; returns PEM cert + key.
    pub fn issue(&self, cn: &str, sans: Vec<SanType>, client: bool) -> (String, String) {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.ca_issuer).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate for the DNS name `name`, as a TLS-terminating proxy forwards it in
    /// the `Client-Cert` header (RFC 9440: `:base64 DER:`).
    pub fn client_cert_header(&self, name: &str) -> String {
        let san = vec![SanType::DnsName(name.try_into().expect("dns"))];
        let (pem, _) = self.issue(name, san, true);
        client_cert_header(&pem)
    }
}

/// The RFC 9440 `Client-Cert` header value of a PEM certificate.
pub fn client_cert_header(pem: &str) -> String {
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("der");
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    )
}
