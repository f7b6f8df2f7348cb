//! Go text/template's predefined functions (`and`/`or`/`not` compile to
//! Jinja operators and are not listed here).

use std::cmp::Ordering;

use minijinja::value::{Value, ValueKind};
use minijinja::Error;

use super::{def, want, want_at_least, FnLimits, FunctionDef};
use crate::bytes;
use crate::value::{
    as_f64, fail, go_print, go_quote, is_nil, list_items, map_entries, to_str,
};

pub fn functions(_limits: FnLimits) -> Vec<FunctionDef> {
    let p = "builtin";
    vec![
        def(p, "index", false, "index a map or list by one or more keys", |a| {
            want_at_least("index", a, 1)?;
            let mut cur = a[0].clone();
            for k in &a[1..] {
                cur = index_one(&cur, k)?;
            }
            Ok(cur)
        }),
        def(p, "len", false, "length in bytes of a string, or of a list or map", |a| {
            want("len", a, 1)?;
            go_len(&a[0]).map(Value::from)
        }),
        def(p, "print", false, "fmt.Sprint", |a| Ok(Value::from(sprint(a)))),
        def(p, "println", false, "fmt.Sprintln", |a| {
            let parts: Vec<String> = a.iter().map(go_print_arg).collect();
            Ok(Value::from(parts.join(" ") + "\n"))
        }),
        def(p, "printf", false, "fmt.Sprintf", |a| {
            want_at_least("printf", a, 1)?;
            Ok(Value::from(sprintf(&to_str(&a[0]), &a[1..])))
        }),
        def(p, "eq", false, "arg1 == arg2 (or any of the following args)", |a| {
            want_at_least("eq", a, 2)?;
            for b in &a[1..] {
                if compare(&a[0], b, "eq")? == Ordering::Equal {
                    return Ok(Value::from(true));
                }
            }
            Ok(Value::from(false))
        }),
        def(p, "ne", false, "arg1 != arg2", |a| cmp_fn("ne", a, |o| o != Ordering::Equal)),
        def(p, "lt", false, "arg1 < arg2", |a| cmp_fn("lt", a, |o| o == Ordering::Less)),
        def(p, "le", false, "arg1 <= arg2", |a| cmp_fn("le", a, |o| o != Ordering::Greater)),
        def(p, "gt", false, "arg1 > arg2", |a| cmp_fn("gt", a, |o| o == Ordering::Greater)),
        def(p, "ge", false, "arg1 >= arg2", |a| cmp_fn("ge", a, |o| o != Ordering::Less)),
    ]
}

fn cmp_fn(name: &str, a: &[Value], ok: impl Fn(Ordering) -> bool) -> Result<Value, Error> {
    want(name, a, 2)?;
    Ok(Value::from(ok(compare(&a[0], &a[1], name)?)))
}

/// Go's basic-kind comparison: numbers with numbers, strings with strings,
/// bools (eq/ne only); anything else is "incompatible types".
fn compare(a: &Value, b: &Value, op: &str) -> Result<Ordering, Error> {
    match (a.kind(), b.kind()) {
        (ValueKind::Number, ValueKind::Number) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                return Ok(x.cmp(&y));
            }
            let (x, y) = (as_f64(a).unwrap_or(0.0), as_f64(b).unwrap_or(0.0));
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Less))
        }
        (ValueKind::String, ValueKind::String) => {
            Ok(bytes::decode(a.as_str().unwrap_or_default()).cmp(&bytes::decode(b.as_str().unwrap_or_default())))
        }
        (ValueKind::Bool, ValueKind::Bool) if op == "eq" || op == "ne" => {
            Ok(if a.is_true() == b.is_true() { Ordering::Equal } else { Ordering::Less })
        }
        (ValueKind::None | ValueKind::Undefined, ValueKind::None | ValueKind::Undefined) if op == "eq" || op == "ne" => {
            Ok(Ordering::Equal)
        }
        _ if op == "eq" || op == "ne" => {
            if is_nil(a) || is_nil(b) {
                return Err(fail(format!("error calling {op}: incompatible types for comparison")));
            }
            Err(fail(format!("error calling {op}: incompatible types for comparison")))
        }
        _ => Err(fail(format!("error calling {op}: invalid type for comparison"))),
    }
}

