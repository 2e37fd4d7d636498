//! TLS for the server with rustls: the certificate and key are re-read when
//! their files change (a renewed certificate is used for the next
//! connection, with no restart), and with a client CA every client must
//! present a certificate it signed (mTLS).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::watch::{WatchError, Watched};

/// Where the TLS material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle clients must be signed by.
    pub client_ca: Option<PathBuf>,
}

/// The current acceptor, rebuilt when the files change.
pub struct Tls(Watched<TlsAcceptor>);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn acceptor(texts: &[String]) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(texts[0].as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(texts[1].as_bytes())
        .map_err(|e| format!("the key file holds no usable private key: {e}"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match texts.get(2) {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                let cert = cert.map_err(|e| format!("the client CA file is not PEM: {e}"))?;
                roots.add(cert).map_err(|e| format!("the client CA file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the client CA file holds no certificate".into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("the client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Tls {
    /// Loads the files; they must be usable now.
    pub fn load(files: &TlsFiles) -> Result<Tls, WatchError> {
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.client_ca.clone());
        Watched::load(paths, Box::new(acceptor)).map(Tls)
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.0.get()
    }
}
