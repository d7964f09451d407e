//! The kubelet API's URLs: the path into a [`Route`] (`/containerLogs/…`, `/exec/…`,
//! `/attach/…`) and the query into its options, as kubelet reads them.

use super::KubeletError;

/// Which container of which pod an endpoint addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Logs(ContainerRef, LogOptions),
    Exec(ContainerRef, StreamOptions),
    Attach(ContainerRef, StreamOptions),
    Healthz,
}

/// `GET /containerLogs`' options (`follow`, `tailLines`, `previous`, `timestamps`, `limitBytes`,
/// `sinceSeconds`, `sinceTime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub previous: bool,
    pub timestamps: bool,
    pub limit_bytes: Option<usize>,
    pub since_seconds: Option<u64>,
    /// An RFC 3339 time.
    pub since_time: Option<String>,
}

/// The streams and command of `/exec` and `/attach`. kubelet accepts both the API server's
/// names (`input`, `output`, `error`) and the pod options' (`stdin`, `stdout`, `stderr`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// Decodes `%XX` escapes and `+` (a space) of a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's pairs, decoded, in order (keys may repeat, as `command` does).
pub fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn last<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| keys.contains(&k.as_str())).map(|(_, v)| v.as_str())
}

fn flag(pairs: &[(String, String)], keys: &[&str]) -> bool {
    matches!(last(pairs, keys), Some("1" | "true" | "True"))
}

fn number<T: std::str::FromStr>(pairs: &[(String, String)], key: &str) -> Result<Option<T>, KubeletError> {
    match last(pairs, &[key]).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| KubeletError::BadRequest(format!("invalid {key} {v:?}"))),
    }
}

impl LogOptions {
    pub fn parse(pairs: &[(String, String)]) -> Result<LogOptions, KubeletError> {
        let tail: Option<i64> = number(pairs, "tailLines")?;
        Ok(LogOptions {
            follow: flag(pairs, &["follow"]),
            // A negative tailLines means all lines, as in kubelet.
            tail_lines: tail.and_then(|n| usize::try_from(n).ok()),
            previous: flag(pairs, &["previous"]),
            timestamps: flag(pairs, &["timestamps"]),
            limit_bytes: number(pairs, "limitBytes")?,
            since_seconds: number(pairs, "sinceSeconds")?,
            since_time: last(pairs, &["sinceTime"]).filter(|v| !v.is_empty()).map(str::to_string),
        })
    }
}

impl StreamOptions {
    pub fn parse(pairs: &[(String, String)]) -> StreamOptions {
        StreamOptions {
            command: pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect(),
            stdin: flag(pairs, &["stdin", "input"]),
            stdout: flag(pairs, &["stdout", "output"]),
            stderr: flag(pairs, &["stderr", "error"]),
            tty: flag(pairs, &["tty"]),
        }
    }
}

impl Route {
    /// Parses a request's path and query.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Route, KubeletError> {
        let segs: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
        let pairs = pairs(query);
        let target = |ns: &str, pod: &str, c: &str| ContainerRef {
            namespace: ns.to_string(),
            pod: pod.to_string(),
            container: c.to_string(),
        };
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["healthz"] => Ok(Route::Healthz),
            ["containerLogs", ns, pod, c] => Ok(Route::Logs(target(ns, pod, c), LogOptions::parse(&pairs)?)),
            ["exec", ns, pod, c] => {
                let opts = StreamOptions::parse(&pairs);
                if opts.command.is_empty() {
                    return Err(KubeletError::BadRequest(
                        "you must specify at least one command for the container".into(),
                    ));
                }
                Ok(Route::Exec(target(ns, pod, c), opts))
            }
            ["attach", ns, pod, c] => Ok(Route::Attach(target(ns, pod, c), StreamOptions::parse(&pairs))),
            _ => Err(KubeletError::NotFound(format!("no endpoint at {path}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(percent_decode("a%20b+c%2Fd%"), "a b c/d%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(pairs(Some("command=sh&command=-c&command=echo+hi&x")).len(), 4);
    }

    #[test]
    fn parses_logs() {
        let r = Route::parse("/containerLogs/default/web/app", Some("follow=true&tailLines=10&timestamps=1")).unwrap();
        let Route::Logs(c, o) = r else { panic!("{r:?}") };
        assert_eq!((c.namespace.as_str(), c.pod.as_str(), c.container.as_str()), ("default", "web", "app"));
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(10));
        let Route::Logs(_, o) = Route::parse("/containerLogs/a/b/c", Some("tailLines=-1")).unwrap() else { panic!() };
        assert_eq!(o.tail_lines, None);
        assert!(matches!(Route::parse("/containerLogs/a/b/c", Some("tailLines=x")), Err(KubeletError::BadRequest(_))));
    }

    #[test]
    fn parses_exec_and_attach() {
        let q = "command=sh&command=-c&command=exit%203&input=1&output=1&error=1";
        let Route::Exec(_, o) = Route::parse("/exec/ns/p/c", Some(q)).unwrap() else { panic!() };
        assert_eq!(o.command, ["sh", "-c", "exit 3"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        let Route::Attach(_, o) = Route::parse("/attach/ns/p/c", Some("stdout=true&tty=true")).unwrap() else {
            panic!()
        };
        assert!(o.stdout && o.tty && !o.stdin && !o.stderr);
        assert!(matches!(Route::parse("/exec/ns/p/c", Some("stdout=1")), Err(KubeletError::BadRequest(_))));
        assert!(matches!(Route::parse("/pods", None), Err(KubeletError::NotFound(_))));
    }
}
