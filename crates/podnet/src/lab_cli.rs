//! The lab's commands: `podnet up`, `down`, `status`, `exec`, `node exec`, `logs`, and the
//! node agent's `podnet agent`.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use podnet_lab::{Backend, LabSpec, PortMap};

#[derive(clap::Args)]
pub struct UpArgs {
    /// The lab's name (its kubectl context is podnet-NAME).
    #[arg(long, default_value = "lab")]
    name: String,
    /// How many nodes.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// Node names are PREFIX1, PREFIX2…
    #[arg(long, default_value = "node")]
    node_prefix: String,
    /// Pod traffic between nodes: vxlan (flannel-compatible) or host-gw (routes via the nodes).
    #[arg(long, default_value = "vxlan")]
    backend: Backend,
    /// The cluster's pod CIDR (a /24 per node).
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_cidr: ipnet::Ipv4Net,
    /// The Services' cluster IP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: ipnet::Ipv4Net,
    /// Forward 127.0.0.1:HOSTPORT on this machine to NODEPORT on the first node (repeatable).
    #[arg(long = "port-map", value_name = "HOSTPORT:NODEPORT")]
    port_maps: Vec<PortMap>,
    /// The service proxy's mode: nftables, iptables or userspace.
    #[arg(long, default_value = "nftables")]
    proxy_mode: String,
}

#[derive(clap::Args)]
pub struct NameArg {
    /// The lab's name.
    #[arg(long, default_value = "lab")]
    name: String,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    lab: NameArg,
    /// The pod's namespace.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
    /// The pod.
    pod: String,
    /// The container (its namespaces are the pod's; the name is checked).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct NodeExecArgs {
    #[command(flatten)]
    lab: NameArg,
    /// The node.
    node: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    lab: NameArg,
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
    pod: String,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep printing new output.
    #[arg(short = 'f', long)]
    follow: bool,
}

#[derive(clap::Subcommand)]
pub enum NodeCommand {
    /// Run a command inside a node's network namespace.
    Exec(NodeExecArgs),
}

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The kubeconfig to reach the API server with (default: KUBECONFIG, ~/.kube/config or
    /// the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// This node's address (default: the first global IPv4 address of this namespace).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// vxlan or host-gw.
    #[arg(long, default_value = "vxlan")]
    backend: podnet_agent::Backend,
    /// The cluster's pod CIDR (traffic from it to elsewhere is masqueraded).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: Vec<ipnet::IpNet>,
    /// The cluster DNS Service's address, for pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: Vec<String>,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The resolv.conf pods with dnsPolicy Default get, and upstream of the cluster DNS.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// Where the agent keeps its state.
    #[arg(long, default_value = "/var/lib/podnet/agent")]
    state_dir: PathBuf,
    /// Pod network namespaces are named PREFIX<pod uid>.
    #[arg(long, default_value = "podnet-pod-")]
    netns_prefix: String,
    /// Announce the load-balancer addresses of this range on the node's network (one Ready node
    /// per address, as a layer-2 load balancer).
    #[arg(long)]
    announce_cidr: Option<ipnet::IpNet>,
    /// The CA pods find in /var/run/secrets/kubernetes.io/serviceaccount/ca.crt.
    #[arg(long)]
    pod_ca_file: Option<PathBuf>,
    /// The token pods find in /var/run/secrets/kubernetes.io/serviceaccount/token.
    #[arg(long)]
    pod_token_file: Option<PathBuf>,
    /// Pod-to-pod packets on this node go from one pod's veth straight into the other's (eBPF,
    /// bpf_redirect_peer) instead of across the bridge: auto (when the kernel can), on, off.
    #[arg(long, default_value = "auto")]
    same_node_redirect: podnet_agent::SameNodeRedirect,
}

fn say(m: &str) {
    println!("[podnet] {m}");
}

pub async fn up(a: UpArgs) -> anyhow::Result<()> {
    let spec = LabSpec {
        name: a.name,
        nodes: a.nodes,
        node_prefix: a.node_prefix,
        backend: a.backend,
        pod_cidr: a.pod_cidr,
        service_cidr: a.service_cidr,
        port_maps: a.port_maps,
        proxy_mode: a.proxy_mode,
    };
    let started = std::time::Instant::now();
    let name = spec.name.clone();
    podnet_lab::up(spec, &mut |m| say(m)).await?;
    say(&format!("lab {name} is up in {:.1} s; try `kubectl get nodes -o wide`", started.elapsed().as_secs_f64()));
    Ok(())
}

pub fn down(a: NameArg) -> anyhow::Result<()> {
    podnet_lab::down(&a.name, &mut say)?;
    say(&format!("lab {} is down", a.name));
    Ok(())
}

pub async fn status(a: NameArg) -> anyhow::Result<()> {
    print!("{}", podnet_lab::status(&a.name).await?);
    Ok(())
}

/// Runs `cmd` with this process's stdio and exits with its code.
fn run_to_exit(mut cmd: std::process::Command) -> anyhow::Result<()> {
    let status = cmd.status().context("running the command")?;
    std::process::exit(
        status.code().unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)),
    );
}

