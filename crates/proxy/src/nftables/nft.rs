//! Running the `nft` program (`PODNET_NFT` overrides it, as for the other podnet components):
//! a script is applied with `nft -f -` in one atomic transaction, and the table is read back
//! with `nft -j -t list table`. The program runs in the network namespace of the calling thread.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::family::Family;
use super::script::TableState;
use super::TABLE;
use crate::Error;

/// The `nft` program: `PODNET_NFT`, or `nft` from `PATH`.
pub fn default_program() -> String {
    std::env::var("PODNET_NFT").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "nft".into())
}

fn program_error(program: &str, what: &str, message: impl Into<String>) -> Error {
    Error::Program { program: program.to_string(), message: format!("{what}: {}", message.into()) }
}

/// Applies `script` with `nft -f -`: all of it or nothing. `what` names the operation in errors.
pub fn apply(program: &str, script: &str, what: &str) -> Result<(), Error> {
    let mut child = Command::new(program)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io { what: format!("{what}: run {program}"), source: e })?;
    let written = child.stdin.take().expect("stdin is piped").write_all(script.as_bytes());
    let out =
        child.wait_with_output().map_err(|e| Error::Io { what: format!("{what}: wait for {program}"), source: e })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(program_error(program, what, stderr.trim().replace('\n', "; ")));
    }
    written.map_err(|e| Error::Io { what: format!("{what}: write to {program}"), source: e })
}

/// Whether nft's error says the object does not exist.
fn is_not_found(stderr: &str) -> bool {
    stderr.contains("No such file or directory") || stderr.contains("does not exist")
}

/// Lists the proxy's table of `family` as JSON; `None` when it does not exist.
pub fn list_json(program: &str, family: Family) -> Result<Option<Value>, Error> {
    let what = format!("list nftables table {family} {TABLE}");
    let out = Command::new(program)
        .args(["-j", "-t", "list", "table", family.nft(), TABLE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Io { what: format!("{what}: run {program}"), source: e })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if is_not_found(&stderr) {
            return Ok(None);
        }
        return Err(program_error(program, &what, stderr.trim().replace('\n', "; ")));
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| program_error(program, &what, format!("cannot read the output of nft -j: {e}")))
}

/// The names of the chains, sets and maps in a `nft -j list table` listing.
pub fn table_state(listing: &Value) -> TableState {
    let mut state = TableState::default();
    let items = listing.get("nftables").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for item in items {
        let Some(obj) = item.as_object() else { continue };
        for (kind, target) in [("chain", &mut state.chains), ("set", &mut state.sets), ("map", &mut state.maps)] {
            if let Some(name) = obj.get(kind).and_then(|o| o.get("name")).and_then(Value::as_str) {
                target.insert(name.to_string());
            }
        }
    }
    state
}

/// What the proxy's table of `family` holds now (empty when it does not exist).
pub fn list(program: &str, family: Family) -> Result<TableState, Error> {
    Ok(list_json(program, family)?.map(|l| table_state(&l)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_from_a_listing() {
        let listing = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "podnet", "handle": 1}},
            {"chain": {"family": "ip", "table": "podnet", "name": "services", "handle": 2}},
            {"chain": {"family": "ip", "table": "podnet", "name": "service-ABCDEFGH-ns/s/tcp/p", "handle": 3}},
            {"set": {"family": "ip", "name": "nodeport-ips", "table": "podnet", "type": "ipv4_addr"}},
            {"set": {"family": "ip", "name": "affinity-X-ns/s/tcp/p__10.0.0.1/80", "table": "podnet"}},
            {"map": {"family": "ip", "name": "service-ips", "table": "podnet", "map": "verdict"}},
            {"rule": {"family": "ip", "table": "podnet", "chain": "services", "expr": []}}
        ]});
        let state = table_state(&listing);
        assert_eq!(state.chains.len(), 2);
        assert!(state.chains.contains("service-ABCDEFGH-ns/s/tcp/p"));
        assert_eq!(state.sets.len(), 2);
        assert_eq!(state.maps.iter().collect::<Vec<_>>(), ["service-ips"]);
        assert_eq!(table_state(&serde_json::json!({})), TableState::default());
    }
}
