//! Options of `kubernetes [ZONES...] { … }`, the plugin that answers the cluster's names. The
//! plugin itself lives elsewhere; it takes a [`KubernetesOptions`].

use std::time::Duration;

use super::{Fallthrough, Reader, Result};
use crate::corefile::Directive;

/// How `pods` answers `1-2-3-4.ns.pod.cluster.local`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PodsMode {
    /// No pod records (CoreDNS's default).
    #[default]
    Disabled,
    /// Answer any well-formed name with the IP it spells, as kube-dns did.
    Insecure,
    /// Answer only when a pod with that IP exists in that namespace.
    Verified,
}

/// The `kubernetes` plugin's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesOptions {
    /// Zones it is authoritative for (the server block's zones when none are given).
    pub zones: Vec<String>,
    /// `endpoint URL`: the API server (in-cluster configuration when unset).
    pub endpoint: Option<String>,
    /// `kubeconfig FILE [CONTEXT]`.
    pub kubeconfig: Option<(String, Option<String>)>,
    /// `namespaces NAMESPACE...`: only these namespaces are exposed (all when empty).
    pub namespaces: Vec<String>,
    pub pods: PodsMode,
    /// `fallthrough [ZONES...]`.
    pub fallthrough: Option<Fallthrough>,
    /// `ttl SECONDS` (0 to 3600, default 5).
    pub ttl: u32,
    /// `endpoint_pod_names`: name endpoint records after their pod.
    pub endpoint_pod_names: bool,
    /// `noendpoints`: do not watch endpoints (no headless or SRV endpoint records).
    pub noendpoints: bool,
    /// `ignore empty_service`: NXDOMAIN for services without ready endpoints.
    pub ignore_empty_service: bool,
    /// `startup_timeout DURATION` (default 5s): how long to wait for the first sync.
    pub startup_timeout: Duration,
}

impl KubernetesOptions {
    /// The options of `kubernetes` with no arguments, in a block serving `zones`.
    pub fn new(zones: Vec<String>) -> Self {
        KubernetesOptions {
            zones,
            endpoint: None,
            kubeconfig: None,
            namespaces: Vec::new(),
            pods: PodsMode::Disabled,
            fallthrough: None,
            ttl: 5,
            endpoint_pod_names: false,
            noendpoints: false,
            ignore_empty_service: false,
            startup_timeout: Duration::from_secs(5),
        }
    }
}

pub(crate) fn parse(r: &Reader, d: &Directive, zones: &[String]) -> Result<KubernetesOptions> {
    let zones = if d.args.is_empty() { zones.to_vec() } else { r.zones(d.line, &d.args)? };
    let mut opts = KubernetesOptions::new(zones);
    for o in &d.block {
        r.no_block(o)?;
        match o.name.as_str() {
            "endpoint" => {
                r.args(o, 1, 1)?;
                opts.endpoint = Some(o.args[0].clone());
            }
            "kubeconfig" => {
                r.args(o, 1, 2)?;
                opts.kubeconfig = Some((o.args[0].clone(), o.args.get(1).cloned()));
            }
            "namespaces" => {
                r.args(o, 1, usize::MAX)?;
                opts.namespaces = o.args.clone();
            }
            "pods" => {
                r.args(o, 1, 1)?;
                opts.pods = match o.args[0].as_str() {
                    "disabled" => PodsMode::Disabled,
                    "insecure" => PodsMode::Insecure,
                    "verified" => PodsMode::Verified,
                    m => return Err(r.err(o.line, format!("unknown pods mode {m:?}"))),
                };
            }
            "fallthrough" => opts.fallthrough = Some(r.fallthrough(o)?),
            "ttl" => {
                r.args(o, 1, 1)?;
                let ttl: u32 = r.number(o.line, &o.args[0], "ttl")?;
                if ttl > 3600 {
                    return Err(r.err(o.line, format!("ttl must be in range [0, 3600]: {ttl}")));
                }
                opts.ttl = ttl;
            }
            "endpoint_pod_names" => {
                r.max_args(o, 0)?;
                opts.endpoint_pod_names = true;
            }
            "noendpoints" => {
                r.max_args(o, 0)?;
                opts.noendpoints = true;
            }
            "ignore" => {
                r.args(o, 1, 1)?;
                if o.args[0] != "empty_service" {
                    return Err(r.err(o.line, format!("unknown ignore {:?}", o.args[0])));
                }
                opts.ignore_empty_service = true;
            }
            "startup_timeout" => {
                r.args(o, 1, 1)?;
                opts.startup_timeout = r.duration(o.line, &o.args[0])?;
            }
            _ => return Err(r.unknown(o)),
        }
    }
    Ok(opts)
}
