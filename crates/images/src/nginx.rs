//! The nginx image (and network-multitool's page, which nginx serves in the real image): a static
//! server answering like the official image's default configuration.
//!
//! `/` and `/index.html` are the welcome page (the one of the tag's nginx version: up to 1.21.4
//! the older page of 612 bytes, from 1.21.5 on, and for `latest`, `stable`, `alpine`… the page of
//! 615 bytes), `/50x.html` is nginx's error page, anything else is nginx's 404 page; GET and
//! HEAD only (405 otherwise). Responses carry `Server: nginx` and, for files, `Last-Modified`,
//! `ETag` and `Accept-Ranges` as nginx sends them. Each request is logged on standard output in
//! the image's `main` log format.
//!
//! With `--root DIR` (or env `PODNET_NGINX_ROOT`), files under DIR are served first, as from a
//! volume mounted at `/usr/share/nginx/html`; the built-in pages stay as the fallback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Method, StatusCode};

use crate::server::{hostname, log_out, reply, Handler, Reply, ReplyFuture, Request};

/// The welcome page of nginx 1.21.5 and later.
pub(crate) const WELCOME: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href=\"http://nginx.org/\">nginx.org</a>.<br/>
Commercial support is available at
<a href=\"http://nginx.com/\">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";

/// The welcome page of nginx up to 1.21.4 (nginx:1.14 of the seeds).
pub(crate) const WELCOME_OLD: &str = "<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href=\"http://nginx.org/\">nginx.org</a>.<br/>
Commercial support is available at
<a href=\"http://nginx.com/\">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
";

const ERROR_50X: &str = "<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
";

const ERROR_50X_OLD: &str = "<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
";

/// Modification times of the built-in pages: nginx 1.21.5's files and nginx 1.14.2's.
const MTIME: u64 = 1_640_705_318;
const MTIME_OLD: u64 = 1_543_934_689;

/// Whether an nginx image tag is a version before 1.21.5 (whose welcome page is the older one).
pub(crate) fn is_old_version(tag: &str) -> bool {
    let nums: Vec<u64> = tag
        .split('.')
        .map_while(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect();
    match nums.as_slice() {
        [1, minor, rest @ ..] => *minor < 21 || (*minor == 21 && rest.first().is_some_and(|p| *p < 5)),
        [0, ..] => true,
        _ => false,
    }
}

/// What `/` shows.
pub(crate) enum Index {
    /// nginx's welcome page.
    Welcome,
    /// network-multitool's line: hostname, the address the client reached, the ports.
    Multitool { http_port: String, https_port: String },
}

/// The nginx handler.
pub(crate) struct Nginx {
    index: Index,
    old: bool,
    root: Option<PathBuf>,
    started: u64,
}

impl Nginx {
    pub(crate) fn new(index: Index, tag: Option<&str>, root: Option<PathBuf>) -> Self {
        let old = matches!(index, Index::Welcome) && tag.is_some_and(is_old_version);
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Nginx { index, old, root, started }
    }
}

/// One file to send.
struct File {
    body: Vec<u8>,
    mtime: u64,
    content_type: &'static str,
}

enum Lookup {
    Found(File),
    /// A directory asked without its trailing slash.
    Redirect,
    /// A directory without an index.
    Forbidden,
    NotFound,
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" | "shtml" => "text/html",
        "css" => "text/css",
        "xml" => "text/xml",
        "txt" => "text/plain",
        "js" => "application/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" | "svgz" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The path's components with `.` and empty ones dropped and `..` applied; `None` when `..`
/// climbs above the root or a component holds a NUL (nginx answers 400).
fn normalize(path: &str) -> Option<(Vec<String>, bool)> {
    let decoded = percent_decode(path);
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    if decoded.contains('\0') {
        return None;
    }
    let trailing = decoded.ends_with('/');
    let mut parts: Vec<String> = Vec::new();
    for c in decoded.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_string()),
        }
    }
    let trailing = trailing || parts.is_empty();
    Some((parts, trailing))
}

