//! Constructors for [`ProviderError`] and the HTTP status mapping every
//! backend shares.
//!
//! Messages travel to events, conditions and logs: they may name keys, hosts
//! and paths, never a secret value or a response body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{AuthFailure, ConfigIssue, ProviderError, Throttle};

/// The result type of every SDK helper and provider method.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;

impl ProviderError {
    /// The remote secret (or the property inside it) does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }

    /// The backend rejected the credentials (`code` is the backend's own code, if any).
    pub fn unauthorized(code: Option<&str>, message: impl Into<String>) -> Self {
        Self::Unauthorized(AuthFailure { code: code.map(str::to_owned), message: message.into() })
    }

    /// The credentials were accepted but lack permission.
    pub fn forbidden(code: Option<&str>, message: impl Into<String>) -> Self {
        Self::Forbidden(AuthFailure { code: code.map(str::to_owned), message: message.into() })
    }

    /// The backend asked us to slow down, optionally saying for how long.
    pub fn throttled(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Self::Throttled(Throttle {
            retry_after_ms: retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            message: message.into(),
        })
    }

    /// The store config is wrong at `field` (a dotted path inside the provider config).
    pub fn invalid_config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig(ConfigIssue { field: field.into(), reason: reason.into() })
    }

    /// The host refused an egress or credential request.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::Denied(message.into())
    }

    /// A transient failure: the backend could not be reached or failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(message.into())
    }

    /// A bug, or an answer the provider does not understand.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The operation is not implemented by this provider.
    pub fn not_supported(operation: &str) -> Self {
        Self::Internal(format!("{operation} is not supported by this provider"))
    }

    /// The WIT variant name (`not-found`, `throttled`, ...), for logs and tests.
    pub fn variant(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not-found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::Throttled(_) => "throttled",
            Self::InvalidConfig(_) => "invalid-config",
            Self::Denied(_) => "denied",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The error from a non-success HTTP status.
    ///
    /// 401 → unauthorized, 403 → forbidden, 404/410 → not-found,
    /// 429 → throttled, 503 with a Retry-After → throttled,
    /// 408 and other 5xx → unavailable, anything else → internal.
    /// `what` names the request (method, host, path), never a value.
    pub fn from_status(status: u16, retry_after: Option<Duration>, what: &str) -> Self {
        let message = format!("{what}: HTTP {status}");
        match status {
            401 => Self::unauthorized(None, message),
            403 => Self::forbidden(None, message),
            404 | 410 => Self::not_found(message),
            429 => Self::throttled(retry_after, message),
            503 if retry_after.is_some() => Self::throttled(retry_after, message),
            408 | 500..=599 => Self::unavailable(message),
            _ => Self::internal(message),
        }
    }
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), relative to `now`. A date in the past
/// gives zero.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// IMF-fixdate (RFC 9110 §5.6.7) to Unix seconds.
fn parse_http_date(value: &str) -> Option<u64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let (_, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day as i64);
    u64::try_from(days).ok().map(|d| d * 86_400 + h * 3_600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let ra = Some(Duration::from_secs(3));
        assert_eq!(ProviderError::from_status(401, None, "GET h/p").variant(), "unauthorized");
        assert_eq!(ProviderError::from_status(403, None, "x").variant(), "forbidden");
        assert_eq!(ProviderError::from_status(404, None, "x").variant(), "not-found");
        assert_eq!(ProviderError::from_status(429, None, "x").variant(), "throttled");
        assert_eq!(
            ProviderError::from_status(429, ra, "x"),
            ProviderError::throttled(ra, "x: HTTP 429")
        );
        assert_eq!(ProviderError::from_status(503, ra, "x").variant(), "throttled");
        assert_eq!(ProviderError::from_status(503, None, "x").variant(), "unavailable");
        assert_eq!(ProviderError::from_status(502, None, "x").variant(), "unavailable");
        assert_eq!(ProviderError::from_status(400, None, "x").variant(), "internal");
        match ProviderError::from_status(429, ra, "x") {
            ProviderError::Throttled(t) => assert_eq!(t.retry_after_ms, Some(3000)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("Sun, 06 Foo 1994 08:50:07 GMT", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
    }
}
