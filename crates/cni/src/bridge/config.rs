//! The configuration of the `podnet` plugin, compatible with the reference `bridge` plugin:
//! `bridge` (default `cni0`), `isGateway`, `isDefaultGateway` (implies `isGateway`),
//! `forceAddress`, `ipMasq`, `mtu`, `hairpinMode`, `promiscMode`, `vlan`,
//! `preserveDefaultVlan`, `enabledad`, `ipam`, and the container MAC from `runtimeConfig.mac`,
//! `args.cni.mac` or `CNI_ARGS` `MAC=`. podnet's own: `sameNodeRedirect` (pod-to-pod packets
//! on the node go from veth to veth with eBPF instead of across the bridge) and `bpfPinDir`
//! (the bpffs directory its program and map are pinned in, default [`DEFAULT_BPF_PIN_DIR`]).
//! Options of the reference plugin podnet does not implement are refused with error code 2 when
//! they are switched on.

use serde_json::Value;

use crate::env::validate_ifname;
use crate::error::{CniError, CniResult};
use crate::fields::invalid;
use crate::netconf::NetConf;

/// The default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// Where the same-node redirect pins its program and map unless `bpfPinDir` says otherwise.
pub const DEFAULT_BPF_PIN_DIR: &str = "/sys/fs/bpf/podnet";

