//! Field selectors: the `fieldSelector=` parameter of list and watch requests
//! (`metadata.name=web,spec.nodeName!=node-1`), and reading the fields they name from objects.
//!
//! A [`FieldSelector`] is a list of `field=value` / `field!=value` requirements that must all
//! hold; the empty selector matches everything. The syntax and its escaping follow
//! `k8s.io/apimachinery/pkg/fields/selector.go`: terms are separated by commas, `==` means `=`,
//! nothing is trimmed, and in values `\,`, `\=` and `\\` stand for `,`, `=` and `\` (an unescaped
//! `,` or `=` in a value, or any other escape, is an error). Field names are not checked here:
//! which fields a resource supports is the API server's business, and
//! [`FieldSelector::field_names`] is there to let it reject the others with a clear message.
//!
//! A field that an object lacks compares as the empty string, as in Kubernetes:
//! `spec.nodeName=` selects unscheduled pods.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Why a field selector was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=`.
    #[error(
        "invalid field selector {selector:?}: can't understand {term:?} (expected <field>=<value>, <field>==<value> or <field>!=<value>)"
    )]
    InvalidTerm { selector: String, term: String },
    /// A value contains a backslash that does not start `\\`, `\,` or `\=`.
    #[error(
        "invalid field selector value {value:?}: invalid escape sequence {sequence:?} (only \\\\, \\, and \\= are allowed)"
    )]
    InvalidEscapeSequence { value: String, sequence: String },
    /// A value contains a `,` or `=` that is not escaped with a backslash.
    #[error("invalid field selector value {value:?}: unescaped '{character}' (write it as '\\{character}')")]
    UnescapedCharacter { value: String, character: char },
}

/// How a field is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

impl FieldOperator {
    /// How the operator is written: `=` or `!=`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

impl fmt::Display for FieldOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One term of a field selector: a field, an operator and an (unescaped) value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field's dotted path, such as `metadata.name` or `spec.nodeName`.
    pub field: String,
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

impl FieldRequirement {
    /// Whether the object's value of this field (`None`: the object lacks it, which compares as
    /// the empty string) satisfies this requirement.
    pub fn matches_value(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// Renders `field=value` or `field!=value`, with the value escaped.
impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.field, self.operator, escape_value(&self.value))
    }
}

/// A field selector: requirements that must all hold. The empty selector
/// ([`FieldSelector::everything`], also the `Default`) matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// A selector made of these requirements, in this order.
    pub fn from_requirements(requirements: Vec<FieldRequirement>) -> FieldSelector {
        FieldSelector { requirements }
    }

    /// The selector `field=value` (upstream's `OneTermEqualSelector`).
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> FieldSelector {
        FieldSelector::from_requirements(vec![FieldRequirement {
            field: field.into(),
            operator: FieldOperator::Equals,
            value: value.into(),
        }])
    }

    /// Parses the syntax of `fieldSelector=`: comma-separated terms `field=value`,
    /// `field==value` or `field!=value`, as upstream's `fields.ParseSelector`.
    ///
    /// Terms are split at commas not escaped by a backslash; empty terms are skipped (so `""` is
    /// the empty selector); each term is split at the first `!=`, `==` or `=` (the field cannot
    /// contain them); the value is unescaped (see [`unescape_value`]). Nothing is trimmed:
    /// `a = b` is the field `"a "` and the value `" b"`. The terms are sorted by their text, so
    /// equivalent selectors render the same.
    pub fn parse(selector: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::with_capacity(terms.len());
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, escaped_value)) = split_term(term) else {
                return Err(FieldSelectorError::InvalidTerm { selector: selector.to_string(), term: term.to_string() });
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(escaped_value)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether this selector has no requirements, and so matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The fields this selector uses, each once, in order of first use — so the API server can
    /// reject those its resource does not support (`field label not supported: spec.foo`).
    pub fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for requirement in &self.requirements {
            if !names.contains(&requirement.field.as_str()) {
                names.push(&requirement.field);
            }
        }
        names
    }

    /// Whether an object satisfies every requirement; `lookup(field)` returns the object's value
    /// of a field, or `None` when it lacks it, which compares as the empty string.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|requirement| requirement.matches_value(lookup(&requirement.field).as_deref()))
    }

    /// Whether a JSON object satisfies every requirement, reading each field with
    /// [`field_value`]. Fields whose absence Kubernetes reads as a zero value other than "" (a
    /// node's `spec.unschedulable` is `false`) need a `lookup` of their own: use
    /// [`FieldSelector::matches`] for them.
    pub fn matches_object(&self, object: &Value) -> bool {
        self.matches(|field| field_value(object, field))
    }

    /// When this selector requires `field` to equal one value, that value (upstream's
    /// `RequiresExactMatch`), useful to narrow a list by an index — by name, say.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

