//! Label selectors: which objects a `labelSelector=` query, a Deployment's `spec.selector`, a
//! Service's `spec.selector` or a NetworkPolicy's `podSelector` picks, by their labels.
//!
//! A [`Selector`] is a list of [`Requirement`]s that must all hold; the empty selector matches
//! everything. Selectors come from three sources, each with its own constructor:
//!
//! - the string syntax of `labelSelector=` (`app=web,tier in (a,b),!canary,replicas>2`):
//!   [`Selector::parse`], rendered back by `Display`;
//! - the structured `metav1.LabelSelector` (`matchLabels` and `matchExpressions`):
//!   [`Selector::from_label_selector`], which keeps Kubernetes' distinction between a null
//!   selector (matches nothing) and an empty one (matches everything);
//! - a plain map of labels, like a Service's `spec.selector`: [`Selector::from_map`].
//!
//! The behaviour follows `k8s.io/apimachinery/pkg/labels/selector.go` and
//! `metav1.LabelSelectorAsSelector`: the same grammar, the same key and value validation (see
//! [`crate::names`]), requirements sorted by key, and the same matching rules (`notin` and `!=`
//! match objects without the label; `>` and `<` compare integers and never match a label that is
//! not one).

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::names::{is_qualified_name, is_valid_label_value};

/// Why a label selector or one of its requirements was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelSelectorError {
    /// The string form could not be parsed, or one of its requirements is invalid; `reason`
    /// uses upstream's wording (`found '(', expected: ...`).
    #[error("invalid label selector {selector:?}: {reason}")]
    Parse { selector: String, reason: String },
    /// The structured form (`metav1.LabelSelector`) is malformed or invalid at `field`
    /// (`matchExpressions[0].values`, for example).
    #[error("invalid label selector: {field}: {reason}")]
    Object { field: String, reason: String },
    /// A label key is not a qualified name.
    #[error("invalid label key {key:?}: {}", .problems.join("; "))]
    InvalidKey { key: String, problems: Vec<String> },
    /// A value is not a valid label value.
    #[error("invalid value {value:?} for label {key:?}: {}", .problems.join("; "))]
    InvalidValue { key: String, value: String, problems: Vec<String> },
    /// The values do not suit the operator (none for `in`, several for `=`, ...).
    #[error("invalid values {values:?} for label {key:?} with operator '{operator}': {reason}")]
    InvalidValues { key: String, operator: Operator, values: Vec<String>, reason: &'static str },
}

/// How a requirement relates a label to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`: the label is present and equal to the value.
    Equals,
    /// `key==value`: the same as [`Operator::Equals`], kept apart so it renders as written.
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present and one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or none of the values.
    NotIn,
    /// `key`: the label is present, whatever its value.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>5`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<5`: the label is an integer less than the value.
    LessThan,
}

impl Operator {
    /// Upstream's name of the operator (`selection.Operator`): `=`, `==`, `!=`, `in`, `notin`,
    /// `exists`, `!`, `gt`, `lt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label: a key, an operator and the values it compares with. Always
/// valid: build it with [`Requirement::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking what upstream's `NewRequirement` checks: the key is a
    /// qualified name; `in`/`notin` have at least one value; `=`, `==`, `!=` exactly one;
    /// `exists`/`!` none; `gt`/`lt` exactly one that is an integer; every value is a valid label
    /// value. The empty string is a valid value. Values are kept in the given order.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, LabelSelectorError> {
        let key = key.into();
        validate_label_key(&key)?;
        let count_problem = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            Operator::GreaterThan | Operator::LessThan if values[0].parse::<i64>().is_err() => {
                Some("for 'Gt', 'Lt' operators, the value must be an integer")
            }
            _ => None,
        };
        if let Some(reason) = count_problem {
            return Err(LabelSelectorError::InvalidValues { key, operator, values, reason });
        }
        for value in &values {
            let problems = is_valid_label_value(value);
            if !problems.is_empty() {
                return Err(LabelSelectorError::InvalidValue { key, value: value.clone(), problems });
            }
        }
        Ok(Requirement { key, operator, values })
    }

    /// The label key this requirement is about.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label is compared with the values.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values the label is compared with (empty for `exists` and `!`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|candidate| candidate == value)
    }

    /// Whether the labels that `label` looks up satisfy this requirement; `label(key)` returns
    /// the value of a label, or `None` when the object does not have it.
    pub fn matches_lookup<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        let value = label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|value| self.has_value(value))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|value| !self.has_value(value)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = value.map(str::parse::<i64>) else {
                    return false;
                };
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > bound
                } else {
                    actual < bound
                }
            }
        }
    }

    /// Whether a map of labels (string values; other values count as absent) satisfies this
    /// requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_lookup(|key| labels.get(key).and_then(Value::as_str))
    }
}

/// Renders upstream's canonical form: `key=v`, `key==v`, `key!=v`, `key in (a,b)`,
/// `key notin (a,b)`, `key`, `!key`, `key>v`, `key<v`, with `in`/`notin` values sorted.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let separator = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(separator)?;
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "({})", values.join(","))
        } else {
            f.write_str(&values.join(","))
        }
    }
}

fn validate_label_key(key: &str) -> Result<(), LabelSelectorError> {
    let problems = is_qualified_name(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LabelSelectorError::InvalidKey { key: key.to_string(), problems })
    }
}

