//! From tokens to server blocks: snippets `(name) { … }` are set aside and `import name`
//! replaced by their tokens, then each block's keys (`zone1 zone2:port`) and directives (a
//! plugin line, its arguments and an optional nested block) are read. A single server block may
//! omit its braces, as in Caddy.

use std::collections::{BTreeMap, HashMap};

use super::address;
use super::error::{CorefileError, ErrorKind};
use super::lexer::{self, Token};
use super::{Corefile, Directive, ServerBlock};

type Result<T> = std::result::Result<T, CorefileError>;

/// Parses Corefile text named `file`, reading environment variables with `env`.
pub(crate) fn parse(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile> {
    let err = |line, kind| CorefileError::new(file, line, kind);
    let tokens = lexer::lex(text, env).map_err(|(line, kind)| err(line, kind))?;
    let (snippets, rest) = take_snippets(tokens).map_err(|(l, k)| err(l, k))?;
    let tokens = expand(rest, &snippets, &mut Vec::new()).map_err(|(l, k)| err(l, k))?;
    let mut cursor = Cursor { tokens, pos: 0 };
    let mut servers: Vec<ServerBlock> = Vec::new();
    let mut seen: HashMap<(String, u16), usize> = HashMap::new();
    let mut first = true;
    while let Some(tok) = cursor.peek() {
        let key_line = tok.line;
        let keys = read_keys(&mut cursor).map_err(|(l, k)| err(l, k))?;
        let directives = if cursor.peek().is_some_and(|t| t.is("{")) {
            cursor.next();
            body(&mut cursor, Some(key_line)).map_err(|(l, k)| err(l, k))?
        } else if first {
            // Caddy's braceless form: the whole file is one server block.
            body(&mut cursor, None).map_err(|(l, k)| err(l, k))?
        } else {
            let line = cursor.peek().map_or(key_line, |t| t.line);
            return Err(err(line, ErrorKind::ExpectedOpen));
        };
        first = false;
        // Keys on different ports become separate servers sharing the plugins.
        let mut by_port: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for key in &keys {
            let (zones, port) = address::parse_key(&key.text)
                .map_err(|reason| err(key.line, ErrorKind::BadAddress { address: key.text.clone(), reason }))?;
            for zone in zones {
                if seen.insert((zone.clone(), port), key.line).is_some() {
                    return Err(err(key.line, ErrorKind::DuplicateZone { zone, port }));
                }
                by_port.entry(port).or_default().push(zone);
            }
        }
        for (port, zones) in by_port {
            servers.push(ServerBlock {
                file: file.to_string(),
                line: key_line,
                zones,
                port,
                plugins: directives.clone(),
            });
        }
    }
    Ok(Corefile { servers })
}

type Snippets = HashMap<String, Vec<Token>>;
type LexResult<T> = std::result::Result<T, (usize, ErrorKind)>;

/// Removes top-level `(name) { … }` definitions, returning them and the other tokens.
fn take_snippets(tokens: Vec<Token>) -> LexResult<(Snippets, Vec<Token>)> {
    let mut snippets = Snippets::new();
    let mut rest = Vec::new();
    let mut depth = 0usize;
    let mut iter = tokens.into_iter().peekable();
    while let Some(tok) = iter.next() {
        let is_def = depth == 0
            && tok.line_start
            && !tok.quoted
            && tok.text.len() > 2
            && tok.text.starts_with('(')
            && tok.text.ends_with(')')
            && iter.peek().is_some_and(|t| t.is("{"));
        if !is_def {
            if tok.is("{") {
                depth += 1;
            } else if tok.is("}") {
                depth = depth.saturating_sub(1);
            }
            rest.push(tok);
            continue;
        }
        let name = tok.text[1..tok.text.len() - 1].to_string();
        iter.next();
        let mut inner = Vec::new();
        let mut level = 1;
        loop {
            let Some(t) = iter.next() else {
                return Err((tok.line, ErrorKind::UnclosedBlock));
            };
            if t.is("{") {
                level += 1;
            } else if t.is("}") {
                level -= 1;
                if level == 0 {
                    break;
                }
            }
            inner.push(t);
        }
        if snippets.insert(name.clone(), inner).is_some() {
            return Err((tok.line, ErrorKind::DuplicateSnippet(name)));
        }
    }
    Ok((snippets, rest))
}

/// Replaces every `import NAME` line with the snippet's tokens (recursively).
fn expand(tokens: Vec<Token>, snippets: &Snippets, stack: &mut Vec<String>) -> LexResult<Vec<Token>> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut iter = tokens.into_iter().peekable();
    while let Some(tok) = iter.next() {
        if !(tok.line_start && tok.is("import")) {
            out.push(tok);
            continue;
        }
        let name = match iter.next_if(|t| !t.line_start) {
            Some(t) => t.text,
            None => return Err((tok.line, ErrorKind::MissingImport)),
        };
        if let Some(extra) = iter.next_if(|t| !t.line_start) {
            return Err((extra.line, ErrorKind::Unexpected(extra.text)));
        }
        let snippet = snippets.get(&name).ok_or_else(|| (tok.line, ErrorKind::UnknownSnippet(name.clone())))?;
        if stack.contains(&name) {
            return Err((tok.line, ErrorKind::ImportCycle(name)));
        }
        stack.push(name);
        let mut inner = expand(snippet.clone(), snippets, stack)?;
        stack.pop();
        if let Some(first) = inner.first_mut() {
            first.line_start = true;
        }
        out.extend(inner);
    }
    Ok(out)
}

struct Cursor {
    tokens: Vec<Token>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
}

/// A block's keys: the words up to `{`, or to the end of the line (a trailing comma carries on).
fn read_keys(cursor: &mut Cursor) -> LexResult<Vec<Token>> {
    let mut keys: Vec<Token> = Vec::new();
    while let Some(tok) = cursor.peek() {
        if tok.is("{") {
            break;
        }
        if tok.is("}") {
            return Err((tok.line, ErrorKind::Unexpected("}".into())));
        }
        let continues = keys.last().is_none_or(|k| k.text.ends_with(','));
        if tok.line_start && !continues {
            break;
        }
        keys.push(cursor.next().expect("peeked"));
    }
    Ok(keys)
}

/// Directives up to the `}` closing a block opened on `open` (or to the end when `None`).
fn body(cursor: &mut Cursor, open: Option<usize>) -> LexResult<Vec<Directive>> {
    let mut out = Vec::new();
    loop {
        let Some(tok) = cursor.next() else {
            return match open {
                Some(line) => Err((line, ErrorKind::UnclosedBlock)),
                None => Ok(out),
            };
        };
        if tok.is("}") {
            return match open {
                Some(_) => Ok(out),
                None => Err((tok.line, ErrorKind::Unexpected("}".into()))),
            };
        }
        if tok.is("{") {
            return Err((tok.line, ErrorKind::Unexpected("{".into())));
        }
        let mut args = Vec::new();
        while let Some(t) = cursor.peek() {
            if t.line_start || t.is("{") || t.is("}") {
                break;
            }
            args.push(cursor.next().expect("peeked").text);
        }
        let block = match cursor.peek() {
            Some(t) if t.is("{") && !t.line_start => {
                cursor.next();
                body(cursor, Some(tok.line))?
            }
            _ => Vec::new(),
        };
        out.push(Directive { name: tok.text, args, block, line: tok.line });
    }
}
