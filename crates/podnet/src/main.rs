//! `podnet`: the Kubernetes cluster network. One binary; each subcommand is one of its roles.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

mod lab_cli;

/// mimalloc rather than glibc's malloc. Measured with `bench/ingress.sh` (QUICK runs of
/// `podnet ingress`, 2026-11-23): after the load rows glibc kept 17 MiB of freed memory in its
/// per-thread arenas, mimalloc 9 MiB (it returns freed pages to the kernel); requests/s were
/// 4–12 % higher (one run of each). Without transparent huge pages: with them an idle process held 21 MiB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "podnet", version, about = "The Kubernetes cluster network, in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded Kubernetes-compatible API server (and, by default, the controllers).
    Server(ServerArgs),
    /// Run the cluster controllers against an API server (podnet's or kube-apiserver).
    Controllers(ControllersArgs),
    /// Bring up a multi-node cluster on this machine, in network namespaces (kubectl context podnet-NAME).
    Up(lab_cli::UpArgs),
    /// Remove everything `podnet up` made.
    Down(lab_cli::NameArg),
    /// Show a lab's nodes (addresses, pod CIDRs) and pods.
    Status(lab_cli::NameArg),
    /// Run a command inside a pod's namespaces (network, UTS, mount).
    Exec(lab_cli::ExecArgs),
    /// Print a container's output.
    Logs(lab_cli::LogsArgs),
    /// Node commands: `podnet node exec NODE -- CMD…`.
    #[command(subcommand)]
    Node(lab_cli::NodeCommand),
    /// Run the node agent: register the Node, route to the other nodes, run the pods bound to it.
    Agent(lab_cli::AgentArgs),
    /// Run the service proxy of this node (the kube-proxy job).
    Proxy(lab_cli::ProxyArgs),
    /// Run the cluster DNS server (a CoreDNS drop-in: Corefile, kubernetes, forward, cache…).
    Dns(lab_cli::DnsArgs),
    /// Run the ingress controller (the ingress-nginx job): an HTTP/HTTPS proxy driven by Ingresses.
    Ingress(lab_cli::IngressArgs),
    /// Entry points podnet runs itself, not meant for users: `image NAME ARGS…` (a lab image as a
    /// container's process), `runtime ARGS…` (sandbox holders and container shims).
    #[command(hide = true)]
    Internal {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ControllerOptions {
    /// Controllers to run: `*` for all, or a comma-separated list of endpoints, replicaset,
    /// deployment, daemonset, scheduler, nodeipam, gc, servicelb; `-name` removes one from `*`.
    #[arg(long, default_value = "*")]
    controllers: String,
    /// The cluster's pod CIDR, split into one block per node by node IPAM.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// The prefix length of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Addresses for LoadBalancer Services (a CIDR), handed out by the servicelb controller.
    #[arg(long)]
    load_balancer_pool: Option<String>,
}

impl ControllerOptions {
    fn config(&self) -> anyhow::Result<podnet_controllers::Config> {
        let mut enabled: Vec<String> = Vec::new();
        for item in self.controllers.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "*" => enabled.extend(podnet_controllers::ALL.iter().map(|s| s.to_string())),
                "none" => enabled.clear(),
                _ if item.starts_with('-') => enabled.retain(|e| e != &item[1..]),
                name if podnet_controllers::ALL.contains(&name) => enabled.push(name.to_string()),
                other => anyhow::bail!(
                    "--controllers: unknown controller {other:?} (known: {})",
                    podnet_controllers::ALL.join(", ")
                ),
            }
        }
        enabled.dedup();
        Ok(podnet_controllers::Config {
            enabled,
            cluster_cidr: self.cluster_cidr.clone(),
            node_cidr_mask: self.node_cidr_mask_size,
            load_balancer_pool: self.load_balancer_pool.clone(),
        })
    }
}

#[derive(clap::Args)]
struct ControllersArgs {
    /// The kubeconfig to reach the API server with (default: KUBECONFIG or ~/.kube/config,
    /// or the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    options: ControllerOptions,
}

/// Whether this process runs in a pod: the kubernetes Service's address in the environment and a
/// service-account token mounted where the kubelet mounts it.
fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
}

/// A client for the API server described by `kubeconfig`, or the default one.
async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc =
                kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        // In a pod, the pod's own credentials, as client-go's in-cluster components do: a lab
        // pod sees the host's files, and the host's ~/.kube/config names a loopback forward
        // that does not exist inside the pod.
        None if in_pod() => kube::Config::incluster()?,
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where state, credentials and the admin kubeconfig live.
    #[arg(long, default_value = "/var/lib/podnet/server")]
    data_dir: PathBuf,
    /// The address other components reach the server at (default: the listen address).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Range of Service cluster IPs; the first address is the `kubernetes` Service's.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// Range of NodePorts, `FIRST-LAST`.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// Number of changes kept for watches to resume from; older ones get 410 Expired.
    #[arg(long, default_value_t = 20_000)]
    history: usize,
    #[command(flatten)]
    controllers: ControllerOptions,
}