/// The bridge plugin's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConf {
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    /// None: the kernel's default (1500).
    pub mtu: Option<u32>,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    /// 0: no VLAN.
    pub vlan: u16,
    pub preserve_default_vlan: bool,
    /// IPv6 duplicate address detection on the container interface (off by default, as in the
    /// reference plugin).
    pub enable_dad: bool,
    /// The container interface's MAC, when asked for.
    pub mac: Option<[u8; 6]>,
    /// The same-node redirect's pin directory, when it is on.
    pub same_node_redirect: Option<std::path::PathBuf>,
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`): a unicast address.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// Prints a MAC in `ip link`'s form.
pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Options of the reference plugin that podnet refuses when set to anything but their default.
const UNSUPPORTED: &[&str] = &["vlanTrunk", "macspoofchk", "portIsolation", "disableContainerInterface"];

impl BridgeConf {
    /// Reads the bridge settings of `conf`; `env_args` is `CNI_ARGS`.
    pub fn parse(conf: &NetConf, env_args: &[(String, String)]) -> CniResult<BridgeConf> {
        let root = conf.root();
        for key in UNSUPPORTED {
            if let Some(v) = root.get(key) {
                let off = matches!(v, Value::Bool(false)) || matches!(v, Value::Array(a) if a.is_empty());
                if !off {
                    return Err(CniError::UnsupportedField { key: key.to_string(), value: v.to_string() });
                }
            }
        }
        let bridge = root.str("bridge")?.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_BRIDGE).to_string();
        validate_ifname(&bridge).map_err(|e| invalid("bridge", format!("{bridge:?}: {e}")))?;
        let is_default_gateway = root.bool("isDefaultGateway")?.unwrap_or(false);
        let is_gateway = root.bool("isGateway")?.unwrap_or(false) || is_default_gateway;
        let mtu = match root.uint("mtu", 65535)? {
            None | Some(0) => None,
            Some(m) if m < 68 => return Err(invalid("mtu", format!("{m} is below the minimum of 68"))),
            Some(m) => Some(m as u32),
        };
        let hairpin_mode = root.bool("hairpinMode")?.unwrap_or(false);
        let promisc_mode = root.bool("promiscMode")?.unwrap_or(false);
        if hairpin_mode && promisc_mode {
            return Err(CniError::InvalidConfig("hairpinMode and promiscMode cannot both be set: pick one".into()));
        }
        let vlan = match root.int("vlan")? {
            None => 0,
            Some(v) if (0..=4094).contains(&v) => v as u16,
            Some(v) => return Err(invalid("vlan", format!("invalid VLAN ID {v} (must be between 0 and 4094)"))),
        };
        let mac = conf_mac(conf, env_args)?;
        let pin_dir = root.str("bpfPinDir")?.filter(|s| !s.is_empty()).unwrap_or(DEFAULT_BPF_PIN_DIR);
        if !pin_dir.starts_with('/') {
            return Err(invalid("bpfPinDir", format!("{pin_dir:?} is not an absolute path")));
        }
        let same_node_redirect = root.bool("sameNodeRedirect")?.unwrap_or(false).then(|| pin_dir.into());
        Ok(BridgeConf {
            bridge,
            is_gateway,
            is_default_gateway,
            force_address: root.bool("forceAddress")?.unwrap_or(false),
            ip_masq: root.bool("ipMasq")?.unwrap_or(false),
            mtu,
            hairpin_mode,
            promisc_mode,
            vlan,
            preserve_default_vlan: root.bool("preserveDefaultVlan")?.unwrap_or(true),
            enable_dad: root.bool("enabledad")?.unwrap_or(false),
            mac,
            same_node_redirect,
        })
    }
}

/// The container MAC asked for: `CNI_ARGS` `MAC=`, then `args.cni.mac`, then
/// `runtimeConfig.mac` (the last one given wins, as in the reference plugin).
fn conf_mac(conf: &NetConf, env_args: &[(String, String)]) -> CniResult<Option<[u8; 6]>> {
    let root = conf.root();
    let mut mac = None;
    let check = |s: &str, path: &str| -> CniResult<[u8; 6]> {
        match parse_mac(s) {
            Some(m) if m[0] & 1 == 0 => Ok(m),
            Some(_) => Err(invalid(path, format!("{s:?} is a multicast address"))),
            None => Err(invalid(path, format!("{s:?} is not a MAC address"))),
        }
    };
    if let Some((_, v)) = env_args.iter().find(|(k, _)| k == "MAC") {
        mac = Some(check(v, "CNI_ARGS MAC").map_err(|e| CniError::InvalidEnv(e.to_string()))?);
    }
    if let Some(args) = root.obj("args")? {
        if let Some(cni) = args.obj("cni")? {
            if let Some(s) = cni.str("mac")? {
                mac = Some(check(s, &cni.path_of("mac"))?);
            }
        }
    }
    if let Some(rc) = root.obj("runtimeConfig")? {
        if let Some(s) = rc.str("mac")? {
            mac = Some(check(s, &rc.path_of("mac"))?);
        }
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(extra: Value) -> CniResult<BridgeConf> {
        parse_args(extra, &[])
    }

    fn parse_args(extra: Value, args: &[(&str, &str)]) -> CniResult<BridgeConf> {
        let mut v = json!({"cniVersion": "1.0.0", "name": "mynet", "type": "podnet"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        let args: Vec<(String, String)> = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BridgeConf::parse(&NetConf::parse(v)?, &args)
    }

    #[test]
    fn defaults() {
        let c = parse(json!({})).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(!c.is_gateway && !c.ip_masq && !c.hairpin_mode && c.mtu.is_none() && c.vlan == 0);
        assert!(c.preserve_default_vlan);
        assert_eq!(c.same_node_redirect, None);
    }

    #[test]
    fn same_node_redirect() {
        let c = parse(json!({"sameNodeRedirect": true})).unwrap();
        assert_eq!(c.same_node_redirect.as_deref(), Some(std::path::Path::new(DEFAULT_BPF_PIN_DIR)));
        let c = parse(json!({"sameNodeRedirect": true, "bpfPinDir": "/run/podnet/bpf"})).unwrap();
        assert_eq!(c.same_node_redirect.as_deref(), Some(std::path::Path::new("/run/podnet/bpf")));
        let e = parse(json!({"sameNodeRedirect": true, "bpfPinDir": "bpf"})).unwrap_err();
        assert!(e.to_string().starts_with("bpfPinDir: "), "{e}");
        assert!(parse(json!({"sameNodeRedirect": "on"})).unwrap_err().to_string().starts_with("sameNodeRedirect: "));
    }

    #[test]
    fn reference_fields() {
        let c = parse(json!({
            "bridge": "br-pods", "isDefaultGateway": true, "forceAddress": true, "ipMasq": true,
            "mtu": 1400, "hairpinMode": true, "vlan": 100, "runtimeConfig": {"mac": "0a:58:0a:f4:01:05"}
        }))
        .unwrap();
        assert_eq!(c.bridge, "br-pods");
        assert!(c.is_gateway, "isDefaultGateway implies isGateway");
        assert_eq!((c.mtu, c.vlan), (Some(1400), 100));
        assert_eq!(c.mac.map(|m| format_mac(&m)).as_deref(), Some("0a:58:0a:f4:01:05"));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = parse(json!({"bridge": "a bridge name too long"})).unwrap_err();
        assert_eq!(e.code(), 7);
        assert!(e.to_string().starts_with("bridge: "), "{e}");
        assert!(parse(json!({"mtu": 20})).unwrap_err().to_string().starts_with("mtu: "));
        assert!(parse(json!({"mtu": "1500"})).unwrap_err().to_string().starts_with("mtu: "));
        assert!(parse(json!({"vlan": 5000})).unwrap_err().to_string().contains("invalid VLAN ID 5000"));
        assert!(parse(json!({"hairpinMode": true, "promiscMode": true}))
            .unwrap_err()
            .to_string()
            .contains("hairpinMode"));
        assert!(parse(json!({"isGateway": "yes"})).unwrap_err().to_string().starts_with("isGateway: "));
        let e = parse(json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}})).unwrap_err();
        assert!(e.to_string().contains("multicast"));
        let e = parse_args(json!({}), &[("MAC", "zz")]).unwrap_err();
        assert_eq!(e.code(), 4);
    }

    #[test]
    fn unsupported_options_are_code_2() {
        let e = parse(json!({"vlanTrunk": [{"id": 5}]})).unwrap_err();
        assert_eq!(e.code(), 2);
        assert_eq!(e.to_string(), "unsupported field in network configuration: vlanTrunk=[{\"id\":5}]");
        assert!(parse(json!({"macspoofchk": false})).is_ok());
        assert_eq!(parse(json!({"macspoofchk": true})).unwrap_err().code(), 2);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("AA-bb-cc-dd-ee-ff"), Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:fg"), None);
        assert_eq!(format_mac(&[0, 1, 2, 0xa, 0xb, 0xff]), "00:01:02:0a:0b:ff");
    }
}
