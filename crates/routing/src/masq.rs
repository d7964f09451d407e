//! Masquerading of pod traffic leaving the cluster, in nftables: `table ip podnet_node` (and
//! `table ip6 podnet_node` when there are IPv6 cluster CIDRs) with one nat base chain at the
//! srcnat priority:
//!
//! ```text
//! table ip podnet_node {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return comment "podnet-routing:…"
//!         ip saddr 10.244.0.0/16 ip daddr 224.0.0.0/4 return comment "podnet-routing:…"
//!         ip saddr 10.244.0.0/16 masquerade comment "podnet-routing:…"
//!     }
//! }
//! ```
//!
//! Pod ↔ pod (cluster CIDR to cluster CIDR) is never masqueraded, so the receiving pod sees the
//! sender's own address; multicast is left alone; anything else from a pod leaves with the
//! node's address.
//!
//! The table is written with the `nft` program (`nft -f -`, overridable with `PODNET_NFT`), as
//! one transaction that declares the table, deletes it and declares it again with its full
//! content: the kernel swaps old for new atomically, so no packet sees a half-written table.
//! `nft` costs a process start, which is nothing at this rate (once per change of the node set,
//! not per pod), and keeps the rules exactly as an administrator would write them. Every rule
//! carries a comment with a hash of the table's intended content; [`in_sync`] reads the table
//! back (`nft -j list table`) and the table is rewritten only when its rules do not all carry the
//! current hash — so an unchanged plan leaves nftables untouched.
//!
//! The text and the comparison are pure; [`apply_family`] runs `nft` and must be called from a
//! thread inside the node's namespace (`crate::apply` arranges that).

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// The table's name (in families `ip` and `ip6`).
pub const TABLE: &str = "podnet_node";
/// The base chain's name.
pub const CHAIN: &str = "postrouting";
/// The srcnat priority.
pub const PRIORITY: i32 = 100;
/// The comment prefix of the rules.
pub const COMMENT_PREFIX: &str = "podnet-routing:";

/// An nftables address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `ip`: IPv4.
    Ip,
    /// `ip6`: IPv6.
    Ip6,
}

impl Family {
    /// Both families.
    pub const ALL: [Family; 2] = [Family::Ip, Family::Ip6];

