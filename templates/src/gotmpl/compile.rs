//! Go template AST → minijinja source.
//!
//! The output contains no raw text: literal text becomes `{{ "..." }}`, so
//! Jinja delimiters inside Go text are inert. Newlines are padded inside tags
//! so minijinja's line numbers are the Go source's lines. Go variables live in
//! one `namespace()` (assignment inside `range` must reach the outer
//! variable); every declaration site gets its own attribute, so Go's lexical
//! scoping is resolved here, at compile time.

use super::lex::Lexer;
use super::parse::{Cmd, Node, Operand, Parser, Pipe, Term};
use super::{Pos, SyntaxError};
use crate::bytes;

/// Options of one compilation.
pub struct Options<'a> {
    pub left_delim: &'a str,
    pub right_delim: &'a str,
    /// Go's `missingkey=error` (ESO templates) vs the default (rewrite transforms).
    pub strict_missing_key: bool,
}

/// Compiles Go template source to minijinja source. `lookup` says whether a
/// function name may be called (its `Err` is the user-facing reason).
pub fn compile(
    src: &str,
    opts: &Options<'_>,
    lookup: &dyn Fn(&str) -> Result<(), String>,
) -> Result<String, SyntaxError> {
    if let Some(off) = src.find(bytes::is_escape) {
        return Err(SyntaxError {
            pos: Pos::at(src, off),
            msg: "characters U+10FF00..U+10FFFF are reserved for raw bytes".into(),
        });
    }
    if opts.left_delim.is_empty() || opts.right_delim.is_empty() {
        return Err(SyntaxError { pos: Pos::default(), msg: "empty template delimiter".into() });
    }
    let toks = Lexer::new(src, opts.left_delim, opts.right_delim).run()?;
    let nodes = Parser::new(toks).parse()?;
    let mut c = Compiler {
        out: String::new(),
        line: 1,
        scopes: vec![vec![("$".to_owned(), "__ls_root".to_owned())]],
        next_id: 0,
        uses_ns: false,
        loop_depth: 0,
        lookup,
        field_fn: if opts.strict_missing_key { "__ls_field" } else { "__ls_field_lax" },
    };
    c.list(&nodes, "__ls_root")?;
    Ok(if c.uses_ns { format!("{{% set __ls_ns = namespace() %}}{}", c.out) } else { c.out })
}

struct Compiler<'a> {
    out: String,
    line: usize,
    scopes: Vec<Vec<(String, String)>>,
    next_id: usize,
    uses_ns: bool,
    loop_depth: usize,
    lookup: &'a dyn Fn(&str) -> Result<(), String>,
    field_fn: &'static str,
}

fn err<T>(pos: Pos, msg: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError { pos, msg: msg.into() })
}

