//! What every AWS-style backend needs besides [`sigv4`](crate::sigv4) (feature
//! `aws`): regional endpoints, the AWS error shapes mapped onto the WIT
//! variants, and temporary credentials from STS (`AssumeRole`,
//! `AssumeRoleWithWebIdentity`), cached in the instance.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::{Request, Response};
use crate::sigv4::{self, Credentials};
use crate::{ProviderError, Result, xml};

/// STS sessions are requested for an hour and reused for 55 minutes.
pub const SESSION_SECS: u64 = 3600;

thread_local! {
    /// Sessions of this instance (one isolation unit): key → (credentials, reuse until).
    static SESSIONS: RefCell<HashMap<String, (Credentials, u64)>> = RefCell::new(HashMap::new());
}

/// `https://{service}.{region}.amazonaws.com/`.
pub fn endpoint(service: &str, region: &str) -> String {
    format!("https://{service}.{region}.amazonaws.com/")
}

/// `Err(invalid-config)` unless `region` looks like a region name (it becomes part of a host name).
pub fn check_region<'a>(field: &str, region: &'a str) -> Result<&'a str> {
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ProviderError::invalid_config(
            field,
            format!("{field} must be an AWS region name such as us-east-1"),
        ));
    }
    Ok(region)
}

/// Maps an AWS error answer (JSON `__type`, the `x-amzn-ErrorType` header or
/// XML `<Code>`) onto the WIT variants. AWS messages name resources and
/// principals, never secret values; they are kept (up to 300 characters).
pub fn error(resp: &Response) -> ProviderError {
    let body = String::from_utf8_lossy(resp.body());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let code = v["__type"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| resp.header("x-amzn-errortype").map(str::to_owned))
        .or_else(|| xml::text(&body, "Code"));
    let code = code
        .as_deref()
        .unwrap_or_default()
        .rsplit('#')
        .next()
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let text = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .map(str::to_owned)
        .or_else(|| xml::text(&body, "Message"))
        .unwrap_or_default();
    let message = format!(
        "AWS {code} (HTTP {}): {}",
        resp.status(),
        text.chars().take(300).collect::<String>()
    );
    match code.as_str() {
        "ResourceNotFoundException" | "ParameterNotFound" | "NoSuchKey" => {
            ProviderError::not_found(message)
        }
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "SlowDown" => ProviderError::throttled(resp.retry_after(), message),
        "AccessDeniedException" | "AccessDenied" | "DecryptionFailure" => {
            ProviderError::forbidden(Some(&code), message)
        }
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidIdentityToken"
        | "IDPRejectedClaim" => ProviderError::unauthorized(
            Some(&code),
            format!("AWS did not accept the credentials: {message}"),
        ),
        _ if resp.status() == 429 => ProviderError::throttled(resp.retry_after(), message),
        _ if resp.status() >= 500 => ProviderError::unavailable(message),
        _ => ProviderError::internal(message),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cached session under `key`, else `fetch()`'s, kept for [`SESSION_SECS`] minus 5 minutes.
fn session(key: &str, fetch: impl FnOnce() -> Result<Credentials>) -> Result<Credentials> {
    if let Some((creds, until)) = SESSIONS.with(|s| s.borrow().get(key).cloned())
        && now() < until
    {
        return Ok(creds);
    }
    let creds = fetch()?;
    SESSIONS.with(|s| {
        s.borrow_mut()
            .insert(key.to_owned(), (creds.clone(), now() + SESSION_SECS - 300))
    });
    Ok(creds)
}

/// STS `AssumeRoleWithWebIdentity` (an unsigned call: the token is the
/// credential). `token` is asked for only when no session for (`cache_key`, role) is cached.
pub fn assume_role_with_web_identity(
    region: &str,
    role: &str,
    cache_key: &str,
    token: impl FnOnce() -> Result<String>,
) -> Result<Credentials> {
    session(&format!("web-identity/{cache_key}/{role}"), || {
        let token = token()?;
        sts(
            region,
            None,
            &[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("RoleArn", role),
                ("WebIdentityToken", &token),
            ],
        )
    })
}

/// STS `AssumeRole`, signed with `creds`.
pub fn assume_role(region: &str, creds: &Credentials, role: &str) -> Result<Credentials> {
    let key = format!(
        "assume-role/{}/{}/{role}",
        creds.access_key_id, creds.secret_access_key
    );
    session(&key, || {
        sts(
            region,
            Some(creds),
            &[("Action", "AssumeRole"), ("RoleArn", role)],
        )
    })
}

/// An STS query-protocol call answering with `<Credentials>`.
fn sts(region: &str, signer: Option<&Credentials>, params: &[(&str, &str)]) -> Result<Credentials> {
    let duration = SESSION_SECS.to_string();
    let mut form = params.to_vec();
    form.extend([
        ("RoleSessionName", "lockstep"),
        ("DurationSeconds", duration.as_str()),
        ("Version", "2011-06-15"),
    ]);
    let mut req = Request::post(endpoint("sts", region)).form(&form);
    if let Some(creds) = signer {
        req = sigv4::sign(req, creds, region, "sts", SystemTime::now())?;
    }
    let resp = req.send()?;
    if !resp.is_success() {
        return Err(error(&resp));
    }
    let body = String::from_utf8_lossy(resp.body());
    let field = |name: &str| {
        xml::text(&body, name)
            .ok_or_else(|| ProviderError::internal(format!("STS answered without {name}")))
    };
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, headers: Vec<(&str, &str)>, body: &str) -> ProviderError {
        let headers = headers
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        error(&Response::from_parts(
            status,
            headers,
            body.as_bytes().to_vec(),
            "POST x/",
        ))
    }

    #[test]
    fn errors_map_to_variants() {
        let nf = err(
            400,
            vec![],
            r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#,
        );
        assert_eq!(nf.variant(), "not-found");
        let t = err(
            400,
            vec![("Retry-After", "3")],
            r#"{"__type":"com.amazonaws.secretsmanager#ThrottlingException","message":"Rate exceeded"}"#,
        );
        assert_eq!(
            t,
            ProviderError::throttled(
                Some(std::time::Duration::from_secs(3)),
                "AWS ThrottlingException (HTTP 400): Rate exceeded"
            )
        );
        assert_eq!(
            err(429, vec![("retry-after", "2")], "").variant(),
            "throttled"
        );
        match err(
            400,
            vec![],
            r#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
        ) {
            ProviderError::Unauthorized(a) => {
                assert_eq!(a.code.as_deref(), Some("UnrecognizedClientException"))
            }
            other => panic!("{other:?}"),
        }
        let xml = "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error></ErrorResponse>";
        assert_eq!(err(403, vec![], xml).variant(), "unauthorized");
        match err(
            400,
            vec![("x-amzn-ErrorType", "AccessDeniedException:http://internal")],
            "{}",
        ) {
            ProviderError::Forbidden(a) => {
                assert_eq!(a.code.as_deref(), Some("AccessDeniedException"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err(500, vec![], r#"{"__type":"InternalServiceError"}"#).variant(),
            "unavailable"
        );
        assert_eq!(
            err(
                400,
                vec![],
                r#"{"__type":"InvalidRequestException","message":"marked for deletion"}"#
            )
            .variant(),
            "internal"
        );
    }

    #[test]
    fn regions_and_endpoints() {
        assert_eq!(check_region("region", "eu-west-1").unwrap(), "eu-west-1");
        for bad in ["", "evil.example.com/x", "US-EAST-1", "a b"] {
            assert!(check_region("region", bad).is_err(), "{bad}");
        }
        assert_eq!(
            endpoint("sts", "eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com/"
        );
    }
}
