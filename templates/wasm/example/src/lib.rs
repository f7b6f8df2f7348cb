//! Example template functions, callable as `<prefix>semverCompare` etc.:
//! - `semverCompare constraint version` → bool (`>=1.2.0`, `<2`, `=1.2.3`, `^1.2`, `~1.2`, comma = and)
//! - `slugify text` → lower-case ASCII words joined by `-`
//! - `jsonPath path json` → the value at a dotted path (`a.b.0.c`) of a JSON document

wit_bindgen::generate!({
    path: "../../../wit/template-functions",
    world: "template-functions",
});

use exports::lockstep::template_functions::functions::{FunctionInfo, Guest};
use serde_json::Value;

struct Component;

fn info(name: &str, description: &str) -> FunctionInfo {
    FunctionInfo { name: name.into(), description: description.into(), volatile: false }
}

fn arg_str(args: &[Value], i: usize, f: &str) -> Result<String, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(format!("{f}: argument {} must be a string", i + 1)),
        None => Err(format!("{f}: wrong number of arguments")),
    }
}

fn parse_version(s: &str) -> Option<[u64; 3]> {
    let core = s.trim().trim_start_matches('v').split(['-', '+']).next()?;
    let mut out = [0u64; 3];
    for (i, part) in core.split('.').enumerate() {
        if i > 2 {
            return None;
        }
        out[i] = part.parse().ok()?;
    }
    Some(out)
}

fn satisfies(constraint: &str, v: [u64; 3]) -> Result<bool, String> {
    for c in constraint.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let (op, rest) = [">=", "<=", "!=", ">", "<", "=", "^", "~"]
            .iter()
            .find_map(|op| c.strip_prefix(op).map(|r| (*op, r)))
            .unwrap_or(("=", c));
        let parts = rest.trim().trim_start_matches('v').split('.').count();
        let want = parse_version(rest).ok_or("semverCompare: invalid constraint")?;
        let ok = match op {
            ">=" => v >= want,
            "<=" => v <= want,
            ">" => v > want,
            "<" => v < want,
            "!=" => v != want,
            "^" => v >= want && (if want[0] > 0 { v[0] == want[0] } else { v[1] == want[1] }),
            "~" => v >= want && v[0] == want[0] && (parts < 2 || v[1] == want[1]),
            _ => v == want,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn json_path(path: &str, doc: &str) -> Result<Value, String> {
    let mut cur: Value = serde_json::from_str(doc).map_err(|_| "jsonPath: document is not JSON".to_owned())?;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(mut m) => m.remove(seg).ok_or_else(|| format!("jsonPath: no key {seg:?}"))?,
            Value::Array(mut a) => {
                let i: usize = seg.parse().map_err(|_| format!("jsonPath: {seg:?} is not an index"))?;
                if i >= a.len() {
                    return Err(format!("jsonPath: index {i} out of range"));
                }
                a.swap_remove(i)
            }
            _ => return Err(format!("jsonPath: cannot descend into a scalar at {seg:?}")),
        };
    }
    Ok(cur)
}

impl Guest for Component {
    fn list_functions() -> Vec<FunctionInfo> {
        vec![
            info("semverCompare", "semverCompare CONSTRAINT VERSION: true when VERSION satisfies CONSTRAINT"),
            info("slugify", "slugify TEXT: lower-case ASCII words joined by '-'"),
            info("jsonPath", "jsonPath PATH JSON: value at a dotted path (a.b.0.c)"),
        ]
    }

    fn call(name: String, args: Vec<String>) -> Result<String, String> {
        let args: Vec<Value> = args
            .iter()
            .map(|a| serde_json::from_str(a).map_err(|_| "arguments must be JSON".to_owned()))
            .collect::<Result<_, _>>()?;
        let result = match name.as_str() {
            "semverCompare" => {
                let v = parse_version(&arg_str(&args, 1, "semverCompare")?).ok_or("semverCompare: invalid version")?;
                Value::Bool(satisfies(&arg_str(&args, 0, "semverCompare")?, v)?)
            }
            "slugify" => Value::String(slugify(&arg_str(&args, 0, "slugify")?)),
            "jsonPath" => json_path(&arg_str(&args, 0, "jsonPath")?, &arg_str(&args, 1, "jsonPath")?)?,
            other => return Err(format!("unknown function {other:?}")),
        };
        Ok(result.to_string())
    }
}

export!(Component);
