//! Load-balancer IPs for Services of type LoadBalancer, from an address pool
//! (`--load-balancer-pool`), as a bare-metal load balancer (MetalLB, k3s' ServiceLB) hands them
//! out: `status.loadBalancer.ingress[0].ip` is what `kubectl get svc` shows as EXTERNAL-IP, and
//! the node agents announce it on the nodes' network. `spec.loadBalancerIP` is honoured when it
//! is in the pool and free; a Service with a `loadBalancerClass` belongs to another
//! implementation and is left alone. As with node IPAM, the Services are the only record: the
//! taken addresses are derived from their statuses on every decision.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use serde_json::json;

use crate::events::EventType;
use crate::scheduler::{api_code, ready, run_on_changes};
use crate::{Context, Result};

const COMPONENT: &str = "service-lb-controller";

/// The pool: every address of a CIDR (a /32 pool is one address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool(pub IpNet);

impl Pool {
    /// Parses `--load-balancer-pool`.
    pub fn parse(s: &str) -> std::result::Result<Pool, String> {
        let net: IpNet = s.trim().parse().map_err(|_| format!("--load-balancer-pool {s:?}: not a CIDR"))?;
        if net.prefix_len() < net.max_prefix_len().saturating_sub(16) {
            return Err(format!("--load-balancer-pool {s:?}: at most 65536 addresses"));
        }
        Ok(Pool(net.trunc()))
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The lowest address of the pool not in `used`.
    pub fn first_free(&self, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
        match self.0 {
            IpNet::V4(n) => {
                n.hosts().chain(std::iter::once(n.broadcast())).map(IpAddr::V4).find(|ip| !used.contains(ip))
            }
            IpNet::V6(n) => n.hosts().map(IpAddr::V6).find(|ip| !used.contains(ip)),
        }
    }
}

/// The pool addresses a Service holds in its status.
pub fn held(svc: &Service, pool: &Pool) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .filter(|ip| pool.contains(ip))
        .collect()
}

/// Whether this controller serves the Service: type LoadBalancer without a foreign class.
pub fn wants_address(svc: &Service) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.is_none()
        && svc.metadata.deletion_timestamp.is_none()
}

/// The address to give `svc`: its requested `loadBalancerIP` if in the pool and free, else the
/// lowest free one. `Err` with a message when the request cannot be met.
pub fn choose(svc: &Service, pool: &Pool, used: &BTreeSet<IpAddr>) -> std::result::Result<IpAddr, String> {
    let requested = svc.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref()).filter(|s| !s.is_empty());
    if let Some(req) = requested {
        let ip: IpAddr = req.parse().map_err(|_| format!("spec.loadBalancerIP {req:?} is not an IP address"))?;
        if !pool.contains(&ip) {
            return Err(format!("spec.loadBalancerIP {ip} is not in the pool {}", pool.0));
        }
        if used.contains(&ip) {
            return Err(format!("spec.loadBalancerIP {ip} is already in use"));
        }
        return Ok(ip);
    }
    pool.first_free(used).ok_or_else(|| format!("no address left in the pool {}", pool.0))
}

struct Lb {
    ctx: Arc<Context>,
    pool: Pool,
    services: Store<Service>,
    /// Addresses written but not yet seen through the watch: service uid → address.
    pending: Mutex<std::collections::HashMap<String, IpAddr>>,
}

pub async fn run(ctx: Arc<Context>) -> anyhow::Result<()> {
    let Some(pool) = ctx.config.load_balancer_pool.clone() else {
        tracing::info!("servicelb: no --load-balancer-pool, LoadBalancer services get no address from podnet");
        return Ok(());
    };
    let pool = Pool::parse(&pool).map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(pool = %pool.0, "service load balancer");
    let pool_for_waiting = pool.clone();
    let client = ctx.client.clone();
    let after_delete = move |services: &Store<Service>| {
        // An address was freed: the services waiting for one may have it.
        services
            .state()
            .iter()
            .filter(|s| wants_address(s) && held(s, &pool_for_waiting).is_empty())
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    };
    let state = |services| Arc::new(Lb { ctx, pool, services, pending: Mutex::new(Default::default()) });
    run_on_changes("servicelb", Api::<Service>::all(client), state, after_delete, |svc, lb: Arc<Lb>| {
        Box::pin(async move { lb.reconcile(svc).await })
    })
    .await;
    Ok(())
}

