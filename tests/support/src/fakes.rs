//! Starts the Rust-side servers on the current tokio runtime: fake Entra
//! (TLS), IMDS (HTTP), the gateway-fronted Key Vault endpoint (TLS) and the
//! admin API (HTTP). All on 127.0.0.1, ports chosen by the kernel.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::entra::{Entra, Signer};
use crate::gateway::Gateway;
use crate::pki::PkiFiles;
use crate::vault::Vaults;
use crate::{Error, admin, tls};

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FakesAddrs {
    /// TLS, serves `login.microsoftonline.com`.
    pub entra: SocketAddr,
    /// TLS, serves `*.vault.azure.net` (gateway in front of the data plane).
    pub vault: SocketAddr,
    /// Plain HTTP, IMDS-shaped managed identity endpoint.
    pub imds: SocketAddr,
    /// Plain HTTP admin API.
    pub admin: SocketAddr,
}

pub async fn start(pki: &PkiFiles) -> Result<FakesAddrs, Error> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e));
    let ca = read(&pki.ca_cert)?;
    let tls_cfg = tls::server_config(&read(&pki.fakes_cert)?, &read(&pki.fakes_key)?)?;
    let signer = Arc::new(Signer::from_pkcs8_pem(&read(&pki.entra_signing_key)?)?);
    // The fake Entra fetches issuers' JWKS over TLS from the test CA only.
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).map_err(Error::http)?)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(Error::http)?;
    let entra = Entra::new(signer, http);
    let vaults = Vaults::default();
    let gateway = Gateway::new(entra.clone(), vaults.clone());

    let bind = || async { TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::io(std::path::Path::new("127.0.0.1:0"), e)) };
    let (l_entra, l_vault, l_imds, l_admin) = (bind().await?, bind().await?, bind().await?, bind().await?);
    let addr = |l: &TcpListener| l.local_addr().map_err(|e| Error::io(std::path::Path::new("listener"), e));
    let addrs = FakesAddrs { entra: addr(&l_entra)?, vault: addr(&l_vault)?, imds: addr(&l_imds)?, admin: addr(&l_admin)? };

    tokio::spawn(tls::serve(l_entra, tls_cfg.clone(), entra.router()));
    tokio::spawn(tls::serve(l_vault, tls_cfg, gateway.wrap(vaults.router())));
    let imds = entra.imds_router();
    tokio::spawn(async move { axum::serve(l_imds, imds).await });
    let admin = admin::router(entra, gateway, vaults);
    tokio::spawn(async move { axum::serve(l_admin, admin).await });
    Ok(addrs)
}
