//! podnet's embedded Kubernetes-compatible API server.
//!
//! The layers, from the socket inwards:
//! - [`server`]: TLS accept loop, authentication, dispatch of a request to a verb;
//! - [`request`]: URL routing, query parsing, content negotiation;
//! - [`handlers`] and [`watch`]: the verbs and the object lifecycle (system metadata,
//!   [`defaults`], [`validation`], subresources, deletion), with [`services`] for the Service
//!   registry and [`table`] for `kubectl get` output; [`kubelet`] proxies pods' `log`,
//!   `exec` and `attach` to the pod's node;
//! - [`store`]: objects in memory, writes in SQLite, the event history for watches.
//!
//! [`discovery`], [`openapi`] and [`resources`] describe what is served; [`pki`] makes the
//! credentials; [`typed`] checks objects against the k8s-openapi types.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod defaults;
pub mod discovery;
pub mod handlers;
pub mod kubelet;
pub mod openapi;
pub mod pki;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod server;
pub mod services;
pub mod status;
pub mod store;
pub mod table;
pub mod typed;
pub mod validation;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::alloc::{Ipv4Cidr, ServiceAllocator};
use crate::resources::by_kind;
use crate::status::ApiError;
use crate::store::Store;

/// How `podnet server` is configured.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The address other components reach the server at; the `kubernetes` Service's endpoint.
    pub advertise_address: Option<IpAddr>,
    pub service_cidr: Ipv4Cidr,
    pub node_port_range: std::ops::RangeInclusive<u16>,
    /// Events kept for watches to resume from.
    pub history: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:6443".parse().expect("valid"),
            data_dir: PathBuf::from("/var/lib/podnet/server"),
            advertise_address: None,
            service_cidr: "10.96.0.0/12".parse().expect("valid"),
            node_port_range: 30000..=32767,
            history: 20_000,
        }
    }
}

/// The API's state, shared by every request.
pub struct Api {
    pub store: Store,
    pub services: ServiceAllocator,
    /// Bearer token → user name.
    pub tokens: BTreeMap<String, String>,
    /// `host:port` clients are told to use (discovery's serverAddressByClientCIDRs).
    pub advertise: String,
    /// Namespaces whose deletion has begun, for the finalizer task.
    namespace_deletions: mpsc::UnboundedSender<String>,
    /// TLS towards the kubelets: the admin client certificate, as kube-apiserver's
    /// `--kubelet-client-certificate` (kubeadm's is in system:masters too).
    pub kubelet_tls: Arc<rustls::ClientConfig>,
    /// Turns true when the server shuts down: open watches end then, as kube-apiserver's do, so
    /// that the graceful shutdown does not wait for them.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// A server that has bound its port and is ready to serve.
pub struct Server {
    pub api: Arc<Api>,
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    namespace_rx: mpsc::UnboundedReceiver<String>,
}

impl Server {
    /// Opens the store, makes the credentials, writes `<data-dir>/kubeconfig`, creates the
    /// system namespaces and the `kubernetes` Service, and binds the listener.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating {}", config.data_dir.display()))?;
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let client_addr = server::client_address(addr);
        let advertise_ip = config.advertise_address.unwrap_or(client_addr.ip());

        let pki = pki::Pki::load_or_create(&config.data_dir, &[addr.ip(), advertise_ip, client_addr.ip()])?;
        let tls = server::tls_config(&pki)?;
        let kubeconfig = config.data_dir.join("kubeconfig");
        pki::write_private(&kubeconfig, pki.admin_kubeconfig(&format!("https://{client_addr}"), "podnet").as_bytes())?;

