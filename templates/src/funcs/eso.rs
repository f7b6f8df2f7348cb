//! ESO's own template functions (`pkg/template/v2`), reimplemented on pure-Rust
//! crypto: PKCS#12, PEM, certificate chains, JWK, YAML and RSA decryption.

use std::collections::BTreeMap;

use base64::Engine;
use minijinja::value::Value;
use minijinja::Error;
use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
use pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use x509_parser::prelude::*;

use super::{def, want, FnLimits, FunctionDef};
use crate::value::{fail, from_bytes, from_json_value, to_bytes, to_serde, to_str};
use crate::yaml;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn functions(_limits: FnLimits) -> Vec<FunctionDef> {
    let p = "eso";
    vec![
        def(p, "pkcs12key", false, "PKCS#12 (binary) → private key as PKCS#8 PEM", |a| {
            want("pkcs12key", a, 1)?;
            pkcs12_key("", &to_bytes(&a[0]))
        }),
        def(p, "pkcs12keyPass", false, "pkcs12keyPass password p12", |a| {
            want("pkcs12keyPass", a, 2)?;
            pkcs12_key(&to_str(&a[0]), &to_bytes(&a[1]))
        }),
        def(p, "pkcs12cert", false, "PKCS#12 (binary) → certificate chain PEM, leaf first", |a| {
            want("pkcs12cert", a, 1)?;
            pkcs12_cert("", &to_bytes(&a[0]))
        }),
        def(p, "pkcs12certPass", false, "pkcs12certPass password p12", |a| {
            want("pkcs12certPass", a, 2)?;
            pkcs12_cert(&to_str(&a[0]), &to_bytes(&a[1]))
        }),
        def(p, "pemToPkcs12", true, "cert key → base64 PKCS#12 (random salt: volatile)", |a| {
            want("pemToPkcs12", a, 2)?;
            to_pkcs12(&to_bytes(&a[0]), &to_bytes(&a[1]), "", false)
        }),
        def(p, "pemToPkcs12Pass", true, "cert key password → base64 PKCS#12 (volatile)", |a| {
            want("pemToPkcs12Pass", a, 3)?;
            to_pkcs12(&to_bytes(&a[0]), &to_bytes(&a[1]), &to_str(&a[2]), false)
        }),
        def(p, "fullPemToPkcs12", true, "chain key → base64 PKCS#12 with CA certs (volatile)", |a| {
            want("fullPemToPkcs12", a, 2)?;
            to_pkcs12(&to_bytes(&a[0]), &to_bytes(&a[1]), "", true)
        }),
        def(p, "fullPemToPkcs12Pass", true, "chain key password → base64 PKCS#12 (volatile)", |a| {
            want("fullPemToPkcs12Pass", a, 3)?;
            to_pkcs12(&to_bytes(&a[0]), &to_bytes(&a[1]), &to_str(&a[2]), true)
        }),
        def(p, "filterPEM", false, "filterPEM type pem: keep blocks of that type", |a| {
            want("filterPEM", a, 2)?;
            filter_pem(&to_str(&a[0]), &to_bytes(&a[1]))
        }),
        def(p, "filterCertChain", false, "filterCertChain leaf|intermediate|root chain", |a| {
            want("filterCertChain", a, 2)?;
            filter_cert_chain(&to_str(&a[0]), &to_bytes(&a[1]))
        }),
        def(p, "certSANs", false, "subject alternative names of a PEM certificate", |a| {
            want("certSANs", a, 1)?;
            cert_sans(&to_bytes(&a[0]))
        }),
        def(p, "jwkPublicKeyPem", false, "JWK JSON → PKIX public key PEM", |a| {
            want("jwkPublicKeyPem", a, 1)?;
            jwk_pem(&to_bytes(&a[0]), false)
        }),
        def(p, "jwkPrivateKeyPem", false, "JWK JSON → PKCS#8 private key PEM", |a| {
            want("jwkPrivateKeyPem", a, 1)?;
            jwk_pem(&to_bytes(&a[0]), true)
        }),
        def(p, "toYaml", false, "YAML (Go yaml.v2 style, trailing newline trimmed)", |a| {
            want("toYaml", a, 1)?;
            let out = yaml::to_yaml(&to_serde(&a[0]));
            Ok(Value::from(out.strip_suffix('\n').unwrap_or(&out).to_owned()))
        }),
        def(p, "fromYaml", false, "parse YAML (strict: bad YAML is an error)", |a| {
            want("fromYaml", a, 1)?;
            serde_yaml::from_slice::<serde_json::Value>(&to_bytes(&a[0]))
                .map(|j| if j.is_null() { from_json_value(&serde_json::json!({})) } else { from_json_value(&j) })
                .map_err(|e| fail(format!("error calling fromYaml: invalid YAML: {e}")))
        }),
        def(p, "rsaDecrypt", false, "rsaDecrypt scheme hash ciphertext privateKeyPem", |a| {
            want("rsaDecrypt", a, 4)?;
            rsa_decrypt(&to_str(&a[0]), &to_str(&a[1]), &to_bytes(&a[2]), &to_bytes(&a[3]))
        }),
    ]
}

