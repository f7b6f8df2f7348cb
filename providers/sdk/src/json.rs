//! JSON helpers with ESO's semantics.
//!
//! * [`property`] is the gjson lookup ESO providers apply to `remoteRef.property`:
//!   dotted paths, `\.` to escape a dot, array indexes, `#` for an array's
//!   length, `*` and `?` wildcards in object keys. Strings come back unquoted,
//!   integers and objects/arrays as their raw JSON text, `null` as empty.
//! * [`property_or_dotted_key`] adds the fallback some ESO providers (Azure,
//!   AWS) use: if the path finds nothing, the whole property is tried as one
//!   key containing dots.
//! * [`extract_map`] is `dataFrom.extract`: the value must be a JSON object;
//!   string members come back unquoted, every other member as raw JSON.
//!
//! Parse errors never quote the input: it is a secret value.

use serde::de::DeserializeOwned;

use crate::{ProviderError, Result, SecretEntry};

/// Looks `path` up in the JSON text `value` the way gjson's `Get(..).String()` does.
/// `None` when the path does not exist (or `value` is not JSON).
pub fn property(value: &[u8], path: &str) -> Option<Vec<u8>> {
    let segments = parse_path(path);
    let mut raw = trim(value);
    for (i, seg) in segments.iter().enumerate() {
        match raw.first()? {
            b'{' => raw = object_lookup(raw, seg)?,
            b'[' => {
                if seg.text == "#" && !seg.wild {
                    if i + 1 != segments.len() {
                        return None; // `#.field` projections are not supported
                    }
                    return Some(array_items(raw)?.len().to_string().into_bytes());
                }
                let index: usize = seg.text.parse().ok().filter(|_| !seg.wild)?;
                raw = *array_items(raw)?.get(index)?;
            }
            _ => return None,
        }
    }
    render(raw)
}

/// [`property`], then the whole `path` as a single key (ESO's dotted-key fallback).
pub fn property_or_dotted_key(value: &[u8], path: &str) -> Option<Vec<u8>> {
    property(value, path).or_else(|| {
        if !path.contains('.') {
            return None;
        }
        property(value, &path.replace('.', "\\."))
    })
}

/// Expands a JSON object into entries (ESO `GetSecretMap` semantics). Later
/// duplicate keys win; entries come back sorted by key.
pub fn extract_map(value: &[u8]) -> Result<Vec<SecretEntry>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(value)
        .map_err(|e| ProviderError::internal(format!("unable to unmarshal secret: {}", describe(&e))))?;
    let raw = trim(value);
    if raw.first() != Some(&b'{') {
        return Err(ProviderError::internal(
            "unable to unmarshal secret: the value is not a JSON object",
        ));
    }
    let mut map = std::collections::BTreeMap::new();
    for (key, member) in object_members(raw).ok_or_else(|| ProviderError::internal("unable to unmarshal secret"))? {
        let value = match member.first() {
            Some(b'"') => serde_json::from_slice::<String>(member).map(String::into_bytes).unwrap_or_default(),
            // Go's json.Unmarshal of `null` into a string succeeds and leaves it empty.
            Some(b'n') => Vec::new(),
            _ => member.to_vec(),
        };
        map.insert(key, value);
    }
    Ok(map.into_iter().map(|(key, value)| SecretEntry { key, value }).collect())
}

/// Deserialises a backend response. The error names the position, never the content.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::internal(format!("unexpected response: {}", describe(&e))))
}

/// Serialises a request body.
pub fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ProviderError::internal(format!("cannot encode JSON: {e}")))
}

/// A serde_json error without its message text, which can quote the input.
pub(crate) fn describe(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

struct Segment {
    /// Unescaped text of the segment (escapes removed, wildcards kept).
    text: String,
    /// Contains an unescaped `*` or `?`.
    wild: bool,
    /// Per character of `text`: whether it was escaped.
    escaped: Vec<bool>,
}

fn parse_path(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut seg = Segment { text: String::new(), wild: false, escaped: Vec::new() };
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    seg.text.push(next);
                    seg.escaped.push(true);
                }
            }
            '.' => segments.push(std::mem::replace(
                &mut seg,
                Segment { text: String::new(), wild: false, escaped: Vec::new() },
            )),
            c => {
                seg.wild |= c == '*' || c == '?';
                seg.text.push(c);
                seg.escaped.push(false);
            }
        }
    }
    segments.push(seg);
    segments
}

