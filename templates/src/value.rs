//! Go-flavoured views of minijinja values: printing (`fmt` `%v`), truthiness,
//! strings, JSON (Go's `encoding/json`), and the mutable map `dict` returns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Error, ErrorKind};

use crate::bytes;

pub fn fail(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// Go's `map[string]interface{}` as returned by `dict`: `set`/`unset` mutate it.
#[derive(Debug, Default)]
pub struct GoMap(pub Mutex<BTreeMap<String, Value>>);

impl GoMap {
    pub fn new_value(m: BTreeMap<String, Value>) -> Value {
        Value::from_object(GoMap(Mutex::new(m)))
    }
    pub fn snapshot(&self) -> BTreeMap<String, Value> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Object for GoMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let k = key.as_str()?;
        self.0.lock().ok()?.get(k).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.snapshot().into_keys().map(Value::from).collect();
        Enumerator::Values(keys)
    }
}

/// Entries of a map-like value, sorted by key (Go prints and ranges maps sorted).
pub fn map_entries(v: &Value) -> Option<Vec<(String, Value)>> {
    if v.kind() != ValueKind::Map {
        return None;
    }
    if let Some(m) = v.downcast_object_ref::<GoMap>() {
        return Some(m.snapshot().into_iter().collect());
    }
    let mut out: Vec<(String, Value)> = v
        .try_iter()
        .ok()?
        .map(|k| {
            let val = v.get_item(&k).unwrap_or_default();
            (key_string(&k), val)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Some(out)
}

pub fn list_items(v: &Value) -> Option<Vec<Value>> {
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => v.try_iter().ok().map(|i| i.collect()),
        _ => None,
    }
}

fn key_string(k: &Value) -> String {
    k.as_str().map(str::to_owned).unwrap_or_else(|| go_print(k))
}

pub fn is_nil(v: &Value) -> bool {
    v.is_none() || v.is_undefined()
}

/// Go's emptiness (sprig `empty`/`default`): nil, zero, "", false, empty collections.
pub fn is_empty(v: &Value) -> bool {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => true,
        ValueKind::Bool => !v.is_true(),
        ValueKind::Number => !v.is_true(),
        ValueKind::String => v.as_str().is_some_and(str::is_empty),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => v.len().is_some_and(|l| l == 0),
        _ => false,
    }
}

/// sprig's `strval`: strings as is, everything else printed with `%v`.
pub fn to_str(v: &Value) -> String {
    match v.as_str() {
        Some(s) => s.to_owned(),
        None if is_nil(v) => String::new(),
        None => go_print(v),
    }
}

pub fn to_bytes(v: &Value) -> Vec<u8> {
    bytes::decode(&to_str(v))
}

pub fn from_bytes(b: &[u8]) -> Value {
    Value::from(bytes::encode(b))
}

/// Go `fmt` `%v` of a value at top level: nil prints as `<no value>` (what
/// text/template prints for a missing or nil value).
pub fn go_print_top(v: &Value) -> String {
    if is_nil(v) { "<no value>".to_owned() } else { go_print(v) }
}

/// Go `fmt` `%v`.
pub fn go_print(v: &Value) -> String {
    let mut s = String::new();
    write_go(&mut s, v);
    s
}

fn write_go(out: &mut String, v: &Value) {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("<nil>"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&go_number(v)),
        ValueKind::String => out.push_str(v.as_str().unwrap_or_default()),
        ValueKind::Bytes => out.push_str(&bytes::encode(v.as_bytes().unwrap_or_default())),
        ValueKind::Map => {
            out.push_str("map[");
            for (i, (k, val)) in map_entries(v).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go(out, val);
            }
            out.push(']');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            out.push('[');
            for (i, item) in list_items(v).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go(out, item);
            }
            out.push(']');
        }
        _ => out.push_str(&v.to_string()),
    }
}

pub fn as_f64(v: &Value) -> Option<f64> {
    if v.kind() != ValueKind::Number {
        return None;
    }
    if let Some(i) = v.as_i64() {
        return Some(i as f64);
    }
    f64::try_from(v.clone()).ok()
}

