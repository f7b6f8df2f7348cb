//! Lexer for Go `text/template` source.

use super::{Pos, SyntaxError};

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Literal text between actions (already trimmed by `{{-`/`-}}`).
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    /// `.name` (the name without the dot).
    Field(String),
    /// `$` or `$name` (with the `$`).
    Variable(String),
    Dot,
    /// Decoded string literal (may contain arbitrary bytes via `\x`).
    Str(Vec<u8>),
    Number(String),
    Char(u32),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Keyword(&'static str),
    Eof,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub struct Lexer<'a> {
    src: &'a str,
    left: &'a str,
    right: &'a str,
    pos: usize,
    pub toks: Vec<(Tok, Pos)>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, left: &'a str, right: &'a str) -> Self {
        Lexer { src, left, right, pos: 0, toks: Vec::new() }
    }

    fn err<T>(&self, at: usize, msg: impl Into<String>) -> Result<T, SyntaxError> {
        Err(SyntaxError { pos: Pos::at(self.src, at), msg: msg.into() })
    }

    pub fn run(mut self) -> Result<Vec<(Tok, Pos)>, SyntaxError> {
        let mut trim_next = false;
        loop {
            let rest = &self.src[self.pos..];
            let next = rest.find(self.left);
            let end = next.map(|i| self.pos + i).unwrap_or(self.src.len());
            let mut text = &self.src[self.pos..end];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let mut text_start = self.pos;
            let Some(_) = next else {
                if !text.is_empty() {
                    self.toks.push((Tok::Text(text.to_owned()), Pos::at(self.src, text_start)));
                }
                self.toks.push((Tok::Eof, Pos::at(self.src, self.src.len())));
                return Ok(self.toks);
            };
            // Left trim marker: delimiter, '-', then a space.
            let after = end + self.left.len();
            let trims_left = self.src[after..].starts_with('-')
                && self.src[after + 1..].chars().next().is_some_and(is_space);
            if trims_left {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                if trim_next {
                    text_start = end - text.len();
                }
                self.toks.push((Tok::Text(text.to_owned()), Pos::at(self.src, text_start)));
            }
            self.pos = if trims_left { after + 2 } else { after };
            // Comments: `{{/* ... */}}`, only directly after the delimiter.
            if self.src[self.pos..].starts_with("/*") {
                let Some(close) = self.src[self.pos..].find("*/") else {
                    return self.err(end, "unclosed comment");
                };
                self.pos += close + 2;
                trim_next = self.at_right_trim();
                if trim_next {
                    self.pos += 2;
                }
                if !self.src[self.pos..].starts_with(self.right) {
                    return self.err(end, "comment ends before closing delimiter");
                }
                self.pos += self.right.len();
                continue;
            }
            self.toks.push((Tok::LeftDelim, Pos::at(self.src, end)));
            trim_next = self.lex_action(end)?;
        }
    }

    fn at_right_trim(&self) -> bool {
        let r = &self.src[self.pos..];
        let mut it = r.chars();
        matches!(it.next(), Some(c) if is_space(c))
            && r[1..].starts_with('-')
            && r[2..].starts_with(self.right)
    }

    /// Lexes inside an action; returns whether the action ended with `-}}`.
    fn lex_action(&mut self, open: usize) -> Result<bool, SyntaxError> {
        let mut depth = 0usize;
        loop {
            let start = self.pos;
            let pos = Pos::at(self.src, start);
            if self.at_right_trim() || self.src[self.pos..].starts_with(self.right) {
                let trim = self.at_right_trim();
                if depth > 0 {
                    return self.err(start, "unclosed left paren");
                }
                self.pos += if trim { 2 } else { 0 } + self.right.len();
                self.toks.push((Tok::RightDelim, pos));
                return Ok(trim);
            }
            let rest = &self.src[self.pos..];
            let Some(c) = rest.chars().next() else {
                return self.err(open, "unclosed action");
            };
            let tok = match c {
                c if is_space(c) => {
                    let n = rest.find(|c: char| !is_space(c)).unwrap_or(rest.len());
                    // Leave the space of a trailing ` -}}` marker to the delimiter check.
                    self.pos = start + n - 1;
                    if !self.at_right_trim() {
                        self.pos = start + n;
                    }
                    Tok::Space
                }
                '=' => {
                    self.pos += 1;
                    Tok::Assign
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 2;
                    Tok::Declare
                }
                '|' => {
                    self.pos += 1;
                    Tok::Pipe
                }
                ',' => {
                    self.pos += 1;
                    Tok::Comma
                }
                '(' => {
                    depth += 1;
                    self.pos += 1;
                    Tok::LParen
                }
                ')' => {
                    if depth == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    depth -= 1;
                    self.pos += 1;
                    Tok::RParen
                }
                '"' => Tok::Str(self.lex_quote()?),
                '`' => {
                    let Some(close) = rest[1..].find('`') else {
                        return self.err(start, "unterminated raw quoted string");
                    };
                    self.pos += close + 2;
                    Tok::Str(rest.as_bytes()[1..close + 1].to_vec())
                }
                '\'' => self.lex_char()?,
                '$' => {
                    let n = 1 + rest[1..].find(|c: char| !is_alnum(c)).unwrap_or(rest.len() - 1);
                    self.pos += n;
                    Tok::Variable(rest[..n].to_owned())
                }
                '.' => {
                    let second = rest[1..].chars().next();
                    if second.is_some_and(|c| c.is_ascii_digit()) {
                        self.lex_number()?
                    } else if second.is_some_and(is_alnum) {
                        let n = 1 + rest[1..].find(|c: char| !is_alnum(c)).unwrap_or(rest.len() - 1);
                        self.pos += n;
                        Tok::Field(rest[1..n].to_owned())
                    } else {
                        self.pos += 1;
                        Tok::Dot
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number()?,
                c if is_alnum(c) => {
                    let n = rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len());
                    let word = &rest[..n];
                    self.pos += n;
                    // `x.y` after an identifier is a field chain on its result: not Go syntax
                    match word {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(w.to_owned()),
                        },
                    }
                }
                c => return self.err(start, format!("bad character {:?} (U+{:04X})", c, c as u32)),
            };
            self.toks.push((tok, pos));
        }
    }

    fn lex_number(&mut self) -> Result<Tok, SyntaxError> {
        let start = self.pos;
        let rest = &self.src[start..];
        let n = rest
            .char_indices()
            .skip(1)
            .find(|&(i, c)| {
                !(c.is_ascii_alphanumeric()
                    || c == '_'
                    || c == '.'
                    || ((c == '+' || c == '-')
                        && matches!(rest.as_bytes()[i - 1], b'e' | b'E' | b'p' | b'P')
                        && !rest[..i].starts_with("0x")))
            })
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let text = &rest[..n];
        if text == "+" || text == "-" {
            return self.err(start, format!("bad number syntax: {text:?}"));
        }
        self.pos += n;
        Ok(Tok::Number(text.to_owned()))
    }

    fn lex_char(&mut self) -> Result<Tok, SyntaxError> {
        let start = self.pos;
        let rest = &self.src[start + 1..];
        let (value, used) = if let Some(esc) = rest.strip_prefix('\\') {
            let (bytes, used) = unescape_one(esc, '\'')
                .ok_or_else(|| SyntaxError { pos: Pos::at(self.src, start), msg: "bad escape in character constant".into() })?;
            let v = match bytes {
                Esc::Char(c) => c as u32,
                Esc::Byte(b) => u32::from(b),
            };
            (v, used + 1)
        } else {
            let c = rest.chars().next().ok_or_else(|| SyntaxError {
                pos: Pos::at(self.src, start),
                msg: "unterminated character constant".into(),
            })?;
            (c as u32, c.len_utf8())
        };
        if !rest[used..].starts_with('\'') {
            return self.err(start, "unterminated character constant");
        }
        self.pos = start + 1 + used + 1;
        Ok(Tok::Char(value))
    }

    fn lex_quote(&mut self) -> Result<Vec<u8>, SyntaxError> {
        let start = self.pos;
        let mut out = Vec::new();
        let mut i = start + 1;
        loop {
            let rest = &self.src[i..];
            let Some(c) = rest.chars().next() else {
                return self.err(start, "unterminated quoted string");
            };
            match c {
                '"' => {
                    self.pos = i + 1;
                    return Ok(out);
                }
                '\n' => return self.err(start, "unterminated quoted string"),
                '\\' => {
                    let (e, used) = unescape_one(&rest[1..], '"')
                        .ok_or_else(|| SyntaxError { pos: Pos::at(self.src, i), msg: "invalid syntax in quoted string".into() })?;
                    match e {
                        Esc::Char(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        Esc::Byte(b) => out.push(b),
                    }
                    i += 1 + used;
                }
                c => {
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    i += c.len_utf8();
                }
            }
        }
    }
}