// ---------------------------------------------------------------- PEM (Go encoding/pem semantics)

pub struct PemBlock {
    pub kind: String,
    pub headers: BTreeMap<String, String>,
    pub bytes: Vec<u8>,
}

fn get_line(data: &[u8]) -> (&[u8], &[u8]) {
    let (line, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[data.len()..]),
    };
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    (&line[..end], rest)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Go's `pem.Decode`: the next block and the rest, or `None` and the input.
pub fn pem_decode(data: &[u8]) -> (Option<PemBlock>, &[u8]) {
    let mut rest = data;
    loop {
        if rest.starts_with(b"-----BEGIN ") {
            rest = &rest[11..];
        } else if let Some(i) = find(rest, b"\n-----BEGIN ") {
            rest = &rest[i + 12..];
        } else {
            return (None, data);
        }
        let (type_line, r) = get_line(rest);
        rest = r;
        let Some(kind) = type_line.strip_suffix(b"-----") else { continue };
        let mut headers = BTreeMap::new();
        loop {
            if rest.is_empty() {
                return (None, data);
            }
            let (line, next) = get_line(rest);
            let Some(c) = line.iter().position(|b| *b == b':') else { break };
            let k = String::from_utf8_lossy(&line[..c]).trim().to_owned();
            let v = String::from_utf8_lossy(&line[c + 1..]).trim().to_owned();
            headers.insert(k, v);
            rest = next;
        }
        let (end_index, trailer_index) = if headers.is_empty() && rest.starts_with(b"-----END ") {
            (0, 9)
        } else {
            match find(rest, b"\n-----END ") {
                Some(i) => (i, i + 10),
                None => continue,
            }
        };
        let trailer = &rest[trailer_index..];
        let tlen = kind.len() + 5;
        if trailer.len() < tlen {
            continue;
        }
        let (t, rest_of_end) = trailer.split_at(tlen);
        if !t.starts_with(kind) || !t.ends_with(b"-----") {
            continue;
        }
        if !get_line(rest_of_end).0.is_empty() {
            continue;
        }
        let b64: Vec<u8> = rest[..end_index].iter().copied().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).collect();
        let Ok(bytes) = B64.decode(&b64) else { continue };
        let (_, after) = get_line(&rest[end_index + 10 - 1..]);
        return (Some(PemBlock { kind: String::from_utf8_lossy(kind).into_owned(), headers, bytes }), after);
    }
}

/// Go's `pem.Encode`.
pub fn pem_encode(kind: &str, headers: &BTreeMap<String, String>, bytes: &[u8]) -> String {
    let mut out = format!("-----BEGIN {kind}-----\n");
    if !headers.is_empty() {
        if let Some(v) = headers.get("Proc-Type") {
            out.push_str(&format!("Proc-Type: {v}\n"));
        }
        for (k, v) in headers.iter().filter(|(k, _)| *k != "Proc-Type") {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
    }
    let b64 = B64.encode(bytes);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {kind}-----\n"));
    out
}

fn pem(kind: &str, der: &[u8]) -> String {
    pem_encode(kind, &BTreeMap::new(), der)
}

fn filter_pem(kind: &str, input: &[u8]) -> Result<Value, Error> {
    let mut out = String::new();
    let mut data = input;
    loop {
        let (block, rest) = pem_decode(data);
        data = rest;
        let Some(b) = block else { break };
        if b.kind.eq_ignore_ascii_case(kind) {
            out.push_str(&pem_encode(&b.kind, &b.headers, &b.bytes));
        }
    }
    if out.is_empty() && !data.is_empty() {
        return Err(fail("error calling filterPEM: error filtering pem: found junk"));
    }
    Ok(Value::from(out))
}

// ---------------------------------------------------------------- certificate chains

struct Cert {
    der: Vec<u8>,
    aki: Option<Vec<u8>>,
    ski: Option<Vec<u8>>,
}

fn parse_cert(der: &[u8]) -> Result<Cert, String> {
    let (_, c) = X509Certificate::from_der(der).map_err(|e| format!("x509: malformed certificate: {e}"))?;
    let mut aki = None;
    let mut ski = None;
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = a.key_identifier.as_ref().map(|k| k.0.to_vec()),
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            _ => {}
        }
    }
    Ok(Cert { der: der.to_vec(), aki, ski })
}

