//! Entra ID (and IMDS) token responses and errors. Pure: unit-tested natively.

use std::time::Duration;

use lockstep_provider_sdk::{ProviderError, Result};
use serde::Deserialize;

/// An access token and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// IMDS sends `expires_in` as a string, Entra as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Seconds>,
}

/// Parses a successful token response. Without `expires_in`, assume the
/// shortest lifetime Entra issues (5 minutes) rather than caching forever.
pub fn parse_token(body: &[u8]) -> Result<AccessToken> {
    let r: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| ProviderError::internal("the token endpoint answered 200 without a token response"))?;
    if r.access_token.is_empty() {
        return Err(ProviderError::internal(
            "the token endpoint answered 200 with an empty access_token",
        ));
    }
    let expires_in = match r.expires_in {
        Some(Seconds::Number(n)) => n,
        Some(Seconds::Text(t)) => t.trim().parse().unwrap_or(300),
        None => 300,
    };
    Ok(AccessToken {
        token: r.access_token,
        expires_in,
    })
}

#[derive(Deserialize, Default)]
struct EntraError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Maps a failed token request to the engine's error, keeping Entra's
/// `AADSTSnnnn` code and the first sentence-block of its description (without
/// the trace/correlation IDs and timestamp, which change every time and would
/// make conditions flap).
pub fn token_error(status: u16, retry_after: Option<Duration>, body: &[u8], who: &str) -> ProviderError {
    match status {
        429 => {
            return ProviderError::throttled(
                retry_after,
                format!("Entra ID throttled the token request ({who}): HTTP 429"),
            );
        }
        503 => {
            return ProviderError::throttled(
                retry_after,
                format!("Entra ID is unavailable for the token request ({who}): HTTP 503"),
            );
        }
        500..=599 => {
            return ProviderError::unavailable(format!("Entra ID failed the token request ({who}): HTTP {status}"));
        }
        _ => {}
    }
    let e: EntraError = serde_json::from_slice(body).unwrap_or_default();
    let description = clean_description(&e.error_description);
    let code = e
        .error_codes
        .first()
        .map(|c| format!("AADSTS{c}"))
        .or_else(|| aadsts_prefix(&description).map(str::to_owned));
    let detail = match (description.is_empty(), e.error.is_empty()) {
        (false, _) => description,
        (true, false) => e.error.clone(),
        (true, true) => format!("HTTP {status}"),
    };
    let message = format!("Entra ID refused the token request ({who}): {detail}");
    if status == 403 {
        ProviderError::forbidden(code.as_deref(), message)
    } else if (400..500).contains(&status) {
        ProviderError::unauthorized(code.as_deref(), message)
    } else {
        ProviderError::internal(format!(
            "unexpected answer from the token endpoint ({who}): HTTP {status}"
        ))
    }
}

/// `"AADSTS700213: No matching ... Trace ID: ... Timestamp: ..."` → the part before `Trace ID`.
fn clean_description(d: &str) -> String {
    let cut = ["\r\n", "\n", " Trace ID:"]
        .iter()
        .filter_map(|m| d.find(m))
        .min()
        .unwrap_or(d.len());
    d[..cut].trim().to_owned()
}

fn aadsts_prefix(d: &str) -> Option<&str> {
    let end = d.find(':')?;
    let code = &d[..end];
    (code.starts_with("AADSTS") && code.len() > 6 && code[6..].bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let t = parse_token(br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"abc"}"#)
            .unwrap();
        assert_eq!(
            t,
            AccessToken {
                token: "abc".into(),
                expires_in: 3599
            }
        );
        let t = parse_token(
            br#"{"access_token":"x","expires_in":"86399","expires_on":"1","resource":"r","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, 86399);
        assert_eq!(parse_token(br#"{"access_token":"x"}"#).unwrap().expires_in, 300);
        assert!(parse_token(b"<html>").is_err());
        assert!(parse_token(br#"{"access_token":""}"#).is_err());
    }

    const E700213: &str = r#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:external-secrets:cluster-external-secrets'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. Trace ID: 1 Correlation ID: 2 Timestamp: 2026-01-01 00:00:00Z","error_codes":[700213],"timestamp":"2026-01-01 00:00:00Z","trace_id":"1","correlation_id":"2"}"#;

    #[test]
    fn entra_errors_keep_code_and_message() {
        match token_error(401, None, E700213.as_bytes(), "client c, tenant t") {
            ProviderError::Unauthorized(f) => {
                assert_eq!(f.code.as_deref(), Some("AADSTS700213"));
                assert!(
                    f.message.contains("No matching federated identity record"),
                    "{}",
                    f.message
                );
                assert!(f.message.contains("cluster-external-secrets"));
                assert!(!f.message.contains("Trace ID"), "{}", f.message);
            }
            other => panic!("{other:?}"),
        }
        let e90002 = br#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found.\r\nTrace ID: 1","error_codes":[90002]}"#;
        match token_error(400, None, e90002, "w") {
            ProviderError::Unauthorized(f) => {
                assert_eq!(f.code.as_deref(), Some("AADSTS90002"));
                assert!(
                    f.message.ends_with("AADSTS90002: Tenant 'x' not found."),
                    "{}",
                    f.message
                );
            }
            other => panic!("{other:?}"),
        }
        // Code only in the description.
        match token_error(400, None, br#"{"error_description":"AADSTS70011: bad scope"}"#, "w") {
            ProviderError::Unauthorized(f) => assert_eq!(f.code.as_deref(), Some("AADSTS70011")),
            other => panic!("{other:?}"),
        }
        match token_error(400, None, b"not json", "w") {
            ProviderError::Unauthorized(f) => assert_eq!(f.code, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn throttling_and_outages() {
        match token_error(429, Some(Duration::from_secs(7)), b"", "w") {
            ProviderError::Throttled(t) => assert_eq!(t.retry_after_ms, Some(7000)),
            other => panic!("{other:?}"),
        }
        assert_eq!(token_error(503, None, b"", "w").variant(), "throttled");
        assert_eq!(token_error(502, None, b"", "w").variant(), "unavailable");
        assert_eq!(token_error(403, None, b"{}", "w").variant(), "forbidden");
    }
}
