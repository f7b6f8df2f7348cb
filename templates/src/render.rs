//! The renderer: one minijinja environment with every enabled function,
//! reused across renders (Send + Sync), and ESO's order of application.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use base64::Engine;
use minijinja::value::{Enumerator, Object, ObjectRepr, Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::bytes;
use crate::config::{resolve, FunctionConfig, Table};
use crate::error::TemplateError;
use crate::external::ExternalPack;
use crate::funcs::{builtin_packs, def, FnLimits, FunctionDef};
use crate::gotmpl::{self, compile};
use crate::spec::*;
use crate::value::{self as gv, fail};

/// Bounds on one template evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest rendered output of one template (Kubernetes caps a Secret at 1 MiB).
    pub max_output_bytes: usize,
    /// minijinja fuel (roughly: instructions) per template evaluation.
    pub fuel: u64,
    /// Largest accepted template source.
    pub max_template_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_output_bytes: 1 << 20, fuel: 2_000_000, max_template_bytes: 256 << 10 }
    }
}

/// Renderer configuration (engine flags / config file).
#[derive(Debug, Clone)]
pub struct RendererConfig {
    pub functions: FunctionConfig,
    pub limits: Limits,
    /// Go-template delimiters (ESO's `--template-left/right-delimiter`).
    pub left_delimiter: String,
    pub right_delimiter: String,
    pub external: Vec<ExternalPack>,
}

impl Default for RendererConfig {
    fn default() -> Self {
        RendererConfig {
            functions: FunctionConfig::default(),
            limits: Limits::default(),
            left_delimiter: "{{".into(),
            right_delimiter: "}}".into(),
            external: Vec::new(),
        }
    }
}

/// Description of a callable function (for `lockstep template --list-functions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionListing {
    pub name: String,
    pub pack: String,
    pub volatile: bool,
    pub description: String,
}

pub struct Renderer {
    env: Environment<'static>,
    table: Table,
    config: RendererConfig,
}

/// The template data map: Go's `map[string]string`; `index` of a missing key
/// gives "" (the element's zero value), field access errors.
#[derive(Debug)]
struct DataMap(BTreeMap<String, Value>);

impl Object for DataMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

pub(crate) fn is_data_map(v: &Value) -> bool {
    v.downcast_object_ref::<DataMap>().is_some()
}

fn field(strict: bool, args: &[Value]) -> Result<Value, minijinja::Error> {
    let mut cur = args.first().cloned().unwrap_or_default();
    for k in &args[1..] {
        let name = k.as_str().unwrap_or_default();
        cur = match cur.kind() {
            ValueKind::Map => match cur.get_item(k).ok().filter(|v| !v.is_undefined()) {
                Some(v) => v,
                None if strict => return Err(fail(format!("map has no entry for key {name:?}"))),
                None => Value::from(()),
            },
            _ if gv::is_nil(&cur) => return Err(fail(format!("nil pointer evaluating interface {{}}.{name}"))),
            kind => return Err(fail(format!("can't evaluate field {name} in type {kind}"))),
        };
    }
    Ok(cur)
}

fn range_items(v: &Value) -> Result<Value, minijinja::Error> {
    if let Some(entries) = gv::map_entries(v) {
        return Ok(Value::from(entries.into_iter().map(|(k, v)| Value::from(vec![Value::from(k), v])).collect::<Vec<_>>()));
    }
    if let Some(items) = gv::list_items(v) {
        return Ok(Value::from(
            items.into_iter().enumerate().map(|(i, v)| Value::from(vec![Value::from(i as i64), v])).collect::<Vec<_>>(),
        ));
    }
    if let Some(n) = v.as_i64() {
        if n > 10_000_000 {
            return Err(fail("range over too large an int"));
        }
        return Ok(Value::from((0..n.max(0)).map(|i| Value::from(vec![Value::from(i), Value::from(i)])).collect::<Vec<_>>()));
    }
    Err(fail(format!("range can't iterate over {}", gv::go_print(v))))
}

