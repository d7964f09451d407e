//! IPAM: host-local-compatible address management built into the plugin (ranges, allocation
//! order, the on-disk store and its lock), and the operations the plugin runs on it for each CNI
//! command: ADD takes one address per range set (all or nothing), DEL frees the attachment's
//! addresses, CHECK finds them, GC frees those of attachments no longer valid, STATUS reports
//! whether an address can still be handed out.

pub mod allocator;
pub mod config;
pub mod disk;
pub mod range;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

pub use config::IpamConfig;

use crate::error::{CniError, CniResult};
use crate::types::{AddResult, Attachment, Dns};
use allocator::Store;
use disk::DiskStore;

/// The IPAM a configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ipam {
    /// No `ipam` (or no `type`): layer 2 only.
    None,
    /// host-local, built in (`type` `host-local` or `podnet-host-local`).
    HostLocal(IpamConfig),
    /// Any other IPAM plugin, run from `CNI_PATH` with the same environment and stdin.
    Delegate(String),
}

/// The `type`s served by the built-in host-local IPAM.
pub const HOST_LOCAL_TYPES: &[&str] = &["host-local", "podnet-host-local"];

/// Reads the configuration's `ipam` section.
pub fn parse(conf: &crate::netconf::NetConf, env_args: &[(String, String)]) -> CniResult<Ipam> {
    let root = conf.root();
    let Some(ipam) = root.obj("ipam")? else { return Ok(Ipam::None) };
    match ipam.str("type")?.unwrap_or("") {
        "" => Ok(Ipam::None),
        t if HOST_LOCAL_TYPES.contains(&t) => Ok(Ipam::HostLocal(config::parse(&conf.name, &ipam, &root, env_args)?)),
        t => {
            if t.contains('/') || t == "." || t == ".." {
                return Err(CniError::InvalidConfig(format!("ipam.type: {t:?} is not a plugin name")));
            }
            Ok(Ipam::Delegate(t.to_string()))
        }
    }
}

/// ADD: one address per range set for the attachment, with the configuration's routes and DNS.
/// When a set cannot give one, what was taken is given back.
pub fn add(conf: &IpamConfig, id: &str, ifname: &str) -> CniResult<AddResult> {
    let requested = conf.requested_per_set()?;
    let dns = match &conf.resolv_conf {
        Some(path) => read_resolv_conf(path)?,
        None => Dns::default(),
    };
    let mut store = DiskStore::open(&conf.data_dir, &conf.network)?;
    add_in(&mut store, conf, &requested, id, ifname).map(|ips| AddResult {
        interfaces: Vec::new(),
        ips,
        routes: conf.routes.clone(),
        dns,
    })
}

/// The allocation part of ADD, on any store.
pub fn add_in(
    store: &mut dyn Store,
    conf: &IpamConfig,
    requested: &[Option<IpAddr>],
    id: &str,
    ifname: &str,
) -> CniResult<Vec<crate::types::IpConfig>> {
    let mut ips = Vec::new();
    for (idx, set) in conf.range_sets.iter().enumerate() {
        match allocator::allocate(store, set, idx, id, ifname, requested.get(idx).copied().flatten()) {
            Ok(ipc) => ips.push(ipc),
            Err(e) => {
                for ipc in &ips {
                    let _ = store.release_ip(ipc.address.addr());
                }
                return Err(e.context(format_args!("failed to allocate for range {idx}")));
            }
        }
    }
    Ok(ips)
}

/// Gives back one address taken by [`add`] (undoing a failed ADD).
pub fn release_ips(conf: &IpamConfig, ips: &[IpAddr]) -> CniResult<()> {
    let mut store = DiskStore::open(&conf.data_dir, &conf.network)?;
    for ip in ips {
        store.release_ip(*ip)?;
    }
    Ok(())
}

/// The addresses the attachment holds.
pub fn held(conf: &IpamConfig, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    let store = DiskStore::open(&conf.data_dir, &conf.network)?;
    Ok(store.get_by_id(id, ifname))
}

/// DEL: frees the attachment's addresses (none held is fine). Returns them.
pub fn del(conf: &IpamConfig, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    let mut store = DiskStore::open(&conf.data_dir, &conf.network)?;
    store.release_by_id(id, ifname)
}

/// CHECK: the attachment holds an address.
pub fn check(conf: &IpamConfig, id: &str, ifname: &str) -> CniResult<Vec<IpAddr>> {
    let ips = held(conf, id, ifname)?;
    if ips.is_empty() {
        return Err(CniError::CheckFailed(format!(
            "no address is reserved for container {id} interface {ifname} in {}",
            conf.data_dir.join(&conf.network).display()
        )));
    }
    Ok(ips)
}

