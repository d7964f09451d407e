//! podnet's node agent — kubelet's job for the network, on the embedded default and on real
//! nodes alike (it talks to the cluster only through the Kubernetes API):
//!
//! - [`node`]: registers the Node (addresses, capacity, node info, Ready) and keeps it alive
//!   (a Lease renewed every 10 s, condition heartbeats);
//! - [`network`]: waits for the node's pod CIDR, publishes flannel's annotations, and programs
//!   routes to the other nodes (host-gw or VXLAN) and masquerading, through podnet-routing;
//! - [`pods`]: runs the pods bound to the node — a sandbox per pod wired by the CNI plugin
//!   ([`cni`]) with kubelet's files ([`podfiles`]), containers as processes of podnet-runtime
//!   with their environment ([`env`]), restart policy, back-off and probes ([`probe`]), and the
//!   pod's status ([`status`]);
//! - [`kubelet`]: the kubelet API the API server proxies `pods/log`, `pods/exec` and
//!   `pods/attach` to.
//!
//! The pure parts (files, environment, status, probe bookkeeping, CNI configuration) are unit
//! tested; the rest is thin I/O around them.
#![forbid(unsafe_code)]

pub mod announce;
pub mod cni;
pub mod env;
pub mod kubelet;
pub mod network;
pub mod node;
pub mod podfiles;
pub mod pods;
pub mod probe;
pub mod status;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;
use tokio::sync::watch;

pub use podnet_routing::Backend;

/// The agent's configuration (`podnet agent`'s flags).
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub backend: Backend,
    pub cluster_cidrs: Vec<IpNet>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    /// The resolv.conf pods with dnsPolicy Default get (kubelet's `--resolv-conf`).
    pub resolv_conf: PathBuf,
    /// Where the agent keeps the runtime's state, IPAM reservations and pod records.
    pub state_dir: PathBuf,
    /// Pod network namespaces are named `<prefix><pod uid>`.
    pub netns_prefix: String,
    /// The podnet binary (the CNI plugin, sandbox holders, container shims, lab images).
    pub podnet_exe: PathBuf,
    /// Load-balancer addresses in this range are announced by one Ready node each.
    pub announce_cidr: Option<IpNet>,
    /// What pods get in their service-account directory.
    pub pod_ca_pem: Option<Vec<u8>>,
    pub pod_token: Option<Vec<u8>>,
    /// Whether pod-to-pod packets on the node go from veth to veth (eBPF) instead of across the
    /// bridge.
    pub same_node_redirect: SameNodeRedirect,
}

/// `--same-node-redirect`: `auto` (when the kernel can run it), `on` (or fail), `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameNodeRedirect {
    Auto,
    On,
    Off,
}

impl std::str::FromStr for SameNodeRedirect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SameNodeRedirect::Auto),
            "on" => Ok(SameNodeRedirect::On),
            "off" => Ok(SameNodeRedirect::Off),
            _ => Err(format!("{s:?}: expected auto, on or off")),
        }
    }
}

/// Readies the same-node redirect — a bpffs at `dir` with the program and map pinned, loaded
/// here once so that the CNI plugin only opens them — and returns `dir`, or None when it is off
/// or, with `auto`, the kernel cannot run it.
fn same_node_redirect(mode: SameNodeRedirect, dir: &std::path::Path) -> anyhow::Result<Option<PathBuf>> {
    if mode == SameNodeRedirect::Off {
        return Ok(None);
    }
    match podnet_bpf::ensure_bpffs(dir).and_then(|()| podnet_bpf::LocalRedirect::open_or_load(dir)) {
        Ok(_) => {
            tracing::info!(pin_dir = %dir.display(), "pod-to-pod packets on this node go from veth to veth");
            Ok(Some(dir.to_path_buf()))
        }
        Err(e) if mode == SameNodeRedirect::On => Err(e).context("--same-node-redirect on"),
        Err(e) => {
            tracing::warn!(error = %e, "the kernel cannot run the same-node redirect: pod-to-pod packets take the bridge");
            Ok(None)
        }
    }
}