        let store = Store::open(&config.data_dir.join("state.db"), config.history)?;
        let services = ServiceAllocator::new(config.service_cidr, config.node_port_range.clone());
        let (svcs, _) = store.list(by_kind("", "Service").expect("served"), None);
        for svc in &svcs {
            services::held_by(svc).ips.into_iter().for_each(|ip| {
                let _ = services.allocate_ip(Some(ip));
            });
            services::held_by(svc).ports.into_iter().for_each(|p| {
                let _ = services.allocate_port(Some(p));
            });
        }
        let (tx, namespace_rx) = mpsc::unbounded_channel();
        let api = Arc::new(Api {
            store,
            services,
            tokens: pki.tokens.clone(),
            advertise: format!("{advertise_ip}:{}", addr.port()),
            namespace_deletions: tx,
            kubelet_tls: kubelet::client_tls(&pki).context("the kubelet client credentials")?,
            stopping: tokio::sync::watch::Sender::new(false),
        });
        api.bootstrap(&config, advertise_ip, addr.port()).context("creating the system objects")?;
        Ok(Server { api, addr, kubeconfig, listener, tls, namespace_rx })
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::spawn(namespace_finalizer(self.api.clone(), self.namespace_rx));
        server::serve(self.api, self.listener, self.tls, shutdown).await
    }
}

/// Finishes namespace deletions: retries each terminating namespace until it is empty.
async fn namespace_finalizer(api: Arc<Api>, mut rx: mpsc::UnboundedReceiver<String>) {
    let mut pending: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    // Namespaces that were terminating when the server stopped.
    let (all, _) = api.store.list(by_kind("", "Namespace").expect("served"), None);
    for ns in all.iter().filter(|n| n["metadata"]["deletionTimestamp"].is_string()) {
        pending.insert(ns["metadata"]["name"].as_str().unwrap_or("").to_string());
    }
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            name = rx.recv() => match name {
                Some(n) => { pending.insert(n); }
                None => return,
            },
            _ = tick.tick() => {}
        }
        pending.retain(|ns| !api.finalize_namespace(ns));
    }
}

impl Api {
    /// Creates what a cluster has from the start, if missing: the system namespaces, and the
    /// `kubernetes` Service with its Endpoints and EndpointSlice pointing at this server.
    fn bootstrap(&self, config: &ServerConfig, advertise: IpAddr, port: u16) -> Result<(), ApiError> {
        let ns_res = by_kind("", "Namespace").expect("served");
        for ns in handlers::SYSTEM_NAMESPACES {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            ignore_exists(self.create_object(ns_res, "", obj, false))?;
        }
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": config.service_cidr.nth(1).to_string(),
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
        });
        ignore_exists(self.create_object(by_kind("", "Service").expect("served"), "default", svc, false))?;
        let ep = json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": advertise.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
        });
        self.put_system_object("Endpoints", "", ep)?;
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [advertise.to_string()], "conditions": {"ready": true, "serving": true, "terminating": false}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        });
        self.put_system_object("EndpointSlice", "discovery.k8s.io", slice)
    }

    /// Creates a system object, or brings an existing one up to date (the advertise address or
    /// port may have changed since the last start).
    fn put_system_object(&self, kind: &str, group: &str, obj: Value) -> Result<(), ApiError> {
        let res = by_kind(group, kind).expect("served");
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let key = store::ObjectKey { resource: res, namespace: "default".into(), name };
        match self.store.get(&key) {
            None => ignore_exists(self.create_object(res, "default", obj, false)),
            Some(cur) => {
                let desired_fields = ["subsets", "endpoints", "ports", "addressType"];
                if desired_fields.iter().all(|f| cur.get(*f) == obj.get(*f)) {
                    return Ok(());
                }
                self.store
                    .mutate(&key, false, |cur| {
                        let mut n = (**cur.expect("exists")).clone();
                        for f in desired_fields {
                            if let Some(v) = obj.get(f) {
                                n[f] = v.clone();
                            }
                        }
                        Ok(store::Change::Put(n))
                    })
                    .map(|_| ())
            }
        }
    }
}

fn ignore_exists<T>(r: Result<T, ApiError>) -> Result<(), ApiError> {
    match r {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
