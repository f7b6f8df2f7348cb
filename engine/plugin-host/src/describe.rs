//! Plugin errors in plain words: the text conditions, events and the CLI
//! show. Built from names, codes and reasons only, never from values.

use crate::wit::ProviderError;

pub fn describe(error: &ProviderError) -> String {
    let auth = |a: &crate::wit::AuthFailure| match &a.code {
        Some(code) => format!("{code}: {}", a.message),
        None => a.message.clone(),
    };
    match error {
        ProviderError::NotFound(m) => format!("not found: {m}"),
        ProviderError::Unauthorized(a) => format!("unauthorized: {}", auth(a)),
        ProviderError::Forbidden(a) => format!("forbidden: {}", auth(a)),
        ProviderError::Throttled(t) => format!("throttled: {}", t.message),
        ProviderError::InvalidConfig(c) => format!("invalid provider config at {}: {}", c.field, c.reason),
        ProviderError::Denied(m) => format!("denied by policy: {m}"),
        ProviderError::Unavailable(m) => format!("unavailable: {m}"),
        ProviderError::Internal(m) => format!("provider error: {m}"),
    }
}
