//! Mutual TLS (RFC 8705): where a client certificate comes from, and what it
//! proves.
//!
//! A certificate reaches Lockspire in one of two ways:
//! - [`serve_tls`]: Lockspire terminates TLS itself (rustls) and *requests* — never requires — a
//!   client certificate. The handshake proves the client holds the certificate's private key;
//!   which certificates are acceptable is decided per client at authentication time (a CA chain
//!   for `tls_client_auth`, the registered key for `self_signed_tls_client_auth`).
//! - A TLS-terminating proxy forwards it in the `Client-Cert` header (RFC 9440), which is
//!   believed only when the connection comes from a configured proxy address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use aws_lc_rs::digest;
use axum::Router;
use axum::extract::ConnectInfo;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper_util::rt::TokioIo;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tower::ServiceExt;

use crate::secrets::b64;

/// The certificate chain a client presented, end-entity first.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    chain: Arc<Vec<CertificateDer<'static>>>,
}

impl ClientCertificate {
    /// A chain of DER certificates, end-entity first; `None` when empty.
    pub fn new(chain: Vec<CertificateDer<'static>>) -> Option<Self> {
        (!chain.is_empty()).then(|| Self {
            chain: Arc::new(chain),
        })
    }

    /// The end-entity certificate (DER).
    pub fn end_entity(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The intermediates that came with it.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.chain[1..]
    }

    /// RFC 8705 §3.1: base64url SHA-256 of the DER certificate, the `x5t#S256` confirmation.
    pub fn thumbprint(&self) -> String {
        b64(digest::digest(&digest::SHA256, self.end_entity().as_ref()))
    }
}

/// Where Lockspire may take client certificates from, and what to trust them with.
#[derive(Clone, Debug, Default)]
pub struct MtlsConfig {
    /// PEM CA certificates `tls_client_auth` certificates must chain to.
    pub client_ca_pem: Option<Vec<u8>>,
    /// Proxies whose `Client-Cert` header (RFC 9440) is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Base URL of the mTLS endpoints when they differ from the issuer's
    /// (`mtls_endpoint_aliases`, RFC 8705 §5).
    pub endpoint_base: Option<String>,
}

/// Why mTLS settings were refused.
#[derive(Debug, thiserror::Error)]
#[error("mTLS: {0}")]
pub struct MtlsError(pub String);

/// The parsed form of [`MtlsConfig`].
pub(crate) struct Mtls {
    pub(crate) ca_verifier: Option<Arc<dyn ClientCertVerifier>>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
}

impl Mtls {
    pub(crate) fn new(config: &MtlsConfig) -> Result<Self, MtlsError> {
        let ca_verifier = match &config.client_ca_pem {
            None => None,
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in pem_certs(pem)? {
                    roots
                        .add(cert)
                        .map_err(|e| MtlsError(format!("client CA: {e}")))?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| MtlsError(format!("client CA: {e}")))?;
                Some(verifier as Arc<dyn ClientCertVerifier>)
            }
        };
        Ok(Self {
            ca_verifier,
            trusted_proxies: config.trusted_proxies.clone(),
        })
    }

    /// True when the certificate chains to a configured client CA (RFC 8705 §2.1).
    pub(crate) fn chains_to_ca(&self, cert: &ClientCertificate) -> bool {
        self.ca_verifier.as_ref().is_some_and(|v| {
            v.verify_client_cert(cert.end_entity(), cert.intermediates(), UnixTime::now())
                .is_ok()
        })
    }

    /// The client certificate of a request: from Lockspire's own TLS, or from a trusted proxy.
    pub(crate) fn certificate(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> Option<ClientCertificate> {
        if let Some(cert) = extensions.get::<ClientCertificate>() {
            return Some(cert.clone());
        }
        let header = headers.get("client-cert")?;
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical());
        let trusted =
            peer.is_some_and(|ip| self.trusted_proxies.iter().any(|t| t.to_canonical() == ip));
        if !trusted {
            tracing::warn!(
                ?peer,
                "Client-Cert header from an untrusted address ignored"
            );
            return None;
        }
        let mut chain = vec![byte_sequence(header.to_str().ok()?)?];
        if let Some(rest) = headers
            .get("client-cert-chain")
            .and_then(|v| v.to_str().ok())
        {
            for item in rest.split(',') {
                chain.push(byte_sequence(item)?);
            }
        }
        ClientCertificate::new(chain)
    }
}

/// An RFC 8941 byte sequence `:base64:` holding a DER certificate (RFC 9440 §2).
pub(crate) fn byte_sequence(text: &str) -> Option<CertificateDer<'static>> {
    let inner = text.trim().strip_prefix(':')?.strip_suffix(':')?;
    STANDARD.decode(inner).ok().map(CertificateDer::from)
}

fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, MtlsError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| MtlsError(format!("PEM certificates: {e}")))
        .and_then(|v| {
            if v.is_empty() {
                Err(MtlsError("no certificate in PEM".into()))
            } else {
                Ok(v)
            }
        })
}

/// Requests a client certificate and checks that the client holds its key, but leaves
/// "which certificates are acceptable" to client authentication, per registered method.
#[derive(Debug)]
struct RequestClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Serves `app` over HTTPS with the PEM server certificate chain and key, requesting (not
/// requiring) client certificates; each request carries its connection's [`ClientCertificate`]
/// and `ConnectInfo<SocketAddr>` as extensions. Serves until the task is dropped; fails only
/// when the certificate or key cannot be used.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(), MtlsError> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| MtlsError(format!("server key: {e}")))?;
    let verifier = Arc::new(RequestClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config =
        rustls::ServerConfig::builder_with_provider(provider.clone() as Arc<CryptoProvider>)
            .with_safe_default_protocol_versions()
            .map_err(|e| MtlsError(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(pem_certs(cert_pem)?, key)
            .map_err(|e| MtlsError(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the connections we have.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that never finishes its handshake does not hold a task forever.
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await;
            let Ok(Ok(tls)) = handshake else {
                return;
            };
            let cert = tls.get_ref().1.peer_certificates().and_then(|chain| {
                ClientCertificate::new(chain.iter().map(|c| c.clone().into_owned()).collect())
            });
            let service =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    if let Some(cert) = &cert {
                        req.extensions_mut().insert(cert.clone());
                    }
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let io = TokioIo::new(tls);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
