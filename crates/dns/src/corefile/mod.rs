//! The Corefile: CoreDNS's configuration, parsed without any I/O.
//!
//! [`Corefile::parse`] reads the text (quotes, comments, `{$ENV}`, snippets `(name) { … }` with
//! `import name`) into server blocks ([`ServerBlock`]: zones, a port and plugin directives);
//! [`ServerBlock::configure`] turns the directives into typed options ([`PluginConfig`]) in
//! CoreDNS's plugin.cfg order, with errors that name the line (`Corefile:7: forward: unknown
//! option "foo"`).

mod address;
mod config;
mod error;
mod lexer;
pub mod names;
mod options;
mod order;
mod parser;
#[cfg(test)]
pub(crate) mod tests;

pub use address::{parse_listen, DEFAULT_PORT};
pub use config::{ConfiguredPlugin, PluginConfig};
pub use error::{CorefileError, ErrorKind};
pub use options::{
    parse_duration, CacheClass, CacheOptions, ErrorsOptions, Fallthrough, ForwardOptions, HealthOptions, HostsOptions,
    KubernetesOptions, LoadBalanceOptions, LogClasses, LogOptions, LoopOptions, PodsMode, Policy, Prefetch,
    PrometheusOptions, ReadyOptions, RefreshMode, ReloadOptions, ServeStale, UpstreamSpec,
};
pub use order::{PLUGIN_ORDER, SUPPORTED};

/// kubeadm's default Corefile (ConfigMap kube-system/coredns; seed 000 prints it).
pub const KUBEADM_COREFILE: &str = ".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
";

use std::path::Path;

/// A parsed Corefile: its server blocks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corefile {
    pub servers: Vec<ServerBlock>,
}

/// One server: the zones it serves on a port and its plugin directives. A block whose keys
/// name several ports becomes one `ServerBlock` per port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    /// The Corefile's name, for error messages.
    pub file: String,
    /// The line of the block's first key.
    pub line: usize,
    /// Normalized zones (`.`, `cluster.local.`, `0.0.10.in-addr.arpa.`).
    pub zones: Vec<String>,
    pub port: u16,
    /// The plugins as written, in the Corefile's order.
    pub plugins: Vec<PluginDirective>,
}

/// A line of a block: a name, its arguments, and an optional nested block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Vec<Directive>,
    /// 1-based line of the name.
    pub line: usize,
}

/// A plugin's directive in a server block.
pub type PluginDirective = Directive;

impl Corefile {
    /// Parses Corefile text named `Corefile`, with the process's environment for `{$VAR}`.
    pub fn parse(text: &str) -> Result<Corefile, CorefileError> {
        Self::parse_with(text, "Corefile", &|name| std::env::var(name).ok())
    }

    /// Parses text named `file` (for errors), reading variables with `env`.
    pub fn parse_with(text: &str, file: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile, CorefileError> {
        parser::parse(text, file, env)
    }

    /// Reads and parses the file at `path`, and checks every block's plugins.
    pub fn load(path: &Path) -> Result<Corefile, CorefileError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| CorefileError::new(&file, 0, ErrorKind::Io(e.to_string())))?;
        let corefile = Self::parse_with(&text, &file, &|name| std::env::var(name).ok())?;
        corefile.validate()?;
        Ok(corefile)
    }

    /// Checks every block's plugins and options.
    pub fn validate(&self) -> Result<(), CorefileError> {
        self.servers.iter().try_for_each(|s| s.configure().map(drop))
    }

    /// The `reload` options of the first block that has the plugin.
    pub fn reload_options(&self) -> Option<ReloadOptions> {
        self.servers.iter().filter_map(|s| s.configure().ok()).flatten().find_map(|p| match p.config {
            PluginConfig::Reload(r) => Some(r),
            _ => None,
        })
    }
}

impl ServerBlock {
    /// The plugin directive named `name`, if the block has it.
    pub fn plugin(&self, name: &str) -> Option<&PluginDirective> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// CoreDNS's name for the server, as in metrics: `dns://:53`.
    pub fn server_label(&self) -> String {
        format!("dns://:{}", self.port)
    }
}