/// Output sink that stops the render past the size limit.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.buf.len() + b.len() > self.max {
            self.overflow = true;
            return Err(io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const JINJA_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "lipsum", "cycler", "joiner", "loop", "self"];

impl Renderer {
    pub fn new(config: RendererConfig) -> Result<Renderer, TemplateError> {
        let fl = FnLimits { max_output_bytes: config.limits.max_output_bytes };
        let mut packs: Vec<(String, Vec<(String, FunctionDef)>)> = builtin_packs(fl)
            .into_iter()
            .map(|(p, fs)| (p, fs.into_iter().map(|d| (d.name.clone(), d)).collect()))
            .collect();
        for ext in &config.external {
            if packs.iter().any(|(p, _)| *p == ext.pack) {
                return Err(TemplateError::Config(format!("duplicate function pack {:?}", ext.pack)));
            }
            let mut fs = Vec::new();
            for info in ext.functions.list() {
                let visible = format!("{}{}", ext.prefix, info.name);
                if !visible.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || visible.starts_with("__") || visible.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(TemplateError::Config(format!("external function name {visible:?} is not an identifier")));
                }
                let backend = Arc::clone(&ext.functions);
                let name = info.name.clone();
                let shown = visible.clone();
                let d = def(&ext.pack, &info.name, info.volatile, &info.description, move |args| {
                    let json = args.iter().map(gv::to_serde).collect();
                    backend
                        .call(&name, json)
                        .map(|j| gv::from_serde(&j))
                        .map_err(|e| fail(format!("error calling {shown}: {e}")))
                });
                fs.push((visible, d));
            }
            packs.push((ext.pack.clone(), fs));
        }
        let table = resolve(&config.functions, &packs)?;

        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_fuel(Some(config.limits.fuel));
        env.set_recursion_limit(100);
        for (name, d) in &table.functions {
            let (f1, f2) = (Arc::clone(&d.imp), Arc::clone(&d.imp));
            let fname = name.clone();
            env.add_function(name.clone(), move |args: Rest<Value>| f1(&args).map_err(|e| named(&fname, e)));
            let fname = name.clone();
            env.add_filter(name.clone(), move |v: Value, args: Rest<Value>| {
                let mut all: Vec<Value> = args.0;
                all.push(v);
                f2(&all).map_err(|e| named(&fname, e))
            });
        }
        // Known-but-unavailable names fail with the reason in both syntaxes.
        for (name, why) in &table.unavailable {
            let msg = format!("function {name:?} is not available ({why})");
            let m2 = msg.clone();
            env.add_function(name.clone(), move |_: Rest<Value>| -> Result<Value, minijinja::Error> { Err(fail(msg.clone())) });
            env.add_filter(name.clone(), move |_: Value, _: Rest<Value>| -> Result<Value, minijinja::Error> { Err(fail(m2.clone())) });
        }
        env.add_function("__ls_print", |v: Value| Value::from(gv::go_print_top(&v)));
        env.add_function("__ls_field", |args: Rest<Value>| field(true, &args));
        env.add_function("__ls_field_lax", |args: Rest<Value>| field(false, &args));
        env.add_function("__ls_range", |v: Value| range_items(&v));
        env.add_function("__ls_float", |s: String| Value::from(s.parse::<f64>().unwrap_or(0.0)));
        Ok(Renderer { env, table, config })
    }

    /// Every callable function, sorted by name.
    pub fn functions(&self) -> Vec<FunctionListing> {
        self.table
            .functions
            .iter()
            .map(|(n, d)| FunctionListing { name: n.clone(), pack: d.pack.clone(), volatile: d.volatile, description: d.description.clone() })
            .collect()
    }

    /// Compiles Go-template source to the minijinja source the engine runs
    /// (for `lockstep template --explain` and tests).
    pub fn compile_go(&self, src: &str, strict_missing_key: bool) -> Result<String, String> {
        let opts = gotmpl::compile::Options {
            left_delim: &self.config.left_delimiter,
            right_delim: &self.config.right_delimiter,
            strict_missing_key,
        };
        compile(src, &opts, &|n| self.table.check(n)).map_err(|e| e.to_string())
    }

    /// Renders one template string against `data`. Errors are
    /// (is_parse_error, message).
    pub fn render_str(&self, syntax: Syntax, src: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, (bool, String)> {
        let map: BTreeMap<String, Value> = data.iter().map(|(k, v)| (k.clone(), gv::from_bytes(v))).collect();
        self.render_value(syntax, src, map, true)
    }

    fn render_value(&self, syntax: Syntax, src: &str, map: BTreeMap<String, Value>, strict: bool) -> Result<Vec<u8>, (bool, String)> {
        if src.len() > self.config.limits.max_template_bytes {
            return Err((true, format!("template is larger than {} bytes", self.config.limits.max_template_bytes)));
        }
        let (source, ctx) = match syntax {
            Syntax::GoTemplate => {
                let jinja = self.compile_go(src, strict).map_err(|e| (true, e))?;
                let mut ctx = BTreeMap::new();
                ctx.insert("__ls_root".to_owned(), Value::from_object(DataMap(map)));
                (jinja, ctx)
            }
            Syntax::Jinja => {
                if let Some(off) = src.find(bytes::is_escape) {
                    return Err((true, format!("{}: characters U+10FF00..U+10FFFF are reserved for raw bytes", gotmpl::Pos::at(src, off))));
                }
                let mut ctx = map.clone();
                ctx.entry("data".to_owned()).or_insert_with(|| Value::from_object(DataMap(map)));
                (src.to_owned(), ctx)
            }
        };
        let tmpl = self.env.template_from_str(&source).map_err(|e| (true, describe(&e)))?;
        let mut out = Bounded { buf: Vec::new(), max: self.config.limits.max_output_bytes, overflow: false };
        match tmpl.render_captured_to(&ctx, &mut out) {
            Ok(_) => Ok(bytes::decode(&String::from_utf8_lossy(&out.buf))),
            Err(_) if out.overflow => Err((false, format!("rendered output exceeds the limit of {} bytes", self.config.limits.max_output_bytes))),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                Err((false, format!("evaluation exceeded its fuel limit ({}); the template does too much work", self.config.limits.fuel)))
            }
            Err(e) if e.kind() == ErrorKind::UndefinedError && syntax == Syntax::Jinja => {
                let mut missing: Vec<String> = tmpl
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| !ctx.contains_key(v) && !self.table.functions.contains_key(v) && !JINJA_GLOBALS.contains(&v.as_str()))
                    .collect();
                missing.sort();
                match missing.first() {
                    Some(k) => Err((false, format!("map has no entry for key {k:?}"))),
                    None => Err((false, describe(&e))),
                }
            }
            Err(e) => Err((false, describe(&e))),
        }
    }

    fn render_key(&self, syntax: Syntax, key: &str, src: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, TemplateError> {
        self.render_str(syntax, src, data).map_err(|(parse, message)| {
            if parse { TemplateError::Parse { key: key.to_owned(), message } } else { TemplateError::Execute { key: key.to_owned(), message } }
        })
    }

    /// ESO's rewrite `transform`: renders `template` with `.value` = `key`,
    /// default delimiters, missing keys not an error.
    pub fn transform_key(&self, template: &str, key: &str) -> Result<String, TemplateError> {
        let opts = gotmpl::compile::Options { left_delim: "{{", right_delim: "}}", strict_missing_key: false };
        let err = |parse: bool, message: String| {
            if parse { TemplateError::Parse { key: key.to_owned(), message } } else { TemplateError::Execute { key: key.to_owned(), message } }
        };
        let jinja = compile(template, &opts, &|n| self.table.check(n)).map_err(|e| err(true, e.to_string()))?;
        let mut map = BTreeMap::new();
        map.insert("value".to_owned(), Value::from(key));
        let mut ctx = BTreeMap::new();
        ctx.insert("__ls_root".to_owned(), Value::from_object(DataMap(map)));
        let tmpl = self.env.template_from_str(&jinja).map_err(|e| err(true, describe(&e)))?;
        let mut out = Bounded { buf: Vec::new(), max: self.config.limits.max_output_bytes, overflow: false };
        tmpl.render_captured_to(&ctx, &mut out).map_err(|e| err(false, describe(&e)))?;
        String::from_utf8(bytes::decode(&String::from_utf8_lossy(&out.buf))).map_err(|_| TemplateError::NotUtf8 { key: key.to_owned(), target: "key" })
    }

    /// Applies a template spec to the provider data, in ESO's order: provider
    /// data (Merge policy, or no data/templateFrom), each templateFrom item,
    /// template.data, labels, annotations; then the type.
    pub fn render(&self, spec: &TemplateSpec, data: &BTreeMap<String, Vec<u8>>) -> Result<RenderedSecret, TemplateError> {
        if !(spec.engine_version.is_empty() || spec.engine_version == "v2") {
            return Err(TemplateError::UnsupportedEngineVersion(spec.engine_version.clone()));
        }
        let mut out = RenderedSecret::default();
        if spec.merge_policy == MergePolicy::Merge || (spec.data.is_empty() && spec.template_from.is_empty()) {
            out.data = data.clone();
        }
        for tf in &spec.template_from {
            match &tf.source {
                TemplateSource::Literal(text) => {
                    self.apply(spec.syntax, text, text, TemplateScope::KeysAndValues, tf, data, &mut out)?;
                }
                TemplateSource::ConfigMap { name, data: cm, items } => {
                    for item in items {
                        let tpl = cm.get(&item.key).ok_or_else(|| TemplateError::MissingTemplateKey { kind: "configmap", name: name.clone(), key: item.key.clone() })?;
                        self.apply(spec.syntax, &item.key, tpl, item.template_as, tf, data, &mut out)?;
                    }
                }
                TemplateSource::Secret { name, data: sd, items } => {
                    for item in items {
                        let raw = sd.get(&item.key).ok_or_else(|| TemplateError::MissingTemplateKey { kind: "secret", name: name.clone(), key: item.key.clone() })?;
                        let tpl = std::str::from_utf8(raw).map_err(|_| TemplateError::TemplateNotUtf8 { kind: "secret", name: name.clone(), key: item.key.clone() })?;
                        self.apply(spec.syntax, &item.key, tpl, item.template_as, tf, data, &mut out)?;
                    }
                }
            }
        }
        for (k, tpl) in &spec.data {
            let v = self.render_key(spec.syntax, k, tpl, data)?;
            out.data.insert(k.clone(), v);
        }
        for (k, tpl) in &spec.metadata.labels {
            let v = self.render_key(spec.syntax, k, tpl, data)?;
            out.labels.insert(k.clone(), String::from_utf8(v).map_err(|_| TemplateError::NotUtf8 { key: k.clone(), target: "label" })?);
        }
        for (k, tpl) in &spec.metadata.annotations {
            let v = self.render_key(spec.syntax, k, tpl, data)?;
            out.annotations.insert(k.clone(), String::from_utf8(v).map_err(|_| TemplateError::NotUtf8 { key: k.clone(), target: "annotation" })?);
        }
        out.secret_type = spec.secret_type.clone().filter(|t| !t.is_empty());
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        syntax: Syntax,
        key: &str,
        tpl: &str,
        scope: TemplateScope,
        tf: &TemplateFrom,
        data: &BTreeMap<String, Vec<u8>>,
        out: &mut RenderedSecret,
    ) -> Result<(), TemplateError> {
        let rendered = self.render_key(syntax, key, tpl, data)?;
        let pairs: Vec<(String, Vec<u8>)> = match scope {
            TemplateScope::Values => vec![(key.to_owned(), rendered)],
            TemplateScope::KeysAndValues => parse_keys_and_values(&rendered)?,
        };
        for (k, v) in pairs {
            let v = decode_value(tf.values_decoding_strategy, &k, v)?;
            match tf.target {
                TemplateTarget::Data => {
                    out.data.insert(k, v);
                }
                TemplateTarget::Labels => {
                    let s = String::from_utf8(v).map_err(|_| TemplateError::NotUtf8 { key: k.clone(), target: "label" })?;
                    out.labels.insert(k, s);
                }
                TemplateTarget::Annotations => {
                    let s = String::from_utf8(v).map_err(|_| TemplateError::NotUtf8 { key: k.clone(), target: "annotation" })?;
                    out.annotations.insert(k, s);
                }
            }
        }
        Ok(())
    }
}

