//! Plugin errors in plain words, for terminals (the controllers put the same
//! words in conditions).

use lockstep_plugin_host::wit::ProviderError;

pub fn provider_error(error: &ProviderError) -> String {
    match error {
        ProviderError::NotFound(what) => format!("not found: {what}"),
        ProviderError::Unauthorized(f) => format!("unauthorized{}: {}", code(&f.code), f.message),
        ProviderError::Forbidden(f) => format!("forbidden{}: {}", code(&f.code), f.message),
        ProviderError::Throttled(t) => match t.retry_after_ms {
            Some(ms) => format!("throttled by the backend (retry after {ms} ms): {}", t.message),
            None => format!("throttled by the backend: {}", t.message),
        },
        ProviderError::InvalidConfig(issue) => format!("invalid store configuration at {}: {}", issue.field, issue.reason),
        ProviderError::Denied(why) => format!("denied by the host: {why}"),
        ProviderError::Unavailable(why) => format!("backend unavailable: {why}"),
        ProviderError::Internal(why) => format!("plugin error: {why}"),
    }
}

fn code(code: &Option<String>) -> String {
    code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
}
