//! podnet's lab images: the image table that container image references resolve through, and
//! the built-in servers that stand in for the images the seeds use.
//!
//! A pod's image is looked up with [`resolve`] (or [`launch`], which also applies Kubernetes'
//! `command`/`args` rule). Built-in servers run as `podnet internal image NAME ARGS…`, which
//! calls [`run`]; they stop gracefully on SIGTERM or SIGINT and exit 0.
//!
//! Options of every built-in server (other arguments are ignored, as the real images ignore
//! what they do not know, e.g. nginx's `-g 'daemon off;'`):
//! - `--listen ADDR` (repeatable): listen there instead of the image's ports; ADDR is `PORT`,
//!   `:PORT` (every address, IPv4 and IPv6) or `IP:PORT` (`127.0.0.1:0` for tests). Env
//!   `PODNET_LISTEN` (comma-separated) does the same.
//! - `--listen-tls ADDR` (echo): where to serve HTTPS when a certificate is given.
//! - `--root DIR` (nginx): serve files from DIR first (env `PODNET_NGINX_ROOT`).
//!
//! Environment: `PODNET_IMAGE` (set by [`launch`]) is the container's image reference, whose tag
//! picks nginx's welcome page and kubetm/app's version; the echo server reads `PORT` or
//! `HTTP_PORT` (one port instead of 80, 3000 and 8080), `HTTPS_PORT` (8443),
//! `TLS_SERVER_CERT` and `TLS_SERVER_PRIVKEY` (PEM files: HTTPS is served when both are set),
//! `NAMESPACE`/`POD_NAMESPACE`, `INGRESS_NAME`, `SERVICE_NAME` and `POD_NAME`; network-multitool
//! reads `HTTP_PORT` and `HTTPS_PORT`; go-myweb reads `MESSAGE`.
//!
//! The table itself ([`table_doc`] prints it):
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod command;
mod echo;
mod nginx;
mod server;
mod simple;
mod table;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

pub use command::{command_for, expand, launch, Launch, IMAGE_ENV, NOT_IN_TABLE_REASON};
pub use table::{
    by_name, not_in_table_message, parse_reference, resolve, table, table_doc, DefaultCommand, Image, Reference,
};

use server::{Handler, ListenSpec, Listener};

/// Errors of the lab images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is not one of the built-in servers.
    #[error("unknown lab image {0:?} (built-in servers: {list})", list = builtin_names().join(", "))]
    Unknown(String),
    /// An image outside the table, and no command to run instead.
    #[error("{}", not_in_table_message(reference))]
    NotInTable {
        /// The image reference as the pod gives it.
        reference: String,
    },
    /// Bad arguments or environment.
    #[error("{0}")]
    Usage(String),
    /// A port could not be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address or `:PORT`.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// A file could not be read, or signals could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The container `reason` this error stands for, where it has one (`ErrImagePull` for an
    /// image outside the table).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Error::NotInTable { .. } => Some(NOT_IN_TABLE_REASON),
            _ => None,
        }
    }
}

/// The names `podnet internal image NAME` accepts.
pub fn builtin_names() -> Vec<&'static str> {
    table().iter().filter(|i| i.default_command == DefaultCommand::Builtin).map(|i| i.name).collect()
}

/// Runs the lab image `name` with the container's arguments until SIGTERM or SIGINT, then stops
/// gracefully (no new connections, requests in flight finish) and returns.
pub async fn run(name: &str, args: &[String]) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    // Handlers are installed before anything listens: an early SIGTERM is not lost.
    let io = |source| Error::Io { what: "installing signal handlers".into(), source };
    let mut term = signal(SignalKind::terminate()).map_err(io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io)?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    run_until(name, args, shutdown).await
}

/// [`run`] with another shutdown trigger: runs the lab image until `shutdown` resolves.
pub async fn run_until(name: &str, args: &[String], shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let env = |k: &str| std::env::var(k).ok();
    let plan = plan(name, args, &env)?;
    if !plan.ignored.is_empty() {
        server::log_err(&format!("{name}: ignoring arguments {:?}", plan.ignored));
    }
    let Some(handler) = plan.handler else {
        // pause: nothing to serve.
        shutdown.await;
        return Ok(());
    };
    let mut listeners = Vec::new();
    let mut errors = Vec::new();
    for spec in &plan.listen {
        match server::bind(*spec).await {
            Ok(ls) => listeners.extend(ls.into_iter().map(Listener::plain)),
            Err(e) => errors.push(e),
        }
    }
    if let Some((acceptor, specs)) = &plan.tls {
        for spec in specs {
            match server::bind(*spec).await {
                Ok(ls) => listeners.extend(ls.into_iter().map(|tcp| Listener { tcp, tls: Some(acceptor.clone()) })),
                Err(e) => errors.push(e),
            }
        }
    }
    // Images with several default ports (echo) serve those they could bind.
    if listeners.is_empty() || (plan.all_required && !errors.is_empty()) {
        return Err(errors.into_iter().next().unwrap_or_else(|| Error::Usage("nothing to listen on".into())));
    }
    for e in &errors {
        server::log_err(&format!("{name}: {e}"));
    }
    server::log_err(&format!("{name}: listening on {}", server::describe(&listeners)));
    server::serve(listeners, handler, shutdown).await?;
    server::log_err(&format!("{name}: stopped"));
    Ok(())
}

