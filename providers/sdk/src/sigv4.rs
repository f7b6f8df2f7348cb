//! AWS Signature Version 4 for requests built with [`http::Request`](crate::http::Request)
//! (feature `sigv4`). Any backend speaking an AWS-style API (AWS itself, and
//! the many services that copied its signing) needs exactly this.
//!
//! ```no_run
//! # use lockstep_provider_sdk::{http::Request, sigv4::{self, Credentials}};
//! # fn f(creds: &Credentials) -> lockstep_provider_sdk::Result<()> {
//! let req = Request::post("https://secretsmanager.us-east-1.amazonaws.com/")
//!     .header("x-amz-target", "secretsmanager.GetSecretValue")
//!     .body("application/x-amz-json-1.1", r#"{"SecretId":"db"}"#);
//! let resp = sigv4::sign(req, creds, "us-east-1", "secretsmanager", std::time::SystemTime::now())?.send()?;
//! # Ok(()) }
//! ```
//!
//! Signed: `host` (from the URL; the host sets the header from it), every
//! header of the request, `x-amz-date` and, with temporary credentials,
//! `x-amz-security-token`. The path is encoded once more per segment (the rule
//! for every service but S3); the query is sorted as written, so build it with
//! [`Request::query`](crate::http::Request::query). Unsigned-payload and
//! chunked (S3 streaming) signing are not provided.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::http::{Request, Target};
use crate::{ProviderError, Result};

/// An access key, optionally temporary (with a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Adds `x-amz-date`, `x-amz-security-token` (if any) and `authorization` to `req`.
pub fn sign(
    req: Request,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: SystemTime,
) -> Result<Request> {
    let target = Target::parse(req.url())?;
    let amz_date = amz_date(now);
    let mut req = req.header("x-amz-date", amz_date.clone());
    if let Some(token) = &creds.session_token {
        req = req.header("x-amz-security-token", token.clone());
    }
    let host = match target.port {
        Some(p)
            if !(target.scheme == "https" && p == 443 || target.scheme == "http" && p == 80) =>
        {
            format!("{}:{p}", target.host)
        }
        _ => target.host.clone(),
    };
    let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
    for (name, value) in req.headers() {
        if name != "content-length" && name != "host" {
            headers.push((
                name.clone(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            ));
        }
    }
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let (path, query) = target
        .path_and_query
        .split_once('?')
        .unwrap_or((&target.path_and_query, ""));
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{signed}\n{}",
        req.method().as_str(),
        canonical_path(path),
        canonical_query(query),
        headers
            .iter()
            .map(|(n, v)| format!("{n}:{v}\n"))
            .collect::<String>(),
        hex(&Sha256::digest(req.body_bytes())),
    );
    let scope = format!("{}/{region}/{service}/aws4_request", &amz_date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{}", creds.secret_access_key).into_bytes();
    for part in [&amz_date[..8], region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes())?;
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes())?);
    Ok(req.header(
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ))
}

fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| ProviderError::internal("HMAC key rejected"))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical_path(path: &str) -> String {
    path.split('/')
        .map(crate::form::escape)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDDTHHMMSSZ` (UTC).
pub fn amz_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn header<'a>(req: &'a Request, name: &str) -> &'a str {
        req.headers()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(1_440_938_160)),
            "20150830T123600Z"
        );
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
    }

    /// The worked example of AWS's SigV4 documentation (IAM ListUsers).
    #[test]
    fn documented_example() {
        let creds = Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let req = Request::get("https://iam.amazonaws.com/")
            .query("Action", "ListUsers")
            .query("Version", "2010-05-08")
            .header(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            );
        let signed = sign(
            req,
            &creds,
            "us-east-1",
            "iam",
            UNIX_EPOCH + Duration::from_secs(1_440_938_160),
        )
        .unwrap();
        assert_eq!(header(&signed, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&signed, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn session_token_is_signed_and_debug_hides_the_secret() {
        let creds = Credentials {
            access_key_id: "ASIA".into(),
            secret_access_key: "s3cr3t".into(),
            session_token: Some("tok".into()),
        };
        let signed = sign(
            Request::post("https://sts.us-east-1.amazonaws.com/").form(&[("a", "b")]),
            &creds,
            "us-east-1",
            "sts",
            UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(header(&signed, "x-amz-security-token"), "tok");
        assert!(
            header(&signed, "authorization")
                .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,")
        );
        assert!(!format!("{creds:?}").contains("s3cr3t"));
        assert_eq!(canonical_path("/a b/c"), "/a%20b/c");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    }
}