enum Esc {
    Char(char),
    Byte(u8),
}

/// Decodes one Go escape sequence (after the backslash).
fn unescape_one(s: &str, quote: char) -> Option<(Esc, usize)> {
    let c = s.chars().next()?;
    let simple = |c| Some((Esc::Char(c), 1));
    match c {
        'a' => simple('\x07'),
        'b' => simple('\x08'),
        'f' => simple('\x0c'),
        'n' => simple('\n'),
        'r' => simple('\r'),
        't' => simple('\t'),
        'v' => simple('\x0b'),
        '\\' => simple('\\'),
        q if q == quote => simple(q),
        'x' => {
            let h = s.get(1..3)?;
            Some((Esc::Byte(u8::from_str_radix(h, 16).ok()?), 3))
        }
        '0'..='7' => {
            let o = s.get(0..3)?;
            let v = u32::from_str_radix(o, 8).ok()?;
            Some((Esc::Byte(u8::try_from(v).ok()?), 3))
        }
        'u' | 'U' => {
            let n = if c == 'u' { 4 } else { 8 };
            let h = s.get(1..1 + n)?;
            let ch = char::from_u32(u32::from_str_radix(h, 16).ok()?)?;
            Some((Esc::Char(ch), 1 + n))
        }
        _ => None,
    }
}
