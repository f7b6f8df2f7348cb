//! Client-certificate credentials: a PEM bundle (certificate + RSA key, as
//! ESO's `authSecretRef.clientCertificate` holds it) and the RS256 JWT
//! assertion Entra accepts instead of a client secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use lockstep_provider_sdk::{ProviderError, Result};
use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::{Digest, Sha256};

const FIELD: &str = "authSecretRef.clientCertificate";

/// A parsed client certificate. Holds key material: never log or format it.
pub struct ClientCertificate {
    key: SigningKey<Sha256>,
    /// base64url(SHA-256 of the leaf certificate's DER): the JWT `x5t#S256` header.
    thumbprint: String,
}

impl ClientCertificate {
    /// Parses a PEM bundle: the first `CERTIFICATE` block is the leaf; the key
    /// is a `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block.
    /// Errors never quote the input.
    pub fn from_pem(pem: &[u8]) -> Result<ClientCertificate> {
        let text = std::str::from_utf8(pem).map_err(|_| bad("the certificate bundle is not PEM text"))?;
        let blocks = pem_blocks(text)?;
        let cert = blocks
            .iter()
            .find(|(label, _)| label == "CERTIFICATE")
            .ok_or_else(|| bad("no certificate found in the PEM bundle"))?;
        let key = match blocks.iter().find(|(label, _)| label.ends_with("PRIVATE KEY")) {
            Some((label, der)) if label == "PRIVATE KEY" => PrivateKey::from_pkcs8_der(der)
                .map_err(|_| bad("the PRIVATE KEY block is not an unencrypted PKCS#8 RSA key"))?,
            Some((label, der)) if label == "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(der)
                .map_err(|_| bad("the RSA PRIVATE KEY block is not a valid PKCS#1 key"))?,
            Some((label, _)) => {
                return Err(bad(&format!(
                    "unsupported key type {label}: only RSA keys are accepted"
                )));
            }
            None => return Err(bad("no private key found in the PEM bundle")),
        };
        Ok(ClientCertificate {
            key: SigningKey::new(key),
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(&cert.1)),
        })
    }

    /// A signed client assertion for `client_id` at `token_url`, valid for 10 minutes.
    pub fn assertion(&self, client_id: &str, token_url: &str, now: u64, jti: &str) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t#S256": self.thumbprint});
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": jti,
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

fn bad(reason: &str) -> ProviderError {
    ProviderError::invalid_config(FIELD, reason)
}

/// `-----BEGIN X-----` … `-----END X-----` blocks as (label, DER).
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            current = Some((label.to_owned(), String::new()));
        } else if let Some(label) = line.strip_prefix("-----END ").and_then(|l| l.strip_suffix("-----")) {
            let (open, body) = current.take().ok_or_else(|| bad("malformed PEM: END without BEGIN"))?;
            if open != label {
                return Err(bad("malformed PEM: mismatched BEGIN/END labels"));
            }
            let der = STANDARD
                .decode(body)
                .map_err(|_| bad("malformed PEM: invalid base64"))?;
            blocks.push((open, der));
        } else if let Some((_, body)) = current.as_mut() {
            // Skip RFC 1421 headers such as `Proc-Type:` (encrypted keys fail to parse later).
            if !line.contains(':') {
                body.push_str(line);
            }
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    // A throwaway 1024-bit test key and self-signed certificate, generated for these tests only.
    const KEY_PKCS8: &str = include_str!("../testdata/client.key");
    const CERT: &str = include_str!("../testdata/client.crt");

    #[test]
    fn signs_a_verifiable_assertion() {
        let bundle = format!("{CERT}{KEY_PKCS8}");
        let cert = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        let jwt = cert.assertion(
            "cid",
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            1_700_000_000,
            "j1",
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        // The thumbprint is over the certificate's DER.
        let der = &pem_blocks(CERT).unwrap()[0].1;
        assert_eq!(header["x5t#S256"], URL_SAFE_NO_PAD.encode(Sha256::digest(der)));
        let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "cid");
        assert_eq!(claims["sub"], "cid");
        assert_eq!(claims["exp"], 1_700_000_600u64);
        let key = PrivateKey::from_pkcs8_pem(KEY_PKCS8).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(key.to_public_key());
        let sig = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
        let mut tampered = format!("{}.{}", parts[0], parts[1]);
        tampered.push('x');
        assert!(verifier.verify(tampered.as_bytes(), &sig).is_err());
    }

    #[test]
    fn accepts_pkcs1_keys_in_any_order() {
        let bundle = format!("{}{CERT}", include_str!("../testdata/client-pkcs1.key"));
        let cert = ClientCertificate::from_pem(bundle.as_bytes()).unwrap();
        let pkcs8 = ClientCertificate::from_pem(format!("{CERT}{KEY_PKCS8}").as_bytes()).unwrap();
        // Same key, same deterministic signature.
        assert_eq!(cert.assertion("c", "u", 1, "j"), pkcs8.assertion("c", "u", 1, "j"));
    }

    #[test]
    fn errors_name_the_field_and_never_quote() {
        for bad_input in [
            "not pem".to_owned(),
            CERT.to_owned(),
            KEY_PKCS8.to_owned(),
            format!("{CERT}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            format!("{CERT}-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
        ] {
            match ClientCertificate::from_pem(bad_input.as_bytes()) {
                Err(ProviderError::InvalidConfig(c)) => {
                    assert_eq!(c.field, FIELD);
                    assert!(!c.reason.contains("MII"), "{}", c.reason);
                }
                Err(other) => panic!("{other:?}"),
                Ok(_) => panic!("accepted a bad bundle"),
            }
        }
    }
}