/// gjson-style wildcard match: `*` any run, `?` one character (unless escaped).
fn wildcard_match(seg: &Segment, key: &str) -> bool {
    let pat: Vec<(char, bool)> = seg.text.chars().zip(seg.escaped.iter().copied()).collect();
    let key: Vec<char> = key.chars().collect();
    let (mut p, mut k, mut star, mut mark) = (0, 0, None, 0);
    while k < key.len() {
        if p < pat.len() && !pat[p].1 && pat[p].0 == '*' {
            star = Some(p);
            mark = k;
            p += 1;
        } else if p < pat.len() && ((!pat[p].1 && pat[p].0 == '?') || pat[p].0 == key[k]) {
            p += 1;
            k += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            k = mark;
        } else {
            return false;
        }
    }
    while p < pat.len() && !pat[p].1 && pat[p].0 == '*' {
        p += 1;
    }
    p == pat.len()
}

/// First member whose key matches (gjson returns the first match).
fn object_lookup<'a>(raw: &'a [u8], seg: &Segment) -> Option<&'a [u8]> {
    object_members(raw)?.into_iter().find_map(|(key, value)| {
        let hit = if seg.wild { wildcard_match(seg, &key) } else { key == seg.text };
        hit.then_some(value)
    })
}

/// What gjson's `Result.String()` returns for a raw JSON value.
fn render(raw: &[u8]) -> Option<Vec<u8>> {
    match raw.first()? {
        b'"' => serde_json::from_slice::<String>(raw).ok().map(String::into_bytes),
        b'{' | b'[' | b't' | b'f' => Some(raw.to_vec()),
        b'n' => Some(Vec::new()),
        _ => {
            let digits = raw.strip_prefix(b"-").unwrap_or(raw);
            if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
                Some(raw.to_vec())
            } else {
                // Go: strconv.FormatFloat(f, 'f', -1, 64); Rust's Display is the same shortest form.
                let n: f64 = std::str::from_utf8(raw).ok()?.parse().ok()?;
                Some(n.to_string().into_bytes())
            }
        }
    }
}

fn trim(raw: &[u8]) -> &[u8] {
    let start = raw.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &raw[start..end]
}

/// A small scanner over raw JSON text that yields the exact byte spans of values.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// Skips one value and returns its span.
    fn value(&mut self) -> Option<&'a [u8]> {
        self.ws();
        let start = self.i;
        match *self.b.get(self.i)? {
            b'"' => self.string_end()?,
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.b.get(self.i)? {
                        b'"' => {
                            self.string_end()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                while self.i < self.b.len() && !b",}] \t\r\n".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(&self.b[start..self.i])
    }

    /// Moves past a string starting at the current quote.
    fn string_end(&mut self) -> Option<()> {
        self.i += 1;
        loop {
            match *self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                _ => self.i += 1,
            }
        }
    }
}

/// Members of a raw JSON object, in document order, keys unescaped.
fn object_members(raw: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let mut s = Scanner { b: raw, i: 0 };
    s.eat(b'{')?;
    let mut out = Vec::new();
    if s.eat(b'}').is_some() {
        return Some(out);
    }
    loop {
        if s.peek()? != b'"' {
            return None;
        }
        let key: String = serde_json::from_slice(s.value()?).ok()?;
        s.eat(b':')?;
        out.push((key, s.value()?));
        if s.eat(b',').is_none() {
            s.eat(b'}')?;
            return Some(out);
        }
    }
}