/// A Jinja string literal standing for `s` (already byte-mapped).
pub fn str_lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Compiler<'_> {
    fn fresh(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}{}", self.next_id)
    }

    /// Opens a tag, padding newlines so the generated line matches `pos`.
    fn open(&mut self, delim: &str, pos: Pos) {
        self.out.push_str(delim);
        while self.line < pos.line {
            self.out.push('\n');
            self.line += 1;
        }
        self.out.push(' ');
    }

    fn stmt(&mut self, pos: Pos, body: &str) {
        self.open("{%", pos);
        self.out.push_str(body);
        self.out.push_str(" %}");
    }

    fn list(&mut self, nodes: &[Node], dot: &str) -> Result<(), SyntaxError> {
        self.scopes.push(Vec::new());
        for n in nodes {
            self.node(n, dot)?;
        }
        self.scopes.pop();
        Ok(())
    }

    fn var(&self, name: &str, pos: Pos) -> Result<String, SyntaxError> {
        for scope in self.scopes.iter().rev() {
            if let Some((_, r)) = scope.iter().rev().find(|(n, _)| n == name) {
                return Ok(r.clone());
            }
        }
        err(pos, format!("undefined variable {name:?}"))
    }

    fn declare(&mut self, name: &str, target: String) {
        if let Some(s) = self.scopes.last_mut() {
            s.push((name.to_owned(), target));
        }
    }

    /// Emits the declarations/assignments of `pipe` bound to `value`.
    fn bind(&mut self, pipe: &Pipe, value: &str) -> Result<(), SyntaxError> {
        let Some(name) = pipe.vars.first() else { return Ok(()) };
        let target = if pipe.assign {
            self.var(name, pipe.pos)?
        } else {
            self.uses_ns = true;
            let attr = format!("__ls_ns.{}", self.fresh("v"));
            self.declare(name, attr.clone());
            attr
        };
        self.stmt(pipe.pos, &format!("set {target} = {value}"));
        Ok(())
    }

    fn node(&mut self, node: &Node, dot: &str) -> Result<(), SyntaxError> {
        match node {
            Node::Text(t, pos) => {
                self.open("{{", *pos);
                self.out.push_str(&str_lit(t));
                self.out.push_str(" }}");
                self.line += t.matches('\n').count();
            }
            Node::Action(pipe) => {
                let e = self.pipe(pipe, dot)?;
                if pipe.vars.is_empty() {
                    self.open("{{", pipe.pos);
                    self.out.push_str(&format!("__ls_print({e}) }}}}"));
                } else {
                    self.bind(pipe, &e)?;
                }
            }
            Node::If { branches, otherwise } => self.conditional(branches, otherwise.as_deref(), dot, false)?,
            Node::With { branches, otherwise } => self.conditional(branches, otherwise.as_deref(), dot, true)?,
            Node::Range { pipe, body, otherwise } => {
                let e = self.pipe(pipe, dot)?;
                let k = self.fresh("__ls_k");
                let d = self.fresh("__ls_d");
                self.stmt(pipe.pos, &format!("for {k}, {d} in __ls_range({e})"));
                self.scopes.push(Vec::new());
                match (pipe.vars.as_slice(), pipe.assign) {
                    ([], _) => {}
                    ([e1], false) => self.declare(e1, d.clone()),
                    ([i, e1], false) => {
                        self.declare(i, k.clone());
                        self.declare(e1, d.clone());
                    }
                    (_, false) => return err(pipe.pos, "too many declarations in range"),
                    (vars, true) => {
                        let vals = if vars.len() == 1 { vec![&d] } else { vec![&k, &d] };
                        for (v, val) in vars.iter().zip(vals) {
                            let t = self.var(v, pipe.pos)?;
                            self.stmt(pipe.pos, &format!("set {t} = {val}"));
                        }
                    }
                }
                self.loop_depth += 1;
                self.list(body, &d)?;
                self.loop_depth -= 1;
                self.scopes.pop();
                if let Some(o) = otherwise {
                    self.stmt(pipe.pos, "else");
                    self.list(o, dot)?;
                }
                self.stmt(pipe.pos, "endfor");
            }
            Node::Break(pos) | Node::Continue(pos) => {
                let word = if matches!(node, Node::Break(_)) { "break" } else { "continue" };
                if self.loop_depth == 0 {
                    return err(*pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                self.stmt(*pos, word);
            }
        }
        Ok(())
    }

    /// `if`/`with` chains compile to nested if/else so each condition's
    /// declarations are emitted just before it.
    fn conditional(
        &mut self,
        branches: &[(Pipe, Vec<Node>)],
        otherwise: Option<&[Node]>,
        dot: &str,
        with: bool,
    ) -> Result<(), SyntaxError> {
        let Some(((pipe, body), rest)) = branches.split_first() else {
            if let Some(o) = otherwise {
                self.list(o, dot)?;
            }
            return Ok(());
        };
        self.scopes.push(Vec::new());
        let e = self.pipe(pipe, dot)?;
        let cond = if with || !pipe.vars.is_empty() {
            self.uses_ns = true;
            let attr = format!("__ls_ns.{}", self.fresh("w"));
            self.stmt(pipe.pos, &format!("set {attr} = {e}"));
            if let Some(name) = pipe.vars.first() {
                if pipe.assign {
                    let t = self.var(name, pipe.pos)?;
                    self.stmt(pipe.pos, &format!("set {t} = {attr}"));
                } else {
                    self.declare(name, attr.clone());
                }
            }
            attr
        } else {
            e
        };
        self.stmt(pipe.pos, &format!("if {cond}"));
        let inner_dot = if with { cond.clone() } else { dot.to_owned() };
        self.list(body, &inner_dot)?;
        if !rest.is_empty() || otherwise.is_some() {
            self.stmt(pipe.pos, "else");
            self.conditional(rest, otherwise, dot, with)?;
        }
        self.stmt(pipe.pos, "endif");
        self.scopes.pop();
        Ok(())
    }

    fn pipe(&mut self, pipe: &Pipe, dot: &str) -> Result<String, SyntaxError> {
        let mut piped: Option<String> = None;
        for cmd in &pipe.cmds {
            piped = Some(self.cmd(cmd, dot, piped)?);
        }
        piped.ok_or_else(|| SyntaxError { pos: pipe.pos, msg: "empty pipeline".into() })
    }

    fn cmd(&mut self, cmd: &Cmd, dot: &str, piped: Option<String>) -> Result<String, SyntaxError> {
        let first = &cmd.args[0];
        if let (Term::Func(name), true) = (&first.term, first.fields.is_empty()) {
            let mut args = Vec::with_capacity(cmd.args.len());
            for a in &cmd.args[1..] {
                args.push(self.operand(a, dot)?);
            }
            args.extend(piped);
            return self.call(name, args, first.pos);
        }
        if let Term::Func(name) = &first.term {
            return err(first.pos, format!("unexpected field access after function {name:?}"));
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return err(first.pos, "can't give argument to non-function");
        }
        if matches!(first.term, Term::Nil) && first.fields.is_empty() {
            return err(first.pos, "nil is not a command");
        }
        self.operand(first, dot)
    }

    fn call(&mut self, name: &str, args: Vec<String>, pos: Pos) -> Result<String, SyntaxError> {
        match name {
            "and" | "or" => {
                if args.is_empty() {
                    return err(pos, format!("wrong number of args for {name}: want at least 1 got 0"));
                }
                // Go returns the deciding operand itself and short-circuits;
                // the condition operand is evaluated twice when it decides.
                let mut acc = args[args.len() - 1].clone();
                for a in args[..args.len() - 1].iter().rev() {
                    acc = if name == "and" { format!("({a} if not {a} else {acc})") } else { format!("({a} if {a} else {acc})") };
                }
                Ok(acc)
            }
            "not" => {
                if args.len() != 1 {
                    return err(pos, format!("wrong number of args for not: want 1 got {}", args.len()));
                }
                Ok(format!("(not {})", args[0]))
            }
            _ => {
                if name.starts_with("__") || !name.is_ascii() {
                    return err(pos, format!("function {name:?} not defined"));
                }
                (self.lookup)(name).map_err(|msg| SyntaxError { pos, msg })?;
                Ok(format!("{name}({})", args.join(", ")))
            }
        }
    }

    fn operand(&mut self, op: &Operand, dot: &str) -> Result<String, SyntaxError> {
        let base = match &op.term {
            Term::Dot => dot.to_owned(),
            Term::Nil => "none".to_owned(),
            Term::Bool(b) => b.to_string(),
            Term::Int(i) => format!("({i})"),
            Term::Float(f) => {
                if !f.is_finite() {
                    return err(op.pos, "number out of range");
                }
                format!("__ls_float({})", str_lit(&format!("{f:?}")))
            }
            Term::Str(s) => str_lit(&bytes::encode(s)),
            Term::Var(v) => self.var(v, op.pos)?,
            Term::Func(name) => self.call(name, Vec::new(), op.pos)?,
            Term::Pipe(p) => {
                if !p.vars.is_empty() {
                    return err(p.pos, "declaration inside parentheses is not supported");
                }
                format!("({})", self.pipe(p, dot)?)
            }
        };
        if op.fields.is_empty() {
            return Ok(base);
        }
        let fields: Vec<String> = op.fields.iter().map(|f| str_lit(f)).collect();
        Ok(format!("{}({base}, {})", self.field_fn, fields.join(", ")))
    }
}
