//! Serving an axum router over rustls (HTTP/1.1), with a per-connection
//! handle that lets a handler drop its connection with a TCP reset.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::Error;

pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, Error> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pki(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::Pki(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Pki(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Pki(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Inserted into every request's extensions: `reset()` aborts the connection
/// the request arrived on (SO_LINGER 0, so the peer sees ECONNRESET).
#[derive(Clone)]
pub struct ConnControl(Arc<Notify>);

impl ConnControl {
    pub fn reset(&self) {
        self.0.notify_one();
    }
}

pub async fn serve(listener: TcpListener, cfg: Arc<rustls::ServerConfig>, router: Router) {
    let acceptor = TlsAcceptor::from(cfg);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let _ = tcp.set_zero_linger();
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let kill = Arc::new(Notify::new());
            let ctl = ConnControl(kill.clone());
            let svc = router.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ctl.clone());
                req
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {} // dropping the connection resets it
            }
        });
    }
}
