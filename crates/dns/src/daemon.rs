//! `podnet dns`: the process CoreDNS's binary is. It reads a Corefile (`-conf FILE`, or straight
//! from a ConfigMap, which it keeps watching and mirrors into a file as a mounted ConfigMap
//! would be), builds each server block's plugin chain — the `kubernetes` plugin from
//! [`crate::kubernetes`], the others from [`crate::plugins`] — serves each block on UDP and TCP,
//! starts the HTTP endpoints (health, ready, metrics), and with `reload` swaps in the chains of a
//! changed Corefile (a bad one is logged and the old chains keep serving).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use hickory_proto::op::Message;

use crate::corefile::{Corefile, KubernetesOptions, PodsMode};
use crate::kubernetes::{KubernetesConfig, PodMode};
use crate::plugins::{build_chain, BoxError, ChainContext, KubernetesPlugin, Readiness, SharedChain};
use crate::server::{Server, ServerConfig};
use crate::wire::{WireAnswer, WireNext, WireQuery};
use crate::{BoxFuture, Handler, Next, Request};

/// Where the Corefile comes from.
#[derive(Debug, Clone)]
pub enum CorefileSource {
    File(PathBuf),
    /// The `Corefile` key of a ConfigMap (`namespace`, `name`).
    ConfigMap(String, String),
}

/// The chain a server runs: whatever the [`SharedChain`] holds now (so a reload takes effect on
/// the next query).
struct Current(Arc<SharedChain>);

impl Handler for Current {
    fn name(&self) -> &'static str {
        "chain"
    }

    fn handle<'a>(&'a self, req: &'a Request, _next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let chain = self.0.load();
            Next::new(&chain).run(req).await
        })
    }

    fn encoded(&self, req: &Request, wire_len: usize) {
        for plugin in self.0.peek().iter() {
            plugin.encoded(req, wire_len);
        }
    }

    fn wire(&self, q: &WireQuery<'_>, _next: WireNext<'_>, out: &mut Vec<u8>) -> Option<WireAnswer> {
        WireNext::new(&self.0.peek()).run(q, out)
    }
}

/// The `kubernetes` block's options as the plugin's configuration.
pub fn kubernetes_config(o: &KubernetesOptions) -> Result<KubernetesConfig, BoxError> {
    let mut cfg = KubernetesConfig::new(o.zones.iter())?;
    cfg.pods = match o.pods {
        PodsMode::Disabled => PodMode::Disabled,
        PodsMode::Insecure => PodMode::Insecure,
        PodsMode::Verified => PodMode::Verified,
    };
    cfg.fallthrough = match &o.fallthrough {
        None => None,
        Some(f) => {
            let mut zones = Vec::new();
            for z in &f.zones {
                zones.extend(crate::kubernetes::config::parse_zone(z)?);
            }
            Some(zones)
        }
    };
    cfg.ttl = o.ttl;
    cfg.endpoint_pod_names = o.endpoint_pod_names;
    cfg.namespaces = o.namespaces.iter().cloned().collect();
    cfg.noendpoints = o.noendpoints;
    cfg.ignore_empty_service = o.ignore_empty_service;
    Ok(cfg)
}

/// Builds the kubernetes plugin: a watcher over the API keeping the cluster snapshot current.
/// The API client of a kubernetes block: its `kubeconfig FILE [CONTEXT]` or `endpoint URL` (as
/// CoreDNS's options), else the process's (in-cluster or --kubeconfig).
fn plugin_client(default: &Option<kube::Client>, o: &KubernetesOptions) -> Result<kube::Client, BoxError> {
    if let Some((path, context)) = &o.kubeconfig {
        let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {path}: {e}"))?;
        let opts = kube::config::KubeConfigOptions { context: context.clone(), ..Default::default() };
        // Chains are built synchronously; the kubeconfig's credentials may need I/O.
        let config = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(kube::Config::from_custom_kubeconfig(kc, &opts))
        })
        .map_err(|e| format!("kubeconfig {path}: {e}"))?;
        return Ok(kube::Client::try_from(config)?);
    }
    if let Some(url) = &o.endpoint {
        let uri = url.parse().map_err(|e| format!("endpoint {url:?}: {e}"))?;
        return Ok(kube::Client::try_from(kube::Config::new(uri))?);
    }
    default.clone().ok_or_else(|| {
        "the kubernetes plugin needs an API client (in-cluster, --kubeconfig, or its kubeconfig or endpoint option)"
            .into()
    })
}

