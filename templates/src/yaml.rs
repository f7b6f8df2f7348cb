//! YAML output in the style of Go's `sigs.k8s.io/yaml` (yaml.v2 emitter):
//! sorted keys, unindented sequences under mappings, literal blocks for
//! multi-line strings, quotes only when a plain scalar would change meaning.

use serde_json::Value as J;

pub fn to_yaml(v: &J) -> String {
    let mut out = String::new();
    match v {
        J::Object(m) if !m.is_empty() => map(&mut out, m, 0),
        J::Array(a) if !a.is_empty() => seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn map(out: &mut String, m: &serde_json::Map<String, J>, indent: usize) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in keys {
        let v = &m[k];
        pad(out, indent);
        out.push_str(&string(k, indent));
        out.push(':');
        match v {
            J::Object(o) if !o.is_empty() => {
                out.push('\n');
                map(out, o, indent + 2);
            }
            J::Array(a) if !a.is_empty() => {
                out.push('\n');
                seq(out, a, indent);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn seq(out: &mut String, a: &[J], indent: usize) {
    for v in a {
        pad(out, indent);
        out.push('-');
        match v {
            J::Object(o) if !o.is_empty() => {
                // first key on the dash line, the rest aligned under it
                let mut inner = String::new();
                map(&mut inner, o, indent + 2);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            J::Array(x) if !x.is_empty() => {
                let mut inner = String::new();
                seq(&mut inner, x, indent + 2);
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &J, indent: usize) -> String {
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
                Some(f) => crate::value::go_float(f),
                None => n.to_string(),
            },
        },
        J::String(s) => string(s, indent),
        J::Object(_) => "{}".into(),
        J::Array(_) => "[]".into(),
    }
}

/// Would this plain scalar resolve to something other than a string (YAML 1.1)?
fn resolves_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE", "y", "Y", "yes", "Yes",
        "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", ".inf", ".Inf", ".INF", "-.inf",
        "-.Inf", "-.INF", "+.inf", "+.Inf", "+.INF", ".nan", ".NaN", ".NAN", "<<",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let t = s.replace('_', "");
    let body = t.strip_prefix(['-', '+']).unwrap_or(&t);
    if body.is_empty() {
        return false;
    }
    if let Some(h) = body.strip_prefix("0x") {
        return !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit());
    }
    if let Some(b) = body.strip_prefix("0b") {
        return !b.is_empty() && b.chars().all(|c| c == '0' || c == '1');
    }
    if body.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    // floats: digits with one dot and optional exponent
    let re_float = body.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body.parse::<f64>().is_ok()
        && !body.contains(['i', 'I', 'n', 'N']);
    // base-60 (sexagesimal) ints/floats: 1:20
    let base60 = body.contains(':')
        && body.split(':').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.'));
    re_float || base60
}

fn plain_allowed(s: &str) -> bool {
    if s.is_empty() || s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "#,[]{}&*!|>'\"%@`".contains(first) {
        return false;
    }
    if matches!(first, '-' | '?' | ':') && (s.len() == 1 || s[1..].starts_with(' ')) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| c.is_control() && c != '\t') || s.contains('\t') {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    true
}

fn string(s: &str, indent: usize) -> String {
    if s.contains('\n') && !s.chars().any(|c| c.is_control() && c != '\n') && !s.contains(" \n") && !s.starts_with(' ') {
        let chomp = if s.ends_with("\n\n") || s == "\n" {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let body = s.strip_suffix('\n').unwrap_or(s);
        let ind = indent.max(2);
        let mut o = format!("|{chomp}");
        for line in body.split('\n') {
            o.push('\n');
            if !line.is_empty() {
                o.push_str(&" ".repeat(ind));
                o.push_str(line);
            }
        }
        return o;
    }
    if !resolves_non_string(s) && plain_allowed(s) {
        return s.to_owned();
    }
    if resolves_non_string(s) || s.chars().any(|c| c.is_control()) {
        let mut o = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => o.push_str("\\\""),
                '\\' => o.push_str("\\\\"),
                '\n' => o.push_str("\\n"),
                '\t' => o.push_str("\\t"),
                '\r' => o.push_str("\\r"),
                c if c.is_control() => o.push_str(&format!("\\x{:02X}", c as u32)),
                c => o.push(c),
            }
        }
        o.push('"');
        return o;
    }
    format!("'{}'", s.replace('\'', "''"))
}