    /// The nft name (`ip`, `ip6`), which is also the payload keyword (`ip saddr`, `ip6 saddr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    fn multicast(self) -> &'static str {
        match self {
            Family::Ip => "224.0.0.0/4",
            Family::Ip6 => "ff00::/8",
        }
    }

    fn holds(self, net: &IpNet) -> bool {
        matches!((self, net), (Family::Ip, IpNet::V4(_)) | (Family::Ip6, IpNet::V6(_)))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cluster CIDRs of one family.
pub fn cidrs_of(family: Family, cidrs: &[IpNet]) -> Vec<IpNet> {
    cidrs.iter().filter(|c| family.holds(c)).map(IpNet::trunc).collect()
}

fn set(cidrs: &[IpNet]) -> String {
    match cidrs {
        [one] => one.to_string(),
        many => format!("{{ {} }}", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// The rules of the chain (without comments), in order. Empty when `cidrs` has none of `family`.
pub fn rules(family: Family, cidrs: &[IpNet]) -> Vec<String> {
    let cidrs = cidrs_of(family, cidrs);
    if cidrs.is_empty() {
        return Vec::new();
    }
    let f = family.as_str();
    let src = set(&cidrs);
    vec![
        format!("{f} saddr {src} {f} daddr {src} return"),
        format!("{f} saddr {src} {f} daddr {} return", family.multicast()),
        format!("{f} saddr {src} masquerade"),
    ]
}

/// The comment every rule carries: [`COMMENT_PREFIX`] and 16 hex digits of a hash of the rules.
pub fn comment(rules: &[String]) -> String {
    let mut h = Sha256::new();
    for r in rules {
        h.update(r.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{COMMENT_PREFIX}{hex}")
}

/// The `nft -f` script that makes `table <family> podnet_node` hold exactly `rules`, atomically
/// (declare, delete, declare with content); with no rules it deletes the table.
pub fn script(family: Family, rules: &[String]) -> String {
    let f = family.as_str();
    let mut s = format!("table {f} {TABLE}\ndelete table {f} {TABLE}\n");
    if rules.is_empty() {
        return s;
    }
    let c = comment(rules);
    s.push_str(&format!("table {f} {TABLE} {{\n\tchain {CHAIN} {{\n"));
    s.push_str(&format!("\t\ttype nat hook postrouting priority {PRIORITY}; policy accept;\n"));
    for r in rules {
        s.push_str(&format!("\t\t{r} comment \"{c}\"\n"));
    }
    s.push_str("\t}\n}\n");
    s
}

/// Whether the table as `nft -j list table <family> podnet_node` printed it (`None`: it does not
/// exist) already holds `rules`: one nat postrouting chain whose rules all carry the comment of
/// `rules`, as many as there are. With no rules, in sync means the table does not exist.
pub fn in_sync(listing: Option<&Value>, rules: &[String]) -> bool {
    let Some(listing) = listing else { return rules.is_empty() };
    if rules.is_empty() {
        return false;
    }
    let items = listing.get("nftables").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let chains: Vec<&Value> = items.iter().filter_map(|i| i.get("chain")).collect();
    let chain_ok = chains.len() == 1
        && chains[0].get("name").and_then(Value::as_str) == Some(CHAIN)
        && chains[0].get("type").and_then(Value::as_str) == Some("nat")
        && chains[0].get("hook").and_then(Value::as_str) == Some("postrouting");
    let expected = comment(rules);
    let comments: Vec<Option<&str>> =
        items.iter().filter_map(|i| i.get("rule")).map(|r| r.get("comment").and_then(Value::as_str)).collect();
    chain_ok && comments.len() == rules.len() && comments.iter().all(|c| *c == Some(expected.as_str()))
}

/// The `nft` program (`PODNET_NFT` overrides it, as for the CNI plugin).
pub fn nft_program() -> String {
    std::env::var("PODNET_NFT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "nft".into())
}

/// Whether `program` (a path, or a name looked up in `PATH`) exists.
fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        return std::path::Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).exists()))
        .unwrap_or(false)
}

/// `nft -j list table <family> podnet_node` in the calling thread's namespace; `None` when the
/// table does not exist.
pub fn list_table(family: Family) -> Result<Option<Value>, Error> {
    let op = || format!("list nftables table {family} {TABLE}");
    let out = Command::new(nft_program())
        .args(["-j", "list", "table", family.as_str(), TABLE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::nft(op(), format!("cannot run {}: {e}", nft_program())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No such file or directory") || err.contains("does not exist") {
            return Ok(None);
        }
        return Err(Error::nft(op(), err.trim().replace('\n', "; ")));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| Error::nft(op(), format!("cannot read the output of nft -j: {e}")))
}

/// Runs `nft -f -` with `script` (one transaction) in the calling thread's namespace.
pub fn run_script(script: &str, op: &str) -> Result<(), Error> {
    let mut child = Command::new(nft_program())
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::nft(op, format!("cannot run {}: {e}", nft_program())))?;
    let written = child.stdin.take().expect("stdin is piped").write_all(script.as_bytes());
    let out = child.wait_with_output().map_err(|e| Error::nft(op, e.to_string()))?;
    if !out.status.success() {
        return Err(Error::nft(
            op,
            format!("nft -f failed: {}", String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ")),
        ));
    }
    written.map_err(|e| Error::nft(op, format!("write to nft: {e}")))
}

/// What [`apply_family`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The table already held the rules (or, with none, did not exist).
    Unchanged,
    /// The table was (re)written.
    Written,
    /// The table was deleted.
    Deleted,
}

/// Makes `table <family> podnet_node` hold the masquerade rules of `cidrs` (deletes it when there
/// are none of that family). Call it from a thread inside the node's namespace.
pub fn apply_family(family: Family, cidrs: &[IpNet]) -> Result<Outcome, Error> {
    let rules = rules(family, cidrs);
    let listing = match list_table(family) {
        // Nothing to write, and no nft to have written anything before: nothing to do.
        Err(_) if rules.is_empty() && !program_exists(&nft_program()) => return Ok(Outcome::Unchanged),
        other => other?,
    };
    if in_sync(listing.as_ref(), &rules) {
        return Ok(Outcome::Unchanged);
    }
    let op = if rules.is_empty() {
        format!("delete nftables table {family} {TABLE}")
    } else {
        format!("write nftables table {family} {TABLE}")
    };
    run_script(&script(family, &rules), &op)?;
    Ok(if rules.is_empty() { Outcome::Deleted } else { Outcome::Written })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ipv4_rules() {
        let r = rules(Family::Ip, &nets(&["10.244.0.0/16", "fd00:10:244::/56"]));
        assert_eq!(
            r,
            [
                "ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return",
                "ip saddr 10.244.0.0/16 ip daddr 224.0.0.0/4 return",
                "ip saddr 10.244.0.0/16 masquerade",
            ]
        );
        let s = script(Family::Ip, &r);
        assert!(s.starts_with("table ip podnet_node\ndelete table ip podnet_node\ntable ip podnet_node {\n"), "{s}");
        assert!(s.contains("type nat hook postrouting priority 100; policy accept;"), "{s}");
        assert!(s.contains(&format!("masquerade comment \"{}\"", comment(&r))), "{s}");
        assert_eq!(s.matches("comment").count(), 3);
    }

    #[test]
    fn ipv6_and_several_cidrs() {
        let r = rules(Family::Ip6, &nets(&["10.244.0.0/16", "fd00:10:244::/56", "fd00:99::5/64"]));
        assert_eq!(
            r[0],
            "ip6 saddr { fd00:10:244::/56, fd00:99::/64 } ip6 daddr { fd00:10:244::/56, fd00:99::/64 } return"
        );
        assert_eq!(r[1], "ip6 saddr { fd00:10:244::/56, fd00:99::/64 } ip6 daddr ff00::/8 return");
        assert!(rules(Family::Ip6, &nets(&["10.244.0.0/16"])).is_empty());
        assert_eq!(script(Family::Ip6, &[]), "table ip6 podnet_node\ndelete table ip6 podnet_node\n");
    }

    #[test]
    fn comment_follows_content() {
        let a = rules(Family::Ip, &nets(&["10.244.0.0/16"]));
        let b = rules(Family::Ip, &nets(&["10.245.0.0/16"]));
        assert_ne!(comment(&a), comment(&b));
        assert_eq!(comment(&a), comment(&a.clone()));
        assert!(comment(&a).starts_with(COMMENT_PREFIX));
        assert_eq!(comment(&a).len(), COMMENT_PREFIX.len() + 16);
    }

    fn listing(chain_hook: &str, comments: &[&str]) -> Value {
        let mut items = vec![
            json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}}),
            json!({"table": {"family": "ip", "name": TABLE, "handle": 1}}),
            json!({"chain": {"family": "ip", "table": TABLE, "name": CHAIN, "handle": 1, "type": "nat",
                             "hook": chain_hook, "prio": 100, "policy": "accept"}}),
        ];
        for (i, c) in comments.iter().enumerate() {
            items.push(json!({"rule": {"family": "ip", "table": TABLE, "chain": CHAIN, "handle": i + 2,
                                       "comment": c, "expr": []}}));
        }
        json!({ "nftables": items })
    }

    #[test]
    fn sync_check() {
        let r = rules(Family::Ip, &nets(&["10.244.0.0/16"]));
        let c = comment(&r);
        assert!(in_sync(Some(&listing("postrouting", &[&c, &c, &c])), &r));
        assert!(!in_sync(Some(&listing("postrouting", &[&c, &c])), &r), "a rule missing");
        assert!(!in_sync(Some(&listing("postrouting", &[&c, &c, &c, &c])), &r), "a rule too many");
        assert!(!in_sync(Some(&listing("postrouting", &[&c, "other", &c])), &r), "a foreign rule");
        assert!(!in_sync(Some(&listing("prerouting", &[&c, &c, &c])), &r), "wrong hook");
        let other = rules(Family::Ip, &nets(&["10.245.0.0/16"]));
        assert!(!in_sync(Some(&listing("postrouting", &[&c, &c, &c])), &other), "other content");
        assert!(!in_sync(None, &r), "no table yet");
        assert!(in_sync(None, &[]), "no table wanted, none there");
        assert!(!in_sync(Some(&listing("postrouting", &[])), &[]), "a table to delete");
    }
}