/// A label selector: requirements that must all hold, kept sorted by key. The empty selector
/// ([`Selector::everything`], also the `Default`) matches every object.
///
/// A selector that matches *nothing* — what a null `metav1.LabelSelector` means — is not a
/// `Selector`: [`Selector::from_label_selector`] returns `None` for it, and callers match with
/// `selector.is_some_and(|s| s.matches(labels))`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// A selector made of these requirements, sorted by key (stably: requirements on the same key
    /// keep their order), as upstream does.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Selector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Selector { requirements }
    }

    /// This selector with one more requirement.
    pub fn with(mut self, requirement: Requirement) -> Selector {
        self.requirements.push(requirement);
        Selector::from_requirements(self.requirements)
    }

    /// Parses the string syntax of `labelSelector=`:
    ///
    /// ```text
    /// selector    ::= requirement | requirement "," selector
    /// requirement ::= [!] KEY [ ("in" | "notin") "(" VALUE ("," VALUE)* ")"
    ///                          | ("=" | "==" | "!=" | ">" | "<") VALUE ]
    /// ```
    ///
    /// Whitespace (space, tab, CR, LF) may surround every token; `in` and `notin` are keywords
    /// only where an operator is expected; values may be empty (`x=`, `x in (a,)`, `x in ()`);
    /// `in`/`notin` values are deduplicated and sorted. Keys must be qualified names and values
    /// label values. The empty string is the empty selector.
    pub fn parse(selector: &str) -> Result<Selector, LabelSelectorError> {
        let tokens = Lexer::new(selector).tokens();
        let mut parser = Parser { tokens, position: 0 };
        let requirements = parser
            .parse_selector()
            .map_err(|reason| LabelSelectorError::Parse { selector: selector.to_string(), reason })?;
        Ok(Selector::from_requirements(requirements))
    }

    /// Builds the selector of a plain label map such as a Service's `spec.selector`: every pair
    /// is an `=` requirement. Keys and values are validated, and every value must be a string.
    ///
    /// An empty map gives the empty selector, which matches everything. Kubernetes does not read
    /// a Service's empty or missing selector that way: such a Service selects no pods (its
    /// endpoints are managed by hand), so callers must check for that before calling this.
    pub fn from_map(labels: &Map<String, Value>) -> Result<Selector, LabelSelectorError> {
        let mut requirements = Vec::with_capacity(labels.len());
        for (key, value) in labels {
            let Some(value) = value.as_str() else {
                return Err(LabelSelectorError::InvalidValue {
                    key: key.clone(),
                    value: value.to_string(),
                    problems: vec!["must be a string".to_string()],
                });
            };
            requirements.push(Requirement::new(key.clone(), Operator::Equals, vec![value.to_string()])?);
        }
        Ok(Selector::from_requirements(requirements))
    }

    /// Converts a structured `metav1.LabelSelector` (`{"matchLabels": {...}, "matchExpressions":
    /// [{"key", "operator", "values"}]}`) as upstream's `LabelSelectorAsSelector` does.
    ///
    /// Returns `Ok(None)` for a null selector (`Value::Null`; pass it for a missing field too),
    /// which in Kubernetes matches *nothing*; an empty object `{}` gives the empty selector,
    /// which matches *everything*. Some fields give null a meaning of their own (a NetworkPolicy
    /// peer's `namespaceSelector`: "the policy's namespace"), which is why the choice is left to
    /// the caller.
    ///
    /// `matchExpressions` operators are `In`, `NotIn` (which need values), `Exists` and
    /// `DoesNotExist` (which must have none); keys and values are validated.
    pub fn from_label_selector(label_selector: &Value) -> Result<Option<Selector>, LabelSelectorError> {
        let object = match label_selector {
            Value::Null => return Ok(None),
            Value::Object(object) => object,
            other => {
                return Err(LabelSelectorError::Object {
                    field: "labelSelector".to_string(),
                    reason: format!("must be an object, not {}", json_type_name(other)),
                })
            }
        };
        let mut requirements = Vec::new();
        match object.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(match_labels)) => {
                for (key, value) in match_labels {
                    let field = format!("matchLabels.{key}");
                    let Some(value) = value.as_str() else {
                        return Err(LabelSelectorError::Object {
                            field,
                            reason: format!("must be a string, not {}", json_type_name(value)),
                        });
                    };
                    let requirement = Requirement::new(key.clone(), Operator::Equals, vec![value.to_string()])
                        .map_err(|error| LabelSelectorError::Object { field, reason: error.to_string() })?;
                    requirements.push(requirement);
                }
            }
            Some(other) => {
                return Err(LabelSelectorError::Object {
                    field: "matchLabels".to_string(),
                    reason: format!("must be an object, not {}", json_type_name(other)),
                })
            }
        }
        match object.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(expressions)) => {
                for (index, expression) in expressions.iter().enumerate() {
                    let field = format!("matchExpressions[{index}]");
                    requirements.push(requirement_from_expression(expression, &field)?);
                }
            }
            Some(other) => {
                return Err(LabelSelectorError::Object {
                    field: "matchExpressions".to_string(),
                    reason: format!("must be an array, not {}", json_type_name(other)),
                })
            }
        }
        Ok(Some(Selector::from_requirements(requirements)))
    }

    /// Whether this selector has no requirements, and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the labels that `label` looks up satisfy every requirement; `label(key)` returns
    /// the value of a label, or `None` when the object does not have it.
    pub fn matches_lookup<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|requirement| requirement.matches_lookup(&label))
    }

    /// Whether a map of labels (`metadata.labels`: string values; other values count as absent)
    /// satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.matches_lookup(|key| labels.get(key).and_then(Value::as_str))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement; an object without
    /// labels has none.
    pub fn matches_object(&self, object: &Value) -> bool {
        match object.get("metadata").and_then(|metadata| metadata.get("labels")).and_then(Value::as_object) {
            Some(labels) => self.matches(labels),
            None => self.matches_lookup(|_| None),
        }
    }

    /// When this selector requires `key` to have exactly one value (`key=v`, `key==v` or
    /// `key in (v)`), that value; upstream's `RequiresExactMatch`, useful to narrow a list by an
    /// index. Only the first requirement on `key` is considered, as upstream.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == key)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value),
            _ => None,
        }
    }
}

/// Renders the canonical string form, which [`Selector::parse`] reads back: the requirements in
/// key order, separated by commas (the empty selector renders as the empty string).
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, requirement) in self.requirements.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = LabelSelectorError;

    fn from_str(selector: &str) -> Result<Selector, LabelSelectorError> {
        Selector::parse(selector)
    }
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One `matchExpressions` entry, validated as upstream's `ValidateLabelSelectorRequirement`.
fn requirement_from_expression(expression: &Value, field: &str) -> Result<Requirement, LabelSelectorError> {
    let object_error = |field: String, reason: String| LabelSelectorError::Object { field, reason };
    let Some(expression) = expression.as_object() else {
        return Err(object_error(field.to_string(), format!("must be an object, not {}", json_type_name(expression))));
    };
    let key = match expression.get("key") {
        Some(Value::String(key)) => key.clone(),
        None | Some(Value::Null) => return Err(object_error(format!("{field}.key"), "must be specified".to_string())),
        Some(other) => {
            return Err(object_error(
                format!("{field}.key"),
                format!("must be a string, not {}", json_type_name(other)),
            ))
        }
    };
    let operator = match expression.get("operator") {
        Some(Value::String(operator)) => match operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(object_error(
                    format!("{field}.operator"),
                    format!("{other:?} is not a valid selector operator (must be In, NotIn, Exists or DoesNotExist)"),
                ))
            }
        },
        None | Some(Value::Null) => {
            return Err(object_error(format!("{field}.operator"), "must be specified".to_string()))
        }
        Some(other) => {
            return Err(object_error(
                format!("{field}.operator"),
                format!("must be a string, not {}", json_type_name(other)),
            ))
        }
    };
    let values = match expression.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => {
            let mut strings = Vec::with_capacity(values.len());
            for (index, value) in values.iter().enumerate() {
                let Some(value) = value.as_str() else {
                    return Err(object_error(
                        format!("{field}.values[{index}]"),
                        format!("must be a string, not {}", json_type_name(value)),
                    ));
                };
                strings.push(value.to_string());
            }
            strings
        }
        Some(other) => {
            return Err(object_error(
                format!("{field}.values"),
                format!("must be an array, not {}", json_type_name(other)),
            ))
        }
    };
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            return Err(object_error(
                format!("{field}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'".to_string(),
            ))
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            return Err(object_error(
                format!("{field}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'".to_string(),
            ))
        }
        _ => {}
    }
    Requirement::new(key, operator, values).map_err(|error| object_error(field.to_string(), error.to_string()))
}

