//! Recursive-descent parser for Go `text/template` (the subset documented in
//! docs/templates.md; `define`/`template`/`block` are rejected by name).

use super::lex::Tok;
use super::{Pos, SyntaxError};

#[derive(Debug, Clone)]
pub enum Node {
    Text(String, Pos),
    Action(Pipe),
    If { branches: Vec<(Pipe, Vec<Node>)>, otherwise: Option<Vec<Node>> },
    /// `with`/`else with` chain: like `if` but rebinds dot.
    With { branches: Vec<(Pipe, Vec<Node>)>, otherwise: Option<Vec<Node>> },
    Range { pipe: Pipe, body: Vec<Node>, otherwise: Option<Vec<Node>> },
    Break(Pos),
    Continue(Pos),
}

#[derive(Debug, Clone)]
pub struct Pipe {
    pub pos: Pos,
    /// Declared (`:=`) or assigned (`=`) variables, with `$`.
    pub vars: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
pub struct Cmd {
    pub args: Vec<Operand>,
}

#[derive(Debug, Clone)]
pub struct Operand {
    pub pos: Pos,
    pub term: Term,
    /// Field chain applied to the term: `.a.b`, `$x.a`, `(f).a`.
    pub fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Term {
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    Var(String),
    Func(String),
    Pipe(Box<Pipe>),
}

pub struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
}

/// What closed a list.
enum Closer {
    End,
    Else(Pos),
    Eof,
}

impl Parser {
    pub fn new(toks: Vec<(Tok, Pos)>) -> Self {
        Parser { toks, i: 0 }
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }
    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }
    fn next(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn skip_space(&mut self) {
        while *self.peek() == Tok::Space {
            self.next();
        }
    }
    fn err<T>(&self, pos: Pos, msg: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError { pos, msg: msg.into() })
    }

