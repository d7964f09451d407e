//! The order of plugins in a chain, CoreDNS's `plugin.cfg`: a query runs through the plugins in
//! this order whatever the Corefile's order.

/// CoreDNS's plugin.cfg, first to last.
pub const PLUGIN_ORDER: &[&str] = &[
    "metadata",
    "cancel",
    "tls",
    "reload",
    "nsid",
    "bufsize",
    "root",
    "bind",
    "debug",
    "trace",
    "ready",
    "health",
    "pprof",
    "prometheus",
    "errors",
    "log",
    "dnstap",
    "acl",
    "any",
    "chaos",
    "loadbalance",
    "cache",
    "rewrite",
    "dnssec",
    "autopath",
    "template",
    "transfer",
    "hosts",
    "route53",
    "azure",
    "clouddns",
    "federation",
    "k8s_external",
    "kubernetes",
    "file",
    "auto",
    "secondary",
    "etcd",
    "loop",
    "forward",
    "grpc",
    "erratic",
    "whoami",
    "on",
    "sign",
    "fanout",
];

/// The plugins podnet implements.
pub const SUPPORTED: &[&str] = &[
    "reload",
    "ready",
    "health",
    "prometheus",
    "errors",
    "log",
    "loadbalance",
    "cache",
    "hosts",
    "kubernetes",
    "loop",
    "forward",
];

/// The position of `name` in plugin.cfg, if CoreDNS knows it.
pub fn position(name: &str) -> Option<usize> {
    PLUGIN_ORDER.iter().position(|p| *p == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_plugins_are_in_coredns_order() {
        let positions: Vec<usize> = SUPPORTED.iter().map(|p| position(p).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
    }
}
