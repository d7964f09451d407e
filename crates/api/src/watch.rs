//! Watch: a stream of newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR)
//! for one resource, filtered by namespace and selectors, starting from a resourceVersion or
//! from the current state.
//!
//! A watch starts either from the present (`resourceVersion` unset or "0", or
//! `sendInitialEvents=true`: the current objects are sent as ADDED first, and with
//! `sendInitialEvents` a BOOKMARK annotated `k8s.io/initial-events-end` closes them) or after a
//! given revision, replayed from the store's history. A revision that has been compacted away
//! ends the watch with an ERROR event carrying a 410 Expired Status. A watcher that falls behind
//! the broadcast catches up from the history. Selectors apply to the object before and after
//! each change, so an object that stops matching is sent as DELETED, as kube-apiserver does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::handlers::ObjectFilter;
use crate::request::{Query, Representation, Target};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::{Event, EventKind};
use crate::table::{self, IncludeObject};
use crate::Api;

/// How long a watch lasts when the client does not say (kube-apiserver picks 30–60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often a BOOKMARK is sent to watchers that asked for them.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);

/// Everything one watch needs, moved into its task.
struct Watch {
    resource: &'static ResourceInfo,
    namespace: Option<String>,
    filter: ObjectFilter,
    table: Option<IncludeObject>,
    bookmarks: bool,
    /// The revision of the last event sent.
    sent: u64,
    tx: mpsc::Sender<Bytes>,
}

impl Api {
    /// Ends every open watch (the server is shutting down); watches started later end at once.
    pub fn end_watches(&self) {
        self.stopping.send_replace(true);
    }

    /// Starts a watch; the returned receiver yields the response body's chunks.
    pub fn watch(self: &Arc<Self>, t: &Target, q: &Query, repr: Representation) -> ApiResult<mpsc::Receiver<Bytes>> {
        let filter = ObjectFilter::from_query(t.resource, q)?;
        let table = match repr {
            Representation::Table => Some(
                IncludeObject::parse(q.get("includeObject").unwrap_or(""))
                    .ok_or_else(|| ApiError::bad_request("invalid includeObject"))?,
            ),
            Representation::Object => None,
        };
        let timeout = q
            .number("timeoutSeconds")?
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(DEFAULT_TIMEOUT);
        let rv = q.get("resourceVersion").unwrap_or("");
        let send_initial = match q.get("sendInitialEvents") {
            Some("true") => true,
            Some("false") | None => false,
            Some(v) => {
                return Err(ApiError::bad_request(format!("invalid sendInitialEvents {v:?}: must be true or false")))
            }
        };
        if send_initial && !q.flag("allowWatchBookmarks") {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "ListOptions",
                "",
                vec![crate::status::Cause::forbidden(
                    "allowWatchBookmarks",
                    "allowWatchBookmarks must be set to true when sendInitialEvents is set",
                )],
            ));
        }
        let from_revision = if send_initial || rv.is_empty() || rv == "0" {
            None
        } else {
            Some(
                rv.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}: not a number")))?,
            )
        };

        let (tx, rx) = mpsc::channel(64);
        let mut w = Watch {
            resource: t.resource,
            namespace: t.namespace.clone(),
            filter,
            table,
            bookmarks: q.flag("allowWatchBookmarks"),
            sent: 0,
            tx,
        };
        let api = self.clone();
        match from_revision {
            None => {
                let (objects, rev, events) = self.store.snapshot_and_subscribe(t.resource, t.namespace.as_deref());
                tokio::spawn(async move {
                    for obj in objects.iter().filter(|o| w.filter.matches(o)) {
                        if !w.send(EventKind::Added.as_str(), obj).await {
                            return;
                        }
                    }
                    w.sent = rev;
                    if send_initial && !w.bookmark(true).await {
                        return;
                    }
                    w.stream(&api, Vec::new(), events, timeout).await;
                });
            }
            Some(rev) => {
                let start = self.store.watch_from(rev);
                tokio::spawn(async move {
                    w.sent = rev;
                    match start {
                        Ok((missed, events)) => w.stream(&api, missed, events, timeout).await,
                        Err(e) => w.error(&e).await,
                    }
                });
            }
        }
        Ok(rx)
    }
}

impl Watch {
    /// Sends the replayed events, then live ones, until the timeout or the client leaves.
    async fn stream(
        &mut self,
        api: &Api,
        missed: Vec<Arc<Event>>,
        mut events: broadcast::Receiver<Arc<Event>>,
        timeout: Duration,
    ) {
        for e in missed {
            if !self.deliver(&e).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut stopping = api.stopping.subscribe();
        let mut bookmark = tokio::time::interval(BOOKMARK_INTERVAL);
        bookmark.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => return,
                _ = self.tx.closed() => return,
                _ = bookmark.tick(), if self.bookmarks => {
                    if !self.bookmark(false).await { return; }
                }
                received = events.recv() => match received {
                    Ok(e) => {
                        if !self.deliver(&e).await { return; }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind the broadcast: catch up from the history.
                        match api.store.events_since(self.sent) {
                            Ok(missed) => {
                                for e in missed {
                                    if !self.deliver(&e).await { return; }
                                }
                            }
                            Err(err) => { self.error(&err).await; return; }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }

    /// Sends one store event if it concerns this watch; false when the client is gone.
    async fn deliver(&mut self, e: &Event) -> bool {
        if e.revision <= self.sent {
            return true;
        }
        self.sent = e.revision;
        if e.resource != self.resource.storage_name() {
            return true;
        }
        if let Some(ns) = &self.namespace {
            if &e.namespace != ns {
                return true;
            }
        }
        let now_matches = self.filter.matches(&e.object);
        let was_matching = e.previous.as_ref().is_some_and(|p| self.filter.matches(p));
        let kind = match (e.kind, was_matching, now_matches) {
            (EventKind::Deleted, true, _) => EventKind::Deleted,
            (EventKind::Deleted, false, _) => return true,
            (_, false, true) => EventKind::Added,
            (_, true, true) => EventKind::Modified,
            (_, true, false) => EventKind::Deleted,
            (_, false, false) => return true,
        };
        self.send(kind.as_str(), &e.object).await
    }

    async fn send(&self, kind: &str, obj: &Value) -> bool {
        let object = match self.table {
            Some(include) => {
                let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
                table::table(self.resource.kind, &[obj], rv, include, Utc::now())
            }
            None => return self.send_line(kind, obj).await,
        };
        self.send_line(kind, &object).await
    }

    async fn send_line(&self, kind: &str, object: &Value) -> bool {
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        if serde_json::to_writer(&mut line, object).is_err() {
            return false;
        }
        line.extend_from_slice(b"}\n");
        self.tx.send(Bytes::from(line)).await.is_ok()
    }

    /// A BOOKMARK at the last revision sent; `initial_end` marks the end of the initial events.
    async fn bookmark(&self, initial_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": self.sent.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": meta});
        self.send_line("BOOKMARK", &obj).await
    }

    async fn error(&self, e: &ApiError) {
        self.send_line("ERROR", &e.to_status()).await;
    }
}