fn go_number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match as_f64(v) {
        Some(f) => go_float(f),
        None => v.to_string(),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (what `%v` prints for float64).
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Shortest round-trip digits and decimal exponent, from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let es = if exp < 0 { "-" } else { "+" };
        return format!("{sign}{first}{frac}e{es}{:02}", exp.abs());
    }
    let nd = digits.len() as i32;
    let s = if exp < 0 {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else if exp + 1 >= nd {
        format!("{}{}", digits, "0".repeat((exp + 1 - nd) as usize))
    } else {
        let (a, b) = digits.split_at((exp + 1) as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{s}")
}

/// Go's `encoding/json` Marshal (sorted keys, HTML-safe escaping unless `raw`).
pub fn to_json(v: &Value, indent: Option<&str>, html_escape: bool) -> Result<String, Error> {
    let mut out = String::new();
    write_json(&mut out, v, indent, 0, html_escape)?;
    Ok(out)
}

fn write_json(out: &mut String, v: &Value, indent: Option<&str>, depth: usize, html: bool) -> Result<(), Error> {
    let nl = |out: &mut String, d: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..d {
                out.push_str(ind);
            }
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = as_f64(v).unwrap_or(0.0);
                if !f.is_finite() {
                    return Err(fail(format!("json: unsupported value: {}", go_float(f))));
                }
                out.push_str(&json_float(f));
            }
        }
        ValueKind::String => json_str(out, v.as_str().unwrap_or_default(), html),
        ValueKind::Bytes => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(v.as_bytes().unwrap_or_default());
            json_str(out, &b64, html);
        }
        ValueKind::Map => {
            let entries = map_entries(v).unwrap_or_default();
            if entries.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                json_str(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, val, indent, depth + 1, html)?;
            }
            nl(out, depth);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items = list_items(v).unwrap_or_default();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_json(out, item, indent, depth + 1, html)?;
            }
            nl(out, depth);
            out.push(']');
        }
        _ => return Err(fail(format!("json: unsupported type {}", v.kind()))),
    }
    Ok(())
}

fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go: 'e' format, exponent without leading zero padding beyond 2 digits.
        let s = format!("{f:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", e.abs())
    } else {
        let s = format!("{f}");
        s
    }
}

/// JSON string escaping as Go's encoder does it. Raw bytes that are not UTF-8
/// become U+FFFD, like Go.
fn json_str(out: &mut String, s: &str, html: bool) {
    let real = bytes::to_utf8(s).unwrap_or_else(|| String::from_utf8_lossy(&bytes::decode(s)).into_owned());
    out.push('"');
    for c in real.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// JSON text → value; numbers become floats as in Go's `interface{}` decoding.
pub fn from_json_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => Value::from(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::from(bytes::encode(s.as_bytes())),
        serde_json::Value::Array(a) => Value::from(a.iter().map(from_json_value).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => {
            GoMap::new_value(o.iter().map(|(k, v)| (k.clone(), from_json_value(v))).collect())
        }
    }
}

/// Value → serde_json (for external functions and YAML).
pub fn to_serde(v: &Value) -> serde_json::Value {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => serde_json::Value::Null,
        ValueKind::Bool => serde_json::Value::Bool(v.is_true()),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                serde_json::Value::from(i)
            } else {
                serde_json::Number::from_f64(as_f64(v).unwrap_or(0.0))
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        ValueKind::String => serde_json::Value::String(
            bytes::to_utf8(v.as_str().unwrap_or_default())
                .unwrap_or_else(|| String::from_utf8_lossy(&to_bytes(v)).into_owned()),
        ),
        ValueKind::Map => serde_json::Value::Object(
            map_entries(v).unwrap_or_default().into_iter().map(|(k, v)| (k, to_serde(&v))).collect(),
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            serde_json::Value::Array(list_items(v).unwrap_or_default().iter().map(to_serde).collect())
        }
        _ => serde_json::Value::String(v.to_string()),
    }
}

/// serde_json → value keeping integer numbers as integers (external functions).
pub fn from_serde(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::Array(a) => Value::from(a.iter().map(from_serde).collect::<Vec<_>>()),
        serde_json::Value::Object(o) => {
            GoMap::new_value(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
        }
        other => from_json_value(other),
    }
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let b = bytes::decode(s);
    let mut out = String::from("\"");
    let mut rest: &[u8] = &b;
    while !rest.is_empty() {
        let (c, n) = first_char(rest);
        match c {
            None => {
                out.push_str(&format!("\\x{:02x}", rest[0]));
            }
            Some(c) => match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if c.is_control() || (c as u32 >= 0x80 && c.is_whitespace() && c != '\u{a0}') => {
                    if (c as u32) < 0x10000 {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            },
        }
        rest = &rest[n..];
    }
    out.push('"');
    out
}

fn first_char(b: &[u8]) -> (Option<char>, usize) {
    for n in 1..=b.len().min(4) {
        if let Ok(s) = std::str::from_utf8(&b[..n]) {
            return (s.chars().next(), n);
        }
    }
    (None, 1)
}

pub fn as_int(v: &Value) -> Result<i64, Error> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    if let Some(f) = as_f64(v) {
        return Ok(f as i64);
    }
    if let Some(s) = v.as_str() {
        let t = s.trim();
        return t.parse::<i64>().or_else(|_| t.parse::<f64>().map(|f| f as i64)).map_err(|_| fail("not a number"));
    }
    if is_nil(v) {
        return Ok(0);
    }
    if v.kind() == ValueKind::Bool {
        return Ok(i64::from(v.is_true()));
    }
    Err(fail(format!("cannot convert {} to a number", v.kind())))
}