fn parse_port_range(s: &str) -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let (a, b) = s.split_once('-').context("expected FIRST-LAST, e.g. 30000-32767")?;
    let (a, b): (u16, u16) = (a.trim().parse().context("bad first port")?, b.trim().parse().context("bad last port")?);
    anyhow::ensure!(a <= b && a > 0, "invalid port range {s}: first must be between 1 and last");
    Ok(a..=b)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let config = podnet_api::ServerConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        advertise_address: args.advertise_address,
        service_cidr: args.service_cidr.parse().map_err(|e: String| anyhow::anyhow!("--service-cidr: {e}"))?,
        node_port_range: parse_port_range(&args.service_node_port_range).context("--service-node-port-range")?,
        history: args.history,
    };
    let controllers = args.controllers.config()?;
    if controllers.enabled.iter().any(|c| c == "nodeipam") {
        podnet_controllers::nodeipam::validate(&controllers)?;
    }
    let server = podnet_api::Server::start(config).await?;
    tracing::info!(addr = %server.addr, kubeconfig = %server.kubeconfig.display(), "API server listening");
    if !controllers.enabled.is_empty() {
        // The controllers run in-process, as a client of the server like any other.
        let kubeconfig = server.kubeconfig.clone();
        tokio::spawn(async move {
            let result = async {
                let client = client(Some(&kubeconfig)).await?;
                podnet_controllers::run(client, controllers, std::future::pending()).await
            };
            if let Err(e) = result.await {
                tracing::error!(error = %e, "the controllers stopped");
            }
        });
    }
    println!(
        "podnet server listening on https://{} (kubeconfig: {})",
        podnet_api::server::client_address(server.addr),
        server.kubeconfig.display()
    );
    server.run(shutdown_signal()).await
}

fn main() {
    // Multi-call: as `podnet-cni` (or `podnet*` with CNI_COMMAND set) this is the CNI plugin.
    if podnet_cni::invoked_as_plugin() {
        std::process::exit(podnet_cni::main());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PODNET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // CoreDNS's single-dash `-conf FILE`, as Deployments pass it.
    let args = std::env::args().map(|a| if a == "-conf" { "--conf".to_string() } else { a });
    let cli = Cli::parse_from(args);
    if let Command::Internal { args } = &cli.command {
        if let [what, verb, name] = args.as_slice() {
            if what == "lab" && verb == "supervise" {
                if let Err(e) = podnet_lab::supervise::run(name) {
                    eprintln!("error: {e:#}");
                    std::process::exit(1);
                }
                return;
            }
        }
        if args[0] == "runtime" {
            // Sandbox holders and shims fork: they must start before any runtime thread exists.
            if let Err(e) = podnet_runtime::internal_main(&args[1..]) {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            return;
        }
    }
    if let Err(e) = run(cli) {
        // The whole chain of causes on one line, without a backtrace: errors here are for users.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async {
        match cli.command {
            Command::Server(args) => server(args).await,
            Command::Controllers(args) => {
                let config = args.options.config()?;
                let client = client(args.kubeconfig.as_deref()).await?;
                podnet_controllers::run(client, config, shutdown_signal()).await
            }
            Command::Up(a) => lab_cli::up(a).await,
            Command::Down(a) => lab_cli::down(a),
            Command::Status(a) => lab_cli::status(a).await,
            Command::Exec(a) => lab_cli::exec(a).await,
            Command::Logs(a) => lab_cli::logs(a).await,
            Command::Node(lab_cli::NodeCommand::Exec(a)) => lab_cli::node_exec(a),
            Command::Agent(a) => lab_cli::agent(a, shutdown_signal()).await,
            Command::Proxy(a) => lab_cli::proxy(a, shutdown_signal()).await,
            Command::Dns(a) => lab_cli::dns(a, shutdown_signal()).await,
            Command::Ingress(a) => lab_cli::ingress(a, shutdown_signal()).await,
            Command::Internal { args } => match args.as_slice() {
                [what, name, rest @ ..] if what == "image" => Ok(podnet_images::run(name, rest).await?),
                _ => anyhow::bail!("unknown internal entry point {args:?}"),
            },
        }
    });
    // Blocking threads (a sync in flight, a mode's own runtime) must not keep a stopping process
    // alive: what matters was awaited above.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}