/// The tokens of the string syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// A sequence of special symbols that is no operator (cannot happen with the current symbol
    /// set, kept as upstream's lexer has it).
    Error,
    EndOfString,
    ClosedParenthesis,
    Comma,
    /// `!`
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenParenthesis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: TokenKind,
    /// The text of the token; empty at the end of the string.
    literal: String,
}

fn keyword_or_symbol(text: &str) -> Option<TokenKind> {
    Some(match text {
        ")" => TokenKind::ClosedParenthesis,
        "," => TokenKind::Comma,
        "!" => TokenKind::DoesNotExist,
        "==" => TokenKind::DoubleEquals,
        "=" => TokenKind::Equals,
        ">" => TokenKind::GreaterThan,
        "in" => TokenKind::In,
        "<" => TokenKind::LessThan,
        "!=" => TokenKind::NotEquals,
        "notin" => TokenKind::NotIn,
        "(" => TokenKind::OpenParenthesis,
        _ => return None,
    })
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(byte: u8) -> bool {
    matches!(byte, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the string syntax into tokens. Every special symbol and whitespace is ASCII, so
/// cutting at them keeps multi-byte characters whole (they end up in identifiers, which
/// validation then rejects).
struct Lexer<'a> {
    input: &'a str,
    position: usize,
}

impl<'a> Lexer<'a> {
    fn new(input: &'a str) -> Lexer<'a> {
        Lexer { input, position: 0 }
    }

    /// All tokens, ending with exactly one `EndOfString`.
    fn tokens(mut self) -> Vec<Token> {
        let mut tokens = Vec::new();
        loop {
            let token = self.next_token();
            let done = token.kind == TokenKind::EndOfString;
            tokens.push(token);
            if done {
                return tokens;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.position).copied()
    }

    fn next_token(&mut self) -> Token {
        while self.peek().is_some_and(is_whitespace) {
            self.position += 1;
        }
        match self.peek() {
            None => Token { kind: TokenKind::EndOfString, literal: String::new() },
            Some(byte) if is_special_symbol(byte) => self.scan_special_symbol(),
            Some(_) => self.scan_identifier_or_keyword(),
        }
    }

    fn scan_identifier_or_keyword(&mut self) -> Token {
        let start = self.position;
        while self.peek().is_some_and(|byte| !is_special_symbol(byte) && !is_whitespace(byte)) {
            self.position += 1;
        }
        let literal = &self.input[start..self.position];
        let kind = keyword_or_symbol(literal).unwrap_or(TokenKind::Identifier);
        Token { kind, literal: literal.to_string() }
    }

    /// The longest operator made of the special symbols here (`!=` rather than `!`).
    fn scan_special_symbol(&mut self) -> Token {
        let start = self.position;
        let mut longest: Option<(TokenKind, usize)> = None;
        while let Some(byte) = self.peek() {
            if !is_special_symbol(byte) {
                break;
            }
            let candidate = &self.input[start..=self.position];
            if let Some(kind) = keyword_or_symbol(candidate) {
                longest = Some((kind, self.position + 1));
            } else if longest.is_some() {
                break;
            }
            self.position += 1;
        }
        match longest {
            Some((kind, end)) => {
                self.position = end;
                Token { kind, literal: self.input[start..end].to_string() }
            }
            None => Token {
                kind: TokenKind::Error,
                literal: format!("error expected: keyword found '{}'", &self.input[start..self.position]),
            },
        }
    }
}

/// Whether `in` and `notin` are keywords (where an operator is expected) or plain identifiers
/// (everywhere else: `in=notin` and `x in (in)` are valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParserContext {
    KeyAndOperator,
    Values,
}

/// The recursive-descent parser of upstream's `labels.Parse`; its error messages are upstream's.
struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn token_at(&self, position: usize, context: ParserContext) -> (TokenKind, String) {
        // The last token is always `EndOfString`; reading past it keeps returning it.
        let token = &self.tokens[position.min(self.tokens.len() - 1)];
        let kind = match (context, token.kind) {
            (ParserContext::Values, TokenKind::In | TokenKind::NotIn) => TokenKind::Identifier,
            (_, kind) => kind,
        };
        (kind, token.literal.clone())
    }

    fn lookahead(&self, context: ParserContext) -> (TokenKind, String) {
        self.token_at(self.position, context)
    }

    fn consume(&mut self, context: ParserContext) -> (TokenKind, String) {
        let token = self.token_at(self.position, context);
        self.position += 1;
        token
    }

    fn parse_selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (kind, literal) = self.lookahead(ParserContext::Values);
            match kind {
                TokenKind::Identifier | TokenKind::DoesNotExist => {
                    let requirement =
                        self.parse_requirement().map_err(|reason| format!("unable to parse requirement: {reason}"))?;
                    requirements.push(requirement);
                    let (kind, literal) = self.consume(ParserContext::Values);
                    match kind {
                        TokenKind::EndOfString => return Ok(requirements),
                        TokenKind::Comma => {
                            let (next, next_literal) = self.lookahead(ParserContext::Values);
                            if next != TokenKind::Identifier && next != TokenKind::DoesNotExist {
                                return Err(format!("found '{next_literal}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{literal}', expected: ',' or 'end of string'")),
                    }
                }
                TokenKind::EndOfString => return Ok(requirements),
                _ => return Err(format!("found '{literal}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = inferred {
            return Requirement::new(key, operator, Vec::new()).map_err(|e| e.to_string());
        }
        let operator = self.parse_operator()?;
        let mut values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        values.sort();
        values.dedup();
        Requirement::new(key, operator, values).map_err(|e| e.to_string())
    }

    /// Reads `[!] KEY`; when nothing follows the key (end or comma) the operator is `exists`
    /// (or `!` when the key was preceded by one).
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut kind, mut literal) = self.consume(ParserContext::Values);
        if kind == TokenKind::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (kind, literal) = self.consume(ParserContext::Values);
        }
        if kind != TokenKind::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        validate_label_key(&literal).map_err(|e| e.to_string())?;
        let (next, _) = self.lookahead(ParserContext::Values);
        if matches!(next, TokenKind::EndOfString | TokenKind::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (kind, literal) = self.consume(ParserContext::KeyAndOperator);
        Ok(match kind {
            TokenKind::In => Operator::In,
            TokenKind::Equals => Operator::Equals,
            TokenKind::DoubleEquals => Operator::DoubleEquals,
            TokenKind::GreaterThan => Operator::GreaterThan,
            TokenKind::LessThan => Operator::LessThan,
            TokenKind::NotIn => Operator::NotIn,
            TokenKind::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// Reads `( VALUE, ... )`; `()` is the single empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (kind, literal) = self.consume(ParserContext::Values);
        if kind != TokenKind::OpenParenthesis {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (kind, literal) = self.lookahead(ParserContext::Values);
        match kind {
            TokenKind::Identifier | TokenKind::Comma => {
                let values = self.parse_identifiers_list()?;
                let (kind, _) = self.consume(ParserContext::Values);
                if kind != TokenKind::ClosedParenthesis {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            TokenKind::ClosedParenthesis => {
                self.consume(ParserContext::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{literal}', expected: ',', ')' or identifier")),
        }
    }

    /// Reads a comma-separated list of possibly empty values, up to (not including) the `)`.
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (kind, literal) = self.consume(ParserContext::Values);
            match kind {
                TokenKind::Identifier => {
                    values.push(literal);
                    let (next, next_literal) = self.lookahead(ParserContext::Values);
                    match next {
                        TokenKind::Comma => continue,
                        TokenKind::ClosedParenthesis => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                TokenKind::Comma => {
                    if values.is_empty() {
                        values.push(String::new()); // "(," starts with an empty value
                    }
                    let (next, _) = self.lookahead(ParserContext::Values);
                    if next == TokenKind::ClosedParenthesis {
                        values.push(String::new()); // ",)" ends with one
                        return Ok(values);
                    }
                    if next == TokenKind::Comma {
                        self.consume(ParserContext::Values);
                        values.push(String::new()); // ",," has one in between
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// Reads the single value after `=`, `==`, `!=`, `>` or `<`; nothing (end or comma) is the
    /// empty value.
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (kind, _) = self.lookahead(ParserContext::Values);
        if matches!(kind, TokenKind::EndOfString | TokenKind::Comma) {
            return Ok(vec![String::new()]);
        }
        let (kind, literal) = self.consume(ParserContext::Values);
        if kind == TokenKind::Identifier {
            Ok(vec![literal])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs.iter().map(|(key, value)| (key.to_string(), Value::String(value.to_string()))).collect()
    }

    fn requirement(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, operator, values.iter().map(|v| v.to_string()).collect())
            .unwrap_or_else(|error| panic!("{key} {operator} {values:?}: {error}"))
    }

    fn parse(selector: &str) -> Selector {
        Selector::parse(selector).unwrap_or_else(|error| panic!("{selector:?}: {error}"))
    }

    fn lex(input: &str) -> Vec<TokenKind> {
        Lexer::new(input).tokens().into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn good_strings_render_canonically() {
        let cases = [
            ("x=a,y=b,z=c", "x=a,y=b,z=c"),
            ("", ""),
            ("x!=a,y=b", "x!=a,y=b"),
            ("x=", "x="),
            ("x= ", "x="),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("!x", "!x"),
            ("x>1", "x>1"),
            ("x>1,z<5", "x>1,z<5"),
            ("x==a", "x==a"),
            ("x in(b,a) , y notin ( c )", "x in (a,b),y notin (c)"),
            ("b,!a", "!a,b"),
        ];
        for (selector, canonical) in cases {
            assert_eq!(parse(selector).to_string(), canonical, "{selector:?}");
        }
    }

    #[test]
    fn bad_strings_are_rejected() {
        for selector in [
            "x=a||y=b",
            "x==a==b",
            "!x=a",
            "x<a",
            "x,,y",
            ",x,y",
            "x nott in (y)",
            "a in (xyz),",
            "a in (xyz)b notin ()",
            "a in (xyz abc)",
            "a notin(",
            "a (",
            "(",
            "a in (",
            "a in (b",
            "a in (b,",
            "a in b",
            "!",
            "!!a",
            "a=b c",
            "x>",
            "x>-1",
            "x>1.5",
            "x<2,",
            "=a",
            "a=(",
            "A_=b",
            "a=b_",
            "a/b/c",
            "a=ü",
            "x in (a,b=c)",
        ] {
            assert!(
                Selector::parse(selector).is_err(),
                "{selector:?} should be rejected, got {:?}",
                Selector::parse(selector)
            );
        }
    }

    #[test]
    fn parse_errors_use_upstream_wording() {
        let error = Selector::parse("a in (").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid label selector \"a in (\": unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            Selector::parse("x=a b").unwrap_err().to_string(),
            "invalid label selector \"x=a b\": found 'b', expected: ',' or 'end of string'"
        );
        // "a||y" is one identifier, and not a valid label value.
        let error = Selector::parse("x=a||y=b").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid label selector \"x=a||y=b\": unable to parse requirement: invalid value \"a||y\" for label \"x\""),
            "{error}"
        );
        assert_eq!(
            Selector::parse("x,,y").unwrap_err(),
            LabelSelectorError::Parse {
                selector: "x,,y".to_string(),
                reason: "found ',', expected: identifier after ','".to_string(),
            }
        );
        assert_eq!(
            Selector::parse("(").unwrap_err().to_string(),
            "invalid label selector \"(\": found '(', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            Selector::parse("x nott in (y)").unwrap_err().to_string(),
            "invalid label selector \"x nott in (y)\": unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            Selector::parse("a in b").unwrap_err().to_string(),
            "invalid label selector \"a in b\": unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            Selector::parse("a in (xyz abc)").unwrap_err().to_string(),
            "invalid label selector \"a in (xyz abc)\": unable to parse requirement: found 'abc', expected: ',' or ')'"
        );
        assert_eq!(
            Selector::parse("a in (b,").unwrap_err().to_string(),
            "invalid label selector \"a in (b,\": unable to parse requirement: found '', expected: ',', or identifier"
        );
        assert_eq!(
            Selector::parse("a=(").unwrap_err().to_string(),
            "invalid label selector \"a=(\": unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            Selector::parse("x<a").unwrap_err().to_string(),
            "invalid label selector \"x<a\": unable to parse requirement: invalid values [\"a\"] for label \"x\" with operator 'lt': for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn parse_errors_name_invalid_keys_and_values() {
        let error = Selector::parse("-a=b").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid label selector \"-a=b\": unable to parse requirement: invalid label key \"-a\": name part must consist of alphanumeric characters"),
            "{error}"
        );
        let error = Selector::parse("a=b-").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid label selector \"a=b-\": unable to parse requirement: invalid value \"b-\" for label \"a\": a valid label must be an empty string"),
            "{error}"
        );
        let long_key = format!("{}=x", "a".repeat(254));
        assert!(Selector::parse(&long_key).is_err());
        let long_value = format!("a={}", "b".repeat(64));
        assert!(Selector::parse(&long_value).is_err());
    }

    #[test]
    fn parse_builds_upstream_requirements() {
        let cases: Vec<(&str, Vec<Requirement>)> = vec![
            ("", vec![]),
            ("\rx", vec![requirement("x", Operator::Exists, &[])]),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                vec![requirement("this-is-a-dns.domain.com/key-with-dash", Operator::Exists, &[])],
            ),
            (
                "this-is-another-dns.domain.com/key-with-dash in (so,what)",
                vec![requirement("this-is-another-dns.domain.com/key-with-dash", Operator::In, &["so", "what"])],
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                vec![requirement("0.1.2.domain/99", Operator::NotIn, &["10.10.100.1", "tick.tack.clock"])],
            ),
            ("foo  in\t (abc)", vec![requirement("foo", Operator::In, &["abc"])]),
            ("x notin\n (abc)", vec![requirement("x", Operator::NotIn, &["abc"])]),
            ("x  notin\t\t\t(abc,def)", vec![requirement("x", Operator::NotIn, &["abc", "def"])]),
            ("x in (abc,def)", vec![requirement("x", Operator::In, &["abc", "def"])]),
            ("x in (abc,)", vec![requirement("x", Operator::In, &["", "abc"])]),
            ("x in ()", vec![requirement("x", Operator::In, &[""])]),
            (
                "x notin (abc,,def),bar,z in (),w",
                vec![
                    requirement("bar", Operator::Exists, &[]),
                    requirement("w", Operator::Exists, &[]),
                    requirement("x", Operator::NotIn, &["", "abc", "def"]),
                    requirement("z", Operator::In, &[""]),
                ],
            ),
            ("x,y in (a)", vec![requirement("x", Operator::Exists, &[]), requirement("y", Operator::In, &["a"])]),
            ("x=a", vec![requirement("x", Operator::Equals, &["a"])]),
            ("x>1", vec![requirement("x", Operator::GreaterThan, &["1"])]),
            ("x<7", vec![requirement("x", Operator::LessThan, &["7"])]),
            (
                "x=a,y!=b",
                vec![requirement("x", Operator::Equals, &["a"]), requirement("y", Operator::NotEquals, &["b"])],
            ),
            (
                "x=a,y!=b,z in (h,i,j)",
                vec![
                    requirement("x", Operator::Equals, &["a"]),
                    requirement("y", Operator::NotEquals, &["b"]),
                    requirement("z", Operator::In, &["h", "i", "j"]),
                ],
            ),
            ("x notin ( )", vec![requirement("x", Operator::NotIn, &[""])]),
            ("x notin (, a)", vec![requirement("x", Operator::NotIn, &["", "a"])]),
            ("a ", vec![requirement("a", Operator::Exists, &[])]),
            ("a in (x,y,notin, z,in)", vec![requirement("a", Operator::In, &["in", "notin", "x", "y", "z"])]),
            ("a in (b,b,a)", vec![requirement("a", Operator::In, &["a", "b"])]),
            ("x==a", vec![requirement("x", Operator::DoubleEquals, &["a"])]),
            ("!x", vec![requirement("x", Operator::DoesNotExist, &[])]),
            ("! x", vec![requirement("x", Operator::DoesNotExist, &[])]),
            ("in=notin", vec![requirement("in", Operator::Equals, &["notin"])]),
            (
                " a = b , c != d ",
                vec![requirement("a", Operator::Equals, &["b"]), requirement("c", Operator::NotEquals, &["d"])],
            ),
            ("x in (,,,)", vec![requirement("x", Operator::In, &[""])]),
        ];
        for (selector, expected) in cases {
            assert_eq!(parse(selector).requirements(), expected.as_slice(), "{selector:?}");
        }
    }

    #[test]
    fn parse_is_deterministic() {
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
    }

    #[test]
    fn requirements_on_the_same_key_keep_their_order() {
        assert_eq!(parse("z!=a,z").to_string(), "z!=a,z");
        assert_eq!(parse("z,z!=a").to_string(), "z,z!=a");
    }

    #[test]
    fn selector_matches_upstream_cases() {
        type LabelPairs<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, LabelPairs, bool)] = &[
            ("", &[("x", "y")], true),
            ("x=y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x", &[("x", "z")], true),
            ("!x", &[("y", "z")], true),
            ("x>1", &[("x", "2")], true),
            ("x<1", &[("x", "0")], true),
            ("x<1", &[("x", "-5")], true),
            ("x=z", &[], false),
            ("x=y", &[("x", "z")], false),
            ("x=y,z=w", &[("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("x", &[("y", "z")], false),
            ("!x", &[("x", "z")], false),
            ("x>1", &[("x", "0")], false),
            ("x<1", &[("x", "2")], false),
            ("x>1", &[("x", "v2")], false),
            ("x>1", &[], false),
            ("x<1", &[], false),
            ("x>1", &[("x", "1")], false),
            ("x notin (a)", &[], true),
            ("x!=a", &[], true),
            ("x in (a,b)", &[("x", "b")], true),
            ("x in (a,b)", &[("x", "c")], false),
            ("x notin (a,b)", &[("x", "b")], false),
            ("x in ()", &[("x", "")], true),
            ("x in ()", &[("y", "")], false),
            ("x=", &[("x", "")], true),
            ("x=", &[], false),
            ("foo=bar", &[("foo", "bar"), ("baz", "blah")], true),
            ("baz=blah", &[("foo", "bar"), ("baz", "blah")], true),
            ("foo=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")], true),
            ("foo=blah", &[("foo", "bar"), ("baz", "blah")], false),
            ("baz=bar", &[("foo", "bar"), ("baz", "blah")], false),
            ("foo=bar,foobar=bar,baz=blah", &[("foo", "bar"), ("baz", "blah")], false),
        ];
        for (selector, label_pairs, expected) in cases {
            assert_eq!(
                parse(selector).matches(&labels(label_pairs)),
                *expected,
                "{selector:?} against {label_pairs:?}"
            );
        }
    }

    #[test]
    fn requirement_selectors_match_upstream_cases() {
        type LabelPairs<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(LabelPairs, Vec<Requirement>, bool)> = vec![
            (
                vec![("x", "foo"), ("y", "baz")],
                vec![requirement("x", Operator::In, &["foo"]), requirement("y", Operator::NotIn, &["alpha"])],
                true,
            ),
            (
                vec![("x", "foo"), ("y", "baz")],
                vec![requirement("x", Operator::In, &["foo"]), requirement("y", Operator::In, &["alpha"])],
                false,
            ),
            (
                vec![("y", "")],
                vec![requirement("x", Operator::NotIn, &[""]), requirement("y", Operator::Exists, &[])],
                true,
            ),
            (
                vec![("y", "")],
                vec![requirement("x", Operator::DoesNotExist, &[]), requirement("y", Operator::Exists, &[])],
                true,
            ),
            (
                vec![("y", "")],
                vec![requirement("x", Operator::NotIn, &[""]), requirement("y", Operator::DoesNotExist, &[])],
                false,
            ),
            (vec![("y", "baz")], vec![requirement("x", Operator::In, &[""])], false),
            (vec![("z", "2")], vec![requirement("z", Operator::GreaterThan, &["1"])], true),
            (vec![("z", "v2")], vec![requirement("z", Operator::GreaterThan, &["1"])], false),
        ];
        for (label_pairs, requirements, expected) in cases {
            let selector = Selector::from_requirements(requirements);
            assert_eq!(selector.matches(&labels(&label_pairs)), expected, "{selector} against {label_pairs:?}");
        }
    }

    #[test]
    fn requirement_constructor_validates_like_upstream() {
        let cases: Vec<(String, Operator, Vec<&str>, bool)> = vec![
            ("x".into(), Operator::In, vec![], false),
            ("x".into(), Operator::NotIn, vec![], false),
            ("x".into(), Operator::In, vec!["foo"], true),
            ("x".into(), Operator::NotIn, vec!["foo"], true),
            ("x".into(), Operator::Exists, vec![], true),
            ("x".into(), Operator::DoesNotExist, vec![], true),
            ("x".into(), Operator::Exists, vec!["a"], false),
            ("x".into(), Operator::DoesNotExist, vec!["a"], false),
            ("1foo".into(), Operator::In, vec!["bar"], true),
            ("1234".into(), Operator::In, vec!["bar"], true),
            ("y".into(), Operator::GreaterThan, vec!["1"], true),
            ("z".into(), Operator::LessThan, vec!["6"], true),
            ("foo".into(), Operator::GreaterThan, vec!["bar"], false),
            ("barz".into(), Operator::LessThan, vec!["blah"], false),
            ("y".into(), Operator::GreaterThan, vec!["1", "2"], false),
            ("y".into(), Operator::LessThan, vec![], false),
            ("x".into(), Operator::Equals, vec![], false),
            ("x".into(), Operator::Equals, vec!["a", "b"], false),
            ("x".into(), Operator::NotEquals, vec![""], true),
            ("x".into(), Operator::In, vec!["a", "-b"], false),
            ("a".repeat(254), Operator::Exists, vec![], false),
            ("".into(), Operator::Exists, vec![], false),
        ];
        for (key, operator, values, ok) in cases {
            let result = Requirement::new(key.clone(), operator, values.iter().map(|v| v.to_string()).collect());
            assert_eq!(result.is_ok(), ok, "{key:?} {operator} {values:?}: {result:?}");
        }
        assert_eq!(
            Requirement::new("x", Operator::In, vec![]).unwrap_err().to_string(),
            "invalid values [] for label \"x\" with operator 'in': for 'in', 'notin' operators, values set can't be empty"
        );
    }

    #[test]
    fn requirements_render_like_upstream() {
        let cases: Vec<(Vec<Requirement>, &str)> = vec![
            (
                vec![
                    requirement("x", Operator::In, &["abc", "def"]),
                    requirement("y", Operator::NotIn, &["jkl"]),
                    requirement("z", Operator::Exists, &[]),
                ],
                "x in (abc,def),y notin (jkl),z",
            ),
            (
                vec![
                    requirement("x", Operator::NotIn, &["abc", "def"]),
                    requirement("y", Operator::NotEquals, &["jkl"]),
                    requirement("z", Operator::DoesNotExist, &[]),
                ],
                "x notin (abc,def),y!=jkl,!z",
            ),
            (
                vec![
                    requirement("x", Operator::NotIn, &["abc"]),
                    requirement("y", Operator::In, &["jkl", "mno"]),
                    requirement("z", Operator::NotIn, &[""]),
                ],
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            (
                vec![
                    requirement("x", Operator::Equals, &["abc"]),
                    requirement("y", Operator::DoubleEquals, &["jkl"]),
                    requirement("z", Operator::NotEquals, &["a"]),
                    requirement("z", Operator::Exists, &[]),
                ],
                "x=abc,y==jkl,z!=a,z",
            ),
            (
                vec![
                    requirement("x", Operator::GreaterThan, &["2"]),
                    requirement("y", Operator::LessThan, &["8"]),
                    requirement("z", Operator::Exists, &[]),
                ],
                "x>2,y<8,z",
            ),
            (vec![requirement("x", Operator::In, &["b", "a", ""])], "x in (,a,b)"),
        ];
        for (requirements, expected) in cases {
            let selector = Selector::from_requirements(requirements);
            assert_eq!(selector.to_string(), expected);
            // The rendering parses back to the same selector.
            assert_eq!(parse(expected).to_string(), expected);
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        for selector in [
            "a in (,x,y),b notin (z),!c,d,e=f,g==h,i!=j,k>3,l<0",
            "example.com/key in (v1,v2),other.io/x!=",
            "x in (in,notin),notin=in",
            "",
        ] {
            let parsed = parse(selector);
            assert_eq!(parse(&parsed.to_string()), parsed, "{selector:?}");
        }
        let structured = Selector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a", ""]},
                {"key": "canary", "operator": "DoesNotExist"},
            ]
        }))
        .unwrap()
        .unwrap();
        let rendered = structured.to_string();
        assert_eq!(rendered, "app=web,!canary,tier in (,a,b)");
        assert_eq!(parse(&rendered).to_string(), rendered);
    }

    #[test]
    fn lexer_recognises_single_tokens() {
        let cases = [
            ("", TokenKind::EndOfString),
            (",", TokenKind::Comma),
            ("notin", TokenKind::NotIn),
            ("in", TokenKind::In),
            ("=", TokenKind::Equals),
            ("==", TokenKind::DoubleEquals),
            (">", TokenKind::GreaterThan),
            ("<", TokenKind::LessThan),
            ("!", TokenKind::DoesNotExist),
            ("!=", TokenKind::NotEquals),
            ("(", TokenKind::OpenParenthesis),
            (")", TokenKind::ClosedParenthesis),
            ("~", TokenKind::Identifier),
            ("||", TokenKind::Identifier),
        ];
        for (input, kind) in cases {
            let tokens = Lexer::new(input).tokens();
            assert_eq!(tokens[0].kind, kind, "{input:?}");
            assert_eq!(tokens[0].literal, input, "{input:?}");
        }
    }

    #[test]
    fn lexer_splits_sequences() {
        use TokenKind::*;
        let cases: Vec<(&str, Vec<TokenKind>)> = vec![
            ("key in ( value )", vec![Identifier, In, OpenParenthesis, Identifier, ClosedParenthesis, EndOfString]),
            (
                "key notin ( value )",
                vec![Identifier, NotIn, OpenParenthesis, Identifier, ClosedParenthesis, EndOfString],
            ),
            (
                "key in ( value1, value2 )",
                vec![Identifier, In, OpenParenthesis, Identifier, Comma, Identifier, ClosedParenthesis, EndOfString],
            ),
            ("key", vec![Identifier, EndOfString]),
            ("!key", vec![DoesNotExist, Identifier, EndOfString]),
            ("()", vec![OpenParenthesis, ClosedParenthesis, EndOfString]),
            ("x in (),y", vec![Identifier, In, OpenParenthesis, ClosedParenthesis, Comma, Identifier, EndOfString]),
            (
                "== != (), = notin",
                vec![DoubleEquals, NotEquals, OpenParenthesis, ClosedParenthesis, Comma, Equals, NotIn, EndOfString],
            ),
            ("key>2", vec![Identifier, GreaterThan, Identifier, EndOfString]),
            ("key<1", vec![Identifier, LessThan, Identifier, EndOfString]),
            ("===", vec![DoubleEquals, Equals, EndOfString]),
            ("=!", vec![Equals, DoesNotExist, EndOfString]),
            ("a!=b", vec![Identifier, NotEquals, Identifier, EndOfString]),
            ("ünï", vec![Identifier, EndOfString]),
        ];
        for (input, expected) in cases {
            assert_eq!(lex(input), expected, "{input:?}");
        }
    }

    #[test]
    fn everything_matches_everything() {
        let everything = Selector::everything();
        assert!(everything.is_empty());
        assert!(everything.matches(&labels(&[("x", "y")])));
        assert!(everything.matches(&Map::new()));
        assert!(everything.matches_object(&json!({})));
        assert_eq!(everything.to_string(), "");
        assert_eq!(parse(""), everything);
        assert_eq!("".parse::<Selector>().unwrap(), everything);
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = json!({
            "metadata": {"name": "p", "labels": {"app": "web", "tier": "front"}},
        });
        assert!(parse("app=web").matches_object(&pod));
        assert!(parse("app=web,tier in (front,back)").matches_object(&pod));
        assert!(!parse("app=db").matches_object(&pod));
        assert!(parse("!canary").matches_object(&pod));
        let unlabelled = json!({"metadata": {"name": "p"}});
        assert!(parse("!app").matches_object(&unlabelled));
        assert!(parse("app!=web").matches_object(&unlabelled));
        assert!(!parse("app").matches_object(&unlabelled));
        assert!(parse("").matches_object(&json!(null)));
        assert!(!parse("app").matches_object(&json!({"metadata": {"labels": null}})));
    }

    #[test]
    fn non_string_label_values_count_as_absent() {
        let weird: Map<String, Value> = json!({"n": 5, "b": true}).as_object().unwrap().clone();
        assert!(!parse("n").matches(&weird));
        assert!(parse("!b").matches(&weird));
    }

    #[test]
    fn matches_lookup_works_with_any_map() {
        let mut labels = std::collections::BTreeMap::new();
        labels.insert("app".to_string(), "web".to_string());
        let selector = parse("app in (web,api),!canary");
        assert!(selector.matches_lookup(|key| labels.get(key).map(String::as_str)));
        labels.insert("canary".to_string(), "true".to_string());
        assert!(!selector.matches_lookup(|key| labels.get(key).map(String::as_str)));
    }

    #[test]
    fn from_map_is_equality_on_every_pair() {
        let service_selector = labels(&[("app", "web"), ("tier", "front")]);
        let selector = Selector::from_map(&service_selector).unwrap();
        assert_eq!(selector.to_string(), "app=web,tier=front");
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "back")])));
        // An empty map is the empty selector; Services give it another meaning (see the docs).
        let empty = Selector::from_map(&Map::new()).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn from_map_validates_keys_and_values() {
        assert!(matches!(Selector::from_map(&labels(&[("bad key", "x")])), Err(LabelSelectorError::InvalidKey { .. })));
        assert!(matches!(
            Selector::from_map(&labels(&[("app", "bad value")])),
            Err(LabelSelectorError::InvalidValue { .. })
        ));
        let numeric = json!({"app": 1}).as_object().unwrap().clone();
        assert_eq!(
            Selector::from_map(&numeric).unwrap_err().to_string(),
            "invalid value \"1\" for label \"app\": must be a string"
        );
        assert!(Selector::from_map(&labels(&[("app", "")])).is_ok());
    }

    #[test]
    fn null_label_selector_matches_nothing_and_empty_matches_everything() {
        assert_eq!(Selector::from_label_selector(&Value::Null).unwrap(), None);
        let empty = Selector::from_label_selector(&json!({})).unwrap().unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(&[("a", "b")])));
        let also_empty =
            Selector::from_label_selector(&json!({"matchLabels": {}, "matchExpressions": []})).unwrap().unwrap();
        assert!(also_empty.is_empty());
        let nulls =
            Selector::from_label_selector(&json!({"matchLabels": null, "matchExpressions": null})).unwrap().unwrap();
        assert!(nulls.is_empty());
    }

    #[test]
    fn from_label_selector_converts_labels_and_expressions() {
        let selector = Selector::from_label_selector(&json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "track", "operator": "NotIn", "values": ["canary"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
            ],
        }))
        .unwrap()
        .unwrap();
        assert_eq!(selector.to_string(), "app=web,env in (prod,staging),!legacy,team,tier=front,track notin (canary)");
        let pod = |pairs: &[(&str, &str)]| labels(pairs);
        assert!(selector.matches(&pod(&[("app", "web"), ("tier", "front"), ("env", "prod"), ("team", "a"),])));
        assert!(!selector.matches(&pod(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod"),
            ("team", "a"),
            ("legacy", "1"),
        ])));
        assert!(!selector.matches(&pod(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod"),
            ("team", "a"),
            ("track", "canary"),
        ])));
        assert!(!selector.matches(&pod(&[("app", "web"), ("tier", "front"), ("team", "a")])));
    }

    #[test]
    fn from_label_selector_rejects_invalid_selectors() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "invalid label selector: matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}),
                "invalid label selector: matchExpressions[0].values: must be specified when `operator` is 'In' or 'NotIn'",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "invalid label selector: matchExpressions[0].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            (
                json!({"matchExpressions": [
                    {"key": "a", "operator": "Exists"},
                    {"key": "b", "operator": "DoesNotExist", "values": ["x"]},
                ]}),
                "invalid label selector: matchExpressions[1].values: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                "invalid label selector: matchExpressions[0].operator: \"Gt\" is not a valid selector operator (must be In, NotIn, Exists or DoesNotExist)",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["1"]}]}),
                "invalid label selector: matchExpressions[0].operator: \"in\" is not a valid selector operator (must be In, NotIn, Exists or DoesNotExist)",
            ),
            (
                json!({"matchExpressions": [{"operator": "Exists"}]}),
                "invalid label selector: matchExpressions[0].key: must be specified",
            ),
            (
                json!({"matchExpressions": [{"key": "a"}]}),
                "invalid label selector: matchExpressions[0].operator: must be specified",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "invalid label selector: matchExpressions[0].values[0]: must be a string, not a number",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}),
                "invalid label selector: matchExpressions[0].values: must be an array, not a string",
            ),
            (
                json!({"matchExpressions": {"key": "a"}}),
                "invalid label selector: matchExpressions: must be an array, not an object",
            ),
            (
                json!({"matchExpressions": ["a"]}),
                "invalid label selector: matchExpressions[0]: must be an object, not a string",
            ),
            (
                json!({"matchLabels": {"app": 3}}),
                "invalid label selector: matchLabels.app: must be a string, not a number",
            ),
            (
                json!({"matchLabels": ["app"]}),
                "invalid label selector: matchLabels: must be an object, not an array",
            ),
            (
                json!("app=web"),
                "invalid label selector: labelSelector: must be an object, not a string",
            ),
        ];
        for (label_selector, expected) in cases {
            let error = Selector::from_label_selector(&label_selector).unwrap_err();
            assert_eq!(error.to_string(), expected, "{label_selector}");
        }
        let error = Selector::from_label_selector(&json!({"matchLabels": {"bad key": "x"}})).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid label selector: matchLabels.bad key: invalid label key \"bad key\": name part"),
            "{error}"
        );
        let error = Selector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]
        }))
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("invalid label selector: matchExpressions[0]: invalid value \"not ok\" for label \"a\""),
            "{error}"
        );
    }

    #[test]
    fn structured_in_keeps_values_and_matches() {
        let selector = Selector::from_label_selector(&json!({
            "matchExpressions": [{"key": "a", "operator": "In", "values": ["y", "x", "y"]}]
        }))
        .unwrap()
        .unwrap();
        assert_eq!(selector.requirements()[0].values(), ["y", "x", "y"]);
        assert_eq!(selector.to_string(), "a in (x,y,y)");
        assert!(selector.matches(&labels(&[("a", "x")])));
        assert_eq!(parse(&selector.to_string()).requirements()[0].values(), ["x", "y"]);
    }

    #[test]
    fn requires_exact_match_follows_upstream() {
        assert_eq!(parse("a=b").requires_exact_match("a"), Some("b"));
        assert_eq!(parse("a==b").requires_exact_match("a"), Some("b"));
        assert_eq!(parse("a in (b)").requires_exact_match("a"), Some("b"));
        assert_eq!(parse("a=").requires_exact_match("a"), Some(""));
        assert_eq!(parse("a in (b,c)").requires_exact_match("a"), None);
        assert_eq!(parse("a!=b").requires_exact_match("a"), None);
        assert_eq!(parse("a").requires_exact_match("a"), None);
        assert_eq!(parse("x=y").requires_exact_match("a"), None);
        assert_eq!(parse("").requires_exact_match("a"), None);
        // Only the first requirement on the key counts.
        assert_eq!(parse("a,a=b").requires_exact_match("a"), None);
    }

    #[test]
    fn with_adds_a_requirement_in_key_order() {
        let selector = Selector::everything().with(requirement("key", Operator::In, &["value"])).with(requirement(
            "a",
            Operator::Equals,
            &["b"],
        ));
        assert_eq!(selector.to_string(), "a=b,key in (value)");
    }

    #[test]
    fn operator_names_are_upstreams() {
        let names: Vec<&str> = [
            Operator::Equals,
            Operator::DoubleEquals,
            Operator::NotEquals,
            Operator::In,
            Operator::NotIn,
            Operator::Exists,
            Operator::DoesNotExist,
            Operator::GreaterThan,
            Operator::LessThan,
        ]
        .into_iter()
        .map(Operator::as_str)
        .collect();
        assert_eq!(names, ["=", "==", "!=", "in", "notin", "exists", "!", "gt", "lt"]);
    }

    #[test]
    fn integer_comparisons_use_i64() {
        assert!(parse("x>9223372036854775806").matches(&labels(&[("x", "9223372036854775807")])));
        assert!(!parse("x>1").matches(&labels(&[("x", "9223372036854775808")])));
        assert!(parse("x<10").matches(&labels(&[("x", "09")])));
        assert!(!parse("x<10").matches(&labels(&[("x", " 9")])));
    }
}
