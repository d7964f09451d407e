//! nftables through the `nft` program (as the reference plugins' nftables backends do, through
//! knftables): a script is applied in one atomic transaction with `nft -f -`, and rules are
//! listed with `nft -j` to find the ones an attachment owns by their comment. Rules are tagged
//! with [`attachment_tag`], a hash of network, container ID and interface, whose first part
//! names the network so GC can find the rules of one network. (ipMasq, which runs on every ADD
//! and DEL, does without the program: see [`crate::nftnl`].)

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{CniError, CniResult};

/// The `nft` program (overridable with `PODNET_NFT` for tests and unusual installs).
pub fn nft_program() -> String {
    std::env::var("PODNET_NFT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "nft".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The comment prefix of every rule of network `network`: `podnet:<8 hex digits>:`.
pub fn network_tag(network: &str) -> String {
    format!("podnet:{}:", &hex(&Sha256::digest(network.as_bytes()))[..8])
}

/// The comment of the rules of one attachment: the network's tag, then 24 hex digits of a hash
/// of network, container ID and interface name.
pub fn attachment_tag(network: &str, container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    for part in [network, container_id, ifname] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{}{}", network_tag(network), &hex(&h.finalize())[..24])
}

/// Applies `script` with `nft -f -` (one transaction: all of it or nothing).
pub fn apply(script: &str) -> CniResult<()> {
    let mut child = Command::new(nft_program())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CniError::Nftables(format!("cannot run {}: {e}", nft_program())))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| CniError::Nftables(e.to_string()))?;
    let out = child.wait_with_output().map_err(|e| CniError::Nftables(e.to_string()))?;
    if !out.status.success() {
        return Err(CniError::Nftables(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ")
        )));
    }
    Ok(())
}

/// Lists `object` (e.g. `["table", "inet", "podnet_masq"]`) as JSON; None when it does not exist.
pub fn list(object: &[&str]) -> CniResult<Option<Value>> {
    let out = Command::new(nft_program())
        .args(["-j", "list"])
        .args(object)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CniError::Nftables(format!("cannot run {}: {e}", nft_program())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") || err.contains("does not exist") {
            return Ok(None);
        }
        return Err(CniError::Nftables(format!("nft list {}: {}", object.join(" "), err.trim())));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| CniError::Nftables(format!("cannot read the output of nft -j list: {e}")))
}

/// A rule in `nft -j` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// The rules in `nft -j list …` output.
pub fn rules(listing: &Value) -> Vec<RuleRef> {
    let Some(items) = listing.get("nftables").and_then(Value::as_array) else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| {
            let r = item.get("rule")?;
            Some(RuleRef {
                family: r.get("family")?.as_str()?.to_string(),
                table: r.get("table")?.as_str()?.to_string(),
                chain: r.get("chain")?.as_str()?.to_string(),
                handle: r.get("handle")?.as_u64()?,
                comment: r.get("comment").and_then(Value::as_str).unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// A script deleting `rules`.
pub fn delete_script(rules: &[RuleRef]) -> String {
    rules.iter().map(|r| format!("delete rule {} {} {} handle {}\n", r.family, r.table, r.chain, r.handle)).collect()
}

/// Deletes the rules of `table` (in `family`) for which `doomed` holds; returns how many.
pub fn delete_rules_where(family: &str, table: &str, doomed: impl Fn(&RuleRef) -> bool) -> CniResult<usize> {
    let Some(listing) = list(&["table", family, table])? else { return Ok(0) };
    let victims: Vec<RuleRef> = rules(&listing).into_iter().filter(|r| doomed(r)).collect();
    if !victims.is_empty() {
        apply(&delete_script(&victims))?;
    }
    Ok(victims.len())
}

/// Whether the `nft` program can be run (STATUS).
pub fn available() -> bool {
    Command::new(nft_program())
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tags() {
        let t = attachment_tag("net", "c1", "eth0");
        assert!(t.starts_with(&network_tag("net")));
        assert_eq!(t.len(), "podnet:".len() + 8 + 1 + 24);
        assert_ne!(t, attachment_tag("net", "c1", "eth1"));
        assert_ne!(t, attachment_tag("net2", "c1", "eth0"));
        assert_eq!(t, attachment_tag("net", "c1", "eth0"));
    }

    #[test]
    fn reads_rules_from_json_listings() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "podnet_masq", "handle": 1}},
            {"chain": {"family": "inet", "table": "podnet_masq", "name": "postrouting", "handle": 1}},
            {"rule": {"family": "inet", "table": "podnet_masq", "chain": "postrouting", "handle": 4,
                      "comment": "podnet:abc:def", "expr": []}},
            {"rule": {"family": "inet", "table": "podnet_masq", "chain": "postrouting", "handle": 5, "expr": []}}
        ]});
        let r = rules(&listing);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].comment, "podnet:abc:def");
        assert_eq!(r[1].comment, "");
        assert_eq!(delete_script(&r[..1]), "delete rule inet podnet_masq postrouting handle 4\n");
    }
}