pub async fn exec(a: ExecArgs) -> anyhow::Result<()> {
    let (_, uid, runtime_dir) = podnet_lab::locate_pod(&a.lab.name, &a.namespace, &a.pod).await?;
    let rt = open_runtime(runtime_dir)?;
    check_container(&rt, &uid, &a.pod, a.container.as_deref())?;
    let cmd = rt.enter_command(&uid, &a.command)?;
    run_to_exit(cmd)
}

pub fn node_exec(a: NodeExecArgs) -> anyhow::Result<()> {
    let ns_name = podnet_lab::spec::node_netns(&a.lab.name, &a.node);
    let ns = podnet_netlink::Netns::open_named(&ns_name)
        .with_context(|| format!("node {:?} of lab {:?} (namespace {ns_name})", a.node, a.lab.name))?;
    let argv = a.command.clone();
    let child = podnet_netlink::run_in(&ns, move || std::process::Command::new(&argv[0]).args(&argv[1..]).spawn())?
        .with_context(|| format!("running {:?}", a.command[0]))?;
    let out = child.wait_with_output()?;
    std::process::exit(out.status.code().unwrap_or(1));
}

pub async fn logs(a: LogsArgs) -> anyhow::Result<()> {
    let (_, uid, runtime_dir) = podnet_lab::locate_pod(&a.lab.name, &a.namespace, &a.pod).await?;
    let rt = open_runtime(runtime_dir)?;
    let container = check_container(&rt, &uid, &a.pod, a.container.as_deref())?;
    let follow = a.follow;
    tokio::task::spawn_blocking(move || rt.copy_logs(&uid, &container, &mut std::io::stdout().lock(), follow))
        .await??;
    Ok(())
}

fn open_runtime(state_dir: PathBuf) -> anyhow::Result<podnet_runtime::Runtime> {
    let exe = std::env::current_exe()?;
    Ok(podnet_runtime::Runtime::open(podnet_runtime::Config { state_dir, podnet_exe: exe })?)
}

/// The container to use: the one named (which must exist) or the first.
fn check_container(rt: &podnet_runtime::Runtime, uid: &str, pod: &str, name: Option<&str>) -> anyhow::Result<String> {
    let sandbox = rt.sandbox_status(uid)?.with_context(|| format!("pod {pod} has no sandbox on its node (yet)"))?;
    let names: Vec<String> = sandbox.containers.iter().map(|c| c.name.clone()).collect();
    match name {
        Some(n) if names.iter().any(|c| c == n) => Ok(n.to_string()),
        Some(n) => anyhow::bail!("container {n:?} is not in pod {pod} (containers: {})", names.join(", ")),
        None => names.first().cloned().with_context(|| format!("pod {pod} has no container started yet")),
    }
}

/// The first global IPv4 address of this namespace.
fn first_address() -> anyhow::Result<IpAddr> {
    let mut h = podnet_netlink::Handle::new()?;
    h.dump_addresses()?
        .into_iter()
        .find(|a| a.scope == 0 && a.addr.addr().is_ipv4())
        .map(|a| a.addr.addr())
        .context("this namespace has no global IPv4 address: give --node-ip")
}

pub async fn agent(a: AgentArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        p.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).transpose()
    };
    let node_name = match a.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")?.trim().to_string(),
    };
    let node_ip = match a.node_ip {
        Some(ip) => ip,
        None => first_address()?,
    };
    let config = podnet_agent::Config {
        node_name,
        node_ip,
        backend: a.backend,
        cluster_cidrs: a.cluster_cidr,
        cluster_dns: a.cluster_dns,
        cluster_domain: a.cluster_domain,
        resolv_conf: a.resolv_conf,
        state_dir: a.state_dir,
        netns_prefix: a.netns_prefix,
        podnet_exe: std::env::current_exe()?,
        announce_cidr: a.announce_cidr,
        pod_ca_pem: read(&a.pod_ca_file)?,
        pod_token: read(&a.pod_token_file)?,
        same_node_redirect: a.same_node_redirect,
    };
    let client = crate::client(a.kubeconfig.as_deref()).await?;
    podnet_agent::run(client, config, shutdown).await
}

#[derive(clap::Args)]
pub struct ProxyArgs {
    /// The kubeconfig to reach the API server with (default: KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The API server's URL, overriding the kubeconfig's or the in-cluster one (a proxy cannot
    /// reach the API through the `kubernetes` Service it is about to program).
    #[arg(long)]
    master: Option<String>,
    /// This node's name (default: NODE_NAME, else the host name).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// nftables (default), iptables or userspace.
    #[arg(long, default_value = "nftables")]
    proxy_mode: String,
    /// The userspace mode's scheduler, as IPVS names them: rr, wrr, lc, dh, sh, sed, nq.
    #[arg(long, default_value = "rr")]
    scheduler: podnet_proxy::userspace::Scheduler,
    /// The cluster's pod CIDR: traffic to cluster IPs from outside it is masqueraded.
    #[arg(long)]
    cluster_cidr: Vec<ipnet::IpNet>,
    #[arg(long, default_value = "0.0.0.0:10249")]
    metrics_bind_address: std::net::SocketAddr,
    #[arg(long, default_value = "0.0.0.0:10256")]
    healthz_bind_address: std::net::SocketAddr,
    /// Seconds between full syncs.
    #[arg(long, default_value_t = 30)]
    sync_period: u64,
    /// Remove every mode's rules and exit.
    #[arg(long)]
    cleanup: bool,
}

