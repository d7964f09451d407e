//! The spec's data types: the result of ADD (interfaces, IP configurations, routes, DNS), how it
//! is written for each spec version (`ips[].version` before 1.0.0; interface `mtu`,
//! `socketPath`, `pciID` and route `mtu`, `advmss`, `priority`, `table`, `scope` only from
//! 1.1.0) and how a `prevResult` of any supported version is read back.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{CniError, CniResult};
use crate::version::{self, Version};

/// One interface of a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The network namespace path for container interfaces; empty for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// Since 1.1.0.
    #[serde(default, rename = "socketPath", skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    /// Since 1.1.0.
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into the result's interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// The address with its prefix length, e.g. `10.22.0.5/16`.
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// One route of a result (or of an IPAM configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Since 1.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw`, with no other attributes.
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

/// DNS settings of a result or a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// The result of ADD (and the `prevResult` of the next plugin in a chain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl AddResult {
    /// The result as JSON in spec version `version` (with `cniVersion` set to `cni_version`).
    pub fn to_json(&self, cni_version: &str, version: Version) -> Value {
        let v11 = version >= Version::V1_1_0;
        let mut out = Map::new();
        out.insert("cniVersion".into(), Value::String(cni_version.to_string()));
        if !self.interfaces.is_empty() {
            let ifaces = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    if !v11 {
                        i.mtu = None;
                        i.socket_path.clear();
                        i.pci_id.clear();
                    }
                    serde_json::to_value(i).expect("interface serializes")
                })
                .collect();
            out.insert("interfaces".into(), Value::Array(ifaces));
        }
        if !self.ips.is_empty() {
            let ips = self
                .ips
                .iter()
                .map(|ip| {
                    let mut m = Map::new();
                    if version.has_ip_version_field() {
                        let family = if ip.address.addr().is_ipv4() { "4" } else { "6" };
                        m.insert("version".into(), json!(family));
                    }
                    if let Some(i) = ip.interface {
                        m.insert("interface".into(), json!(i));
                    }
                    m.insert("address".into(), json!(ip.address.to_string()));
                    if let Some(gw) = ip.gateway {
                        m.insert("gateway".into(), json!(gw.to_string()));
                    }
                    Value::Object(m)
                })
                .collect();
            out.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            let routes = self
                .routes
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if !v11 {
                        r = Route::new(r.dst, r.gw);
                    }
                    serde_json::to_value(r).expect("route serializes")
                })
                .collect();
            out.insert("routes".into(), Value::Array(routes));
        }
        out.insert("dns".into(), serde_json::to_value(&self.dns).expect("dns serializes"));
        Value::Object(out)
    }

    /// Reads a result (a `prevResult`, or a delegate's output) of any supported version.
    pub fn from_json(v: &Value) -> CniResult<AddResult> {
        let obj = v.as_object().ok_or_else(|| CniError::InvalidConfig("a result must be a JSON object".into()))?;
        if let Some(cv) = obj.get("cniVersion").and_then(Value::as_str) {
            version::check(cv).map_err(|e| e.context("result"))?;
        }
        if obj.contains_key("ip4") || obj.contains_key("ip6") {
            return Err(CniError::IncompatibleVersion("results of CNI 0.1.0/0.2.0 (ip4/ip6) are not supported".into()));
        }
        fn list<T: for<'de> Deserialize<'de>>(obj: &Map<String, Value>, key: &str) -> CniResult<Vec<T>> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|e| CniError::InvalidConfig(format!("result field {key:?}: {e}"))),
            }
        }
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| CniError::InvalidConfig(format!("result field \"dns\": {e}")))?,
        };
        Ok(AddResult {
            interfaces: list(obj, "interfaces")?,
            ips: list(obj, "ips")?,
            routes: list(obj, "routes")?,
            dns,
        })
    }

    /// Index of the container interface `ifname` in `sandbox` (any sandbox if `sandbox` is None).
    pub fn sandbox_interface(&self, ifname: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == ifname && !i.sandbox.is_empty())
    }
}

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(default)]
    pub ifname: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AddResult {
        AddResult {
            interfaces: vec![
                Interface { name: "cni0".into(), mac: "aa:bb:cc:dd:ee:01".into(), ..Default::default() },
                Interface { name: "veth1234abcd".into(), mac: "aa:bb:cc:dd:ee:02".into(), ..Default::default() },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:03".into(),
                    mtu: Some(1400),
                    sandbox: "/run/netns/pod".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(2),
                    address: "10.22.0.5/16".parse().unwrap(),
                    gateway: Some("10.22.0.1".parse().unwrap()),
                },
                IpConfig { interface: Some(2), address: "fd00::5/64".parse().unwrap(), gateway: None },
            ],
            routes: vec![Route { table: Some(100), ..Route::new("0.0.0.0/0".parse().unwrap(), None) }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn result_json_1_1_0() {
        let v = sample().to_json("1.1.0", Version::V1_1_0);
        assert_eq!(
            v,
            json!({
                "cniVersion": "1.1.0",
                "interfaces": [
                    {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"},
                    {"name": "veth1234abcd", "mac": "aa:bb:cc:dd:ee:02"},
                    {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "mtu": 1400, "sandbox": "/run/netns/pod"}
                ],
                "ips": [
                    {"interface": 2, "address": "10.22.0.5/16", "gateway": "10.22.0.1"},
                    {"interface": 2, "address": "fd00::5/64"}
                ],
                "routes": [{"dst": "0.0.0.0/0", "table": 100}],
                "dns": {}
            })
        );
    }

    #[test]
    fn result_json_older_versions() {
        let v = sample().to_json("1.0.0", Version::V1_0_0);
        assert!(v["interfaces"][2].get("mtu").is_none());
        assert!(v["routes"][0].get("table").is_none());
        assert!(v["ips"][0].get("version").is_none());
        let v = sample().to_json("0.4.0", Version::V0_4_0);
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert_eq!(v["cniVersion"], "0.4.0");
    }

    #[test]
    fn result_round_trips() {
        let r = sample();
        let back = AddResult::from_json(&r.to_json("1.1.0", Version::V1_1_0)).unwrap();
        assert_eq!(back, r);
        let old = AddResult::from_json(&r.to_json("0.3.1", Version(0, 3, 1))).unwrap();
        assert_eq!(old.ips, r.ips);
        assert_eq!(old.sandbox_interface("eth0"), Some(2));
        assert_eq!(old.sandbox_interface("cni0"), None);
    }

    #[test]
    fn bad_results() {
        assert_eq!(AddResult::from_json(&json!({"cniVersion": "0.2.0", "ip4": {}})).unwrap_err().code(), 1);
        assert_eq!(AddResult::from_json(&json!({"cniVersion": "1.0.0", "ip4": {}})).unwrap_err().code(), 1);
        let e = AddResult::from_json(&json!({"cniVersion": "1.0.0", "ips": [{"address": "nope"}]})).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().contains("\"ips\""));
        assert_eq!(AddResult::from_json(&json!([])).unwrap_err().code(), 7);
    }
}
