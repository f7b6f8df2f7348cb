//! Function packs: named sets of template functions, enabled, disabled or
//! overridden function by function through [`crate::FunctionConfig`].

mod builtin;
mod eso;
mod sprig;

use std::sync::Arc;

use minijinja::value::Value;
use minijinja::Error;

use crate::value::fail;

/// A function's implementation: positional arguments in Go order (a piped
/// value is the last argument).
pub type FnImpl = Arc<dyn Fn(&[Value]) -> Result<Value, Error> + Send + Sync>;

/// One template function.
#[derive(Clone)]
pub struct FunctionDef {
    pub name: String,
    pub pack: String,
    /// Output changes on every call (time, randomness, random salts).
    pub volatile: bool,
    pub description: String,
    pub imp: FnImpl,
}

impl std::fmt::Debug for FunctionDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.pack, self.name)
    }
}

/// Limits the functions themselves honour (a single call must not allocate
/// more than the whole output may hold).
#[derive(Debug, Clone, Copy)]
pub struct FnLimits {
    pub max_output_bytes: usize,
}

pub(crate) fn def(
    pack: &str,
    name: &str,
    volatile: bool,
    description: &str,
    imp: impl Fn(&[Value]) -> Result<Value, Error> + Send + Sync + 'static,
) -> FunctionDef {
    FunctionDef {
        name: name.to_owned(),
        pack: pack.to_owned(),
        volatile,
        description: description.to_owned(),
        imp: Arc::new(imp),
    }
}

/// The packs compiled into the engine, in registration order.
pub fn builtin_packs(limits: FnLimits) -> Vec<(String, Vec<FunctionDef>)> {
    vec![
        ("builtin".to_owned(), builtin::functions(limits)),
        ("sprig".to_owned(), sprig::functions(limits)),
        ("eso".to_owned(), eso::functions(limits)),
    ]
}

/// sprig functions ESO removes, and why; calling one is always an error.
pub const REMOVED: &[(&str, &str)] = &[
    ("env", "removed: it would disclose the engine's environment"),
    ("expandenv", "removed: it would disclose the engine's environment"),
    ("getHostByName", "removed: it would reach the network"),
];

/// sprig functions Lockstep does not implement (listed so the error says so).
pub const NOT_IMPLEMENTED: &[&str] = &[
    "bcrypt", "htpasswd", "genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert",
    "genSelfSignedCertWithKey", "genSignedCert", "genSignedCertWithKey", "derivePassword",
    "encryptAES", "decryptAES", "buildCustomCert", "randBytes", "html", "js", "urlquery", "call",
];

pub(crate) fn want(name: &str, args: &[Value], n: usize) -> Result<(), Error> {
    if args.len() != n {
        return Err(fail(format!("wrong number of args for {name}: want {n} got {}", args.len())));
    }
    Ok(())
}

pub(crate) fn want_at_least(name: &str, args: &[Value], n: usize) -> Result<(), Error> {
    if args.len() < n {
        return Err(fail(format!("wrong number of args for {name}: want at least {n} got {}", args.len())));
    }
    Ok(())
}
