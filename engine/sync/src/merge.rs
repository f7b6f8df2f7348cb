//! The `merge` rewrite (ESO `RewriteMerge`): the values of a dataFrom map are
//! JSON objects, merged key by key — non-priority keys in sorted order, then
//! `priority` keys in their order, so later ones win. Strategy `Extract`
//! makes the merged members the new map; `JSON` keeps the map and adds the
//! merged object under `into`.

use std::collections::BTreeMap;

use lockstep_api::types::{ConflictPolicy, MergeStrategy, PriorityPolicy, RewriteMerge};
use serde_json::Value;

use crate::SyncError;

pub(crate) fn rewrite_merge(
    field: &str,
    op: &RewriteMerge,
    input: BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, Vec<u8>>, SyncError> {
    let err = |reason: String| SyncError::InvalidSpec { field: format!("{field}.merge"), reason };
    let mut order: Vec<&str> = input.keys().map(String::as_str).filter(|k| !op.priority.iter().any(|p| p == k)).collect();
    order.extend(op.priority.iter().map(String::as_str));

    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for key in order {
        let Some(raw) = input.get(key) else {
            if op.priority_policy.unwrap_or_default() == PriorityPolicy::IgnoreNotFound {
                continue;
            }
            return Err(err(format!("merge failed with key {key:?} not found in input map")));
        };
        // The parser's message could quote the value: name the key only.
        let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(raw) else {
            return Err(err(format!("merge failed: the value of key {key:?} is not a JSON object")));
        };
        for (k, v) in members {
            if merged.insert(k.clone(), v).is_some() {
                conflicts.push(k);
            }
        }
    }
    if op.conflict_policy.unwrap_or_default() != ConflictPolicy::Ignore && !conflicts.is_empty() {
        return Err(err(format!("merge failed with conflicts: {}", conflicts.join(", "))));
    }
    match op.strategy.unwrap_or_default() {
        MergeStrategy::Extract => Ok(merged.into_iter().map(|(k, v)| (k, byte_value(&v))).collect()),
        MergeStrategy::JSON => {
            let into = op.into.as_deref().filter(|i| !i.is_empty()).ok_or_else(|| err("merge failed with missing 'into' field".into()))?;
            let mut out = input;
            out.insert(into.to_string(), go_json(&Value::Object(merged.into_iter().collect()), false).into_bytes());
            Ok(out)
        }
    }
}

/// ESO's `GetByteValue` for a decoded JSON member: strings as they are,
/// numbers in plain decimal, booleans as text, null as empty, objects and
/// arrays as Go's `json.Marshal` writes them.
fn byte_value(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Number(n) => match n.as_f64() {
            // Go decodes numbers into float64 and prints them without exponent.
            Some(f) if !n.is_i64() && !n.is_u64() => format!("{f}").into_bytes(),
            _ => n.to_string().into_bytes(),
        },
        Value::Object(_) | Value::Array(_) => go_json(v, true).into_bytes(),
    }
}

/// Compact JSON with sorted object keys, as Go's encoder writes a
/// `map[string]any`; `escape_html` mirrors `json.Marshal` (ESO's JSON
/// strategy uses an encoder with HTML escaping off).
fn go_json(v: &Value, escape_html: bool) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(b.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    let text = serde_json::to_string(&sorted(v)).expect("JSON values serialise");
    if !escape_html {
        return text;
    }
    // These characters only occur inside JSON strings, so a plain replace is exact.
    text.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        entries.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn op(yaml: &str) -> RewriteMerge {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn text(m: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, &str> {
        m.iter().map(|(k, v)| (k.as_str(), std::str::from_utf8(v).unwrap())).collect()
    }

    #[test]
    fn extract_merges_members_with_priority_last() {
        let inp = input(&[("a", r#"{"user":"ua","port":5432}"#), ("b", r#"{"user":"ub","ok":true,"n":null}"#), ("c", r#"{"nested":{"z":1,"a":"<x>"}}"#)]);
        let out = rewrite_merge("f", &op("{priority: [a], conflictPolicy: Ignore}"), inp.clone()).unwrap();
        assert_eq!(
            text(&out),
            BTreeMap::from([("user", "ua"), ("port", "5432"), ("ok", "true"), ("n", ""), ("nested", r#"{"a":"\u003cx\u003e","z":1}"#)])
        );
        // Without priority, b (sorted after a) wins.
        let out = rewrite_merge("f", &op("{conflictPolicy: Ignore}"), inp.clone()).unwrap();
        assert_eq!(text(&out)["user"], "ub");
        // Conflicts are an error by default, naming the keys only.
        let e = rewrite_merge("f", &op("{}"), inp).unwrap_err().to_string();
        assert!(e.ends_with("merge failed with conflicts: user"), "{e}");
    }

    #[test]
    fn priority_policy_and_json_strategy() {
        let inp = input(&[("a", r#"{"x":"1"}"#)]);
        let e = rewrite_merge("f", &op("{priority: [missing]}"), inp.clone()).unwrap_err().to_string();
        assert!(e.contains(r#"key "missing" not found"#), "{e}");
        rewrite_merge("f", &op("{priority: [missing], priorityPolicy: IgnoreNotFound}"), inp.clone()).unwrap();
        let out = rewrite_merge("f", &op("{strategy: JSON, into: all}"), input(&[("a", r#"{"x":"<1>"}"#), ("b", r#"{"w":2}"#)])).unwrap();
        assert_eq!(text(&out)["all"], r#"{"w":2,"x":"<1>"}"#);
        assert_eq!(out.len(), 3, "JSON keeps the input keys");
        assert!(rewrite_merge("f", &op("{strategy: JSON}"), inp).is_err());
        let e = rewrite_merge("f", &op("{}"), input(&[("a", "s3cr3t")])).unwrap_err().to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