pub fn go_len(v: &Value) -> Result<usize, Error> {
    match v.kind() {
        ValueKind::String => Ok(bytes::byte_len(v.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => Ok(v.len().unwrap_or(0)),
        ValueKind::Bytes => Ok(v.as_bytes().map(<[u8]>::len).unwrap_or(0)),
        _ if is_nil(v) => Err(fail("error calling len: len of nil pointer")),
        k => Err(fail(format!("error calling len: len of type {k}"))),
    }
}

fn index_one(cur: &Value, k: &Value) -> Result<Value, Error> {
    match cur.kind() {
        ValueKind::Map => {
            let key = to_str(k);
            Ok(map_entries(cur)
                .and_then(|m| m.into_iter().find(|(mk, _)| *mk == key).map(|(_, v)| v))
                // Go returns the element type's zero value for a missing key.
                .unwrap_or_else(|| if crate::render::is_data_map(cur) { Value::from("") } else { Value::from(()) }))
        }
        ValueKind::Seq | ValueKind::Iterable | ValueKind::String => {
            let i = crate::value::as_int(k).map_err(|_| fail("error calling index: cannot index slice/array with non-integer"))?;
            if let Some(s) = cur.as_str() {
                let b = bytes::decode(s);
                return usize::try_from(i)
                    .ok()
                    .and_then(|i| b.get(i))
                    .map(|x| Value::from(i64::from(*x)))
                    .ok_or_else(|| fail(format!("error calling index: index out of range: {i}")));
            }
            let items = list_items(cur).unwrap_or_default();
            usize::try_from(i)
                .ok()
                .and_then(|i| items.get(i).cloned())
                .ok_or_else(|| fail(format!("error calling index: index out of range: {i}")))
        }
        _ if is_nil(cur) => Err(fail("error calling index: index of untyped nil")),
        kind => Err(fail(format!("error calling index: can't index item of type {kind}"))),
    }
}

fn go_print_arg(v: &Value) -> String {
    go_print(v)
}

/// fmt.Sprint: spaces between operands when neither side is a string.
pub fn sprint(a: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        let is_str = v.kind() == ValueKind::String;
        if i > 0 && !is_str && a[i - 1].kind() != ValueKind::String {
            out.push(' ');
        }
        out.push_str(&go_print(v));
    }
    out
}

/// A subset of fmt.Sprintf: verbs v s d q x X f e g t c %, flags `-+0 #`,
/// width and precision. Mismatches print Go's `%!verb(...)` markers.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut ai = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+0 #".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(ai) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        ai += 1;
        let body = format_verb(verb, arg, prec, &flags);
        let w: usize = width.parse().unwrap_or(0);
        let n = body.chars().count();
        if n < w {
            let pad = w - n;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(verb, 'd' | 'f' | 'x' | 'X' | 'e' | 'g') {
                let (sign, digits) = if body.starts_with('-') || body.starts_with('+') { body.split_at(1) } else { ("", body.as_str()) };
                out.push_str(sign);
                out.push_str(&"0".repeat(pad));
                out.push_str(digits);
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if ai < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[ai..].iter().map(|a| format!("{}={}", go_type(a), go_print(a))).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn go_type(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::String => "string",
        ValueKind::Bool => "bool",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float64",
        ValueKind::Map => "map[string]interface {}",
        ValueKind::Seq => "[]interface {}",
        _ => "<nil>",
    }
}

fn format_verb(verb: char, v: &Value, prec: Option<usize>, flags: &str) -> String {
    let bad = || format!("%!{verb}({}={})", go_type(v), go_print(v));
    let plus = flags.contains('+');
    match verb {
        'v' => go_print(v),
        's' => match v.kind() {
            ValueKind::Number | ValueKind::Bool => bad(),
            _ => {
                let s = go_print(v);
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
        },
        'q' => match v.kind() {
            ValueKind::String => go_quote(v.as_str().unwrap_or_default()),
            _ => bad(),
        },
        't' => match v.kind() {
            ValueKind::Bool => go_print(v),
            _ => bad(),
        },
        'd' => match v.as_i64() {
            Some(i) if plus && i >= 0 => format!("+{i}"),
            Some(i) => i.to_string(),
            None => bad(),
        },
        'c' => match v.as_i64().and_then(|i| u32::try_from(i).ok()).and_then(char::from_u32) {
            Some(c) => c.to_string(),
            None => bad(),
        },
        'x' | 'X' => {
            let s = if let Some(i) = v.as_i64() {
                if i < 0 { format!("-{:x}", i.unsigned_abs()) } else { format!("{i:x}") }
            } else if let Some(s) = v.as_str() {
                hex::encode(bytes::decode(s))
            } else {
                return bad();
            };
            if verb == 'X' { s.to_uppercase() } else { s }
        }
        'f' | 'F' | 'e' | 'g' => {
            let Some(f) = as_f64(v) else { return bad() };
            if v.is_integer() {
                return bad();
            }
            let s = match verb {
                'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), f),
                'e' => {
                    let s = format!("{:.*e}", prec.unwrap_or(6), f);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                _ => crate::value::go_float(f),
            };
            if plus && f >= 0.0 { format!("+{s}") } else { s }
        }
        _ => bad(),
    }
}