/// Renders the selector's string form, which [`FieldSelector::parse`] reads back: the terms
/// separated by commas, values escaped.
impl fmt::Display for FieldSelector {
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

impl FromStr for FieldSelector {
    type Err = FieldSelectorError;

    fn from_str(selector: &str) -> Result<FieldSelector, FieldSelectorError> {
        FieldSelector::parse(selector)
    }
}

/// Escapes a literal value for a field selector: `\` becomes `\\`, `,` becomes `\,` and `=`
/// becomes `\=`.
pub fn escape_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if matches!(character, '\\' | ',' | '=') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// Reverses [`escape_value`]. A backslash may only start `\\`, `\,` or `\=` (a trailing one is
/// an error too), and `,` and `=` must be escaped.
pub fn unescape_value(value: &str) -> Result<String, FieldSelectorError> {
    let mut unescaped = String::with_capacity(value.len());
    let mut characters = value.chars();
    while let Some(character) = characters.next() {
        match character {
            '\\' => match characters.next() {
                Some(escaped @ ('\\' | ',' | '=')) => unescaped.push(escaped),
                Some(other) => {
                    return Err(FieldSelectorError::InvalidEscapeSequence {
                        value: value.to_string(),
                        sequence: format!("\\{other}"),
                    })
                }
                None => {
                    return Err(FieldSelectorError::InvalidEscapeSequence {
                        value: value.to_string(),
                        sequence: "\\".to_string(),
                    })
                }
            },
            ',' | '=' => return Err(FieldSelectorError::UnescapedCharacter { value: value.to_string(), character }),
            other => unescaped.push(other),
        }
    }
    Ok(unescaped)
}

/// Splits a selector at commas not preceded by an escaping backslash; the terms keep their
/// backslashes. The empty selector has no terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, character) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == ',' {
            terms.push(&selector[start..index]);
            start = index + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator: at each position `!=` is tried, then `==`, then `=`.
/// Returns the field, the operator and the still-escaped value.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] =
        [("!=", FieldOperator::NotEquals), ("==", FieldOperator::Equals), ("=", FieldOperator::Equals)];
    for (index, _) in term.char_indices() {
        let rest = &term[index..];
        for (text, operator) in OPERATORS {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..index], operator, value));
            }
        }
    }
    None
}

