//! Shared helpers for the template tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn fixture_str(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("utf-8 fixture")
}

/// The data every conformance case renders against.
pub fn data() -> BTreeMap<String, Vec<u8>> {
    let bin: Vec<u8> = vec![0x00, 0xff, 0xfe, 0x80, 0x0a, 0xc3, 0x28, b'a', 0xf4, 0x8f, 0xbd, 0x81, 0x7f];
    let mut d = BTreeMap::new();
    let mut put = |k: &str, v: Vec<u8>| {
        d.insert(k.to_owned(), v);
    };
    put("admin_password", b"s3cr3t-Pa$$".to_vec());
    put("my-key", b"dashed value".to_vec());
    put("json", br#"{"a":{"b":[1,2,"x"]},"n":1000000,"f":1.5,"s":"<tag>&","t":true,"z":null}"#.to_vec());
    put("yaml", b"a: 1\nb: [x, z]\nc:\n  d: e\n".to_vec());
    put("b64", B64.encode(&bin).into_bytes());
    put("bin", bin);
    put("p12", B64.encode(fixture("chain-nopass.p12")).into_bytes());
    put("p12pass", B64.encode(fixture("chain-1234.p12")).into_bytes());
    put("p12reversed", B64.encode(fixture("chain-reversed.p12")).into_bytes());
    put("chain", fixture("chain.pem"));
    put("chain_shuffled", fixture("chain-shuffled.pem"));
    put("cert", fixture("leaf.crt"));
    put("key", fixture("leaf.key"));
    put("key_pkcs1", fixture("leaf-pkcs1.key"));
    put("ec_cert", fixture("ec.crt"));
    put("ec_key", fixture("ec.key"));
    put("key_and_cert", [fixture("leaf.key"), fixture("leaf.crt"), fixture("intermediate.crt")].concat());
    put("rsa_jwk", fixture("rsa.jwk"));
    put("rsa_pub_jwk", fixture("rsa-pub.jwk"));
    put("ec_jwk", fixture("ec.jwk"));
    put("ec_pub_jwk", fixture("ec-pub.jwk"));
    put("ed_jwk", fixture("ed25519.jwk"));
    d
}
