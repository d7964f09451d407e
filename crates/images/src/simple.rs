//! The small course images: ghcr.io/c1t1d0s7/go-myweb, kubetm/p8000 and p8080, kubetm/app and
//! kubetm/init.
//!
//! - go-myweb answers every request with `Hello World!`, a newline, the hostname (the pod's name)
//!   and a newline, as the seeds' transcripts show; env `MESSAGE` replaces the greeting.
//! - p8000 and p8080 answer every request with `containerPort : 8000` (or 8080) and a newline,
//!   as the courses' Node.js programs do.
//! - kubetm/app (and kubetm/init, which answers the same) serves the paths its course uses:
//!   `/hostname` → `Hostname : <hostname>`, `/version` → `Version : <tag>` (`v1` when the
//!   reference has no version tag), `/health` → `<hostname> is Running` (200) until `/status500`
//!   is asked (→ `Status Code has Changed to 500`), then `<hostname> : Internal Server Error`
//!   (500), each with a newline; `/` answers like `/hostname`; other paths get a 404.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Method, StatusCode};

use crate::server::{hostname, reply, Handler, Reply, ReplyFuture, Request};

fn ready(r: Reply) -> ReplyFuture {
    Box::pin(async move { r })
}

/// ghcr.io/c1t1d0s7/go-myweb.
pub(crate) struct MyWeb {
    pub message: String,
}

impl Handler for MyWeb {
    fn handle(&self, _req: Request) -> ReplyFuture {
        ready(reply(StatusCode::OK, "text/plain; charset=utf-8", format!("{}\n{}\n", self.message, hostname())))
    }
}

/// kubetm/p8000 and kubetm/p8080.
pub(crate) struct PortText {
    pub port: u16,
}

impl Handler for PortText {
    fn handle(&self, _req: Request) -> ReplyFuture {
        ready(reply(StatusCode::OK, "", format!("containerPort : {}\n", self.port)))
    }
}

/// kubetm/app and kubetm/init.
pub(crate) struct Kubetm {
    version: String,
    failing: AtomicBool,
}

impl Kubetm {
    /// `tag` is the image's tag: a tag starting with `v` and a digit is the version.
    pub(crate) fn new(tag: Option<&str>) -> Self {
        let version = match tag {
            Some(t) if t.starts_with('v') && t[1..].starts_with(|c: char| c.is_ascii_digit()) => t.to_string(),
            _ => "v1".to_string(),
        };
        Kubetm { version, failing: AtomicBool::new(false) }
    }

    fn answer(&self, req: &Request) -> Reply {
        const HTML: &str = "text/html; charset=utf-8";
        let path = req.parts.uri.path();
        let get = matches!(req.parts.method, Method::GET | Method::HEAD);
        match path {
            "/" | "/hostname" if get => reply(StatusCode::OK, HTML, format!("Hostname : {}\n", hostname())),
            "/version" if get => reply(StatusCode::OK, HTML, format!("Version : {}\n", self.version)),
            "/health" if get => {
                if self.failing.load(Ordering::SeqCst) {
                    reply(StatusCode::INTERNAL_SERVER_ERROR, HTML, format!("{} : Internal Server Error\n", hostname()))
                } else {
                    reply(StatusCode::OK, HTML, format!("{} is Running\n", hostname()))
                }
            }
            "/status500" if get => {
                self.failing.store(true, Ordering::SeqCst);
                reply(StatusCode::OK, HTML, "Status Code has Changed to 500\n")
            }
            _ => reply(
                StatusCode::NOT_FOUND,
                HTML,
                format!(
                    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n\
                     </head>\n<body>\n<pre>Cannot {} {}</pre>\n</body>\n</html>\n",
                    req.parts.method,
                    html_escape(path)
                ),
            ),
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Handler for Kubetm {
    fn handle(&self, req: Request) -> ReplyFuture {
        ready(self.answer(&req))
    }
}

/// The handler of a built-in image by name, for the simple images.
pub(crate) fn handler(name: &str, tag: Option<&str>, env: &dyn Fn(&str) -> Option<String>) -> Option<Arc<dyn Handler>> {
    Some(match name {
        "go-myweb" => Arc::new(MyWeb {
            message: env("MESSAGE").filter(|m| !m.is_empty()).unwrap_or_else(|| "Hello World!".to_string()),
        }),
        "p8000" => Arc::new(PortText { port: 8000 }),
        "p8080" => Arc::new(PortText { port: 8080 }),
        "app" | "init" => Arc::new(Kubetm::new(tag)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_tag() {
        assert_eq!(Kubetm::new(Some("v2")).version, "v2");
        assert_eq!(Kubetm::new(Some("v3.1")).version, "v3.1");
        assert_eq!(Kubetm::new(Some("latest")).version, "v1");
        assert_eq!(Kubetm::new(Some("vx")).version, "v1");
        assert_eq!(Kubetm::new(None).version, "v1");
    }
}