fn is_root(c: &Cert) -> bool {
    c.aki.is_none() || c.aki == c.ski
}

fn pem_certs(data: &[u8]) -> Result<Vec<Cert>, String> {
    let mut out = Vec::new();
    let mut rest = data;
    loop {
        let (b, r) = pem_decode(rest);
        rest = r;
        let Some(b) = b else { break };
        out.push(parse_cert(&b.bytes)?);
    }
    Ok(out)
}

/// Orders certificates leaf → root by AKI/SKI links, as ESO does (no signature checks).
fn order_chain(certs: Vec<Cert>) -> Result<Vec<Cert>, String> {
    let n = certs.len();
    let mut parent: Vec<Option<usize>> = vec![None; n];
    let mut is_parent = vec![false; n];
    let key = |o: &Option<Vec<u8>>| o.clone().unwrap_or_default();
    for i in 0..n {
        for j in 0..n {
            if i != j && key(&certs[i].aki) == key(&certs[j].ski) {
                is_parent[j] = true;
                parent[i] = Some(j);
                break;
            }
        }
    }
    let mut leaf = None;
    for (i, parent_of_some) in is_parent.iter().enumerate() {
        if !parent_of_some {
            if leaf.is_some() {
                return Err("found multiple leaf or disjunct certificates".into());
            }
            leaf = Some(i);
        }
    }
    let mut cur = leaf.ok_or("no leaf certificate found")?;
    let mut order = vec![cur];
    while let Some(p) = parent[cur] {
        if order.len() >= n {
            return Err("constructing chain resulted in cycle".into());
        }
        order.push(p);
        cur = p;
    }
    let mut slots: Vec<Option<Cert>> = certs.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

fn filter_cert_chain(which: &str, input: &[u8]) -> Result<Value, Error> {
    let e = |m: String| fail(format!("error calling filterCertChain: {m}"));
    let chain = order_chain(pem_certs(input).map_err(e)?).map_err(e)?;
    let out = match which {
        "leaf" => {
            let c = &chain[0];
            if c.aki.is_some() && c.aki != c.ski { pem("CERTIFICATE", &c.der) } else { String::new() }
        }
        "intermediate" => chain.iter().skip(1).take_while(|c| !is_root(c)).map(|c| pem("CERTIFICATE", &c.der)).collect(),
        "root" => {
            let c = &chain[chain.len() - 1];
            if is_root(c) { pem("CERTIFICATE", &c.der) } else { String::new() }
        }
        _ => String::new(),
    };
    Ok(Value::from(out))
}

fn cert_sans(input: &[u8]) -> Result<Value, Error> {
    let (b, _) = pem_decode(input);
    let b = b.ok_or_else(|| fail("error calling certSANs: failed to decode PEM block"))?;
    let (_, c) = X509Certificate::from_der(&b.bytes).map_err(|e| fail(format!("error calling certSANs: {e}")))?;
    let (mut dns, mut ips, mut emails, mut uris) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(match ip.len() {
                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(ip);
                        let v6 = std::net::Ipv6Addr::from(a);
                        v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_else(|| v6.to_string())
                    }
                    _ => hex::encode(ip),
                }),
                GeneralName::RFC822Name(m) => emails.push(m.to_string()),
                GeneralName::URI(u) => uris.push(u.to_string()),
                _ => {}
            }
        }
    }
    let all: Vec<Value> = dns.into_iter().chain(ips).chain(emails).chain(uris).map(Value::from).collect();
    Ok(Value::from(all))
}

// ---------------------------------------------------------------- PKCS#12

/// Go's `x509.MarshalPKCS8PrivateKey` of the parsed key: RSA and EC keys are
/// re-encoded canonically; other key types pass through as stored.
fn normalize_pkcs8(der: &[u8]) -> Vec<u8> {
    let reencoded = rsa::RsaPrivateKey::from_pkcs8_der(der)
        .ok()
        .and_then(|k| k.to_pkcs8_der().ok())
        .or_else(|| p256::SecretKey::from_pkcs8_der(der).ok().and_then(|k| k.to_pkcs8_der().ok()))
        .or_else(|| p384::SecretKey::from_pkcs8_der(der).ok().and_then(|k| k.to_pkcs8_der().ok()));
    reencoded.map(|d| d.as_bytes().to_vec()).unwrap_or_else(|| der.to_vec())
}

