//! The sprig functions ESO users rely on (Masterminds/sprig v3 semantics),
//! minus anything that reads the environment, files or the network.
//! `b64dec`, `b32dec` and `fromJson` are strict: bad input is an error, where
//! sprig returns the error text or nil as the value.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use minijinja::value::{Value, ValueKind};
use minijinja::Error;
use rand::Rng;
use regex::Regex;
use sha2::Digest;

use super::{def, want, want_at_least, FnLimits, FunctionDef};
use crate::bytes;
use crate::value::{
    as_f64, as_int, fail, from_bytes, from_json_value, go_print, go_quote, is_empty, is_nil, list_items,
    map_entries, to_bytes, to_json, to_str, GoMap,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn s(v: &Value) -> String {
    to_str(v)
}
fn ok_s(x: impl Into<String>) -> Result<Value, Error> {
    Ok(Value::from(x.into()))
}

fn guard(limits: FnLimits, name: &str, n: usize) -> Result<(), Error> {
    if n > limits.max_output_bytes {
        return Err(fail(format!("error calling {name}: result of {n} bytes exceeds the output limit of {} bytes", limits.max_output_bytes)));
    }
    Ok(())
}

fn list_of(name: &str, v: &Value) -> Result<Vec<Value>, Error> {
    if is_nil(v) {
        return Ok(Vec::new());
    }
    list_items(v).ok_or_else(|| fail(format!("error calling {name}: cannot find {name} on type {}", v.kind())))
}

fn dict_of(name: &str, v: &Value) -> Result<BTreeMap<String, Value>, Error> {
    map_entries(v)
        .map(|e| e.into_iter().collect())
        .ok_or_else(|| fail(format!("error calling {name}: argument is not a dict")))
}

fn regex(name: &str, pat: &Value) -> Result<Regex, Error> {
    Regex::new(&s(pat)).map_err(|e| fail(format!("error calling {name}: {e}")))
}

fn num_op(a: &[Value], name: &str, op: impl Fn(i64, i64) -> Option<i64>) -> Result<Value, Error> {
    want_at_least(name, a, 1)?;
    let mut acc = as_int(&a[0])?;
    for v in &a[1..] {
        acc = op(acc, as_int(v)?).ok_or_else(|| fail(format!("error calling {name}: integer overflow or division by zero")))?;
    }
    Ok(Value::from(acc))
}

fn hash<D: Digest>(v: &Value) -> Value {
    Value::from(hex::encode(D::digest(to_bytes(v))))
}

fn rand_string(n: &Value, alphabet: &[u8]) -> Result<Value, Error> {
    let n = usize::try_from(as_int(n)?).map_err(|_| fail("negative length"))?;
    if n > 1 << 20 {
        return Err(fail("random string too long"));
    }
    let mut rng = rand::thread_rng();
    Ok(Value::from((0..n).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect::<String>()))
}

pub fn functions(limits: FnLimits) -> Vec<FunctionDef> {
    let p = "sprig";
    let mut v = vec![
        // encoding
        def(p, "b64enc", false, "standard base64 of the bytes", |a| {
            want("b64enc", a, 1)?;
            ok_s(B64.encode(to_bytes(&a[0])))
        }),
        def(p, "b64dec", false, "decode standard base64 to bytes (strict: bad input is an error)", |a| {
            want("b64dec", a, 1)?;
            B64.decode(to_bytes(&a[0]))
                .map(|b| from_bytes(&b))
                .map_err(|e| fail(format!("error calling b64dec: illegal base64 data: {e}")))
        }),
        def(p, "b32enc", false, "standard base32", |a| {
            want("b32enc", a, 1)?;
            ok_s(data_encoding::BASE32.encode(&to_bytes(&a[0])))
        }),
        def(p, "b32dec", false, "decode standard base32 (strict)", |a| {
            want("b32dec", a, 1)?;
            data_encoding::BASE32
                .decode(&to_bytes(&a[0]))
                .map(|b| from_bytes(&b))
                .map_err(|e| fail(format!("error calling b32dec: illegal base32 data: {e}")))
        }),
        def(p, "sha1sum", false, "hex SHA-1", |a| {
            want("sha1sum", a, 1)?;
            Ok(hash::<sha1::Sha1>(&a[0]))
        }),
        def(p, "sha256sum", false, "hex SHA-256", |a| {
            want("sha256sum", a, 1)?;
            Ok(hash::<sha2::Sha256>(&a[0]))
        }),
        def(p, "sha512sum", false, "hex SHA-512", |a| {
            want("sha512sum", a, 1)?;
            Ok(hash::<sha2::Sha512>(&a[0]))
        }),
        def(p, "adler32sum", false, "decimal Adler-32", |a| {
            want("adler32sum", a, 1)?;
            let mut h = adler::Adler32::new();
            h.write_slice(&to_bytes(&a[0]));
            ok_s(h.checksum().to_string())
        }),
        // strings
        def(p, "upper", false, "upper case", |a| { want("upper", a, 1)?; ok_s(s(&a[0]).to_uppercase()) }),
        def(p, "lower", false, "lower case", |a| { want("lower", a, 1)?; ok_s(s(&a[0]).to_lowercase()) }),
        def(p, "title", false, "title case words", |a| {
            want("title", a, 1)?;
            let mut prev_letter = false;
            ok_s(s(&a[0]).chars().map(|c| {
                let out = if !prev_letter { c.to_uppercase().next().unwrap_or(c) } else { c };
                prev_letter = !c.is_whitespace();
                out
            }).collect::<String>())
        }),
        def(p, "trim", false, "strip surrounding whitespace", |a| { want("trim", a, 1)?; ok_s(s(&a[0]).trim()) }),
        def(p, "trimAll", false, "trimAll cutset s", |a| {
            want("trimAll", a, 2)?;
            let cut: Vec<char> = s(&a[0]).chars().collect();
            ok_s(s(&a[1]).trim_matches(|c| cut.contains(&c)))
        }),
        def(p, "trimPrefix", false, "trimPrefix prefix s", |a| {
            want("trimPrefix", a, 2)?;
            let (pre, x) = (s(&a[0]), s(&a[1]));
            ok_s(x.strip_prefix(pre.as_str()).unwrap_or(&x))
        }),
        def(p, "trimSuffix", false, "trimSuffix suffix s", |a| {
            want("trimSuffix", a, 2)?;
            let (suf, x) = (s(&a[0]), s(&a[1]));
            ok_s(x.strip_suffix(suf.as_str()).unwrap_or(&x))
        }),
        def(p, "replace", false, "replace old new s", |a| {
            want("replace", a, 3)?;
            ok_s(s(&a[2]).replace(&s(&a[0]), &s(&a[1])))
        }),
        def(p, "contains", false, "contains substr s", |a| { want("contains", a, 2)?; Ok(Value::from(s(&a[1]).contains(&s(&a[0])))) }),
        def(p, "hasPrefix", false, "hasPrefix prefix s", |a| { want("hasPrefix", a, 2)?; Ok(Value::from(s(&a[1]).starts_with(&s(&a[0])))) }),
        def(p, "hasSuffix", false, "hasSuffix suffix s", |a| { want("hasSuffix", a, 2)?; Ok(Value::from(s(&a[1]).ends_with(&s(&a[0])))) }),
        def(p, "quote", false, "Go-quote each argument", |a| {
            ok_s(a.iter().filter(|v| !is_nil(v)).map(|v| go_quote(&s(v))).collect::<Vec<_>>().join(" "))
        }),
        def(p, "squote", false, "single-quote each argument", |a| {
            ok_s(a.iter().filter(|v| !is_nil(v)).map(|v| format!("'{}'", s(v))).collect::<Vec<_>>().join(" "))
        }),
        def(p, "cat", false, "join arguments with spaces", |a| {
            ok_s(a.iter().filter(|v| !is_nil(v)).map(s).collect::<Vec<_>>().join(" "))
        }),
        def(p, "nospace", false, "remove all whitespace", |a| { want("nospace", a, 1)?; ok_s(s(&a[0]).chars().filter(|c| !c.is_whitespace()).collect::<String>()) }),
        def(p, "indent", false, "indent n s", move |a| {
            want("indent", a, 2)?;
            indent(limits, "indent", &a[0], &a[1], false)
        }),
        def(p, "nindent", false, "newline then indent n s", move |a| {
            want("nindent", a, 2)?;
            indent(limits, "nindent", &a[0], &a[1], true)
        }),
        def(p, "repeat", false, "repeat count s", move |a| {
            want("repeat", a, 2)?;
            let n = usize::try_from(as_int(&a[0])?).map_err(|_| fail("error calling repeat: negative count"))?;
            let x = s(&a[1]);
            guard(limits, "repeat", n.saturating_mul(x.len()))?;
            ok_s(x.repeat(n))
        }),
        def(p, "substr", false, "substr start end s (bytes)", |a| {
            want("substr", a, 3)?;
            let b = to_bytes(&a[2]);
            let (st, en) = (as_int(&a[0])?, as_int(&a[1])?);
            let len = b.len() as i64;
            let (lo, hi) = if st < 0 { (0, en) } else if en < 0 || en > len { (st, len) } else { (st, en) };
            if lo < 0 || hi < lo || hi > len {
                return Err(fail(format!("error calling substr: slice bounds out of range [{lo}:{hi}]")));
            }
            Ok(from_bytes(&b[lo as usize..hi as usize]))
        }),
        def(p, "trunc", false, "trunc n s (bytes; negative keeps the tail)", |a| {
            want("trunc", a, 2)?;
            let b = to_bytes(&a[1]);
            let c = as_int(&a[0])?;
            let len = b.len() as i64;
            let out = if c < 0 && len + c > 0 { &b[(len + c) as usize..] } else if c >= 0 && len > c { &b[..c as usize] } else { &b[..] };
            Ok(from_bytes(out))
        }),
        def(p, "split", false, "split sep s → dict _0, _1, ...", |a| {
            want("split", a, 2)?;
            let parts = s(&a[1]).split(&s(&a[0])).map(str::to_owned).collect::<Vec<_>>();
            Ok(GoMap::new_value(parts.into_iter().enumerate().map(|(i, p)| (format!("_{i}"), Value::from(p))).collect()))
        }),
        def(p, "splitList", false, "splitList sep s → list", |a| {
            want("splitList", a, 2)?;
            Ok(Value::from(s(&a[1]).split(&s(&a[0])).map(Value::from).collect::<Vec<_>>()))
        }),
        def(p, "join", false, "join sep list", |a| {
            want("join", a, 2)?;
            let items = if a[1].kind() == ValueKind::String { vec![a[1].clone()] } else { list_of("join", &a[1])? };
            ok_s(items.iter().filter(|v| !is_nil(v)).map(s).collect::<Vec<_>>().join(&s(&a[0])))
        }),
        def(p, "toString", false, "format any value as a string", |a| { want("toString", a, 1)?; ok_s(s(&a[0])) }),
        def(p, "toStrings", false, "list of strings", |a| {
            want("toStrings", a, 1)?;
            Ok(Value::from(list_of("toStrings", &a[0])?.iter().map(|v| Value::from(s(v))).collect::<Vec<_>>()))
        }),
        def(p, "atoi", false, "string → int (0 on error, as sprig)", |a| {
            want("atoi", a, 1)?;
            Ok(Value::from(s(&a[0]).parse::<i64>().unwrap_or(0)))
        }),
        def(p, "int", false, "convert to int", |a| { want("int", a, 1)?; Ok(Value::from(as_int(&a[0]).unwrap_or(0))) }),
        def(p, "int64", false, "convert to int", |a| { want("int64", a, 1)?; Ok(Value::from(as_int(&a[0]).unwrap_or(0))) }),
        def(p, "float64", false, "convert to float", |a| {
            want("float64", a, 1)?;
            Ok(Value::from(as_f64(&a[0]).or_else(|| s(&a[0]).trim().parse().ok()).unwrap_or(0.0)))
        }),
        // math
        def(p, "add", false, "sum", |a| num_op(a, "add", i64::checked_add)),
        def(p, "add1", false, "x + 1", |a| { want("add1", a, 1)?; Ok(Value::from(as_int(&a[0])?.saturating_add(1))) }),
        def(p, "sub", false, "a - b", |a| { want("sub", a, 2)?; num_op(a, "sub", i64::checked_sub) }),
        def(p, "mul", false, "product", |a| num_op(a, "mul", i64::checked_mul)),
        def(p, "div", false, "a / b", |a| { want("div", a, 2)?; num_op(a, "div", i64::checked_div) }),
        def(p, "mod", false, "a % b", |a| { want("mod", a, 2)?; num_op(a, "mod", i64::checked_rem) }),
        def(p, "max", false, "largest", |a| num_op(a, "max", |x, y| Some(x.max(y)))),
        def(p, "min", false, "smallest", |a| num_op(a, "min", |x, y| Some(x.min(y)))),
        def(p, "until", false, "list 0..n", move |a| {
            want("until", a, 1)?;
            let n = as_int(&a[0])?;
            guard(limits, "until", usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX))?;
            let items: Vec<Value> = if n >= 0 { (0..n).map(Value::from).collect() } else { (n + 1..=0).rev().map(Value::from).collect() };
            Ok(Value::from(items))
        }),
        // defaults and flow
        def(p, "default", false, "default d given: d when given is empty", |a| {
            want_at_least("default", a, 1)?;
            Ok(match a.get(1) { Some(g) if !is_empty(g) => g.clone(), _ => a[0].clone() })
        }),
        def(p, "empty", false, "true when the value is empty", |a| { want("empty", a, 1)?; Ok(Value::from(is_empty(&a[0]))) }),
        def(p, "coalesce", false, "first non-empty argument", |a| Ok(a.iter().find(|v| !is_empty(v)).cloned().unwrap_or(Value::from(())))),
        def(p, "ternary", false, "ternary vtrue vfalse cond", |a| {
            want("ternary", a, 3)?;
            Ok(if a[2].is_true() { a[0].clone() } else { a[1].clone() })
        }),
        def(p, "fail", false, "fail with a message", |a| { want("fail", a, 1)?; Err(fail(format!("error calling fail: {}", s(&a[0])))) }),
        // lists
        def(p, "list", false, "make a list", |a| Ok(Value::from(a.to_vec()))),
        def(p, "first", false, "first element", |a| { want("first", a, 1)?; Ok(list_of("first", &a[0])?.first().cloned().unwrap_or(Value::from(()))) }),
        def(p, "last", false, "last element", |a| { want("last", a, 1)?; Ok(list_of("last", &a[0])?.last().cloned().unwrap_or(Value::from(()))) }),
        def(p, "rest", false, "all but the first", |a| { want("rest", a, 1)?; Ok(Value::from(list_of("rest", &a[0])?.into_iter().skip(1).collect::<Vec<_>>())) }),
        def(p, "initial", false, "all but the last", |a| {
            want("initial", a, 1)?;
            let mut l = list_of("initial", &a[0])?;
            l.pop();
            Ok(Value::from(l))
        }),
        def(p, "append", false, "append list v", |a| {
            want("append", a, 2)?;
            let mut l = list_of("append", &a[0])?;
            l.push(a[1].clone());
            Ok(Value::from(l))
        }),
        def(p, "prepend", false, "prepend list v", |a| {
            want("prepend", a, 2)?;
            let mut l = list_of("prepend", &a[0])?;
            l.insert(0, a[1].clone());
            Ok(Value::from(l))
        }),
        def(p, "concat", false, "concatenate lists", |a| {
            let mut out = Vec::new();
            for l in a {
                out.extend(list_of("concat", l)?);
            }
            Ok(Value::from(out))
        }),
        def(p, "reverse", false, "reverse a list", |a| {
            want("reverse", a, 1)?;
            let mut l = list_of("reverse", &a[0])?;
            l.reverse();
            Ok(Value::from(l))
        }),
        def(p, "uniq", false, "remove duplicates", |a| {
            want("uniq", a, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in list_of("uniq", &a[0])? {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            Ok(Value::from(out))
        }),
        def(p, "compact", false, "drop empty elements", |a| {
            want("compact", a, 1)?;
            Ok(Value::from(list_of("compact", &a[0])?.into_iter().filter(|v| !is_empty(v)).collect::<Vec<_>>()))
        }),
        def(p, "slice", false, "slice list start [end] (lists only, as sprig)", |a| {
            want_at_least("slice", a, 1)?;
            let Some(l) = list_items(&a[0]) else {
                return Err(fail(format!("error calling slice: list should be type of slice or array but {}", a[0].kind())));
            };
            let idx: Vec<i64> = a[1..].iter().map(as_int).collect::<Result<_, _>>()?;
            let lo = idx.first().copied().unwrap_or(0);
            let hi = idx.get(1).copied().unwrap_or(l.len() as i64);
            if lo < 0 || hi < lo || hi as usize > l.len() {
                return Err(fail(format!("error calling slice: index out of range [{lo}:{hi}]")));
            }
            Ok(Value::from(l[lo as usize..hi as usize].to_vec()))
        }),
        def(p, "has", false, "has needle list", |a| { want("has", a, 2)?; Ok(Value::from(list_of("has", &a[1])?.contains(&a[0]))) }),
        def(p, "without", false, "without list v...", |a| {
            want_at_least("without", a, 1)?;
            Ok(Value::from(list_of("without", &a[0])?.into_iter().filter(|v| !a[1..].contains(v)).collect::<Vec<_>>()))
        }),
        def(p, "sortAlpha", false, "sort as strings", |a| {
            want("sortAlpha", a, 1)?;
            let mut l: Vec<String> = list_of("sortAlpha", &a[0])?.iter().map(s).collect();
            l.sort_by_key(|x| bytes::decode(x));
            Ok(Value::from(l))
        }),
        // dicts
        def(p, "dict", false, "dict k1 v1 k2 v2 ...", |a| {
            let mut m = BTreeMap::new();
            for pair in a.chunks(2) {
                m.insert(s(&pair[0]), pair.get(1).cloned().unwrap_or(Value::from("")));
            }
            Ok(GoMap::new_value(m))
        }),
        def(p, "get", false, "get dict key (\"\" when missing)", |a| {
            want("get", a, 2)?;
            Ok(dict_of("get", &a[0])?.remove(&s(&a[1])).unwrap_or(Value::from("")))
        }),
        def(p, "set", false, "set dict key value (mutates a dict made by dict)", |a| {
            want("set", a, 3)?;
            if let Some(m) = a[0].downcast_object_ref::<GoMap>() {
                if let Ok(mut g) = m.0.lock() {
                    g.insert(s(&a[1]), a[2].clone());
                }
                return Ok(a[0].clone());
            }
            let mut m = dict_of("set", &a[0])?;
            m.insert(s(&a[1]), a[2].clone());
            Ok(GoMap::new_value(m))
        }),
        def(p, "unset", false, "unset dict key", |a| {
            want("unset", a, 2)?;
            if let Some(m) = a[0].downcast_object_ref::<GoMap>() {
                if let Ok(mut g) = m.0.lock() {
                    g.remove(&s(&a[1]));
                }
                return Ok(a[0].clone());
            }
            let mut m = dict_of("unset", &a[0])?;
            m.remove(&s(&a[1]));
            Ok(GoMap::new_value(m))
        }),
        def(p, "hasKey", false, "hasKey dict key", |a| { want("hasKey", a, 2)?; Ok(Value::from(dict_of("hasKey", &a[0])?.contains_key(&s(&a[1])))) }),
        def(p, "keys", false, "keys of dicts (sorted)", |a| {
            let mut out = Vec::new();
            for d in a {
                out.extend(dict_of("keys", d)?.into_keys().map(Value::from));
            }
            Ok(Value::from(out))
        }),
        def(p, "values", false, "values of a dict (in key order)", |a| {
            want("values", a, 1)?;
            Ok(Value::from(dict_of("values", &a[0])?.into_values().collect::<Vec<_>>()))
        }),
        def(p, "pick", false, "pick dict keys...", |a| {
            want_at_least("pick", a, 1)?;
            let keys: Vec<String> = a[1..].iter().map(s).collect();
            Ok(GoMap::new_value(dict_of("pick", &a[0])?.into_iter().filter(|(k, _)| keys.contains(k)).collect()))
        }),
        def(p, "omit", false, "omit dict keys...", |a| {
            want_at_least("omit", a, 1)?;
            let keys: Vec<String> = a[1..].iter().map(s).collect();
            Ok(GoMap::new_value(dict_of("omit", &a[0])?.into_iter().filter(|(k, _)| !keys.contains(k)).collect()))
        }),
        def(p, "pluck", false, "pluck key dicts...", |a| {
            want_at_least("pluck", a, 1)?;
            let k = s(&a[0]);
            let mut out = Vec::new();
            for d in &a[1..] {
                if let Some(v) = dict_of("pluck", d)?.remove(&k) {
                    out.push(v);
                }
            }
            Ok(Value::from(out))
        }),
        def(p, "merge", false, "merge dst src...: dst keys win", |a| merge(a, false)),
        def(p, "mergeOverwrite", false, "merge dst src...: later keys win", |a| merge(a, true)),
        // regex (RE2 syntax, Rust regex engine)
        def(p, "regexMatch", false, "regexMatch regex s", |a| { want("regexMatch", a, 2)?; Ok(Value::from(regex("regexMatch", &a[0])?.is_match(&s(&a[1])))) }),
        def(p, "regexFind", false, "first match", |a| {
            want("regexFind", a, 2)?;
            ok_s(regex("regexFind", &a[0])?.find(&s(&a[1])).map(|m| m.as_str().to_owned()).unwrap_or_default())
        }),
        def(p, "regexFindAll", false, "regexFindAll regex s n", |a| {
            want("regexFindAll", a, 3)?;
            let n = as_int(&a[2])?;
            let x = s(&a[1]);
            let re = regex("regexFindAll", &a[0])?;
            let it = re.find_iter(&x).map(|m| Value::from(m.as_str()));
            Ok(Value::from(if n < 0 { it.collect::<Vec<_>>() } else { it.take(n as usize).collect() }))
        }),
        def(p, "regexReplaceAll", false, "regexReplaceAll regex s repl ($1 expands)", |a| {
            want("regexReplaceAll", a, 3)?;
            ok_s(regex("regexReplaceAll", &a[0])?.replace_all(&s(&a[1]), s(&a[2]).as_str()).into_owned())
        }),
        def(p, "regexReplaceAllLiteral", false, "regexReplaceAllLiteral regex s repl", |a| {
            want("regexReplaceAllLiteral", a, 3)?;
            ok_s(regex("regexReplaceAllLiteral", &a[0])?.replace_all(&s(&a[1]), regex::NoExpand(&s(&a[2]))).into_owned())
        }),
        def(p, "regexSplit", false, "regexSplit regex s n", |a| {
            want("regexSplit", a, 3)?;
            let n = as_int(&a[2])?;
            let x = s(&a[1]);
            let re = regex("regexSplit", &a[0])?;
            let parts: Vec<Value> = if n < 0 { re.split(&x).map(Value::from).collect() } else { re.splitn(&x, n as usize).map(Value::from).collect() };
            Ok(Value::from(parts))
        }),
        // json
        def(p, "toJson", false, "JSON (Go encoding: sorted keys, <>& escaped)", |a| { want("toJson", a, 1)?; Ok(Value::from(to_json(&a[0], None, true)?)) }),
        def(p, "mustToJson", false, "JSON, error on failure", |a| { want("mustToJson", a, 1)?; Ok(Value::from(to_json(&a[0], None, true)?)) }),
        def(p, "toRawJson", false, "JSON without HTML escaping", |a| { want("toRawJson", a, 1)?; Ok(Value::from(to_json(&a[0], None, false)?)) }),
        def(p, "mustToRawJson", false, "JSON without HTML escaping, error on failure", |a| { want("mustToRawJson", a, 1)?; Ok(Value::from(to_json(&a[0], None, false)?)) }),
        def(p, "toPrettyJson", false, "indented JSON", |a| { want("toPrettyJson", a, 1)?; Ok(Value::from(to_json(&a[0], Some("  "), true)?)) }),
        def(p, "mustToPrettyJson", false, "indented JSON, error on failure", |a| { want("mustToPrettyJson", a, 1)?; Ok(Value::from(to_json(&a[0], Some("  "), true)?)) }),
        def(p, "fromJson", false, "parse JSON (strict: bad JSON is an error)", |a| { want("fromJson", a, 1)?; from_json("fromJson", &a[0]) }),
        def(p, "mustFromJson", false, "parse JSON, error on failure", |a| { want("mustFromJson", a, 1)?; from_json("mustFromJson", &a[0]) }),
        // volatile
        def(p, "now", true, "current time", |a| { want("now", a, 0)?; ok_s(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.f +0000 UTC").to_string()) }),
        def(p, "unixEpoch", false, "seconds since epoch of a time", |a| {
            want("unixEpoch", a, 1)?;
            ok_s(parse_time(&a[0])?.timestamp().to_string())
        }),
        def(p, "date", false, "date GO_LAYOUT time (now is volatile, date is not)", |a| {
            want("date", a, 2)?;
            ok_s(go_date(&s(&a[0]), &parse_time(&a[1])?))
        }),
        def(p, "randAlphaNum", true, "random letters and digits", |a| { want("randAlphaNum", a, 1)?; rand_string(&a[0], b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") }),
        def(p, "randAlpha", true, "random letters", |a| { want("randAlpha", a, 1)?; rand_string(&a[0], b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") }),
        def(p, "randNumeric", true, "random digits", |a| { want("randNumeric", a, 1)?; rand_string(&a[0], b"0123456789") }),
        def(p, "randAscii", true, "random printable ASCII", |a| {
            want("randAscii", a, 1)?;
            let alphabet: Vec<u8> = (b' '..=b'~').collect();
            rand_string(&a[0], &alphabet)
        }),
        def(p, "uuidv4", true, "random UUID v4", |a| { want("uuidv4", a, 0)?; ok_s(uuid::Uuid::new_v4().to_string()) }),
    ];
    // Aliases sprig ships under a second name.
    let aliases = [("push", "append"), ("mustAppend", "append"), ("mustPrepend", "prepend"), ("mustFirst", "first"), ("mustLast", "last"), ("mustRest", "rest"), ("mustUniq", "uniq"), ("mustReverse", "reverse"), ("mustCompact", "compact"), ("mustHas", "has"), ("mustWithout", "without"), ("mustMerge", "merge"), ("mustMergeOverwrite", "mergeOverwrite"), ("mustRegexMatch", "regexMatch"), ("mustRegexFind", "regexFind"), ("mustRegexFindAll", "regexFindAll"), ("mustRegexReplaceAll", "regexReplaceAll"), ("mustRegexReplaceAllLiteral", "regexReplaceAllLiteral"), ("mustRegexSplit", "regexSplit"), ("mustInitial", "initial")];
    for (alias, target) in aliases {
        if let Some(t) = v.iter().find(|f| f.name == target).cloned() {
            v.push(FunctionDef { name: alias.to_owned(), imp: Arc::clone(&t.imp), ..t });
        }
    }
    v
}

fn from_json(name: &str, v: &Value) -> Result<Value, Error> {
    let b = to_bytes(v);
    serde_json::from_slice::<serde_json::Value>(&b)
        .map(|j| from_json_value(&j))
        .map_err(|e| fail(format!("error calling {name}: invalid JSON: {e}")))
}

fn indent(limits: FnLimits, name: &str, n: &Value, x: &Value, newline: bool) -> Result<Value, Error> {
    let n = usize::try_from(as_int(n)?).map_err(|_| fail(format!("error calling {name}: negative indent")))?;
    let x = s(x);
    let lines = x.matches('\n').count() + 1;
    guard(limits, name, x.len().saturating_add(n.saturating_mul(lines)))?;
    let pad = " ".repeat(n);
    let body = format!("{pad}{}", x.replace('\n', &format!("\n{pad}")));
    ok_s(if newline { format!("\n{body}") } else { body })
}

fn merge(a: &[Value], overwrite: bool) -> Result<Value, Error> {
    want_at_least("merge", a, 1)?;
    let mut dst = dict_of("merge", &a[0])?;
    for src in &a[1..] {
        for (k, v) in dict_of("merge", src)? {
            let keep = !overwrite && dst.get(&k).is_some_and(|d| !is_empty(d));
            if !keep {
                dst.insert(k, v);
            }
        }
    }
    if let Some(m) = a[0].downcast_object_ref::<GoMap>() {
        if let Ok(mut g) = m.0.lock() {
            *g = dst;
        }
        return Ok(a[0].clone());
    }
    Ok(GoMap::new_value(dst))
}

fn parse_time(v: &Value) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    if let Some(i) = v.as_i64() {
        return chrono::DateTime::from_timestamp(i, 0).ok_or_else(|| fail("time out of range"));
    }
    let x = s(v);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&x) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let trimmed = x.trim_end_matches(" UTC");
    chrono::DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f %z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| fail(format!("cannot parse time {:?}", go_print(v))))
}

/// Formats with a Go reference layout ("2006-01-02T15:04:05Z07:00").
fn go_date(layout: &str, t: &chrono::DateTime<chrono::Utc>) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("2006", "%Y"), ("Z07:00", "Z"), ("-07:00", "+00:00"), ("-0700", "+0000"), ("January", "%B"), ("Monday", "%A"),
        ("Jan", "%b"), ("Mon", "%a"), ("MST", "UTC"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("03", "%I"),
        ("04", "%M"), ("05", "%S"), ("06", "%y"), (".000000000", "%.9f"), (".000000", "%.6f"), (".000", "%.3f"),
        ("PM", "%p"), ("_2", "%e"), ("1", "%-m"), ("2", "%-d"), ("3", "%-I"), ("4", "%-M"), ("5", "%-S"),
    ];
    let mut fmt = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (go, ch) in TOKENS {
            if let Some(r) = rest.strip_prefix(go) {
                fmt.push_str(ch);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c == '%' {
            fmt.push_str("%%");
        } else {
            fmt.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    t.format(&fmt).to_string()
}
