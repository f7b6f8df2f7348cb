//! Go `text/template` front end: lexer, parser and a compiler to minijinja
//! source. The compiled template calls `__ls_*` helpers registered by the
//! renderer (field access with Go's missing-key rule, Go value printing, range).

pub mod compile;
mod lex;
mod parse;

pub use compile::compile;

use std::fmt;

/// 1-based line and column (in characters) of a construct in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn at(src: &str, offset: usize) -> Pos {
        let before = &src[..offset.min(src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A parse or compile error in a Go template, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub msg: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.msg)
    }
}