/// Runs the agent until `shutdown` resolves. Pods keep running when the agent stops; a new
/// agent picks them up again.
pub async fn run(
    client: kube::Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir).with_context(|| format!("creating {}", config.state_dir.display()))?;
    let facts = node::NodeFacts::gather(&config.node_name, config.node_ip);
    // Register (retrying while the API server is not reachable yet).
    let mut delay = Duration::from_millis(100);
    loop {
        match node::register(&client, &facts).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "registering the node; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::info!(node = %config.node_name, ip = %config.node_ip, "node registered");

    let heartbeat = {
        let (client, facts) = (client.clone(), facts.clone());
        async move {
            let mut lease = tokio::time::interval(node::LEASE_RENEW);
            let mut status = tokio::time::interval(node::STATUS_UPDATE);
            loop {
                tokio::select! {
                    _ = lease.tick() => if let Err(e) = node::renew_lease(&client, &facts.name).await {
                        tracing::warn!(error = %e, "renewing the node lease");
                    },
                    _ = status.tick() => if let Err(e) = node::heartbeat(&client, &facts).await {
                        tracing::warn!(error = %e, "node status heartbeat");
                    },
                }
            }
        }
    };

    let (net_tx, net_rx) = watch::channel(None);
    let settings = network::NetworkSettings {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        backend: config.backend,
        cluster_cidrs: config.cluster_cidrs.clone(),
        ipam_dir: config.state_dir.join("cni"),
        bpf_pin_dir: same_node_redirect(config.same_node_redirect, &config.state_dir.join("bpf"))?,
    };
    let network = network::run(client.clone(), settings, net_tx);

    let runtime = podnet_runtime::Runtime::open(podnet_runtime::Config {
        state_dir: config.state_dir.join("runtime"),
        podnet_exe: config.podnet_exe.clone(),
    })
    .context("opening the runtime's state")?;
    let node_resolv_conf = std::fs::read_to_string(&config.resolv_conf)
        .with_context(|| format!("reading the node's resolv.conf {}", config.resolv_conf.display()))?;
    let runtime = Arc::new(runtime);
    let kubelet_addr = std::net::SocketAddr::new(config.node_ip, kubelet::PORT);
    let kubelet_api = {
        let (runtime, node_name, client_ca) = (runtime.clone(), config.node_name.clone(), config.pod_ca_pem.clone());
        async move {
            // Without it only logs, exec and attach are missing: the pods still run.
            if let Err(e) = kubelet::serve(runtime, kubelet_addr, &node_name, client_ca.as_deref()).await {
                tracing::error!(error = format!("{e:#}"), "the kubelet API is not served");
            }
            std::future::pending::<anyhow::Result<()>>().await
        }
    };
    let shared = Arc::new(pods::Shared {
        client: client.clone(),
        runtime,
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        podnet_exe: config.podnet_exe.clone(),
        state_dir: config.state_dir.clone(),
        netns_prefix: config.netns_prefix.clone(),
        dns: podfiles::DnsSettings {
            cluster_dns: config.cluster_dns.clone(),
            cluster_domain: config.cluster_domain.clone(),
            node_resolv_conf,
        },
        ca_pem: config.pod_ca_pem.clone(),
        pod_token: config.pod_token.clone(),
        network: net_rx,
    });
    let announce = {
        let (client, me, range) = (client.clone(), config.node_name.clone(), config.announce_cidr);
        async move {
            match range {
                Some(range) => announce::run(client, me, range).await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::select! {
        r = announce => r.context("announcing load-balancer addresses"),
        r = kubelet_api => r.context("the kubelet API"),
        _ = shutdown => {
            tracing::info!("stopping; pods keep running");
            Ok(())
        }
        _ = heartbeat => Ok(()),
        r = network => r.context("the node network"),
        r = pods::run(shared) => r.context("the pods"),
    }
}