struct Decoded {
    key: Vec<u8>,
    cert: Vec<u8>,
    cas: Vec<Vec<u8>>,
}

/// Like go-pkcs12 `DecodeChain`: one key, the first certificate bag is the
/// leaf, the others are CA certificates in bag order.
fn decode_p12(pass: &str, input: &[u8]) -> Result<Decoded, String> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(input, pass).map_err(|e| format!("pkcs12: {e}"))?;
    if archive.keys.len() > 1 {
        return Err("pkcs12: expected exactly one key bag".into());
    }
    let key = archive.keys.first().ok_or("pkcs12: private key missing")?.key.as_der().to_vec();
    let mut certs = archive.certs.iter().map(|c| c.cert.as_der().to_vec());
    let cert = certs.next().ok_or("pkcs12: certificate missing")?;
    Ok(Decoded { key, cert, cas: certs.collect() })
}

fn pkcs12_key(pass: &str, input: &[u8]) -> Result<Value, Error> {
    let d = decode_p12(pass, input).map_err(|e| fail(format!("unable to decode pkcs12 with password: {e}")))?;
    Ok(Value::from(pem("PRIVATE KEY", &normalize_pkcs8(&d.key))))
}

fn pkcs12_cert(pass: &str, input: &[u8]) -> Result<Value, Error> {
    let d = decode_p12(pass, input).map_err(|e| fail(format!("unable to decode pkcs12 certificate with password: {e}")))?;
    let mut unordered = pem("CERTIFICATE", &d.cert);
    for ca in &d.cas {
        unordered.push_str(&pem("CERTIFICATE", ca));
    }
    // ESO returns the bag order when no single chain can be built.
    let ordered = pem_certs(unordered.as_bytes())
        .and_then(order_chain)
        .map(|chain| chain.iter().map(|c| pem("CERTIFICATE", &c.der)).collect::<String>());
    Ok(Value::from(ordered.unwrap_or(unordered)))
}

fn private_key_pkcs8(key_pem: &[u8]) -> Result<Vec<u8>, String> {
    let (b, _) = pem_decode(key_pem);
    let b = b.ok_or("failed to decode PEM block containing the private key")?;
    if let Ok(k) = <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_der(&b.bytes) {
        return k.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).map_err(|e| e.to_string());
    }
    if pkcs8::PrivateKeyInfo::try_from(b.bytes.as_slice()).is_ok() {
        return Ok(normalize_pkcs8(&b.bytes));
    }
    if let Ok(k) = <p256::SecretKey as sec1::DecodeEcPrivateKey>::from_sec1_der(&b.bytes) {
        return k.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).map_err(|e| e.to_string());
    }
    if let Ok(k) = <p384::SecretKey as sec1::DecodeEcPrivateKey>::from_sec1_der(&b.bytes) {
        return k.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).map_err(|e| e.to_string());
    }
    Err("unable to parse private key type".into())
}

fn to_pkcs12(cert_pem: &[u8], key_pem: &[u8], pass: &str, chain: bool) -> Result<Value, Error> {
    let e = |m: String| fail(format!("error converting PEM to PKCS#12: {m}"));
    let mut blocks = Vec::new();
    let mut rest = cert_pem;
    loop {
        let (b, r) = pem_decode(rest);
        rest = r;
        match b {
            Some(b) => blocks.push(b.bytes),
            None => break,
        }
        if !chain {
            break;
        }
    }
    if blocks.is_empty() {
        return Err(e("failed to decode PEM block containing the certificate".into()));
    }
    let mut certs = Vec::new();
    for der in &blocks {
        parse_cert(der).map_err(e)?;
        certs.push(Certificate::from_der(der).map_err(|x| e(x.to_string()))?);
    }
    let key = PrivateKey::from_der(&private_key_pkcs8(key_pem).map_err(e)?).map_err(|x| e(x.to_string()))?;
    let mut ks = KeyStore::new();
    let local_id: Vec<u8> = {
        use sha1::Digest;
        sha1::Sha1::digest(&blocks[0]).to_vec()
    };
    ks.add_entry("1", KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_id, key, certs)));
    let der = ks.writer(pass).write().map_err(|x| e(x.to_string()))?;
    Ok(Value::from(B64.encode(der)))
}

// ---------------------------------------------------------------- JWK

