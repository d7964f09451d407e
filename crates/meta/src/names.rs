//! The validation rules of names in the Kubernetes API: object names (DNS-1123 subdomains and
//! labels, DNS-1035 labels), `generateName` prefixes, label keys ("qualified names") and label
//! values, port names and numbers, and IP addresses.
//!
//! These mirror `k8s.io/apimachinery/pkg/util/validation` and
//! `k8s.io/apimachinery/pkg/api/validation` (`NameIsDNSSubdomain` and friends). Like upstream,
//! every check returns the list of problems it found — an empty list means the value is valid —
//! and the messages are upstream's, word for word, so that a client sees what a real API server
//! would have told it. Callers turn them into field errors (`metadata.name: Invalid value: ...`).
//!
//! Which rule applies to which object's name is the caller's business; upstream uses
//! [`name_is_dns_subdomain`] for most kinds, [`name_is_dns_label`] for namespaces and
//! [`name_is_dns1035_label`] for services.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The maximum length of a DNS-1123 label (`metadata.name` of a namespace, for example).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// The maximum length of a DNS-1123 subdomain (`metadata.name` of most objects).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// The maximum length of a DNS-1035 label (`metadata.name` of a service).
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// The maximum length of a label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// The maximum length of the name part of a qualified name (a label key without its prefix).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// The maximum length of a port name (an IANA_SVC_NAME, RFC 6335).
pub const PORT_NAME_MAX_LENGTH: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";

/// Upstream's `MaxLenError`: `must be no more than 63 characters`.
pub fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `RegexError`: the message, then examples and the regular expression the value must
/// match, e.g. `... (e.g. 'my-name' or '123-abc', regex used for validation is '...')`.
pub fn regex_error(message: &str, regex: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{message} (regex used for validation is '{regex}')");
    }
    let examples = examples.iter().map(|example| format!("'{example}'")).collect::<Vec<_>>().join(" or ");
    format!("{message} (e.g. {examples}, regex used for validation is '{regex}')")
}

/// Upstream's `EmptyError`: `must be non-empty`.
pub fn empty_error() -> String {
    "must be non-empty".to_string()
}

/// Upstream's `InclusiveRangeError`: `must be between 1 and 65535, inclusive`.
pub fn inclusive_range_error(low: i64, high: i64) -> String {
    format!("must be between {low} and {high}, inclusive")
}

fn is_lower_alphanumeric(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

/// Matches `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (any length).
fn matches_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            is_lower_alphanumeric(first)
                && is_lower_alphanumeric(last)
                && bytes.iter().all(|&b| is_lower_alphanumeric(b) || b == b'-')
        }
        _ => false,
    }
}

/// Matches the DNS-1123 subdomain format: dot-separated DNS-1123 labels (any length).
fn matches_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns1123_label)
}

/// Matches `[a-z]([-a-z0-9]*[a-z0-9])?` (any length).
fn matches_dns1035_label(value: &str) -> bool {
    matches_dns1123_label(value) && value.as_bytes()[0].is_ascii_lowercase()
}

/// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (any length).
fn matches_qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Checks that `value` is a DNS-1123 label (RFC 1123): at most 63 characters, lower case
/// alphanumerics and '-', starting and ending with an alphanumeric. Namespace names are these.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        problems.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            // A valid subdomain but not a label: the length was checked above, so it is the dots.
            problems.push("must not contain dots".to_string());
        } else {
            problems.push(regex_error(DNS1123_LABEL_ERR_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    problems
}

/// Checks that `value` is a DNS-1123 subdomain (RFC 1123): at most 253 characters, lower case
/// alphanumerics, '-' and '.', every dot-separated part starting and ending with an alphanumeric.
/// The names of most objects are these.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        problems.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        problems.push(regex_error(DNS1123_SUBDOMAIN_ERR_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    problems
}

/// Checks that `value` is a DNS-1035 label (RFC 1035): like a DNS-1123 label, but it must start
/// with a letter. Service names are these.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        problems.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !matches_dns1035_label(value) {
        problems.push(regex_error(DNS1035_LABEL_ERR_MSG, DNS1035_LABEL_FMT, &["my-name", "abc-123"]));
    }
    problems
}