pub async fn proxy(a: ProxyArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    if a.cleanup {
        for name in podnet_proxy::modes::MODES {
            podnet_proxy::modes::new_mode(name)?.cleanup()?;
        }
        return Ok(());
    }
    let mode = podnet_proxy::modes::new_mode_with(&a.proxy_mode, a.scheduler)?;
    podnet_proxy::modes::cleanup_others(&a.proxy_mode);
    let node_name = match a.node_name {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")?.trim().to_string(),
    };
    let client = match (&a.master, &a.kubeconfig) {
        (Some(master), None) => {
            let mut config = kube::Config::incluster().context("in-cluster configuration for --master")?;
            config.cluster_url = master.parse().with_context(|| format!("--master {master:?}"))?;
            kube::Client::try_from(config)?
        }
        _ => crate::client(a.kubeconfig.as_deref()).await?,
    };
    let config = podnet_proxy::controller::Config {
        node_name,
        node_addresses: first_address().into_iter().collect(),
        cluster_cidrs: a.cluster_cidr,
        metrics_addr: Some(a.metrics_bind_address),
        healthz_addr: Some(a.healthz_bind_address),
        full_resync: std::time::Duration::from_secs(a.sync_period.max(1)),
        ..Default::default()
    };
    podnet_proxy::controller::run(client, config, mode, shutdown).await
}

#[derive(clap::Args)]
pub struct DnsArgs {
    /// The Corefile (CoreDNS's `-conf`; `-conf FILE` is accepted too).
    #[arg(long = "conf", value_name = "FILE", conflicts_with = "configmap")]
    conf: Option<PathBuf>,
    /// Read the Corefile from this ConfigMap (NAMESPACE/NAME, key `Corefile`) and follow its changes.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    configmap: Option<String>,
    /// The kubeconfig for the kubernetes plugin (default: in-cluster, KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

pub async fn dns(a: DnsArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    use podnet_dns::daemon::CorefileSource;
    let source = match (a.conf, a.configmap) {
        (Some(path), _) => CorefileSource::File(path),
        (None, Some(cm)) => {
            let (ns, name) = cm.split_once('/').context("--configmap: expected NAMESPACE/NAME")?;
            CorefileSource::ConfigMap(ns.to_string(), name.to_string())
        }
        (None, None) => CorefileSource::File(PathBuf::from("Corefile")),
    };
    // An API client when one can be had: the kubernetes plugin and --configmap need it, a
    // Corefile without them does not.
    let client = match crate::client(a.kubeconfig.as_deref()).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!(error = %e, "no API client");
            None
        }
    };
    podnet_dns::daemon::run(source, client, shutdown).await
}

#[derive(clap::Args)]
pub struct IngressArgs {
    /// The kubeconfig to reach the API server with (default: KUBECONFIG, ~/.kube/config or the
    /// in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where HTTP is served.
    #[arg(long, default_value = "0.0.0.0:80")]
    http_address: std::net::SocketAddr,
    /// Where HTTPS (HTTP/1.1 and HTTP/2 by ALPN) is served.
    #[arg(long, default_value = "0.0.0.0:443")]
    https_address: std::net::SocketAddr,
    /// Where /healthz and /metrics are served (ingress-nginx's port).
    #[arg(long, default_value = "0.0.0.0:10254")]
    status_address: std::net::SocketAddr,
    /// The `spec.controller` of the IngressClasses this controller serves.
    #[arg(long, default_value = podnet_ingress::table::CONTROLLER)]
    controller_class: String,
    /// Also serve Ingresses without any class when no IngressClass is the default.
    #[arg(long)]
    watch_ingress_without_class: bool,
    /// NAMESPACE/NAME of the Service whose load-balancer addresses go into the Ingresses' status.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    publish_service: Option<String>,
}

pub async fn ingress(a: IngressArgs, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let publish_service = match &a.publish_service {
        Some(s) => {
            let (ns, name) = s.split_once('/').context("--publish-service: expected NAMESPACE/NAME")?;
            Some((ns.to_string(), name.to_string()))
        }
        None => None,
    };
    let config = podnet_ingress::controller::Config {
        policy: podnet_ingress::table::ClassPolicy {
            controller: a.controller_class,
            watch_without_class: a.watch_ingress_without_class,
        },
        publish_service,
        proxy: podnet_ingress::proxy::ProxyConfig {
            http: a.http_address,
            https: a.https_address,
            ..Default::default()
        },
        status_addr: Some(a.status_address),
        coalesce: std::time::Duration::from_millis(5),
    };
    let client = crate::client(a.kubeconfig.as_deref()).await?;
    Ok(podnet_ingress::controller::run(client, config, shutdown).await?)
}