fn b64url(j: &serde_json::Value, field: &str) -> Result<Vec<u8>, String> {
    let s = j.get(field).and_then(|v| v.as_str()).ok_or_else(|| format!("jwk: missing {field}"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("jwk: invalid base64url in {field}"))
}

fn jwk_pem(input: &[u8], private: bool) -> Result<Value, Error> {
    let name = if private { "jwkPrivateKeyPem" } else { "jwkPublicKeyPem" };
    let e = |m: String| fail(format!("error calling {name}: {m}"));
    let j: serde_json::Value = serde_json::from_slice(input).map_err(|x| e(format!("failed to parse JWK: {x}")))?;
    let kty = j.get("kty").and_then(|v| v.as_str()).unwrap_or_default();
    let text = String::from_utf8_lossy(input).into_owned();
    let der: Vec<u8> = match kty {
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&b64url(&j, "n").map_err(e)?);
            let ex = rsa::BigUint::from_bytes_be(&b64url(&j, "e").map_err(e)?);
            if private {
                let d = rsa::BigUint::from_bytes_be(&b64url(&j, "d").map_err(e)?);
                let p = rsa::BigUint::from_bytes_be(&b64url(&j, "p").map_err(e)?);
                let q = rsa::BigUint::from_bytes_be(&b64url(&j, "q").map_err(e)?);
                let k = rsa::RsaPrivateKey::from_components(n, ex, d, vec![p, q]).map_err(|x| e(x.to_string()))?;
                k.to_pkcs8_der().map_err(|x| e(x.to_string()))?.as_bytes().to_vec()
            } else {
                let k = rsa::RsaPublicKey::new(n, ex).map_err(|x| e(x.to_string()))?;
                k.to_public_key_der().map_err(|x| e(x.to_string()))?.as_bytes().to_vec()
            }
        }
        "EC" => {
            let crv = j.get("crv").and_then(|v| v.as_str()).unwrap_or_default();
            macro_rules! ec {
                ($m:ident) => {{
                    if private {
                        let k = $m::SecretKey::from_jwk_str(&text).map_err(|x| e(x.to_string()))?;
                        k.to_pkcs8_der().map_err(|x| e(x.to_string()))?.as_bytes().to_vec()
                    } else {
                        let k = $m::PublicKey::from_jwk_str(&text).map_err(|x| e(x.to_string()))?;
                        k.to_public_key_der().map_err(|x| e(x.to_string()))?.as_bytes().to_vec()
                    }
                }};
            }
            match crv {
                "P-256" => ec!(p256),
                "P-384" => ec!(p384),
                c => return Err(e(format!("unsupported curve {c:?}"))),
            }
        }
        "OKP" => {
            let crv = j.get("crv").and_then(|v| v.as_str()).unwrap_or_default();
            if crv != "Ed25519" {
                return Err(e(format!("unsupported OKP curve {crv:?}")));
            }
            if private {
                let d = b64url(&j, "d").map_err(e)?;
                if d.len() != 32 {
                    return Err(e("invalid Ed25519 private key size".into()));
                }
                [&[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20][..], &d].concat()
            } else {
                let x = b64url(&j, "x").map_err(e)?;
                if x.len() != 32 {
                    return Err(e("invalid Ed25519 public key size".into()));
                }
                [&[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00][..], &x].concat()
            }
        }
        other => return Err(e(format!("unsupported key type {other:?}"))),
    };
    Ok(Value::from(pem(if private { "PRIVATE KEY" } else { "PUBLIC KEY" }, &der)))
}

// ---------------------------------------------------------------- RSA

fn rsa_decrypt(scheme: &str, hash: &str, ct: &[u8], key_pem: &[u8]) -> Result<Value, Error> {
    let e = |m: &str| fail(format!("error calling rsaDecrypt: {m}"));
    match scheme {
        "None" => return Ok(from_bytes(ct)),
        "RSA-OAEP" => {}
        other => return Err(e(&format!("decryption scheme {other} is not supported"))),
    }
    let (b, _) = pem_decode(key_pem);
    let b = b.ok_or_else(|| e("failed to decode PEM block"))?;
    let key = <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_der(&b.bytes)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_der(&b.bytes))
        .map_err(|_| e("could not parse private key"))?;
    let out = match hash {
        "SHA1" => key.decrypt(rsa::Oaep::new::<sha1::Sha1>(), ct),
        "SHA512" => key.decrypt(rsa::Oaep::new::<sha2::Sha512>(), ct),
        _ => key.decrypt(rsa::Oaep::new::<sha2::Sha256>(), ct),
    }
    .map_err(|_| e("error decrypting data with RSA"))?;
    Ok(from_bytes(&out))
}

