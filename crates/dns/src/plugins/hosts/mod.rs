//! `hosts`: answers A, AAAA and PTR queries from a hosts file and inline entries (inline first),
//! re-reading the file when it changes. A name it does not know goes to the next plugin with
//! `fallthrough`, else NXDOMAIN (NODATA when the name has records of another type).

mod table;
#[cfg(test)]
mod tests;

pub use table::{reverse_to_ip, HostsTable};

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::metrics::{self, Metrics};
use super::response;
use crate::corefile::{names, HostsOptions};
use crate::{BoxFuture, Handler, Next, Request};

#[derive(Default)]
struct Tables {
    inline: HostsTable,
    file: HostsTable,
    /// Modification time and size of the file last read.
    stamp: Option<(SystemTime, u64)>,
}

/// The `hosts` plugin.
pub struct HostsPlugin {
    options: HostsOptions,
    tables: Arc<RwLock<Tables>>,
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Re-reads the file if it changed since `tables` was filled.
fn refresh(path: &PathBuf, tables: &RwLock<Tables>, metrics: &Metrics) {
    let now = stamp(path);
    if now.is_some() && tables.read().expect("hosts lock").stamp == now {
        return;
    }
    let file = match std::fs::read_to_string(path) {
        Ok(text) => HostsTable::parse(&text),
        Err(e) => {
            if tables.read().expect("hosts lock").stamp.is_some() || now.is_none() {
                tracing::warn!(target: "podnet_dns::hosts", "cannot read {}: {e}", path.display());
            }
            HostsTable::default()
        }
    };
    let mut t = tables.write().expect("hosts lock");
    t.file = file;
    t.stamp = now;
    metrics.set(&metrics::HOSTS_ENTRIES, &[], (t.inline.len() + t.file.len()) as f64);
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    metrics.set(&metrics::HOSTS_RELOAD_TIMESTAMP_SECONDS, &[], secs);
}

impl HostsPlugin {
    /// Reads the file (a missing one is logged and left empty) and, inside a Tokio runtime,
    /// re-reads it every `reload` while the plugin lives.
    pub fn new(options: HostsOptions, metrics: Arc<Metrics>) -> Self {
        let mut inline = HostsTable::default();
        for (ip, names) in &options.inline {
            inline.add(*ip, names.iter().cloned());
        }
        let tables = Arc::new(RwLock::new(Tables { inline, ..Tables::default() }));
        refresh(&options.file, &tables, &metrics);
        if !options.reload.is_zero() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let weak = Arc::downgrade(&tables);
                let (path, every, metrics) = (options.file.clone(), options.reload, metrics.clone());
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(every.max(Duration::from_millis(10))).await;
                        let Some(tables) = weak.upgrade() else { return };
                        refresh(&path, &tables, &metrics);
                    }
                });
            }
        }
        HostsPlugin { options, tables }
    }

    fn answers(&self, qname: &str, qtype: RecordType, owner: &Name) -> (Vec<Record>, bool) {
        let t = self.tables.read().expect("hosts lock");
        let ttl = self.options.ttl;
        let addresses = |v6: bool| {
            let mut ips = t.inline.lookup(qname, v6);
            for ip in t.file.lookup(qname, v6) {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            ips
        };
        let records: Vec<Record> = match qtype {
            RecordType::A => addresses(false)
                .into_iter()
                .filter_map(|ip| match ip {
                    std::net::IpAddr::V4(v4) => Some(Record::from_rdata(owner.clone(), ttl, RData::A(A(v4)))),
                    _ => None,
                })
                .collect(),
            RecordType::AAAA => addresses(true)
                .into_iter()
                .filter_map(|ip| match ip {
                    std::net::IpAddr::V6(v6) => Some(Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(v6)))),
                    _ => None,
                })
                .collect(),
            RecordType::PTR if !self.options.no_reverse => match reverse_to_ip(qname) {
                Some(ip) => {
                    let mut ns: Vec<String> = t.inline.names_of(ip).to_vec();
                    for n in t.file.names_of(ip) {
                        if !ns.contains(n) {
                            ns.push(n.clone());
                        }
                    }
                    ns.iter()
                        .filter_map(|n| Name::from_ascii(n).ok())
                        .map(|n| Record::from_rdata(owner.clone(), ttl, RData::PTR(PTR(n))))
                        .collect()
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        let known = t.inline.has_name(qname) || t.file.has_name(qname);
        (records, known)
    }
}

impl Handler for HostsPlugin {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn handle<'a>(&'a self, req: &'a Request, next: Next<'a>) -> BoxFuture<'a, Message> {
        Box::pin(async move {
            let (Some(q), Some(qname)) = (req.message.query(), response::qname(req)) else {
                return next.run(req).await;
            };
            if names::matching_zone(&qname, &self.options.zones).is_none() {
                return next.run(req).await;
            }
            let (records, known) = self.answers(&qname, q.query_type(), q.name());
            if records.is_empty() {
                if self.options.fallthrough.as_ref().is_some_and(|f| f.through(&qname)) {
                    return next.run(req).await;
                }
                let code = if known { ResponseCode::NoError } else { ResponseCode::NXDomain };
                let mut m = req.response(code);
                m.set_authoritative(true);
                return m;
            }
            let mut m = req.response(ResponseCode::NoError);
            m.set_authoritative(true);
            m.add_answers(records);
            m
        })
    }
}
