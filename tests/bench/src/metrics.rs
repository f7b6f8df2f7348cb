//! Prometheus text: the apiserver's `apiserver_request_total`, etcd's and the engine's.

use std::collections::BTreeMap;

/// Labels and value of one sample line of `name`.
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (BTreeMap<&'a str, &'a str>, f64)> + 'a {
    text.lines().filter(|l| !l.starts_with('#')).filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let end = r.rfind('}')?;
                (&r[..end], r[end + 1..].trim())
            }
            None if rest.starts_with(' ') => ("", rest.trim()),
            None => return None,
        };
        let value: f64 = value.split_whitespace().next()?.parse().ok()?;
        let mut map = BTreeMap::new();
        for pair in split_labels(labels) {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(k.trim(), v.trim().trim_matches('"'));
            }
        }
        Some((map, value))
    })
}

/// Splits `a="x",b="y,z"` at commas outside quotes.
fn split_labels(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Sum of the samples of `name` whose labels include every `(label, value)` of `filter`;
/// None when there is no such sample.
pub fn sum(text: &str, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for (labels, v) in samples(text, name) {
        if filter.iter().all(|(k, want)| labels.get(k) == Some(want)) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `apiserver_request_total` summed by "VERB resource[/subresource]".
pub fn apiserver_requests(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, v) in samples(text, "apiserver_request_total") {
        let verb = labels.get("verb").copied().unwrap_or("?");
        let resource = labels.get("resource").copied().unwrap_or("");
        let sub = labels.get("subresource").copied().unwrap_or("");
        let key = if sub.is_empty() { format!("{verb} {resource}") } else { format!("{verb} {resource}/{sub}") };
        *out.entry(key).or_insert(0.0) += v;
    }
    out
}

pub const WRITE_VERBS: [&str; 5] = ["POST", "PUT", "PATCH", "APPLY", "DELETE"];

/// `after - before`, entries that did not move dropped.
pub fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).filter(|(_, d)| *d > 0.0).collect()
}

/// Writes in a delta whose resource (with subresource) is `resource`.
pub fn writes_of(delta: &BTreeMap<String, f64>, resource: &str) -> f64 {
    delta
        .iter()
        .filter(|(k, _)| k.split_once(' ').is_some_and(|(verb, res)| WRITE_VERBS.contains(&verb) && res == resource))
        .fold(0.0, |sum, (_, v)| sum + v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apiserver_lines() {
        let text = "# HELP x\napiserver_request_total{code=\"201\",resource=\"secrets\",subresource=\"\",verb=\"POST\"} 3\n\
                    apiserver_request_total{code=\"200\",resource=\"externalsecrets\",subresource=\"status\",verb=\"APPLY\"} 2\n\
                    apiserver_request_total{code=\"409\",resource=\"secrets\",subresource=\"\",verb=\"POST\"} 1\n";
        let m = apiserver_requests(text);
        assert_eq!(m["POST secrets"], 4.0);
        assert_eq!(m["APPLY externalsecrets/status"], 2.0);
        assert_eq!(writes_of(&m, "secrets"), 4.0);
        assert_eq!(sum(text, "apiserver_request_total", &[("code", "201")]), Some(3.0));
        assert_eq!(sum(text, "nothing", &[]), None);
    }
}
