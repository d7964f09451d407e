//! TLS termination: certificates from `kubernetes.io/tls` Secrets, chosen per connection by SNI
//! from the current routing table (so a new or renewed certificate applies to the next handshake
//! without touching open connections), and a self-signed default for names no Ingress covers —
//! as ingress-nginx's "Kubernetes Ingress Controller Fake Certificate".

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::table::RouteTable;

/// A certificate that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.crt holds no PEM certificate")]
    NoCertificate,
    #[error("tls.key holds no PEM private key")]
    NoKey,
    #[error("bad PEM: {0}")]
    Pem(#[from] std::io::Error),
    #[error("the private key cannot be used: {0}")]
    Key(rustls::Error),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot make the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A parsed certificate chain with its key, ready for rustls.
pub struct Certificate {
    /// Where it came from (`namespace/name` of the Secret).
    pub source: String,
    pub key: Arc<CertifiedKey>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a PEM chain and key (a Secret's `tls.crt` and `tls.key`).
    pub fn from_pem(source: &str, cert_pem: &[u8], key_pem: &[u8]) -> Result<Certificate, TlsError> {
        let chain: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..]).collect::<Result<_, _>>()?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = rustls_pemfile::private_key(&mut &key_pem[..])?.ok_or(TlsError::NoKey)?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch(e),
            e => TlsError::Key(e),
        })?;
        Ok(Certificate { source: source.into(), key: Arc::new(certified) })
    }

    /// The self-signed default certificate.
    pub fn self_signed_default() -> Result<Certificate, TlsError> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_string()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Acme Co");
        params.distinguished_name.push(rcgen::DnType::CommonName, "Kubernetes Ingress Controller Fake Certificate");
        let cert = params.self_signed(&key)?;
        Certificate::from_pem("default", cert.pem().as_bytes(), key.serialize_pem().as_bytes())
    }
}

/// Chooses the certificate for each handshake from the current table.
pub struct SniResolver {
    table: Arc<ArcSwap<RouteTable>>,
    default: Arc<CertifiedKey>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver").finish_non_exhaustive()
    }
}

impl SniResolver {
    pub fn new(table: Arc<ArcSwap<RouteTable>>, default: &Certificate) -> SniResolver {
        SniResolver { table, default: default.key.clone() }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let cert = hello.server_name().and_then(|sni| table.certificate(sni)).map(|c| c.key.clone());
        Some(cert.unwrap_or_else(|| self.default.clone()))
    }
}

/// The rustls server configuration: SNI resolution, ALPN h2 and http/1.1.
pub fn server_config(resolver: Arc<SniResolver>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(10_000);
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_parses_and_a_foreign_key_is_refused() {
        let default = Certificate::self_signed_default().unwrap();
        assert_eq!(default.source, "default");
        let k1 = rcgen::KeyPair::generate().unwrap();
        let c1 = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap().self_signed(&k1).unwrap();
        let k2 = rcgen::KeyPair::generate().unwrap();
        assert!(Certificate::from_pem("ns/a", c1.pem().as_bytes(), k1.serialize_pem().as_bytes()).is_ok());
        let e = Certificate::from_pem("ns/a", c1.pem().as_bytes(), k2.serialize_pem().as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch(_)), "{e}");
        assert!(matches!(Certificate::from_pem("ns/a", b"junk", b"junk"), Err(TlsError::NoCertificate)));
        assert!(matches!(Certificate::from_pem("ns/a", c1.pem().as_bytes(), b""), Err(TlsError::NoKey)));
    }
}
