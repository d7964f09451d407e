//! The `loopback` plugin (type `loopback` or `podnet-loopback`), as the reference one: ADD sets
//! the container's loopback interface up and reports it with its addresses (or, chained after
//! another plugin, passes `prevResult` on unchanged); DEL sets it down (a missing namespace is
//! fine); CHECK verifies it is up.

use podnet_netlink::Handle;

use crate::env::Env;
use crate::error::{CniError, CniResult};
use crate::netconf::NetConf;
use crate::sys::{self, nl};
use crate::types::{AddResult, Interface, IpConfig};

/// ADD.
pub fn add(nc: &NetConf, env: &Env) -> CniResult<AddResult> {
    let ns = sys::open_netns(env.netns.as_deref().unwrap_or_default())?;
    let mut h = Handle::in_netns(&ns).map_err(nl)?;
    let link = h.get_link(env.ifname.as_str()).map_err(nl)?;
    h.set_up(link.index).map_err(nl)?;
    if let Some(prev) = &nc.prev_result {
        return Ok(prev.clone());
    }
    let addrs = h.link_addresses(link.index).map_err(nl)?;
    let mut ips: Vec<IpConfig> = Vec::new();
    for want_v4 in [true, false] {
        if let Some(a) = addrs.iter().find(|a| a.addr.addr().is_ipv4() == want_v4 && a.addr.addr().is_loopback()) {
            ips.push(IpConfig { interface: Some(0), address: a.addr, gateway: None });
        }
    }
    Ok(AddResult {
        interfaces: vec![Interface {
            name: env.ifname.clone(),
            mac: "00:00:00:00:00:00".into(),
            sandbox: env.netns.clone().unwrap_or_default(),
            ..Default::default()
        }],
        ips,
        ..Default::default()
    })
}

/// DEL.
pub fn del(env: &Env) -> CniResult<()> {
    let Some(path) = env.netns.as_deref() else { return Ok(()) };
    let Some(ns) = sys::open_netns_opt(path)? else { return Ok(()) };
    let mut h = Handle::in_netns(&ns).map_err(nl)?;
    match h.set_down(env.ifname.as_str()) {
        Ok(()) => Ok(()),
        Err(e) if sys::not_found(&e) => Ok(()),
        Err(e) => Err(nl(e)),
    }
}

/// CHECK.
pub fn check(env: &Env) -> CniResult<()> {
    let ns = sys::open_netns(env.netns.as_deref().unwrap_or_default())?;
    let mut h = Handle::in_netns(&ns).map_err(nl)?;
    let link = h.get_link(env.ifname.as_str()).map_err(nl)?;
    if !link.is_up() {
        return Err(CniError::CheckFailed(format!("interface {:?} is down", env.ifname)));
    }
    Ok(())
}