/// Checks that `value` is a "qualified name", the format of label and annotation keys: an
/// optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters made of
/// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric
/// (`example.com/MyName`, `app`).
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push(format!("prefix part {}", empty_error()));
            } else {
                problems
                    .extend(is_dns1123_subdomain(prefix).into_iter().map(|problem| format!("prefix part {problem}")));
            }
            *name
        }
        _ => {
            problems.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"],)
            ));
            return problems;
        }
    };
    if name.is_empty() {
        problems.push(format!("name part {}", empty_error()));
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        problems.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !matches_qualified_name_part(name) {
        problems.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"],)
        ));
    }
    problems
}

/// Checks that `value` is a valid label value: empty, or at most 63 characters made of
/// alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        problems.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        problems.push(regex_error(LABEL_VALUE_ERR_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    problems
}

/// Checks that `port` is a valid port name (an IANA_SVC_NAME, RFC 6335): at most 15 characters,
/// only lower case alphanumerics and '-', at least one letter, no "--", and no '-' at either end.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        problems.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    if port.is_empty() || !port.bytes().all(|b| is_lower_alphanumeric(b) || b == b'-') {
        problems.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        problems.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        problems.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        problems.push("must not begin or end with a hyphen".to_string());
    }
    problems
}

/// Checks that `port` is a valid, non-zero port number: 1 to 65535.
pub fn is_valid_port_num(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// Checks that `value` is a valid key of a ConfigMap's or Secret's data: at most 253 characters
/// of alphanumerics, '-', '_' and '.', and not `.`, `..` or anything starting with `..`.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        problems.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        problems.push(regex_error(CONFIG_MAP_KEY_ERR_MSG, CONFIG_MAP_KEY_FMT, &["key.name", "KEY_NAME", "key-name"]));
    }
    if value == "." {
        problems.push("must not be '.'".to_string());
    } else if value == ".." {
        problems.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        problems.push("must not start with '..'".to_string());
    }
    problems
}

/// Upstream's `maskTrailingDash`: when a name will have a random suffix appended (a
/// `generateName`), a trailing '-' is allowed, so it is replaced by a letter before validating.
///
/// Upstream's quirk is kept on purpose: it drops the last *two* characters and appends one `a`,
/// so `"ab-"` is validated as `"aa"`. Diverging would change which prefixes are accepted.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let cut = name.len() - 2;
        // Upstream cuts bytes. When that splits a multi-byte character, what is left of it is
        // invalid in every name format; '?' bytes stand in for it, keeping the length.
        let mut boundary = cut;
        while !name.is_char_boundary(boundary) {
            boundary -= 1;
        }
        format!("{}{}a", &name[..boundary], "?".repeat(cut - boundary))
    } else {
        name.to_string()
    }
}

/// Validates an object name that must be a DNS-1123 subdomain (most kinds: pods, configmaps,
/// deployments, ...). With `prefix` true, `name` is a `generateName` prefix that a random suffix
/// will be appended to, so a trailing '-' is accepted (upstream's `NameIsDNSSubdomain`).
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// Validates an object name that must be a DNS-1123 label (namespaces, for example); `prefix` as
/// for [`name_is_dns_subdomain`] (upstream's `NameIsDNSLabel`).
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// Validates an object name that must be a DNS-1035 label (services); `prefix` as for
/// [`name_is_dns_subdomain`] (upstream's `NameIsDNS1035Label`).
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// Parses a dotted-quad IPv4 address the way Kubernetes does (`netutils.ParseIPSloppy`, Go's
/// parser before 1.17): exactly four decimal parts of at most 255 each, where leading zeros are
/// allowed and mean nothing (`010.1.1.1` is `10.1.1.1`).
fn parse_ipv4_sloppy(value: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = value.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = part.trim_start_matches('0');
        if digits.len() > 3 {
            return None;
        }
        let number: u32 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        *octet = u8::try_from(number).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// Parses an IP address the way Kubernetes does (`netutils.ParseIPSloppy`): IPv4 with optional
/// leading zeros, or IPv6 (which may end in such an IPv4 address). No zones, ports or brackets.
pub fn parse_ip_sloppy(value: &str) -> Option<IpAddr> {
    if !value.contains(':') {
        return parse_ipv4_sloppy(value).map(IpAddr::V4);
    }
    if let Ok(address) = value.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(address));
    }
    // An embedded IPv4 tail with leading zeros: normalise it and try again.
    let (head, tail) = value.rsplit_once(':')?;
    if !tail.contains('.') {
        return None;
    }
    let tail = parse_ipv4_sloppy(tail)?;
    format!("{head}:{tail}").parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Checks that `value` is an IPv4 or IPv6 address (`10.9.8.7`, `2001:db8::ffff`).