fn kubernetes_plugin(client: &Option<kube::Client>, o: &KubernetesOptions) -> Result<KubernetesPlugin, BoxError> {
    let client = plugin_client(client, o)?;
    let cfg = kubernetes_config(o)?;
    let (shared, _task) = crate::kubernetes::watcher::spawn(&client, &cfg);
    let ready = shared.clone();
    let readiness: Arc<dyn Readiness> = Arc::new(move || ready.synced());
    let handler: Arc<dyn Handler> = Arc::new(crate::kubernetes::KubernetesPlugin::new(cfg, shared));
    Ok(KubernetesPlugin { handler, readiness: Some(readiness) })
}

/// The directory a process mirrors its ConfigMap's Corefile into is this, then its PID.
const MIRROR_PREFIX: &str = "podnet-dns-";

/// Removes the Corefile mirrors in `tmp` of processes that are gone (killed before they could
/// remove theirs): only directories named for a PID with no process, holding nothing but a
/// mirrored Corefile.
fn sweep_stale_mirrors(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(MIRROR_PREFIX)).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        let only_mirror = std::fs::read_dir(&dir).is_ok_and(|files| {
            files.flatten().all(|f| matches!(f.file_name().to_str(), Some("Corefile" | "Corefile.tmp")))
        });
        if only_mirror {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Mirrors the ConfigMap's `Corefile` into `path`, now and on every change.
async fn mirror_configmap(client: kube::Client, namespace: String, name: String, path: PathBuf) -> anyhow::Result<()> {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, &namespace);
    let write = |cm: &ConfigMap| -> anyhow::Result<()> {
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get("Corefile"))
            .with_context(|| format!("ConfigMap {namespace}/{name} has no Corefile key"))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    };
    let first = api.get(&name).await.with_context(|| format!("reading ConfigMap {namespace}/{name}"))?;
    write(&first)?;
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let path2 = path.clone();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, cfg).boxed();
        while let Some(ev) = stream.next().await {
            if let Ok(watcher::Event::Apply(cm)) = ev {
                let text = cm.data.as_ref().and_then(|d| d.get("Corefile")).cloned().unwrap_or_default();
                let tmp = path2.with_extension("tmp");
                if std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path2)).is_err() {
                    tracing::warn!("cannot mirror the Corefile to {}", path2.display());
                }
            }
        }
    });
    Ok(())
}

