//! Function pack configuration.
//!
//! String form (CLI flag `--template-functions`, engine config): a comma
//! separated list applied left to right, later entries winning:
//!
//! - `+PACK` / `-PACK`: enable / disable a whole pack (`builtin`, `sprig`, `eso`,
//!   or an external pack name); resets that pack's per-function entries;
//! - `+PACK.FN` / `-PACK.FN`: enable / disable one function;
//! - `NAME=PACK.FN`: make `NAME` call `FN` of `PACK` (override or alias).
//!
//! Example: `-sprig.now,-sprig.randAlphaNum,b64dec=sprig.b64dec`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::TemplateError;
use crate::funcs::{FunctionDef, NOT_IMPLEMENTED, REMOVED};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Directive {
    EnablePack(String),
    DisablePack(String),
    Enable { pack: String, function: String },
    Disable { pack: String, function: String },
    Bind { name: String, pack: String, function: String },
}

/// Which functions templates may call. Default: every pack enabled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub directives: Vec<Directive>,
}

fn ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !s.starts_with("__")
}

fn pack_fn(s: &str) -> Result<(String, Option<String>), String> {
    let (p, f) = match s.split_once('.') {
        Some((p, f)) => (p, Some(f)),
        None => (s, None),
    };
    if !ident(p) || f.is_some_and(|f| !ident(f)) {
        return Err(format!("bad entry {s:?}: expected PACK or PACK.FUNCTION"));
    }
    Ok((p.to_owned(), f.map(str::to_owned)))
}

impl FromStr for FunctionConfig {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut directives = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let d = if let Some((name, target)) = raw.split_once('=') {
                let (pack, f) = pack_fn(target.trim()).map_err(TemplateError::Config)?;
                let name = name.trim();
                let Some(function) = f.filter(|_| ident(name)) else {
                    return Err(TemplateError::Config(format!("bad binding {raw:?}: expected NAME=PACK.FUNCTION")));
                };
                Directive::Bind { name: name.to_owned(), pack, function }
            } else if let Some(rest) = raw.strip_prefix('-') {
                match pack_fn(rest).map_err(TemplateError::Config)? {
                    (pack, None) => Directive::DisablePack(pack),
                    (pack, Some(function)) => Directive::Disable { pack, function },
                }
            } else {
                match pack_fn(raw.strip_prefix('+').unwrap_or(raw)).map_err(TemplateError::Config)? {
                    (pack, None) => Directive::EnablePack(pack),
                    (pack, Some(function)) => Directive::Enable { pack, function },
                }
            };
            directives.push(d);
        }
        Ok(FunctionConfig { directives })
    }
}

impl fmt::Display for FunctionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .directives
            .iter()
            .map(|d| match d {
                Directive::EnablePack(p) => format!("+{p}"),
                Directive::DisablePack(p) => format!("-{p}"),
                Directive::Enable { pack, function } => format!("+{pack}.{function}"),
                Directive::Disable { pack, function } => format!("-{pack}.{function}"),
                Directive::Bind { name, pack, function } => format!("{name}={pack}.{function}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The resolved function table: template-visible name → function, plus the
/// reason for every known name that is not callable.
pub struct Table {
    pub functions: BTreeMap<String, FunctionDef>,
    pub unavailable: BTreeMap<String, String>,
}

impl Table {
    /// `Ok` if `name` may be called; otherwise the user-facing error.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.functions.contains_key(name) {
            return Ok(());
        }
        Err(match self.unavailable.get(name) {
            Some(why) => format!("function {name:?} is not available ({why})"),
            None => format!("function {name:?} not defined"),
        })
    }
}

/// Resolves `config` over `packs` (template-visible name, definition), in order.
pub fn resolve(config: &FunctionConfig, packs: &[(String, Vec<(String, FunctionDef)>)]) -> Result<Table, TemplateError> {
    let known: BTreeSet<&str> = packs.iter().map(|(p, _)| p.as_str()).collect();
    let check_pack = |p: &str| -> Result<(), TemplateError> {
        if known.contains(p) { Ok(()) } else { Err(TemplateError::Config(format!("unknown function pack {p:?} (known: {})", known.iter().copied().collect::<Vec<_>>().join(", ")))) }
    };
    let find = |pack: &str, function: &str| -> Result<(String, FunctionDef), TemplateError> {
        check_pack(pack)?;
        packs
            .iter()
            .find(|(p, _)| p == pack)
            .and_then(|(_, fs)| fs.iter().find(|(n, d)| *n == function || d.name == function))
            .cloned()
            .ok_or_else(|| TemplateError::Config(format!("pack {pack:?} has no function {function:?}")))
    };
    let mut pack_on: BTreeMap<String, bool> = packs.iter().map(|(p, _)| (p.clone(), true)).collect();
    let mut fn_on: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut binds: Vec<(String, String, String)> = Vec::new();
    for d in &config.directives {
        match d {
            Directive::EnablePack(p) | Directive::DisablePack(p) => {
                check_pack(p)?;
                pack_on.insert(p.clone(), matches!(d, Directive::EnablePack(_)));
                fn_on.retain(|(fp, _), _| fp != p);
            }
            Directive::Enable { pack, function } | Directive::Disable { pack, function } => {
                let (visible, _) = find(pack, function)?;
                fn_on.insert((pack.clone(), visible), matches!(d, Directive::Enable { .. }));
            }
            Directive::Bind { name, pack, function } => {
                find(pack, function)?;
                binds.push((name.clone(), pack.clone(), function.clone()));
            }
        }
    }
    let mut functions = BTreeMap::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    for (name, why) in REMOVED {
        unavailable.insert((*name).to_owned(), (*why).to_owned());
    }
    for name in NOT_IMPLEMENTED {
        unavailable.insert((*name).to_owned(), "not implemented by lockstep".to_owned());
    }
    for (pack, fs) in packs {
        let on = pack_on.get(pack).copied().unwrap_or(true);
        for (visible, def) in fs {
            match fn_on.get(&(pack.clone(), visible.clone())) {
                Some(true) => {
                    functions.insert(visible.clone(), def.clone());
                }
                Some(false) => {
                    unavailable.insert(visible.clone(), format!("disabled by configuration: -{pack}.{visible}"));
                }
                None if on => {
                    functions.insert(visible.clone(), def.clone());
                }
                None => {
                    if !functions.contains_key(visible) {
                        unavailable.insert(visible.clone(), format!("pack {pack:?} is disabled"));
                    }
                }
            }
        }
    }
    for (name, pack, function) in binds {
        let (_, def) = find(&pack, &function)?;
        functions.insert(name, def);
    }
    for name in functions.keys() {
        unavailable.remove(name);
    }
    Ok(Table { functions, unavailable })
}
