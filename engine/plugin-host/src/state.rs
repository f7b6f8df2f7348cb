//! The data of one provider store: sandbox, wasi:http with the egress hook,
//! and the credential capability.

use std::sync::Arc;

use lockstep_credentials::{CredentialError, ScopedCredentials, SecretKeyRequest, ServiceAccountRequest};
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::bindings::lockstep::provider::{credentials, log, types};
use crate::egress::{Denial, DenyReason};
use crate::http::{EgressContext, OutboundHttp};
use crate::sandbox::{SandboxState, SandboxView};
use crate::wit::ProviderError;

pub(crate) struct EgressHooks {
    pub(crate) outbound: Arc<OutboundHttp>,
    pub(crate) ctx: EgressContext,
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let outbound = self.outbound.clone();
        let ctx = self.ctx.clone();
        Box::new(async move {
            let resp = outbound.send(&ctx, request, options).await?;
            Ok((resp, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

pub(crate) struct ProviderState {
    pub(crate) sandbox: SandboxState,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    /// None while only metadata is queried: every credential request is refused.
    pub(crate) creds: Option<Arc<ScopedCredentials>>,
}

impl ProviderState {
    fn plugin(&self) -> &str {
        &self.hooks.ctx.plugin
    }

    fn credential_error(&self, err: CredentialError) -> ProviderError {
        match err {
            CredentialError::Denied(msg) => {
                let denial = Denial { reason: DenyReason::Credential, target: "credentials".into(), detail: msg.clone() };
                tracing::warn!(plugin = %self.plugin(), "credential request denied: {msg}");
                self.hooks.ctx.metrics.denial(self.plugin(), DenyReason::Credential.as_str());
                *self.hooks.ctx.last_denial.lock().expect("denial lock") = Some(denial);
                ProviderError::Denied(msg)
            }
            CredentialError::InvalidConfig { field, reason } => ProviderError::InvalidConfig(types::ConfigIssue { field, reason }),
            CredentialError::Unavailable(msg) => ProviderError::Unavailable(msg),
        }
    }

    fn creds(&self) -> Result<Arc<ScopedCredentials>, ProviderError> {
        self.creds.clone().ok_or_else(|| ProviderError::Denied("no store is bound to this call".into()))
    }
}

impl SandboxView for ProviderState {
    fn sandbox(&mut self) -> &mut SandboxState {
        &mut self.sandbox
    }
}

impl WasiView for ProviderState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.sandbox.wasi_view()
    }
}

impl WasiHttpView for ProviderState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: self.sandbox.table(), hooks: &mut self.hooks }
    }
}

impl types::Host for ProviderState {}

impl log::Host for ProviderState {
    async fn emit(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        // Bounded: a plugin cannot flood the engine's log with one call.
        let message: String = message.chars().take(2048).collect();
        let plugin = self.plugin();
        match level {
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
        Ok(())
    }
}

impl credentials::Host for ProviderState {
    async fn secret_key(&mut self, selector: types::SecretKeySelector) -> wasmtime::Result<Result<Vec<u8>, ProviderError>> {
        let creds = match self.creds() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let req = SecretKeyRequest { name: selector.name, key: selector.key, namespace: selector.namespace };
        Ok(creds.secret_key(&req).await.map_err(|e| self.credential_error(e)))
    }

    async fn service_account_annotations(
        &mut self,
        selector: types::ServiceAccountSelector,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, ProviderError>> {
        let creds = match self.creds() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let req = ServiceAccountRequest { name: selector.name, namespace: selector.namespace };
        Ok(creds.service_account_annotations(&req).await.map(|m| m.into_iter().collect()).map_err(|e| self.credential_error(e)))
    }

    async fn service_account_token(
        &mut self,
        selector: types::ServiceAccountSelector,
        audiences: Vec<String>,
    ) -> wasmtime::Result<Result<types::ServiceAccountToken, ProviderError>> {
        let creds = match self.creds() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let req = ServiceAccountRequest { name: selector.name, namespace: selector.namespace };
        Ok(creds
            .service_account_token(&req, &audiences)
            .await
            .map(|t| types::ServiceAccountToken { token: t.token, expires_at: t.expires_at })
            .map_err(|e| self.credential_error(e)))
    }

    async fn ambient(&mut self, name: String) -> wasmtime::Result<Result<String, ProviderError>> {
        let creds = match self.creds() {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        Ok(creds.ambient(&name).await.map_err(|e| self.credential_error(e)))
    }
}