/// Runs the DNS server until `shutdown` resolves.
pub async fn run(
    source: CorefileSource,
    client: Option<kube::Client>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let path = match &source {
        CorefileSource::File(p) => p.clone(),
        CorefileSource::ConfigMap(ns, name) => {
            sweep_stale_mirrors(&std::env::temp_dir());
            let dir = std::env::temp_dir().join(format!("{MIRROR_PREFIX}{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("Corefile");
            let c = client.clone().context("--configmap needs an API client")?;
            mirror_configmap(c, ns.clone(), name.clone(), path.clone()).await?;
            path
        }
    };
    let corefile = Corefile::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ctx = Arc::new(ChainContext::new());
    let factory = |o: &KubernetesOptions, _ctx: &ChainContext| kubernetes_plugin(&client, o);
    let mut shared: Vec<Arc<SharedChain>> = Vec::new();
    let mut servers = Vec::new();
    for block in &corefile.servers {
        let chain = build_chain(block, &ctx, factory).map_err(|e| anyhow::anyhow!("{e}"))?;
        let chain = Arc::new(SharedChain::new(chain));
        let addr = SocketAddr::from(([0, 0, 0, 0], block.port));
        let server = Server::bind(addr, ServerConfig::default()).await?;
        tracing::info!(addr = %server.local_addr(), zones = ?block.zones, "serving");
        servers.push((server, chain.clone()));
        shared.push(chain);
    }
    ctx.start().await.context("starting the HTTP endpoints")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (server, chain) in servers {
        let front: Arc<Vec<Arc<dyn Handler>>> = Arc::new(vec![Arc::new(Current(chain)) as Arc<dyn Handler>]);
        let mut stop = stop_rx.clone();
        tasks.spawn(server.run(front, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
    }
    if let Some(options) = corefile.reload_options() {
        let reloader = crate::plugins::Reloader::new(&path);
        let (ctx2, shared2, client2) = (ctx.clone(), shared.clone(), client.clone());
        let metrics = Some(ctx.metrics().clone());
        tokio::spawn(crate::plugins::watch_corefile(reloader, options, metrics, move |next: Corefile| {
            if next.servers.len() != shared2.len() {
                return Err("a reload cannot add or remove server blocks; restart to apply".into());
            }
            let factory = |o: &KubernetesOptions, _ctx: &ChainContext| kubernetes_plugin(&client2, o);
            let mut chains = Vec::new();
            for block in &next.servers {
                chains.push(build_chain(block, &ctx2, factory)?);
            }
            for (slot, chain) in shared2.iter().zip(chains) {
                slot.store(chain);
            }
            let ctx3 = ctx2.clone();
            tokio::spawn(async move {
                let _ = ctx3.start().await;
            });
            Ok(())
        }));
    }
    shutdown.await;
    // The mirror goes first: the lameduck wait below can outlast a supervisor's patience (a lab
    // going down gives its pods 300 ms before SIGKILL), and the chains need no Corefile now.
    if let CorefileSource::ConfigMap(..) = source {
        let _ = std::fs::remove_dir_all(path.parent().unwrap_or(Path::new("/nonexistent")));
    }
    ctx.shutdown().await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_corefile_mirrors_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let mirror = |name: &str, files: &[&str]| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            for f in files {
                std::fs::write(dir.join(f), ".:53 {}").unwrap();
            }
            dir
        };
        // u32::MAX and its neighbour are beyond any pid_max: no such process.
        let dead = mirror(&format!("{MIRROR_PREFIX}{}", u32::MAX), &["Corefile"]);
        let live = mirror(&format!("{MIRROR_PREFIX}{}", std::process::id()), &["Corefile"]);
        let other = mirror(&format!("{MIRROR_PREFIX}{}", u32::MAX - 1), &["Corefile", "notes"]);
        let named = mirror(&format!("{MIRROR_PREFIX}hosts-{}", u32::MAX), &["Corefile"]);
        sweep_stale_mirrors(tmp.path());
        assert!(!dead.exists(), "a dead process's mirror is removed");
        assert!(live.exists() && other.exists() && named.exists(), "the rest stays");
    }

    fn error_of(r: Result<kube::Client, BoxError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_kubernetes_block_uses_its_own_kubeconfig_or_endpoint() {
        let mut o = KubernetesOptions::new(vec!["cluster.local.".into()]);
        let err = error_of(plugin_client(&None, &o));
        assert!(err.contains("needs an API client"), "{err}");
        o.endpoint = Some("http://127.0.0.1:8001".into());
        assert!(plugin_client(&None, &o).is_ok());
        o.endpoint = Some("not a url".into());
        assert!(error_of(plugin_client(&None, &o)).contains("endpoint \"not a url\""));
        o.kubeconfig = Some(("/nonexistent/kubeconfig".into(), None));
        assert!(error_of(plugin_client(&None, &o)).contains("/nonexistent/kubeconfig"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:6443'}\n\
             users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n\
             current-context: x\n",
        )
        .unwrap();
        o.kubeconfig = Some((path.to_str().unwrap().into(), Some("x".into())));
        assert!(plugin_client(&None, &o).is_ok());
        o.kubeconfig = Some((path.to_str().unwrap().into(), Some("missing".into())));
        assert!(plugin_client(&None, &o).is_err());
    }
}
