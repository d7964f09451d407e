//! Ingress path and host matching, exactly as the Kubernetes Ingress documentation specifies it:
//! `Exact` compares whole paths; `Prefix` compares path elements split by `/` (so `/foo` matches
//! `/foo`, `/foo/` and `/foo/bar` but not `/foobar`, and a trailing `/` in the rule is ignored);
//! `ImplementationSpecific` is `Prefix`. When an Ingress uses regexes (`use-regex`, or a
//! `rewrite-target`), its non-Exact paths are case-insensitive regexes anchored at the start, as
//! ingress-nginx renders them (`location ~* "^<path>"`). Hosts match case-insensitively; a
//! wildcard `*.foo.com` covers exactly one label (`bar.foo.com`, not `foo.com` nor
//! `baz.bar.foo.com`).

use regex::Regex;

/// A path of an Ingress rule that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} must be an absolute path (start with \"/\")")]
    NotAbsolute(String),
    #[error("pathType {0:?} is not one of Exact, Prefix and ImplementationSpecific")]
    UnknownType(String),
    #[error("path {path:?} is not a valid regular expression: {problem}")]
    BadRegex { path: String, problem: String },
    #[error("path {0:?} contains characters an HTTP path cannot hold")]
    BadCharacters(String),
}

/// How a rule's path is compared with a request's.
#[derive(Debug, Clone)]
pub enum PathMatch {
    Exact(String),
    /// The rule's path elements (`/aaa/bbb/` → `["aaa", "bbb"]`; `/` → none).
    Prefix(Vec<String>),
    Regex(Regex),
}

/// One rule path: what it matches and how it sorts among the others of its host.
#[derive(Debug, Clone)]
pub struct PathRule {
    /// The path as the Ingress wrote it.
    pub path: String,
    pub matcher: PathMatch,
}

impl PathRule {
    /// The rule for `path` of `path_type`; `regex` when the Ingress's paths are regexes.
    pub fn new(path_type: &str, path: &str, regex: bool) -> Result<PathRule, PathError> {
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(PathError::BadCharacters(path.into()));
        }
        let exact = match path_type {
            "Exact" => true,
            "Prefix" | "ImplementationSpecific" => false,
            other => return Err(PathError::UnknownType(other.into())),
        };
        if !path.starts_with('/') && (!regex || exact) {
            return Err(PathError::NotAbsolute(path.into()));
        }
        let matcher = if exact {
            PathMatch::Exact(path.into())
        } else if regex {
            let re = Regex::new(&format!("(?i)^(?:{path})"))
                .map_err(|e| PathError::BadRegex { path: path.into(), problem: e.to_string() })?;
            PathMatch::Regex(re)
        } else {
            PathMatch::Prefix(elements(path).map(str::to_string).collect())
        };
        Ok(PathRule { path: path.into(), matcher })
    }

    /// Whether `request_path` (the path of the request target, without the query) matches.
    pub fn matches(&self, request_path: &str) -> bool {
        match &self.matcher {
            PathMatch::Exact(p) => p == request_path,
            PathMatch::Prefix(rule) => {
                let mut req = elements(request_path);
                rule.iter().all(|e| req.next() == Some(e.as_str()))
            }
            PathMatch::Regex(re) => re.is_match(request_path),
        }
    }

    /// The path `request_path` is rewritten to by `target` (`rewrite-target`): as nginx's
    /// `rewrite`, the whole path is replaced, `$1`…`$9` taking the regex's capture groups.
    pub fn rewrite(&self, target: &str, request_path: &str) -> String {
        let captures = match &self.matcher {
            PathMatch::Regex(re) => re.captures(request_path),
            _ => None,
        };
        let mut out = String::with_capacity(target.len() + request_path.len());
        let mut chars = target.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' {
                if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    chars.next();
                    if let Some(m) = captures.as_ref().and_then(|c| c.get(d as usize)) {
                        out.push_str(m.as_str());
                    }
                    continue;
                }
            }
            out.push(c);
        }
        if !out.starts_with('/') {
            out.insert(0, '/');
        }
        out
    }

    /// The sort key among the paths of one host: longest path first; on a tie `Exact` first.
    pub fn precedence(&self) -> (std::cmp::Reverse<usize>, u8) {
        let kind = match self.matcher {
            PathMatch::Exact(_) => 0,
            PathMatch::Prefix(_) | PathMatch::Regex(_) => 1,
        };
        (std::cmp::Reverse(self.path.len()), kind)
    }

    /// Whether two rules are the same rule (same path, same kind): the older Ingress keeps it.
    pub fn same_as(&self, other: &PathRule) -> bool {
        self.path == other.path && std::mem::discriminant(&self.matcher) == std::mem::discriminant(&other.matcher)
    }
}

/// The non-empty `/`-separated elements of a path.
fn elements(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|e| !e.is_empty())
}

/// A rule's host: exact, or a wildcard over one label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    Exact(String),
    /// `*.foo.com`, kept as `foo.com`.
    Wildcard(String),
}

impl HostPattern {
    /// The pattern of a rule's `host` (lowercased); `None` for an invalid host.
    pub fn parse(host: &str) -> Option<HostPattern> {
        let host = host.to_ascii_lowercase();
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        match host.strip_prefix("*.") {
            Some(rest) if valid(rest) => Some(HostPattern::Wildcard(rest.into())),
            Some(_) => None,
            None if valid(&host) => Some(HostPattern::Exact(host)),
            None => None,
        }
    }