/// Items of a raw JSON array.
fn array_items(raw: &[u8]) -> Option<Vec<&[u8]>> {
    let mut s = Scanner { b: raw, i: 0 };
    s.eat(b'[')?;
    let mut out = Vec::new();
    if s.eat(b']').is_some() {
        return Some(out);
    }
    loop {
        out.push(s.value()?);
        if s.eat(b',').is_none() {
            s.eat(b']')?;
            return Some(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(v: &str, p: &str) -> Option<String> {
        property(v.as_bytes(), p).map(|b| String::from_utf8(b).unwrap())
    }

    const DOC: &str = r#"{"name": {"first": "Tom", "last": "Anderson"}, "age":37, "pi": 3.140,
        "big": 1.5e3, "ok": true, "none": null, "children": ["Sara","Alex","Jack"],
        "fav.movie": "Deer Hunter", "friends": [{"first": "Dale", "nets": ["ig", "fb"]}],
        "nested": {"a": [1, {"b": "c"}]}, "esc": "line\nbreak \u00e9"}"#;

    #[test]
    fn gjson_paths() {
        assert_eq!(get(DOC, "name.last").as_deref(), Some("Anderson"));
        assert_eq!(get(DOC, "age").as_deref(), Some("37"));
        assert_eq!(get(DOC, "pi").as_deref(), Some("3.14"));
        assert_eq!(get(DOC, "big").as_deref(), Some("1500"));
        assert_eq!(get(DOC, "ok").as_deref(), Some("true"));
        assert_eq!(get(DOC, "none").as_deref(), Some(""));
        assert_eq!(get(DOC, "children.1").as_deref(), Some("Alex"));
        assert_eq!(get(DOC, "children.#").as_deref(), Some("3"));
        assert_eq!(get(DOC, "children.9"), None);
        assert_eq!(get(DOC, r"fav\.movie").as_deref(), Some("Deer Hunter"));
        assert_eq!(get(DOC, "fav.movie"), None);
        assert_eq!(get(DOC, "friends.0.nets.1").as_deref(), Some("fb"));
        assert_eq!(get(DOC, "nested.a.1.b").as_deref(), Some("c"));
        assert_eq!(get(DOC, "esc").as_deref(), Some("line\nbreak é"));
        assert_eq!(get(DOC, "missing"), None);
        assert_eq!(get(DOC, "age.x"), None);
    }

    #[test]
    fn raw_text_of_objects_is_kept() {
        assert_eq!(get(DOC, "name").as_deref(), Some(r#"{"first": "Tom", "last": "Anderson"}"#));
        assert_eq!(get(DOC, "nested.a").as_deref(), Some(r#"[1, {"b": "c"}]"#));
    }

    #[test]
    fn wildcards() {
        assert_eq!(get(DOC, "na*.la?t").as_deref(), Some("Anderson"));
        assert_eq!(get(DOC, "chi*.0").as_deref(), Some("Sara"));
        assert_eq!(get(r#"{"a*":1,"ab":2}"#, r"a\*").as_deref(), Some("1"));
        assert_eq!(get(r#"{"ab":2,"a*":1}"#, "a*").as_deref(), Some("2"));
    }

    #[test]
    fn not_json_has_no_properties() {
        assert_eq!(get("HELLO", "a"), None);
        assert_eq!(get("", "a"), None);
        assert_eq!(get(r#"{"a":"#, "a"), None);
    }

    #[test]
    fn first_duplicate_wins_for_property() {
        assert_eq!(get(r#"{"a":1,"a":2}"#, "a").as_deref(), Some("1"));
    }

    #[test]
    fn dotted_key_fallback() {
        let v = br#"{"tls.crt":"CERT","tls":{"key":"K"}}"#;
        assert_eq!(property_or_dotted_key(v, "tls.crt"), Some(b"CERT".to_vec()));
        assert_eq!(property_or_dotted_key(v, "tls.key"), Some(b"K".to_vec()));
        assert_eq!(property(v, "tls.crt"), None);
        assert_eq!(property_or_dotted_key(v, "nope"), None);
    }

    #[test]
    fn extract_semantics() {
        let entries = extract_map(
            br#" {"s": "x\"y", "n": 12.50, "o": {"k": [1, 2]}, "b": false, "z": null, "s": "last"} "#,
        )
        .unwrap();
        let got: Vec<(String, String)> =
            entries.into_iter().map(|e| (e.key, String::from_utf8(e.value).unwrap())).collect();
        assert_eq!(
            got,
            [
                ("b".into(), "false".into()),
                ("n".into(), "12.50".into()),
                ("o".into(), r#"{"k": [1, 2]}"#.into()),
                ("s".into(), "last".into()),
                ("z".into(), "".into()),
            ]
        );
    }

    #[test]
    fn extract_rejects_non_objects_without_quoting_them() {
        for bad in [&b"[1,2]"[..], b"\"secret-text\"", b"secret-text", b"{\"a\":"] {
            let err = extract_map(bad).unwrap_err();
            let ProviderError::Internal(msg) = &err else { panic!("{err:?}") };
            assert!(msg.starts_with("unable to unmarshal secret"), "{msg}");
            assert!(!msg.contains("secret-text"), "{msg}");
        }
    }

    #[test]
    fn from_slice_hides_content() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            n: u64,
        }
        let err = from_slice::<R>(br#"{"n":"hunter2"}"#).unwrap_err();
        assert!(!format!("{err:?}").contains("hunter2"));
    }
}