impl Nginx {
    fn builtin(&self, parts: &[String], dir: bool, conn_ip: std::net::IpAddr) -> Lookup {
        let index = || match &self.index {
            Index::Welcome => {
                let (page, mtime) = if self.old { (WELCOME_OLD, MTIME_OLD) } else { (WELCOME, MTIME) };
                File { body: page.as_bytes().to_vec(), mtime, content_type: "text/html" }
            }
            Index::Multitool { http_port, https_port } => File {
                body: format!(
                    "WBITT Network MultiTool (with NGINX) - {} - {} - HTTP: {http_port} , HTTPS: {https_port} . \
                     (Formerly praqma/network-multitool)\n",
                    hostname(),
                    conn_ip
                )
                .into_bytes(),
                mtime: self.started,
                content_type: "text/html",
            },
        };
        match (parts, dir) {
            ([], _) => Lookup::Found(index()),
            ([one], false) if one == "index.html" => Lookup::Found(index()),
            ([one], false) if one == "50x.html" && matches!(self.index, Index::Welcome) => {
                let (page, mtime) = if self.old { (ERROR_50X_OLD, MTIME_OLD) } else { (ERROR_50X, MTIME) };
                Lookup::Found(File { body: page.as_bytes().to_vec(), mtime, content_type: "text/html" })
            }
            _ => Lookup::NotFound,
        }
    }