    pub fn parse(mut self) -> Result<Vec<Node>, SyntaxError> {
        let (nodes, end) = self.list()?;
        match end {
            Closer::Eof => Ok(nodes),
            Closer::End => self.err(self.pos(), "unexpected {{end}}"),
            Closer::Else(p) => self.err(p, "unexpected {{else}}"),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Closer), SyntaxError> {
        let mut nodes = Vec::new();
        loop {
            let (tok, pos) = self.next();
            match tok {
                Tok::Eof => return Ok((nodes, Closer::Eof)),
                Tok::Text(t) => nodes.push(Node::Text(t, pos)),
                Tok::LeftDelim => {
                    self.skip_space();
                    let (kw_pos, kw) = (self.pos(), self.peek().clone());
                    match kw {
                        Tok::Keyword("end") => {
                            self.next();
                            self.close()?;
                            return Ok((nodes, Closer::End));
                        }
                        Tok::Keyword("else") => {
                            self.next();
                            return Ok((nodes, Closer::Else(kw_pos)));
                        }
                        Tok::Keyword("if") => {
                            self.next();
                            nodes.push(self.conditional(false, kw_pos)?);
                        }
                        Tok::Keyword("with") => {
                            self.next();
                            nodes.push(self.conditional(true, kw_pos)?);
                        }
                        Tok::Keyword("range") => {
                            self.next();
                            nodes.push(self.range(kw_pos)?);
                        }
                        Tok::Keyword("break") => {
                            self.next();
                            self.close()?;
                            nodes.push(Node::Break(kw_pos));
                        }
                        Tok::Keyword("continue") => {
                            self.next();
                            self.close()?;
                            nodes.push(Node::Continue(kw_pos));
                        }
                        Tok::Keyword(k @ ("define" | "template" | "block")) => {
                            return self.err(
                                kw_pos,
                                format!("{{{{{k}}}}} is not supported (named templates are not available in secret templates)"),
                            );
                        }
                        _ => {
                            let pipe = self.pipeline("command", false)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                other => return self.err(pos, format!("unexpected {other:?}")),
            }
        }
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        self.skip_space();
        match self.next() {
            (Tok::RightDelim, _) => Ok(()),
            (t, p) => self.err(p, format!("unexpected {t:?} in action, expected closing delimiter")),
        }
    }

    /// `if`/`with` with their `else if`/`else with`/`else` chain.
    fn conditional(&mut self, with: bool, pos: Pos) -> Result<Node, SyntaxError> {
        let ctx = if with { "with" } else { "if" };
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut pipe = self.pipeline(ctx, false)?;
        loop {
            let (body, end) = self.list()?;
            branches.push((pipe, body));
            match end {
                Closer::End => break,
                Closer::Eof => return self.err(pos, format!("unexpected EOF: {{{{{ctx}}}}} has no {{{{end}}}}")),
                Closer::Else(else_pos) => {
                    self.skip_space();
                    match self.peek() {
                        Tok::Keyword(k) if *k == ctx => {
                            self.next();
                            pipe = self.pipeline(ctx, false)?;
                        }
                        Tok::Keyword(k @ ("if" | "with")) => {
                            // `else with` inside an if chain (or vice versa): nest it.
                            let nested_with = *k == "with";
                            let p = self.pos();
                            self.next();
                            let node = self.conditional(nested_with, p)?;
                            otherwise = Some(vec![node]);
                            break;
                        }
                        _ => {
                            self.close().map_err(|_| SyntaxError { pos: else_pos, msg: "unexpected tokens after {{else}}".into() })?;
                            let (body, end) = self.list()?;
                            match end {
                                Closer::End => {}
                                Closer::Else(p) => return self.err(p, "{{else}} after {{else}}"),
                                Closer::Eof => return self.err(pos, format!("unexpected EOF: {{{{{ctx}}}}} has no {{{{end}}}}")),
                            }
                            otherwise = Some(body);
                            break;
                        }
                    }
                }
            }
        }
        Ok(if with { Node::With { branches, otherwise } } else { Node::If { branches, otherwise } })
    }

    fn range(&mut self, pos: Pos) -> Result<Node, SyntaxError> {
        let pipe = self.pipeline("range", true)?;
        let (body, end) = self.list()?;
        let otherwise = match end {
            Closer::End => None,
            Closer::Eof => return self.err(pos, "unexpected EOF: {{range}} has no {{end}}"),
            Closer::Else(_) => {
                self.close()?;
                let (b, end) = self.list()?;
                if !matches!(end, Closer::End) {
                    return self.err(pos, "{{range}} {{else}} has no {{end}}");
                }
                Some(b)
            }
        };
        Ok(Node::Range { pipe, body, otherwise })
    }

    /// A pipeline up to the closing delimiter (or `)` when nested).
    fn pipeline(&mut self, ctx: &str, allow_two_vars: bool) -> Result<Pipe, SyntaxError> {
        self.skip_space();
        let pos = self.pos();
        let mut vars = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range only).
        let save = self.i;
        if let Tok::Variable(v) = self.peek().clone() {
            self.next();
            self.skip_space();
            match self.peek().clone() {
                Tok::Declare | Tok::Assign => {
                    assign = *self.peek() == Tok::Assign;
                    self.next();
                    vars.push(v);
                }
                Tok::Comma if allow_two_vars => {
                    self.next();
                    self.skip_space();
                    let (t, p) = self.next();
                    let Tok::Variable(v2) = t else {
                        return self.err(p, "range can only initialize variables");
                    };
                    self.skip_space();
                    match self.next() {
                        (Tok::Declare, _) => {}
                        (Tok::Assign, _) => assign = true,
                        (_, p) => return self.err(p, "expected := in range declaration"),
                    }
                    vars.push(v);
                    vars.push(v2);
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Tok::RightDelim | Tok::RParen => {
                    let (t, p) = self.next();
                    if cmds.is_empty() {
                        return self.err(p, format!("missing value for {ctx}"));
                    }
                    let _ = t;
                    return Ok(Pipe { pos, vars, assign, cmds });
                }
                Tok::Pipe if !cmds.is_empty() => {
                    self.next();
                }
                Tok::Pipe => return self.err(self.pos(), "missing command before |"),
                _ => {}
            }
            self.skip_space();
            cmds.push(self.command()?);
        }
    }

    fn command(&mut self) -> Result<Cmd, SyntaxError> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                Tok::RightDelim | Tok::RParen | Tok::Pipe => break,
                _ => {}
            }
            args.push(self.operand()?);
            match self.peek() {
                Tok::Space | Tok::RightDelim | Tok::RParen | Tok::Pipe => {}
                t => return self.err(self.pos(), format!("unexpected {t:?} in operand")),
            }
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> Result<Operand, SyntaxError> {
        let (tok, pos) = self.next();
        let mut fields = Vec::new();
        let term = match tok {
            Tok::Dot => Term::Dot,
            Tok::Field(f) => {
                fields.push(f);
                Term::Dot
            }
            Tok::Nil => Term::Nil,
            Tok::Bool(b) => Term::Bool(b),
            Tok::Str(s) => Term::Str(s),
            Tok::Char(c) => Term::Int(i64::from(c)),
            Tok::Number(n) => number(&n).ok_or_else(|| SyntaxError { pos, msg: format!("bad number syntax: {n:?}") })?,
            Tok::Variable(v) => Term::Var(v),
            Tok::Ident(name) => Term::Func(name),
            Tok::LParen => Term::Pipe(Box::new(self.pipeline("parenthesized pipeline", false)?)),
            Tok::Keyword(k) => return self.err(pos, format!("unexpected keyword {k:?} in operand")),
            t => return self.err(pos, format!("unexpected {t:?} in operand")),
        };
        while let Tok::Field(f) = self.peek().clone() {
            self.next();
            fields.push(f);
        }
        Ok(Operand { pos, term, fields })
    }
}

/// Go number literal → int or float (floats only when written with `.`/exponent).
fn number(text: &str) -> Option<Term> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b.to_owned()),
        None => (false, clean.trim_start_matches('+').to_owned()),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains(['.', 'p']) { None } else { i64::from_str_radix(h, 16).ok() }
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.chars().all(|c| c.is_ascii_digit()) {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else if lower.chars().all(|c| c.is_ascii_digit()) {
        lower.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Some(Term::Int(if neg { -i } else { i }));
    }
    if lower.ends_with('i') || lower.starts_with("0x") {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Term::Float(if neg { -f } else { f }))
}