pub fn is_valid_ip(value: &str) -> Vec<String> {
    match parse_ip_sloppy(value) {
        Some(_) => Vec::new(),
        None => vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()],
    }
}

/// Checks that `value` is an IPv4 address. As upstream (Go's `To4`), an IPv4-mapped IPv6 address
/// such as `::ffff:1.2.3.4` counts as IPv4.
pub fn is_valid_ipv4_address(value: &str) -> Vec<String> {
    let is_ipv4 = match parse_ip_sloppy(value) {
        Some(IpAddr::V4(_)) => true,
        Some(IpAddr::V6(address)) => address.to_ipv4_mapped().is_some(),
        None => false,
    };
    if is_ipv4 {
        Vec::new()
    } else {
        vec!["must be a valid IPv4 address".to_string()]
    }
}

/// Checks that `value` is an IPv6 address that is not an IPv4-mapped one (see
/// [`is_valid_ipv4_address`]).
pub fn is_valid_ipv6_address(value: &str) -> Vec<String> {
    let is_ipv6 = match parse_ip_sloppy(value) {
        Some(IpAddr::V6(address)) => address.to_ipv4_mapped().is_none(),
        _ => false,
    };
    if is_ipv6 {
        Vec::new()
    } else {
        vec!["must be a valid IPv6 address".to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_valid(check: fn(&str) -> Vec<String>, values: &[&str]) {
        for value in values {
            let problems = check(value);
            assert!(problems.is_empty(), "expected {value:?} to be valid: {problems:?}");
        }
    }

    fn assert_invalid(check: fn(&str) -> Vec<String>, values: &[&str]) {
        for value in values {
            assert!(!check(value).is_empty(), "expected {value:?} to be invalid");
        }
    }

    #[test]
    fn dns1123_label_accepts_upstream_good_values() {
        let max = "a".repeat(63);
        assert_valid(
            is_dns1123_label,
            &["a", "ab", "abc", "a1", "a-1", "a--1--2--b", "0", "01", "012", "1a", "1-a", "1--a--b--2", &max],
        );
    }

    #[test]
    fn dns1123_label_rejects_upstream_bad_values() {
        let too_long = "a".repeat(64);
        assert_invalid(
            is_dns1123_label,
            &[
                "", "A", "ABC", "aBc", "A1", "A-1", "1-A", "-", "a-", "-a", "1-", "-1", "_", "a_", "_a", "a_b", "1_",
                "_1", "1_2", ".", "a.", ".a", "a.b", "1.", ".1", "1.2", " ", "a ", " a", "a b", "1 ", " 1", "1 2",
                "a\n", &too_long,
            ],
        );
    }

    #[test]
    fn dns1123_label_messages_are_upstreams() {
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots".to_string()]);
        assert_eq!(
            is_dns1123_label("A"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name' or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        let problems = is_dns1123_label(&"a".repeat(64));
        assert_eq!(problems, vec!["must be no more than 63 characters".to_string()]);
    }

    #[test]
    fn dns1123_subdomain_accepts_upstream_good_values() {
        let max = "a".repeat(253);
        assert_valid(
            is_dns1123_subdomain,
            &[
                "a",
                "ab",
                "abc",
                "a1",
                "a-1",
                "a--1--2--b",
                "0",
                "01",
                "012",
                "1a",
                "1-a",
                "1--a--b--2",
                "a.a",
                "ab.a",
                "abc.a",
                "a1.a",
                "a-1.a",
                "a--1--2--b.a",
                "a.1",
                "ab.1",
                "abc.1",
                "a1.1",
                "a-1.1",
                "a--1--2--b.1",
                "0.a",
                "01.a",
                "012.a",
                "1a.a",
                "1-a.a",
                "0.1",
                "01.1",
                "012.1",
                "1a.1",
                "1-a.1",
                "1--a--b--2.1",
                "a.b.c.d.e",
                "aa.bb.cc.dd.ee",
                "1.2.3.4.5",
                "11.22.33.44.55",
                &max,
            ],
        );
    }

    #[test]
    fn dns1123_subdomain_rejects_upstream_bad_values() {
        let too_long = "a".repeat(254);
        assert_invalid(
            is_dns1123_subdomain,
            &[
                "",
                "A",
                "ABC",
                "aBc",
                "A1",
                "A-1",
                "1-A",
                "-",
                "a-",
                "-a",
                "1-",
                "-1",
                "_",
                "a_",
                "_a",
                "a_b",
                "1_",
                "_1",
                "1_2",
                ".",
                "a.",
                ".a",
                "a..b",
                "1.",
                ".1",
                "1..2",
                " ",
                "a ",
                " a",
                "a b",
                "1 ",
                " 1",
                "1 2",
                "A.a",
                "aB.a",
                "ab.A",
                "A1.a",
                "a1.A",
                "A.1",
                "aB.1",
                "A1.1",
                "1A.1",
                "0.A",
                "01.A",
                "012.A",
                "1A.a",
                "1a.A",
                "A.B.C.D.E",
                "AA.BB.CC.DD.EE",
                "a.B.c.d.e",
                "aa.bB.cc.dd.ee",
                "a@b",
                "a,b",
                "a;b",
                "a:b",
                "a%b",
                "a?b",
                "a$b",
                "é",
                &too_long,
            ],
        );
    }

    #[test]
    fn dns1123_subdomain_messages_are_upstreams() {
        assert_eq!(
            is_dns1123_subdomain("Foo"),
            vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()]
        );
        let both = is_dns1123_subdomain(&format!("{}-", "a".repeat(253)));
        assert_eq!(both.len(), 2);
        assert_eq!(both[0], "must be no more than 253 characters");
    }

    #[test]
    fn dns1035_label_follows_upstream_tables() {
        let max = "a".repeat(63);
        let too_long = "a".repeat(64);
        assert_valid(is_dns1035_label, &["a", "ab", "abc", "a1", "a-1", "a--1--2--b", &max]);
        assert_invalid(
            is_dns1035_label,
            &[
                "0",
                "01",
                "012",
                "1a",
                "1-a",
                "1--a--b--2",
                "",
                "A",
                "ABC",
                "aBc",
                "A1",
                "A-1",
                "1-A",
                "-",
                "a-",
                "-a",
                "1-",
                "-1",
                "_",
                "a_",
                "_a",
                "a_b",
                "1_",
                "_1",
                "1_2",
                ".",
                "a.",
                ".a",
                "a.b",
                "1.",
                ".1",
                "1.2",
                " ",
                "a ",
                " a",
                "a b",
                "1 ",
                " 1",
                "1 2",
                &too_long,
            ],
        );
        assert_eq!(
            is_dns1035_label("1a"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
    }

    #[test]
    fn qualified_name_accepts_upstream_good_values() {
        let max_name = "a".repeat(63);
        let max_prefixed = format!("{}/{}", "a".repeat(253), "b".repeat(63));
        assert_valid(
            is_qualified_name,
            &[
                "simple",
                "now-with-dashes",
                "1-starts-with-num",
                "1234",
                "simple/simple",
                "now-with-dashes/simple",
                "now-with-dashes/now-with-dashes",
                "now.with.dots/simple",
                "now-with.dashes-and.dots/simple",
                "1-num.2-num/3-num",
                "1234/5678",
                "1.2.3.4/5678",
                "Uppercase_Is_OK_123",
                "example.com/Uppercase_Is_OK_123",
                "requests.storage-foo",
                "app.kubernetes.io/name",
                &max_name,
                &max_prefixed,
            ],
        );
    }

    #[test]
    fn qualified_name_rejects_upstream_bad_values() {
        let too_long = "a".repeat(64);
        let long_prefix = format!("{}/abc", "a".repeat(254));
        assert_invalid(
            is_qualified_name,
            &[
                "nospecialchars%^=@",
                "cantendwithadash-",
                "-cantstartwithadash-",
                "only/one/slash",
                "Example.com/abc",
                "example_com/abc",
                "example.com/",
                "/simple",
                "",
                &too_long,
                &long_prefix,
            ],
        );
    }

    #[test]
    fn qualified_name_messages_name_the_part() {
        assert_eq!(is_qualified_name("/simple"), vec!["prefix part must be non-empty".to_string()]);
        let problems = is_qualified_name("example.com/");
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0], "name part must be non-empty");
        assert!(problems[1].starts_with("name part must consist of alphanumeric characters"));
        let problems = is_qualified_name("Example.com/abc");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec!["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName' or 'my.name' or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()]
        );
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn label_value_follows_upstream_tables() {
        let max = "a".repeat(63);
        let too_long = "a".repeat(64);
        assert_valid(
            is_valid_label_value,
            &["simple", "now-with-dashes", "1-starts-with-num", "end-with-num-1", "1234", "Mixed_Case.ok", &max, ""],
        );
        assert_invalid(
            is_valid_label_value,
            &[
                "nospecialchars%^=@",
                "Tama-nui-te-rā.is.Māori.sun",
                "\\backslashes\\are\\bad",
                "-starts-with-dash",
                "ends-with-dash-",
                ".starts.with.dot",
                "ends.with.dot.",
                "has/slash",
                &too_long,
            ],
        );
        assert_eq!(
            is_valid_label_value("-a"),
            vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue' or 'my_value' or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()]
        );
    }

    #[test]
    fn port_name_follows_upstream_tables() {
        assert_valid(
            is_valid_port_name,
            &["telnet", "re-mail-ck", "pop3", "a", "a-1", "1-a", "a-1-b-2-c", "1-a-2-b-3", "http", "dns-tcp"],
        );
        let sixteen = "a".repeat(16);
        assert_invalid(
            is_valid_port_name,
            &[
                "longerthan15characters",
                "",
                &sixteen,
                "12345",
                "1-2-3-4",
                "-begin",
                "end-",
                "two--hyphens",
                "whois++",
                "HTTP",
            ],
        );
    }

    #[test]
    fn port_name_reports_every_problem() {
        assert_eq!(
            is_valid_port_name("-1--"),
            vec![
                "must contain at least one letter (a-z)".to_string(),
                "must not contain consecutive hyphens".to_string(),
                "must not begin or end with a hyphen".to_string(),
            ]
        );
        assert_eq!(
            is_valid_port_name(""),
            vec![
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
                "must contain at least one letter (a-z)".to_string(),
            ]
        );
        assert_eq!(is_valid_port_name("abcdefghijklmnop"), vec!["must be no more than 15 characters".to_string()]);
    }

    #[test]
    fn port_number_range() {
        for good in [1, 2, 1000, 16384, 32768, 65535] {
            assert!(is_valid_port_num(good).is_empty(), "{good}");
        }
        for bad in [0, -1, 65536, 100000, i64::MAX, i64::MIN] {
            assert_eq!(is_valid_port_num(bad), vec!["must be between 1 and 65535, inclusive".to_string()], "{bad}");
        }
    }

    #[test]
    fn config_map_key_follows_upstream_tables() {
        assert_valid(
            is_config_map_key,
            &[
                "a",
                "good",
                "good-good",
                "still.good",
                "this.is.also.good",
                ".so.is.this",
                "THIS_IS_GOOD",
                "so_is_this_17",
            ],
        );
        assert_invalid(is_config_map_key, &[".", "..", "..bad", "b*d", "bad!&bad", "", "a/b"]);
        assert_eq!(is_config_map_key(".."), vec!["must not be '..'".to_string()]);
    }

    #[test]
    fn generate_name_prefixes_may_end_with_a_dash() {
        assert!(name_is_dns_subdomain("web-", true).is_empty());
        assert!(!name_is_dns_subdomain("web-", false).is_empty());
        assert!(name_is_dns_label("ns-", true).is_empty());
        assert!(name_is_dns1035_label("svc-", true).is_empty());
        assert!(!name_is_dns1035_label("1svc-", true).is_empty());
        // A prefix without a trailing dash is validated as it is.
        assert!(name_is_dns_subdomain("web", true).is_empty());
        assert!(!name_is_dns_subdomain("Web", true).is_empty());
        // A lone "-" is not masked (upstream requires more than one character).
        assert!(!name_is_dns_subdomain("-", true).is_empty());
        // Upstream's quirk: the character before the dash is dropped too, so "a.-" passes
        // (validated as "aa") although "a." alone does not.
        assert!(name_is_dns_subdomain("a.-", true).is_empty());
        assert!(!name_is_dns_subdomain("a.", true).is_empty());
        // The masked name still has to fit.
        let long = format!("{}-", "a".repeat(254));
        assert!(!name_is_dns_subdomain(&long, true).is_empty());
        let fits = format!("{}-", "a".repeat(253));
        assert!(name_is_dns_subdomain(&fits, true).is_empty());
        // Multi-byte characters before the dash do not panic.
        assert!(!name_is_dns_subdomain("aé-", true).is_empty());
        assert!(!name_is_dns_subdomain("é-", true).is_empty());
    }

    #[test]
    fn name_checks_without_prefix_match_the_plain_checks() {
        for name in ["my-pod", "My-Pod", "a.b", "1abc", "", "x-"] {
            assert_eq!(name_is_dns_subdomain(name, false), is_dns1123_subdomain(name));
            assert_eq!(name_is_dns_label(name, false), is_dns1123_label(name));
            assert_eq!(name_is_dns1035_label(name, false), is_dns1035_label(name));
        }
    }

    #[test]
    fn ip_addresses_follow_upstream_tables() {
        assert_valid(
            is_valid_ip,
            &[
                "::1",
                "2a00:79e0:2:0:f1c3:e797:93c1:df80",
                "::",
                "2001:4860:4860::8888",
                "::fff:1.1.1.1",
                "::ffff:1.1.1.01",
                "1.1.1.1",
                "1.1.1.01",
                "255.0.0.1",
                "1.0.0.0",
                "0.0.0.0",
                "010.000.0.1",
            ],
        );
        assert_invalid(
            is_valid_ip,
            &[
                "[2001:db8:0:1]:80",
                "myhost.mydomain",
                "-1.0.0.0",
                "[2001:db8:0:1]",
                "a",
                "",
                "1.1.1",
                "1.1.1.1.1",
                "256.1.1.1",
                "1.1.1.1 ",
                "1..1.1",
                "fe80::1%eth0",
                "1.2.3.4/32",
            ],
        );
        assert_eq!(is_valid_ip("a"), vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string()]);
    }

    #[test]
    fn ipv4_addresses_follow_upstream_tables() {
        assert_valid(
            is_valid_ipv4_address,
            &["1.1.1.1", "1.1.1.01", "255.0.0.1", "1.0.0.0", "0.0.0.0", "::ffff:10.0.0.1"],
        );
        assert_invalid(
            is_valid_ipv4_address,
            &[
                "[2001:db8:0:1]:80",
                "myhost.mydomain",
                "-1.0.0.0",
                "[2001:db8:0:1]",
                "a",
                "2001:4860:4860::8888",
                "::fff:1.1.1.1",
                "::1",
                "2a00:79e0:2:0:f1c3:e797:93c1:df80",
                "::",
            ],
        );
        assert_eq!(is_valid_ipv4_address("::1"), vec!["must be a valid IPv4 address".to_string()]);
    }

    #[test]
    fn ipv6_addresses_follow_upstream_tables() {
        assert_valid(
            is_valid_ipv6_address,
            &[
                "2001:4860:4860::8888",
                "2a00:79e0:2:0:f1c3:e797:93c1:df80",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                "::fff:1.1.1.1",
                "::1",
                "::",
            ],
        );
        assert_invalid(
            is_valid_ipv6_address,
            &[
                "1.1.1.1",
                "1.1.1.01",
                "255.0.0.1",
                "1.0.0.0",
                "0.0.0.0",
                "[2001:db8:0:1]:80",
                "myhost.mydomain",
                "2001:0db8:85a3:0000:0000:8a2e:0370:7334:2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                "-1.0.0.0",
                "[2001:db8:0:1]",
                "a",
                "::ffff:1.2.3.4",
            ],
        );
        assert_eq!(is_valid_ipv6_address("1.1.1.1"), vec!["must be a valid IPv6 address".to_string()]);
    }

    #[test]
    fn message_helpers_match_upstream() {
        assert_eq!(max_len_error(63), "must be no more than 63 characters");
        assert_eq!(empty_error(), "must be non-empty");
        assert_eq!(inclusive_range_error(1, 65535), "must be between 1 and 65535, inclusive");
        assert_eq!(regex_error("bad", "[a-z]+", &[]), "bad (regex used for validation is '[a-z]+')");
        assert_eq!(
            regex_error("bad", "[a-z]+", &["a", "b"]),
            "bad (e.g. 'a' or 'b', regex used for validation is '[a-z]+')"
        );
    }
}