    fn from_root(root: &Path, parts: &[String], dir: bool) -> Lookup {
        let mut path = root.to_path_buf();
        for p in parts {
            path.push(p);
        }
        let Ok(meta) = std::fs::metadata(&path) else { return Lookup::NotFound };
        let (file, name) = if meta.is_dir() {
            if !dir {
                return Lookup::Redirect;
            }
            let index = path.join("index.html");
            match std::fs::metadata(&index) {
                Ok(m) if m.is_file() => (index, "index.html".to_string()),
                _ => return Lookup::Forbidden,
            }
        } else if dir {
            return Lookup::NotFound;
        } else {
            (path, parts.last().cloned().unwrap_or_default())
        };
        match std::fs::read(&file) {
            Ok(body) => {
                let mtime = std::fs::metadata(&file)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                Lookup::Found(File { body, mtime, content_type: content_type(&name) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Lookup::Forbidden,
            Err(_) => Lookup::NotFound,
        }
    }

    fn answer(&self, req: &Request) -> Reply {
        let method = &req.parts.method;
        if !matches!(*method, Method::GET | Method::HEAD | Method::POST) {
            return error(StatusCode::METHOD_NOT_ALLOWED);
        }
        let Some((parts, dir)) = normalize(req.parts.uri.path()) else { return error(StatusCode::BAD_REQUEST) };
        let mut found = match &self.root {
            Some(root) => Self::from_root(root, &parts, dir),
            None => Lookup::NotFound,
        };
        if matches!(found, Lookup::NotFound) {
            found = self.builtin(&parts, dir, req.conn.local.ip());
        }
        match found {
            Lookup::NotFound => error(StatusCode::NOT_FOUND),
            Lookup::Forbidden => error(StatusCode::FORBIDDEN),
            Lookup::Redirect => {
                let host = req
                    .parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
                    .unwrap_or_else(|| req.conn.local.to_string());
                let mut r = error(StatusCode::MOVED_PERMANENTLY);
                if let Ok(v) = HeaderValue::from_str(&format!("http://{host}{}/", req.parts.uri.path())) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
                r
            }
            Lookup::Found(_) if *method == Method::POST => error(StatusCode::METHOD_NOT_ALLOWED),
            Lookup::Found(file) => {
                let len = file.body.len();
                let mut r = reply(StatusCode::OK, file.content_type, file.body);
                let h = r.headers_mut();
                h.insert(header::SERVER, HeaderValue::from_static("nginx"));
                if let Some(t) = chrono::DateTime::from_timestamp(file.mtime as i64, 0) {
                    let lm = t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
                    if let Ok(v) = HeaderValue::from_str(&lm) {
                        h.insert(header::LAST_MODIFIED, v);
                    }
                }
                if let Ok(v) = HeaderValue::from_str(&format!("\"{:x}-{:x}\"", file.mtime, len)) {
                    h.insert(header::ETAG, v);
                }
                h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                r
            }
        }
    }
}

/// nginx's built-in error page for a status (CRLF lines, `nginx` without version).
pub(crate) fn error_page(status: StatusCode) -> String {
    let reason = match status {
        StatusCode::METHOD_NOT_ALLOWED => "Not Allowed",
        s => s.canonical_reason().unwrap_or(""),
    };
    let title = format!("{} {}", status.as_u16(), reason);
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n\
         <hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

fn error(status: StatusCode) -> Reply {
    let mut r = reply(status, "text/html", error_page(status));
    r.headers_mut().insert(header::SERVER, HeaderValue::from_static("nginx"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.extensions_mut().insert(hyper::ext::ReasonPhrase::from_static(b"Not Allowed"));
    }
    r
}

fn proto(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl Handler for Nginx {
    fn handle(&self, req: Request) -> ReplyFuture {
        let r = self.answer(&req);
        // The image's `main` format:
        // $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
        // "$http_referer" "$http_user_agent" "$http_x_forwarded_for"
        let header = |name: header::HeaderName| {
            req.parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
        };
        let sent = if req.parts.method == Method::HEAD { 0 } else { body_len(&r) };
        let target = req.parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        log_out(&format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" \"{}\"",
            req.conn.remote.ip(),
            chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S %z"),
            req.parts.method,
            target,
            proto(req.parts.version),
            r.status().as_u16(),
            sent,
            header(header::REFERER),
            header(header::USER_AGENT),
            req.parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()).unwrap_or("-"),
        ));
        Box::pin(async move { r })
    }
}

fn body_len(r: &Reply) -> u64 {
    use hyper::body::Body as _;
    r.body().size_hint().exact().unwrap_or(0)
}

/// The nginx handler as a shared handler.
pub(crate) fn handler(index: Index, tag: Option<&str>, root: Option<PathBuf>) -> Arc<dyn Handler> {
    Arc::new(Nginx::new(index, tag, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_have_nginxs_sizes() {
        assert_eq!(WELCOME.len(), 615);
        assert_eq!(WELCOME_OLD.len(), 612);
        assert_eq!(ERROR_50X.len(), 497);
        assert!(error_page(StatusCode::NOT_FOUND).starts_with("<html>\r\n<head><title>404 Not Found</title></head>"));
        assert!(error_page(StatusCode::METHOD_NOT_ALLOWED).contains("<h1>405 Not Allowed</h1>"));
    }

    #[test]
    fn versions_before_1_21_5_have_the_old_page() {
        for t in ["1.14", "1.14.2", "1.14-alpine", "1.19.10-perl", "1.20", "1.21.0", "1.21.4-alpine", "0.8"] {
            assert!(is_old_version(t), "{t}");
        }
        for t in ["latest", "alpine", "stable", "mainline-alpine", "1.21", "1.21.5", "1.25", "1.27.3-alpine-slim", "1"]
        {
            assert!(!is_old_version(t), "{t}");
        }
    }

    #[test]
    fn paths_normalize_like_nginx() {
        assert_eq!(normalize("/"), Some((vec![], true)));
        assert_eq!(normalize("//index.html"), Some((vec!["index.html".to_string()], false)));
        assert_eq!(normalize("/a/../index.html"), Some((vec!["index.html".to_string()], false)));
        assert_eq!(normalize("/%69ndex.html"), Some((vec!["index.html".to_string()], false)));
        assert_eq!(normalize("/a/"), Some((vec!["a".to_string()], true)));
        assert_eq!(normalize("/../etc/passwd"), None);
        assert_eq!(normalize("/a%00b"), None);
        assert_eq!(normalize("/100%"), Some((vec!["100%".to_string()], false)));
    }
}