fn named(name: &str, e: minijinja::Error) -> minijinja::Error {
    let detail = e.detail().unwrap_or_default().to_owned();
    if detail.starts_with("error calling") || detail.starts_with("function ") || detail.starts_with("wrong number") || detail.starts_with("unable to") {
        return fail(detail);
    }
    fail(format!("error calling {name}: {detail}"))
}

/// A minijinja error as "line N: message" (Go-template lines are preserved).
fn describe(e: &minijinja::Error) -> String {
    let msg = match e.detail() {
        Some(d) => d.to_owned(),
        None => e.kind().to_string(),
    };
    match e.line() {
        Some(l) => format!("line {l}: {msg}"),
        None => msg,
    }
}

/// KeysAndValues scope: the output is a YAML mapping of string → string;
/// scalars are coerced to strings, nested values are an error.
fn parse_keys_and_values(rendered: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TemplateError> {
    let text = std::str::from_utf8(rendered).map_err(|_| TemplateError::KeysAndValues("output is not valid UTF-8".into()))?;
    let parsed: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        TemplateError::KeysAndValues(match e.location() {
            Some(l) => format!("invalid YAML at line {} column {}", l.line(), l.column()),
            None => "invalid YAML".into(),
        })
    })?;
    let map = match parsed {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(Vec::new()),
        _ => return Err(TemplateError::KeysAndValues("output is not a mapping".into())),
    };
    let scalar = |v: &serde_yaml::Value| -> Option<String> {
        match v {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            serde_yaml::Value::Null => Some(String::new()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for (k, v) in &map {
        let k = scalar(k).ok_or_else(|| TemplateError::KeysAndValues("a key is not a scalar".into()))?;
        let v = scalar(v).ok_or_else(|| TemplateError::KeysAndValues(format!("value of key {k} is not a string")))?;
        out.push((k, v.into_bytes()));
    }
    Ok(out)
}

fn decode_value(strategy: DecodingStrategy, key: &str, v: Vec<u8>) -> Result<Vec<u8>, TemplateError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let err = |m: &str| TemplateError::Decode { key: key.to_owned(), message: m.to_owned() };
    match strategy {
        DecodingStrategy::None => Ok(v),
        DecodingStrategy::Base64 => STANDARD.decode(&v).map_err(|_| err("illegal base64 data")),
        DecodingStrategy::Base64URL => URL_SAFE.decode(&v).map_err(|_| err("illegal base64url data")),
        DecodingStrategy::Auto => Ok(STANDARD.decode(&v).or_else(|_| URL_SAFE.decode(&v)).unwrap_or(v)),
    }
}

/// Shared renderer handle type for the engine.
pub type SharedRenderer = Arc<Renderer>;

// The engine shares one renderer across reconcilers.
const _: fn() = || {
    fn is<T: Send + Sync>() {}
    is::<Renderer>();
};