/// Reads the field at a dotted path (`metadata.name`, `spec.nodeName`, `status.phase`,
/// `involvedObject.kind`) from an object, as the string a field selector compares: strings as
/// they are, numbers and booleans rendered (`3`, `true`). Returns `None` when a step of the path
/// is missing, or the value is null, an object or an array.
pub fn field_value(object: &Value, path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut current = object;
    for step in path.split('.') {
        current = current.as_object()?.get(step)?;
    }
    match current {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(boolean) => Some(boolean.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn parse(selector: &str) -> FieldSelector {
        FieldSelector::parse(selector).unwrap_or_else(|error| panic!("{selector:?}: {error}"))
    }

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(field, value)| (field.to_string(), value.to_string())).collect()
    }

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        let set = fields(pairs);
        parse(selector).matches(|field| set.get(field).cloned())
    }

    fn equals(field: &str, value: &str) -> FieldRequirement {
        FieldRequirement { field: field.to_string(), operator: FieldOperator::Equals, value: value.to_string() }
    }

    fn not_equals(field: &str, value: &str) -> FieldRequirement {
        FieldRequirement { field: field.to_string(), operator: FieldOperator::NotEquals, value: value.to_string() }
    }

    #[test]
    fn split_terms_follows_upstream() {
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("a", vec!["a"]),
            ("a=avalue", vec!["a=avalue"]),
            ("a=avalue,b=bvalue", vec!["a=avalue", "b=bvalue"]),
            ("a=avalue,b==bvalue,c!=cvalue", vec!["a=avalue", "b==bvalue", "c!=cvalue"]),
            ("", vec![]),
            ("a=a,", vec!["a=a", ""]),
            (",a=a", vec!["", "a=a"]),
            (r"k=\,,k2=v2", vec![r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", vec![r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", vec![r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", vec![r"k=\a\b\"]),
            (r"k=\", vec![r"k=\"]),
            ("함=수,목=록", vec!["함=수", "목=록"]),
        ];
        for (selector, expected) in cases {
            assert_eq!(split_terms(selector), expected, "{selector:?}");
        }
    }

    #[test]
    fn split_term_follows_upstream() {
        type SplitTerm<'a> = Option<(&'a str, FieldOperator, &'a str)>;
        let cases: Vec<(&str, SplitTerm)> = vec![
            ("a=value", Some(("a", FieldOperator::Equals, "value"))),
            ("b==value", Some(("b", FieldOperator::Equals, "value"))),
            ("c!=value", Some(("c", FieldOperator::NotEquals, "value"))),
            ("", None),
            ("a", None),
            (r"k=\,", Some(("k", FieldOperator::Equals, r"\,"))),
            (r"k=\=", Some(("k", FieldOperator::Equals, r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", FieldOperator::Equals, r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", FieldOperator::Equals, "수"))),
            ("a!b=c", Some(("a!b", FieldOperator::Equals, "c"))),
            ("=x", Some(("", FieldOperator::Equals, "x"))),
            ("a===b", Some(("a", FieldOperator::Equals, "=b"))),
        ];
        for (term, expected) in cases {
            assert_eq!(split_term(term), expected, "{term:?}");
        }
    }

    #[test]
    fn escaping_round_trips() {
        let cases = [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            (r"\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
            ("ünï,côdé", r"ünï\,côdé"),
        ];
        for (literal, escaped) in cases {
            assert_eq!(escape_value(literal), escaped, "{literal:?}");
            assert_eq!(unescape_value(escaped).unwrap(), literal, "{escaped:?}");
        }
    }

    #[test]
    fn invalid_escapes_are_rejected() {
        for value in [r"\", r"\\\", r"\a", r"a\ b"] {
            assert!(
                matches!(unescape_value(value), Err(FieldSelectorError::InvalidEscapeSequence { .. })),
                "{value:?}"
            );
        }
        for value in ["a,b", "a=b", r"\\,"] {
            assert!(matches!(unescape_value(value), Err(FieldSelectorError::UnescapedCharacter { .. })), "{value:?}");
        }
        assert_eq!(
            unescape_value(r"a\b").unwrap_err().to_string(),
            r#"invalid field selector value "a\\b": invalid escape sequence "\\b" (only \\, \, and \= are allowed)"#
        );
        assert_eq!(
            unescape_value("a=b").unwrap_err().to_string(),
            r#"invalid field selector value "a=b": unescaped '=' (write it as '\=')"#
        );
    }

    #[test]
    fn good_strings_round_trip() {
        for selector in [
            "x=a,y=b,z=c",
            "",
            "x!=a,y=b",
            r"x=a||y\=b",
            r"x=a\=\=b",
            "metadata.name=web-0",
            "spec.nodeName=",
            r"a=\,\\",
        ] {
            assert_eq!(parse(selector).to_string(), selector, "{selector:?}");
        }
    }

    #[test]
    fn bad_strings_are_rejected() {
        for selector in
            ["x=a||y=b", "x==a==b", "x=a,b", "x in (a)", "x in (a,b,c)", "x", r"x=\", r"x=\q", "a=b=c", "a!=b=c"]
        {
            assert!(
                FieldSelector::parse(selector).is_err(),
                "{selector:?} should be rejected, got {:?}",
                FieldSelector::parse(selector)
            );
        }
        assert_eq!(
            FieldSelector::parse("metadata.name=a,bogus")
                .unwrap_err()
                .to_string(),
            "invalid field selector \"metadata.name=a,bogus\": can't understand \"bogus\" (expected <field>=<value>, <field>==<value> or <field>!=<value>)"
        );
    }

    #[test]
    fn parse_builds_requirements() {
        assert_eq!(
            parse("metadata.name==web,spec.nodeName!=node-1").requirements(),
            [equals("metadata.name", "web"), not_equals("spec.nodeName", "node-1")]
        );
        assert_eq!(parse(r"a=x\,y\=z\\").requirements(), [equals("a", r"x,y=z\")]);
        assert_eq!(parse("a=b,,c=d").requirements().len(), 2);
        assert_eq!(parse(",").requirements(), []);
        // Nothing is trimmed.
        assert_eq!(parse("a = b").requirements(), [equals("a ", " b")]);
        assert_eq!(parse("=b").requirements(), [equals("", "b")]);
    }

    #[test]
    fn parse_is_deterministic() {
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("x=a,a=x").to_string(), "a=x,x=a");
        // `==` renders as `=`.
        assert_eq!(parse("a==b").to_string(), "a=b");
    }

    #[test]
    fn selector_matches_upstream_cases() {
        assert!(matches("", &[("x", "y")]));
        assert!(matches("x=y", &[("x", "y")]));
        assert!(matches("x=y,z=w", &[("x", "y"), ("z", "w")]));
        assert!(matches("x!=y,z!=w", &[("x", "z"), ("z", "a")]));
        assert!(matches("notin=in", &[("notin", "in")]));
        assert!(!matches("x=y", &[("x", "z")]));
        assert!(!matches("x=y,z=w", &[("x", "w"), ("z", "w")]));
        assert!(!matches("x!=y,z!=w", &[("x", "z"), ("z", "w")]));

        let set = [("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")];
        assert!(matches("foo=bar", &set));
        assert!(matches("baz=blah", &set));
        assert!(matches("foo=bar,baz=blah", &set));
        assert!(matches(r"foo=bar,baz=blah,complex=\=value\\\,\\", &set));
        assert!(!matches("foo=blah", &set));
        assert!(!matches("baz=bar", &set));
        assert!(!matches("foo=bar,foobar=bar,baz=blah", &set));
    }

    #[test]
    fn missing_fields_compare_as_empty() {
        assert!(matches("spec.nodeName=", &[]));
        assert!(!matches("spec.nodeName!=", &[]));
        assert!(matches("spec.nodeName!=node-1", &[]));
        assert!(!matches("spec.nodeName=node-1", &[]));
        assert!(matches("spec.nodeName=", &[("spec.nodeName", "")]));
    }

    #[test]
    fn everything_and_one_term() {
        let everything = FieldSelector::everything();
        assert!(everything.is_empty());
        assert!(everything.matches(|_| None));
        assert_eq!(everything.to_string(), "");
        assert_eq!(parse(""), everything);

        let by_name = FieldSelector::one_term_equal("metadata.name", "a,b");
        assert!(!by_name.is_empty());
        assert_eq!(by_name.to_string(), r"metadata.name=a\,b");
        assert_eq!(parse(&by_name.to_string()), by_name);
        assert!(by_name.matches(|_| Some("a,b".to_string())));
        assert!(!by_name.matches(|_| Some("a".to_string())));
        assert_eq!("metadata.name=a".parse::<FieldSelector>().unwrap().requirements().len(), 1);
    }

    #[test]
    fn field_names_lists_each_field_once() {
        let selector = parse("spec.nodeName!=a,metadata.name=x,spec.nodeName!=b");
        assert_eq!(selector.field_names(), ["metadata.name", "spec.nodeName"]);
        assert!(FieldSelector::everything().field_names().is_empty());
    }

    #[test]
    fn requires_exact_match_follows_upstream() {
        assert_eq!(parse("metadata.name=x").requires_exact_match("metadata.name"), Some("x"));
        assert_eq!(parse("metadata.name==").requires_exact_match("metadata.name"), Some(""));
        assert_eq!(parse("metadata.name!=x").requires_exact_match("metadata.name"), None);
        assert_eq!(parse("a=b").requires_exact_match("metadata.name"), None);
        assert_eq!(parse("a!=c,metadata.name=x").requires_exact_match("metadata.name"), Some("x"));
        assert_eq!(FieldSelector::everything().requires_exact_match("a"), None);
    }

    #[test]
    fn field_value_reads_dotted_paths() {
        let event = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0"},
            "count": 3,
            "spec": {"unschedulable": true, "ratio": 0.5, "nodeName": null, "list": [1], "obj": {}},
            "status": {"phase": "Running"},
        });
        assert_eq!(field_value(&event, "metadata.name").as_deref(), Some("e1"));
        assert_eq!(field_value(&event, "metadata.namespace").as_deref(), Some("default"));
        assert_eq!(field_value(&event, "involvedObject.kind").as_deref(), Some("Pod"));
        assert_eq!(field_value(&event, "status.phase").as_deref(), Some("Running"));
        assert_eq!(field_value(&event, "count").as_deref(), Some("3"));
        assert_eq!(field_value(&event, "spec.unschedulable").as_deref(), Some("true"));
        assert_eq!(field_value(&event, "spec.ratio").as_deref(), Some("0.5"));
        assert_eq!(field_value(&event, "spec.nodeName"), None);
        assert_eq!(field_value(&event, "spec.list"), None);
        assert_eq!(field_value(&event, "spec.obj"), None);
        assert_eq!(field_value(&event, "spec.missing"), None);
        assert_eq!(field_value(&event, "status.phase.deeper"), None);
        assert_eq!(field_value(&event, "metadata"), None);
        assert_eq!(field_value(&event, ""), None);
        assert_eq!(field_value(&json!("x"), "a"), None);
    }

    #[test]
    fn matches_object_reads_fields_from_json() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "node-1"},
            "status": {"phase": "Running"},
        });
        assert!(parse("metadata.name=web-0").matches_object(&pod));
        assert!(parse("spec.nodeName=node-1,status.phase!=Failed").matches_object(&pod));
        assert!(!parse("spec.nodeName=node-2").matches_object(&pod));
        let unscheduled = json!({"metadata": {"name": "web-1"}, "spec": {}});
        assert!(parse("spec.nodeName=").matches_object(&unscheduled));
        assert!(!parse("spec.nodeName!=").matches_object(&unscheduled));
    }
}