impl Lb {
    async fn reconcile(&self, svc: Arc<Service>) -> Result<Action> {
        ready(&self.services).await?;
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let uid = svc.metadata.uid.clone().unwrap_or_default();
        let api: Api<Service> = Api::namespaced(self.ctx.client.clone(), &ns);
        let mine = held(&svc, &self.pool);
        if !wants_address(&svc) {
            if !mine.is_empty() && svc.metadata.deletion_timestamp.is_none() {
                // No longer a LoadBalancer: give the address back.
                let patch = json!({"status": {"loadBalancer": {}}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
            return Ok(Action::await_change());
        }
        if !mine.is_empty() {
            return Ok(Action::await_change());
        }
        let chosen = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let all = self.services.state();
            pending.retain(|u, _| {
                all.iter().any(|s| s.metadata.uid.as_deref() == Some(u.as_str()) && held(s, &self.pool).is_empty())
            });
            if pending.contains_key(&uid) {
                return Ok(Action::await_change());
            }
            let mut used: BTreeSet<IpAddr> = all.iter().flat_map(|s| held(s, &self.pool)).collect();
            used.extend(pending.values().copied());
            let chosen = choose(&svc, &self.pool, &used);
            if let Ok(ip) = chosen {
                pending.insert(uid.clone(), ip);
            }
            chosen
        };
        let ip = match chosen {
            Ok(ip) => ip,
            Err(message) => {
                let reference = svc.object_ref(&());
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Warning, "AllocationFailed", &message).await;
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
        };
        let patch = json!({"metadata": {"resourceVersion": svc.metadata.resource_version},
            "status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                let reference = svc.object_ref(&());
                let message = format!("Assigned IP [\"{ip}\"]");
                self.ctx.recorder.record(&reference, COMPONENT, EventType::Normal, "IPAllocated", &message).await;
                Ok(Action::await_change())
            }
            Err(e) => {
                self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
                match api_code(&e) {
                    Some(404) => Ok(Action::await_change()),
                    Some(409) => Ok(Action::requeue(Duration::from_millis(200))),
                    _ => Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn chooses_the_requested_or_the_lowest_free_address() {
        let pool = Pool::parse("172.31.0.160/30").unwrap();
        let lb = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}}));
        let mut used = BTreeSet::new();
        assert_eq!(choose(&lb, &pool, &used).unwrap().to_string(), "172.31.0.161");
        used.insert("172.31.0.161".parse().unwrap());
        used.insert("172.31.0.162".parse().unwrap());
        assert_eq!(choose(&lb, &pool, &used).unwrap().to_string(), "172.31.0.163");
        used.insert("172.31.0.163".parse().unwrap());
        assert!(choose(&lb, &pool, &used).unwrap_err().contains("no address left"));
        let req =
            svc(json!({"metadata": {"name": "b"}, "spec": {"type": "LoadBalancer", "loadBalancerIP": "172.31.0.161"}}));
        assert!(choose(&req, &pool, &used).unwrap_err().contains("already in use"));
        let req =
            svc(json!({"metadata": {"name": "b"}, "spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.1"}}));
        assert!(choose(&req, &pool, &BTreeSet::new()).unwrap_err().contains("not in the pool"));
        assert!(Pool::parse("x").is_err());
    }

    #[test]
    fn which_services_are_served() {
        assert!(wants_address(&svc(json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}}))));
        assert!(!wants_address(&svc(json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort"}}))));
        assert!(!wants_address(&svc(json!({"metadata": {"name": "a"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}}))));
        let pool = Pool::parse("172.31.0.160/27").unwrap();
        let s = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.31.0.170"}, {"ip": "203.0.113.9"}]}}}));
        assert_eq!(held(&s, &pool), vec!["172.31.0.170".parse::<IpAddr>().unwrap()]);
    }
}
