//! The `ipam` section for host-local IPAM, read as the reference `host-local` plugin reads it:
//! `ranges` (a list of range sets, one address per set: dual-stack is one set per family), the
//! older single-range form (`subnet`, `rangeStart`, `rangeEnd`, `gateway`, put first), `routes`,
//! `dataDir` (default `/var/lib/cni/networks`) and `resolvConf`; addresses asked for by
//! `CNI_ARGS` `IP=`, `args.cni.ips` or `runtimeConfig.ips`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::range::{Range, RangeSet};
use crate::error::{CniError, CniResult};
use crate::fields::{invalid, ip_or_cidr, Obj};
use crate::types::Route;

/// The default directory of the on-disk store (one subdirectory per network).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// A canonical host-local configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// The network name: the store's subdirectory.
    pub network: String,
    pub data_dir: PathBuf,
    pub range_sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub resolv_conf: Option<PathBuf>,
    /// Addresses asked for, at most one per range set.
    pub requested: Vec<IpAddr>,
}

/// Reads the `ipam` object `ipam` of the network `network`; `root` is the whole configuration
/// (for `args` and `runtimeConfig`), `env_args` is `CNI_ARGS`.
pub fn parse(network: &str, ipam: &Obj, root: &Obj, env_args: &[(String, String)]) -> CniResult<IpamConfig> {
    let mut sets: Vec<(String, RangeSet)> = Vec::new();
    // The older single-range form comes first.
    if let Some(subnet) = ipam.cidr("subnet")? {
        let r = Range::new(subnet, ipam.ip("rangeStart")?, ipam.ip("rangeEnd")?, ipam.ip("gateway")?)
            .map_err(|e| invalid(&ipam.path, e))?;
        sets.push((ipam.path.clone(), RangeSet::new(vec![r]).map_err(|e| invalid(&ipam.path, e))?));
    }
    if let Some(list) = ipam.array("ranges")? {
        for (i, set) in list.iter().enumerate() {
            let set_path = format!("{}[{i}]", ipam.path_of("ranges"));
            let Value::Array(items) = set else {
                return Err(invalid(&set_path, "expected a list of ranges"));
            };
            let mut ranges = Vec::new();
            for (j, item) in items.iter().enumerate() {
                let o = Obj::at(format!("{set_path}[{j}]"), item)?;
                let subnet = o.cidr("subnet")?.ok_or_else(|| invalid(&o.path_of("subnet"), "missing"))?;
                let r = Range::new(subnet, o.ip("rangeStart")?, o.ip("rangeEnd")?, o.ip("gateway")?)
                    .map_err(|e| invalid(&o.path, e))?;
                ranges.push(r);
            }
            sets.push((set_path.clone(), RangeSet::new(ranges).map_err(|e| invalid(&set_path, e))?));
        }
    }
    if sets.is_empty() {
        return Err(invalid(&ipam.path, "no IP ranges specified (set \"ranges\" or \"subnet\")"));
    }
    for (i, (_, a)) in sets.iter().enumerate() {
        for (j, (_, b)) in sets.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(invalid(&ipam.path, format!("range set {i} overlaps with range set {j}")));
            }
        }
    }
    let range_sets: Vec<RangeSet> = sets.into_iter().map(|(_, s)| s).collect();

    let mut routes = Vec::new();
    if let Some(list) = ipam.array("routes")? {
        for (i, item) in list.iter().enumerate() {
            let o = Obj::at(format!("{}[{i}]", ipam.path_of("routes")), item)?;
            let dst = o.cidr("dst")?.ok_or_else(|| invalid(&o.path_of("dst"), "missing"))?;
            let gw = o.ip("gw")?;
            if let Some(gw) = gw {
                if gw.is_ipv4() != dst.addr().is_ipv4() {
                    return Err(invalid(&o.path, format!("gateway {gw} is not in the family of {dst}")));
                }
            }
            routes.push(Route::new(dst, gw));
        }
    }

    let requested = requested_ips(root, env_args)?;
    let data_dir = ipam.str("dataDir")?.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_DATA_DIR);
    Ok(IpamConfig {
        network: network.to_string(),
        data_dir: PathBuf::from(data_dir),
        range_sets,
        routes,
        resolv_conf: ipam.str("resolvConf")?.filter(|s| !s.is_empty()).map(PathBuf::from),
        requested,
    })
}

impl IpamConfig {
    /// The address asked for in each range set (ADD only): each requested address must fall in
    /// a range set, and at most one in each.
    pub fn requested_per_set(&self) -> CniResult<Vec<Option<IpAddr>>> {
        let mut per_set: Vec<Option<IpAddr>> = vec![None; self.range_sets.len()];
        for ip in &self.requested {
            match self.range_sets.iter().position(|s| s.contains(*ip)) {
                Some(i) if per_set[i].is_some() => {
                    return Err(CniError::AddressUnavailable(format!(
                        "more than one address requested from range set {i} ({})",
                        self.range_sets[i]
                    )))
                }
                Some(i) => per_set[i] = Some(*ip),
                None => {
                    let sets: Vec<String> = self.range_sets.iter().map(RangeSet::to_string).collect();
                    return Err(CniError::AddressUnavailable(format!(
                        "requested IP address {ip} is not in any range set ({})",
                        sets.join("; ")
                    )));
                }
            }
        }
        Ok(per_set)
    }
}