/// What a built-in server will do, from its arguments and environment.
struct Plan {
    /// `None` for pause.
    handler: Option<Arc<dyn Handler>>,
    listen: Vec<ListenSpec>,
    tls: Option<(tokio_rustls::TlsAcceptor, Vec<ListenSpec>)>,
    /// Whether every listen spec must bind (otherwise any one is enough).
    all_required: bool,
    ignored: Vec<String>,
}

fn port_env(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Result<Option<u16>, Error> {
    for n in names {
        if let Some(v) = env(n).filter(|v| !v.trim().is_empty()) {
            return v.trim().parse().map(Some).map_err(|_| Error::Usage(format!("{n}={v:?} is not a port")));
        }
    }
    Ok(None)
}

fn plan(name: &str, args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, Error> {
    let image = by_name(name)
        .filter(|i| i.default_command == DefaultCommand::Builtin)
        .ok_or_else(|| Error::Unknown(name.to_string()))?;
    let mut listen = Vec::new();
    let mut listen_tls = Vec::new();
    let mut root = env("PODNET_NGINX_ROOT").filter(|r| !r.is_empty()).map(PathBuf::from);
    let mut ignored = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |flag: &str| {
            inline.clone().or_else(|| it.next().cloned()).ok_or_else(|| Error::Usage(format!("{flag} needs a value")))
        };
        match flag {
            "--listen" => listen.push(ListenSpec::parse(&value(flag)?)?),
            "--listen-tls" => listen_tls.push(ListenSpec::parse(&value(flag)?)?),
            "--root" => root = Some(PathBuf::from(value(flag)?)),
            _ => ignored.push(arg.clone()),
        }
    }
    if listen.is_empty() {
        if let Some(specs) = env("PODNET_LISTEN").filter(|v| !v.trim().is_empty()) {
            for s in specs.split(',').filter(|s| !s.trim().is_empty()) {
                listen.push(ListenSpec::parse(s)?);
            }
        }
    }
    let explicit = !listen.is_empty();
    let reference = env(IMAGE_ENV).unwrap_or_default();
    let tag = command::tag_of(&reference);
    let mut tls = None;
    let mut all_required = true;
    let handler: Option<Arc<dyn Handler>> = match image.name {
        "pause" => None,
        "nginx" => Some(nginx::handler(nginx::Index::Welcome, tag.as_deref(), root)),
        "multitool" => {
            let http = port_env(env, &["HTTP_PORT"])?;
            let https = port_env(env, &["HTTPS_PORT"])?.unwrap_or(443);
            if !explicit {
                if let Some(p) = http {
                    listen.push(ListenSpec::Port(p));
                }
            }
            let shown = match (&listen[..], http) {
                (_, Some(p)) => p,
                ([ListenSpec::Port(p)], None) => *p,
                _ => 80,
            };
            Some(nginx::handler(
                nginx::Index::Multitool { http_port: shown.to_string(), https_port: https.to_string() },
                tag.as_deref(),
                root,
            ))
        }
        "echo" => {
            if !explicit {
                if let Some(p) = port_env(env, &["PORT", "HTTP_PORT"])? {
                    listen.push(ListenSpec::Port(p));
                } else {
                    all_required = false;
                }
            }
            let cert = env("TLS_SERVER_CERT").filter(|v| !v.is_empty());
            let key = env("TLS_SERVER_PRIVKEY").filter(|v| !v.is_empty());
            if let (Some(cert), Some(key)) = (cert, key) {
                let read = |path: &str| {
                    std::fs::read(path).map_err(|source| Error::Io { what: format!("reading {path}"), source })
                };
                let acceptor = server::tls_acceptor(&read(&cert)?, &read(&key)?)?;
                if listen_tls.is_empty() {
                    listen_tls.push(ListenSpec::Port(port_env(env, &["HTTPS_PORT"])?.unwrap_or(8443)));
                }
                tls = Some((acceptor, listen_tls));
            }
            Some(echo::handler(echo::Context::from_env(env)))
        }
        other => simple::handler(other, tag.as_deref(), env),
    };
    if handler.is_some() && listen.is_empty() {
        listen = image.ports.iter().map(|p| ListenSpec::Port(*p)).collect();
    }
    Ok(Plan { handler, listen, tls, all_required, ignored })
}

#[cfg(test)]
mod tests;
