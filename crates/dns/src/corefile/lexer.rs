//! The Corefile's tokenizer: words split on white space, `"quoted strings"` (with `\"`), `#`
//! comments to the end of the line, and `{$ENV}` (or `{%ENV%}`) replaced in every token by the
//! variable's value (empty when unset), as Caddy's lexer does.

use super::error::ErrorKind;

/// One word of the Corefile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub text: String,
    /// 1-based line where the token starts.
    pub line: usize,
    /// Whether the token is the first one of its line.
    pub line_start: bool,
    /// Whether it was written in quotes (a quoted `{` is a word, not a brace).
    pub quoted: bool,
}

impl Token {
    /// Whether this is the structural token `text` (an unquoted `{` or `}`).
    pub fn is(&self, text: &str) -> bool {
        !self.quoted && self.text == text
    }
}

/// Splits `input` into tokens, substituting environment variables with `env`.
pub(crate) fn lex(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Token>, (usize, ErrorKind)> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    let mut line = 1;
    let mut line_start = true;
    while let Some(&c) = chars.peek() {
        if c == '\n' {
            chars.next();
            line += 1;
            line_start = true;
            continue;
        }
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            while chars.peek().is_some_and(|&c| c != '\n') {
                chars.next();
            }
            continue;
        }
        let start = line;
        let mut text = String::new();
        let quoted = c == '"';
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err((start, ErrorKind::UnterminatedQuote)),
                    Some('"') => break,
                    Some('\\') if chars.peek() == Some(&'"') => {
                        chars.next();
                        text.push('"');
                    }
                    Some(c) => {
                        if c == '\n' {
                            line += 1;
                        }
                        text.push(c);
                    }
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                text.push(c);
                chars.next();
            }
        }
        tokens.push(Token { text: substitute_env(&text, env), line: start, line_start, quoted });
        line_start = false;
    }
    Ok(tokens)
}

/// Replaces `{$NAME}` and `{%NAME%}` with the variable's value.
pub(crate) fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let var = if let Some(body) = tail.strip_prefix("{$") {
            body.find('}').map(|end| (&body[..end], end + 3))
        } else if let Some(body) = tail.strip_prefix("{%") {
            body.find("%}").map(|end| (&body[..end], end + 4))
        } else {
            None
        };
        match var {
            Some((name, len)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                out.push_str(&env(name).unwrap_or_default());
                rest = &tail[len..];
            }
            _ => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "PORT").then(|| "1053".to_string())
    }

    fn texts(input: &str) -> Vec<(String, usize, bool)> {
        lex(input, &env).unwrap().into_iter().map(|t| (t.text, t.line, t.line_start)).collect()
    }

    #[test]
    fn words_lines_comments_and_quotes() {
        let toks = texts(".:53 { # comment\n  log \"a b\" c#d\n}\n");
        assert_eq!(
            toks,
            vec![
                (".:53".into(), 1, true),
                ("{".into(), 1, false),
                ("log".into(), 2, true),
                ("a b".into(), 2, false),
                ("c#d".into(), 2, false),
                ("}".into(), 3, true),
            ]
        );
    }

    #[test]
    fn quoted_braces_are_words_and_escapes_work() {
        let toks = lex("x \"{\" \"say \\\"hi\\\"\"", &env).unwrap();
        assert!(!toks[1].is("{"));
        assert_eq!(toks[2].text, "say \"hi\"");
    }

    #[test]
    fn multi_line_quotes_count_lines() {
        let toks = texts("a \"b\nc\"\nd");
        assert_eq!(toks[2], ("d".into(), 3, true));
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        assert_eq!(lex("a\n\"b", &env).unwrap_err(), (2, ErrorKind::UnterminatedQuote));
    }

    #[test]
    fn environment_variables() {
        assert_eq!(substitute_env(".:{$PORT}", &env), ".:1053");
        assert_eq!(substitute_env("{%PORT%}x", &env), "1053x");
        assert_eq!(substitute_env("{$UNSET}", &env), "");
        assert_eq!(substitute_env("{ {$ x}", &env), "{ {$ x}");
        assert_eq!(substitute_env("{", &env), "{");
    }
}