/// GC: frees the addresses of attachments not in `valid`. Returns them.
pub fn gc(conf: &IpamConfig, valid: &HashSet<Attachment>) -> CniResult<Vec<IpAddr>> {
    let mut store = DiskStore::open(&conf.data_dir, &conf.network)?;
    allocator::gc(&mut store, valid)
}

/// STATUS: the store can be opened and every range set has a free address (else code 50).
pub fn status(conf: &IpamConfig) -> CniResult<()> {
    let store = DiskStore::open(&conf.data_dir, &conf.network).map_err(|e| CniError::NotAvailable(e.to_string()))?;
    for (i, set) in conf.range_sets.iter().enumerate() {
        if !allocator::has_free(&store, set) {
            return Err(CniError::NotAvailable(format!("no IP addresses available in range set {i}: {set}")));
        }
    }
    Ok(())
}

/// Reads DNS settings from a resolv.conf file.
pub fn read_resolv_conf(path: &Path) -> CniResult<Dns> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CniError::InvalidConfig(format!("ipam.resolvConf: cannot read {}: {e}", path.display())))?;
    Ok(parse_resolv_conf(&text))
}

/// Parses resolv.conf text: `nameserver`, `domain`, `search` and `options` lines.
pub fn parse_resolv_conf(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_string)),
            Some("domain") => dns.domain = words.next().unwrap_or("").to_string(),
            Some("search") => dns.search = words.map(str::to_string).collect(),
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fields::Obj;

    fn conf(dir: &Path, ipam: serde_json::Value) -> IpamConfig {
        let v = json!({ "ipam": ipam });
        let root = Obj::root(&v).unwrap();
        let ipam = root.obj("ipam").unwrap().unwrap();
        let mut c = config::parse("net", &ipam, &root, &[]).unwrap();
        c.data_dir = dir.to_path_buf();
        c
    }

    #[test]
    fn dual_stack_add_del() {
        let tmp = tempfile::tempdir().unwrap();
        let c = conf(
            tmp.path(),
            json!({"ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd05::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]}),
        );
        let r = add(&c, "c1", "eth0").unwrap();
        let addrs: Vec<String> = r.ips.iter().map(|i| i.address.to_string()).collect();
        assert_eq!(addrs, ["10.5.0.2/24", "fd05::2/64"]);
        assert_eq!(r.ips[0].gateway, Some("10.5.0.1".parse().unwrap()));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(check(&c, "c1", "eth0").unwrap().len(), 2);
        assert_eq!(del(&c, "c1", "eth0").unwrap().len(), 2);
        assert!(del(&c, "c1", "eth0").unwrap().is_empty());
        assert_eq!(check(&c, "c1", "eth0").unwrap_err().code(), crate::error::codes::CHECK_FAILED);
    }

    #[test]
    fn exhausted_second_set_gives_the_first_back() {
        let tmp = tempfile::tempdir().unwrap();
        let c = conf(tmp.path(), json!({"ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "10.6.0.0/30"}]]}));
        add(&c, "c1", "eth0").unwrap();
        let e = add(&c, "c2", "eth0").unwrap_err();
        assert_eq!(e.code(), crate::error::codes::RANGE_EXHAUSTED);
        assert_eq!(
            e.to_string(),
            "failed to allocate for range 1: no IP addresses available in range set: 10.6.0.1-10.6.0.2"
        );
        assert!(held(&c, "c2", "eth0").unwrap().is_empty());
        assert!(!tmp.path().join("net/10.5.0.3").exists());
        assert_eq!(status(&c).unwrap_err().code(), 50);
        let valid: HashSet<Attachment> = HashSet::new();
        assert_eq!(gc(&c, &valid).unwrap().len(), 2);
        assert!(status(&c).is_ok());
    }

    #[test]
    fn resolv_conf() {
        let d = parse_resolv_conf(
            "# c\nnameserver 10.0.0.10\nnameserver fd00::10\nsearch a.svc b.svc\noptions ndots:5\ndomain example.org\n",
        );
        assert_eq!(d.nameservers, ["10.0.0.10", "fd00::10"]);
        assert_eq!(d.search, ["a.svc", "b.svc"]);
        assert_eq!(d.options, ["ndots:5"]);
        assert_eq!(d.domain, "example.org");
    }
}
