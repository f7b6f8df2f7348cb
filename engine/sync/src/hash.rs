//! ESO-compatible hashes and the labels/annotations on managed Secrets.
//! ESO hashes `fmt.Sprintf("%+v", x)` with SHA3-224; reproducing Go's text
//! exactly lets Lockstep take over Secrets ESO manages without a write.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha3::{Digest, Sha3_224};

/// Label on every managed Secret (value `true`).
pub const MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// Label on Secrets an ExternalSecret owns (creationPolicy Owner).
pub const CREATED_BY_LABEL: &str = "reconcile.external-secrets.io/created-by";
/// Annotation holding the hash of the Secret's data.
pub const DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";
/// Annotation that forces a sync when it changes.
pub const FORCE_SYNC_ANNOTATION: &str = "external-secrets.io/force-sync";
/// Annotations whose change forces a fresh provider call: ESO's FAQ tells
/// users to `kubectl annotate es NAME force-sync=$(date +%s)`, unprefixed.
pub const FORCE_SYNC_ANNOTATIONS: [&str; 2] = [FORCE_SYNC_ANNOTATION, "force-sync"];

/// Lowercase hex SHA3-224 of `text`.
pub fn sha3_224_hex(text: &[u8]) -> String {
    hex::encode(Sha3_224::digest(text))
}

/// Go's `%+v` of a `map[string][]byte`: `map[k1:[1 2 3] k2:[]]`, keys sorted
/// bytewise (as Go's fmt sorts string keys), each value as decimal bytes.
pub fn go_format_bytes_map(data: &BTreeMap<String, Vec<u8>>) -> String {
    let mut out = String::from("map[");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push_str(":[");
        for (j, b) in v.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{b}");
        }
        out.push(']');
    }
    out.push(']');
    out
}

/// Go's `%+v` of a `map[string]string`: `map[a:b c:d]`.
pub fn go_format_string_map(data: &BTreeMap<String, String>) -> String {
    let body: Vec<String> = data.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", body.join(" "))
}

/// `reconcile.external-secrets.io/data-hash` of a Secret's data.
pub fn data_hash(data: &BTreeMap<String, Vec<u8>>) -> String {
    sha3_224_hex(go_format_bytes_map(data).as_bytes())
}

/// ESO's "valid target Secret": it carries the managed label and a
/// data-hash annotation equal to the hash of its current data. A manual
/// edit, a removed label or a Secret ESO wrote all show up here, which is
/// what lets a Secret ESO manages be taken over without a write.
pub fn secret_is_current(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    data: &BTreeMap<String, Vec<u8>>,
) -> bool {
    labels.get(MANAGED_LABEL).is_some_and(|v| v == "true")
        && annotations.get(DATA_HASH_ANNOTATION).is_some_and(|h| *h == data_hash(data))
}

/// `reconcile.external-secrets.io/created-by`: hash of `<namespace>/<name>`
/// of the owning ExternalSecret.
pub fn created_by(namespace: &str, es_name: &str) -> String {
    sha3_224_hex(format!("{namespace}/{es_name}").as_bytes())
}

/// `status.syncedResourceVersion`: `<generation>-<hash of {annotations, labels}>`,
/// Go's `%+v` of ESO's private `meta{annotations, labels}` struct.
pub fn synced_resource_version(
    generation: i64,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> String {
    let text = format!("{{annotations:{} labels:{}}}", go_format_string_map(annotations), go_format_string_map(labels));
    format!("{generation}-{}", sha3_224_hex(text.as_bytes()))
}

/// The field manager ESO writes a Secret with: the ES name, or its hash
/// when the manager string would exceed 63 characters.
pub fn field_manager(es_name: &str) -> String {
    let plain = format!("externalsecrets.external-secrets.io/{es_name}");
    if plain.len() > 63 {
        format!("externalsecrets.external-secrets.io/sha3/{}", sha3_224_hex(es_name.as_bytes()))
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    #[test]
    fn eso_test_vectors() {
        // runtime/esutils/utils_test.go
        assert_eq!(
            data_hash(&map(&[("foo", b"value1"), ("bar", b"value2")])),
            "1bed8bcbcb4547ffe19a19cd47d9078e84aa6598266d86b99f992d64"
        );
        assert_eq!(sha3_224_hex(b"hello there"), "f78681ec611ebaeea0689bff6c7812a83ff98a7faba986d9af76c999");
        assert_eq!(sha3_224_hex(b"<nil>"), "c461202a18e99215f121936fb2452e03843828e448a00a53f285a6fc");
    }

    #[test]
    fn go_map_text() {
        assert_eq!(go_format_bytes_map(&BTreeMap::new()), "map[]");
        assert_eq!(go_format_bytes_map(&map(&[("b", b""), ("a", &[0, 255])])), "map[a:[0 255] b:[]]");
        // Go sorts string keys bytewise: upper case before lower case.
        assert_eq!(go_format_bytes_map(&map(&[("a", b"x"), ("B", b"y")])), "map[B:[121] a:[120]]");
    }

    #[test]
    fn current_secret_needs_label_and_matching_hash() {
        let data = map(&[("k", b"v")]);
        let labels = BTreeMap::from([(MANAGED_LABEL.to_string(), "true".to_string())]);
        let annotations = BTreeMap::from([(DATA_HASH_ANNOTATION.to_string(), data_hash(&data))]);
        assert!(secret_is_current(&labels, &annotations, &data));
        assert!(!secret_is_current(&BTreeMap::new(), &annotations, &data));
        assert!(!secret_is_current(&labels, &annotations, &map(&[("k", b"edited")])));
    }

    #[test]
    fn synced_resource_version_is_generation_and_meta_hash() {
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        let v = synced_resource_version(3, &labels, &BTreeMap::new());
        assert_eq!(v, format!("3-{}", sha3_224_hex(b"{annotations:map[] labels:map[a:b]}")));
    }

    #[test]
    fn field_manager_switches_to_hash_past_63_chars() {
        assert_eq!(field_manager("short"), "externalsecrets.external-secrets.io/short");
        let long = "a".repeat(28);
        assert!(field_manager(&long).starts_with("externalsecrets.external-secrets.io/sha3/"));
        assert_eq!(field_manager(&"a".repeat(27)).len(), 63);
    }
}
