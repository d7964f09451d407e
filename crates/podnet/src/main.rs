//! `podnet`: the Kubernetes cluster network. One binary; each subcommand is one of its roles.
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "podnet", version, about = "The Kubernetes cluster network, in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded Kubernetes-compatible API server.
    Server(ServerArgs),
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
    let server = podnet_api::Server::start(config).await?;
    tracing::info!(addr = %server.addr, kubeconfig = %server.kubeconfig.display(), "API server listening");
    println!(
        "podnet server listening on https://{} (kubeconfig: {})",
        podnet_api::server::client_address(server.addr),
        server.kubeconfig.display()
    );
    server.run(shutdown_signal()).await
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PODNET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        match cli.command {
            Command::Server(args) => server(args).await,
        }
    })
}