/// Addresses asked for: `CNI_ARGS` `IP=a,b`, `args.cni.ips` and `runtimeConfig.ips` (each a bare
/// address or one in CIDR form), without duplicates.
pub fn requested_ips(root: &Obj, env_args: &[(String, String)]) -> CniResult<Vec<IpAddr>> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |s: &str, source: &str| -> CniResult<()> {
        let ip =
            ip_or_cidr(s).ok_or_else(|| CniError::InvalidConfig(format!("{source}: {s:?} is not an IP address")))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
        Ok(())
    };
    for (k, v) in env_args {
        if k == "IP" {
            for item in v.split(',').filter(|s| !s.trim().is_empty()) {
                push(item, "CNI_ARGS IP").map_err(|e| CniError::InvalidEnv(e.to_string()))?;
            }
        }
    }
    if let Some(args) = root.obj("args")? {
        if let Some(cni) = args.obj("cni")? {
            for s in cni.strings("ips")? {
                push(&s, &cni.path_of("ips"))?;
            }
        }
    }
    if let Some(rc) = root.obj("runtimeConfig")? {
        for s in rc.strings("ips")? {
            push(&s, &rc.path_of("ips"))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn load(v: Value) -> CniResult<IpamConfig> {
        load_args(v, &[])
    }

    fn load_args(v: Value, args: &[(&str, &str)]) -> CniResult<IpamConfig> {
        let root = Obj::root(&v).unwrap();
        let ipam = root.obj("ipam").unwrap().unwrap();
        let args: Vec<(String, String)> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse("mynet", &ipam, &root, &args)
    }

    #[test]
    fn dual_stack_ranges() {
        let c = load(json!({"ipam": {
            "type": "host-local",
            "ranges": [
                [{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.20", "gateway": "10.1.2.30"}],
                [{"subnet": "fd00:1::/64"}]
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:1::1"}],
            "dataDir": "/tmp/x"
        }}))
        .unwrap();
        assert_eq!(c.range_sets.len(), 2);
        assert_eq!(c.range_sets[0].0[0].to_string(), "10.1.2.9-10.1.2.20");
        assert_eq!(c.range_sets[0].0[0].gateway, "10.1.2.30".parse::<IpAddr>().unwrap());
        assert_eq!(c.range_sets[1].0[0].to_string(), "fd00:1::1-fd00:1::ffff:ffff:ffff:ffff");
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.network, "mynet");
    }

    #[test]
    fn old_style_range_comes_first() {
        let c = load(json!({"ipam": {"subnet": "10.9.0.0/16", "ranges": [[{"subnet": "10.8.0.0/16"}]]}})).unwrap();
        assert_eq!(c.range_sets[0].0[0].subnet.to_string(), "10.9.0.0/16");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn bad_ranges_are_named() {
        let e = load(json!({"ipam": {"type": "host-local"}})).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("no IP ranges specified"));
        let e = load(json!({"ipam": {"ranges": [[{"subnet": "10.1.2.0/31"}]]}})).unwrap_err();
        assert_eq!(e.to_string(), "ipam.ranges[0][0]: network 10.1.2.0/31 is too small to allocate from");
        let e = load(json!({"ipam": {"ranges": [[{"rangeStart": "10.1.2.3"}]]}})).unwrap_err();
        assert_eq!(e.to_string(), "ipam.ranges[0][0].subnet: missing");
        let e =
            load(json!({"ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.1.0.0/16"}]]}})).unwrap_err();
        assert_eq!(e.to_string(), "ipam: range set 0 overlaps with range set 1");
        let e = load(json!({"ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "fd00::/64"}]]}})).unwrap_err();
        assert_eq!(e.to_string(), "ipam.ranges[0]: mixed address families");
        let e = load(json!({"ipam": {"ranges": {"subnet": "10.1.2.0/24"}}})).unwrap_err();
        assert!(e.to_string().starts_with("ipam.ranges: expected a list"));
        let e = load(json!({"ipam": {"subnet": "10.1.2.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]}}))
            .unwrap_err();
        assert!(e.to_string().starts_with("ipam.routes[0]"));
    }

    #[test]
    fn requested_addresses() {
        let base = json!({
            "ipam": {"ranges": [[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]]},
            "args": {"cni": {"ips": ["fd00::9/64"]}},
            "runtimeConfig": {"ips": ["10.1.2.9/24"]}
        });
        let c = load(base.clone()).unwrap();
        assert_eq!(c.requested, vec!["fd00::9".parse::<IpAddr>().unwrap(), "10.1.2.9".parse().unwrap()]);
        assert_eq!(
            c.requested_per_set().unwrap(),
            vec![Some("10.1.2.9".parse().unwrap()), Some("fd00::9".parse().unwrap())]
        );
        let c = load_args(json!({"ipam": {"subnet": "10.1.2.0/24"}}), &[("IP", "10.1.2.50")]).unwrap();
        assert_eq!(c.requested, vec!["10.1.2.50".parse::<IpAddr>().unwrap()]);
        let c = load_args(json!({"ipam": {"subnet": "10.1.2.0/24"}}), &[("IP", "10.1.3.50")]).unwrap();
        let e = c.requested_per_set().unwrap_err();
        assert_eq!(e.code(), crate::error::codes::ADDRESS_UNAVAILABLE);
        assert!(e.to_string().contains("10.1.3.50"));
        let e = load_args(json!({"ipam": {"subnet": "10.1.2.0/24"}}), &[("IP", "bogus")]).unwrap_err();
        assert_eq!(e.code(), 4);
        let c = load_args(json!({"ipam": {"subnet": "10.1.2.0/24"}}), &[("IP", "10.1.2.5,10.1.2.6")]).unwrap();
        assert!(c.requested_per_set().unwrap_err().to_string().contains("more than one address"));
    }
}