    /// Whether a request host (lowercase, without port) falls under this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Wildcard(s) => write!(f, "*.{s}"),
        }
    }
}

/// The host of a request's `Host` header or `:authority`, lowercased and without its port.
pub fn request_host(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_once(']').map(|(h, _)| &h[1..]).unwrap_or(authority)
    } else {
        authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples table of the Kubernetes Ingress documentation ("Examples" under Path types).
    #[test]
    fn the_documentations_examples_table() {
        // (kind, rule paths, request path, matches?)
        let rows: &[(&str, &[&str], &str, bool)] = &[
            ("Prefix", &["/"], "(all paths)", true),
            ("Exact", &["/foo"], "/foo", true),
            ("Exact", &["/foo"], "/bar", false),
            ("Exact", &["/foo"], "/foo/", false),
            ("Exact", &["/foo/"], "/foo", false),
            ("Prefix", &["/foo"], "/foo", true),
            ("Prefix", &["/foo"], "/foo/", true),
            ("Prefix", &["/foo/"], "/foo", true),
            ("Prefix", &["/foo/"], "/foo/", true),
            ("Prefix", &["/aaa/bb"], "/aaa/bbb", false),
            ("Prefix", &["/aaa/bbb"], "/aaa/bbb", true),
            ("Prefix", &["/aaa/bbb/"], "/aaa/bbb", true),
            ("Prefix", &["/aaa/bbb"], "/aaa/bbb/", true),
            ("Prefix", &["/aaa/bbb"], "/aaa/bbb/ccc", true),
            ("Prefix", &["/aaa/bbb"], "/aaa/bbbxyz", false),
            ("Prefix", &["/", "/aaa"], "/aaa/ccc", true),
            ("Prefix", &["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", true),
            ("Prefix", &["/", "/aaa", "/aaa/bbb"], "/ccc", true),
            ("Prefix", &["/aaa"], "/ccc", false),
        ];
        for (kind, rules, req, want) in rows {
            let req = if *req == "(all paths)" { "/anything/at/all" } else { req };
            let got = rules.iter().any(|p| PathRule::new(kind, p, false).unwrap().matches(req));
            assert_eq!(got, *want, "{kind} {rules:?} on {req}");
        }
        // Mixed: Exact /foo and Prefix /foo, request /foo → both match; Exact sorts first.
        let exact = PathRule::new("Exact", "/foo", false).unwrap();
        let prefix = PathRule::new("Prefix", "/foo", false).unwrap();
        assert!(exact.matches("/foo") && prefix.matches("/foo"));
        assert!(exact.precedence() < prefix.precedence());
        // Longest path first.
        let long = PathRule::new("Prefix", "/aaa/bbb", false).unwrap();
        assert!(long.precedence() < PathRule::new("Prefix", "/aaa", false).unwrap().precedence());
    }

    #[test]
    fn regex_paths_and_rewrites_as_ingress_nginx() {
        // The rewrite example of ingress-nginx's documentation.
        let r = PathRule::new("ImplementationSpecific", "/something(/|$)(.*)", true).unwrap();
        for (req, want) in [("/something", "/"), ("/something/", "/"), ("/something/new", "/new")] {
            assert!(r.matches(req));
            assert_eq!(r.rewrite("/$2", req), want);
        }
        assert!(r.matches("/SOMETHING/x"), "case-insensitive");
        assert!(!r.matches("/other"));
        // Seed 000: Prefix "/" with rewrite-target "/": every path becomes "/".
        let seed = PathRule::new("Prefix", "/", true).unwrap();
        assert!(seed.matches("/any/thing"));
        assert_eq!(seed.rewrite("/", "/any/thing"), "/");
        // Captures that did not take part become empty; a target without "/" gets one.
        assert_eq!(r.rewrite("$2/x", "/something"), "/x");
        assert_eq!(r.rewrite("new$9", "/something/a"), "/new");
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        assert_eq!(PathRule::new("Prefix", "foo", false).unwrap_err(), PathError::NotAbsolute("foo".into()));
        assert!(matches!(PathRule::new("Regex", "/", false), Err(PathError::UnknownType(_))));
        assert!(matches!(PathRule::new("Prefix", "/(", true), Err(PathError::BadRegex { .. })));
        assert!(matches!(PathRule::new("Exact", "/a b", false), Err(PathError::BadCharacters(_))));
    }

    #[test]
    fn hosts_and_wildcards() {
        let w = HostPattern::parse("*.Foo.com").unwrap();
        assert!(w.matches("bar.foo.com"));
        assert!(!w.matches("baz.bar.foo.com"), "one label only");
        assert!(!w.matches("foo.com"));
        let e = HostPattern::parse("foo.bar.com").unwrap();
        assert!(e.matches("foo.bar.com") && !e.matches("x.foo.bar.com"));
        assert_eq!(HostPattern::parse("a..b"), None);
        assert_eq!(HostPattern::parse("*.*.b"), None);
        assert_eq!(request_host("Foo.Bar.com:8080"), "foo.bar.com");
        assert_eq!(request_host("[::1]:443"), "::1");
        assert_eq!(request_host("example.com."), "example.com");
    }
}
