//! Storage: every object in memory for reads, every write in SQLite for durability, and a
//! history of recent changes for watches.
//!
//! Like kine under k3s, there is one global revision: each write gets the next number, which is
//! the object's `resourceVersion` and the position of its event in the history. Writes are
//! serialised behind one lock and each is committed in its own SQLite transaction (WAL mode)
//! before it is acknowledged, so an acknowledged write survives `kill -9` of the server.
//!
//! Watches subscribe to a broadcast channel and replay missed events from the in-memory history;
//! the history (in memory and in the `log` table) is compacted to a bounded length, and a watch
//! from a revision older than the compacted one gets `410 Expired`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::ResourceInfo;
use crate::status::{ApiError, ApiResult};

/// Errors opening or writing the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("starting the checkpoint thread: {0}")]
    Thread(std::io::Error),
    #[error("stored object {key} is not valid JSON: {source}")]
    Corrupt { key: String, source: serde_json::Error },
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// The kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
    fn code(self) -> i64 {
        match self {
            EventKind::Added => 0,
            EventKind::Modified => 1,
            EventKind::Deleted => 2,
        }
    }
    fn from_code(c: i64) -> Self {
        match c {
            0 => EventKind::Added,
            1 => EventKind::Modified,
            _ => EventKind::Deleted,
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct Event {
    pub revision: u64,
    pub kind: EventKind,
    /// The resource's storage name (`pods`, `deployments.apps`).
    pub resource: String,
    pub namespace: String,
    pub name: String,
    /// The object after the change; for deletes, its last state with the delete's revision.
    pub object: Arc<Value>,
    /// The object before the change (absent for creates).
    pub previous: Option<Arc<Value>>,
}

/// Where an object lives.
#[derive(Debug, Clone)]
pub struct ObjectKey {
    pub resource: &'static ResourceInfo,
    /// Empty for cluster-scoped resources.
    pub namespace: String,
    pub name: String,
}

/// What a mutation decided to do with the object.
pub enum Change {
    /// Store this object (create or replace).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Leave it as it is (an update that changed nothing keeps its resourceVersion).
    Unchanged,
}

/// The outcome of a mutation.
pub struct Committed {
    /// The object as stored (or, for a delete, as it was last); `None` if nothing existed.
    pub object: Option<Arc<Value>>,
    pub event: Option<EventKind>,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

/// One page of a list (see [`Store::list_page`]).
pub struct Page {
    pub items: Vec<Arc<Value>>,
    /// The revision the page was read at.
    pub revision: u64,
    /// Whether objects after this page match.
    pub more: bool,
    pub remaining: Option<usize>,
}

/// The start of a watch: the events it missed, and the receiver of those to come.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

struct Inner {
    db: Connection,
    revision: u64,
    /// Watches from a revision older than this get 410 Expired.
    compacted: u64,
    objects: HashMap<String, Objects>,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
}

/// The object store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    _checkpointer: Checkpointer,
}

/// A thread with its own connection that checkpoints the WAL twice a second (PASSIVE: it never
/// blocks the writer), stopped when the store is dropped.
struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let conn =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("podnet-checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(500));
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    revision INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (resource, namespace, name));
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY, kind INTEGER NOT NULL,
    resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    value BLOB NOT NULL, previous BLOB);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

impl Store {
    /// Opens (creating if needed) the database at `path`, loading every object and the retained
    /// history into memory. `history_limit` bounds the number of events kept for watches.
    pub fn open(path: &Path, history_limit: usize) -> Result<Store, StoreError> {
        let db =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        // WAL with synchronous=NORMAL: a commit is in the WAL file (the OS page cache) before
        // it returns, which survives the death of the process.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints copy the WAL into the database file with fsyncs: done inside a commit they
        // stall that write and every write behind the lock, so a background thread does them.
        db.pragma_update(None, "wal_autocheckpoint", 0)?;
        db.execute_batch(SCHEMA)?;

        let meta = |name: &str| -> Result<u64, rusqlite::Error> {
            db.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get::<_, i64>(0))
                .optional()
                .map(|v| v.unwrap_or(0) as u64)
        };
        let mut revision = meta("revision")?;
        let compacted = meta("compacted")?;

        let mut objects: HashMap<String, Objects> = HashMap::new();
        {
            let mut stmt = db.prepare("SELECT resource, namespace, name, revision, value FROM objects")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let (resource, namespace, name): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
                let rev: i64 = row.get(3)?;
                revision = revision.max(rev as u64);
                let bytes: Vec<u8> = row.get(4)?;
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|source| StoreError::Corrupt { key: format!("{resource}/{namespace}/{name}"), source })?;
                objects.entry(resource).or_default().insert((namespace, name), Arc::new(value));
            }
        }

        let mut history = VecDeque::new();
        {
            let mut stmt = db.prepare(
                "SELECT revision, kind, resource, namespace, name, value, previous FROM log ORDER BY revision",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let rev: i64 = row.get(0)?;
                let key = || format!("log revision {rev}");
                let value: Vec<u8> = row.get(5)?;
                let previous: Option<Vec<u8>> = row.get(6)?;
                let object =
                    serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt { key: key(), source })?;
                let previous = match previous {
                    Some(p) => Some(Arc::new(
                        serde_json::from_slice(&p).map_err(|source| StoreError::Corrupt { key: key(), source })?,
                    )),
                    None => None,
                };
                revision = revision.max(rev as u64);
                history.push_back(Arc::new(Event {
                    revision: rev as u64,
                    kind: EventKind::from_code(row.get(1)?),
                    resource: row.get(2)?,
                    namespace: row.get(3)?,
                    name: row.get(4)?,
                    object: Arc::new(object),
                    previous,
                }));
            }
        }
        let (events, _) = broadcast::channel(16_384);
        let checkpointer = Checkpointer::start(path)?;
        Ok(Store {
            inner: Mutex::new(Inner { db, revision, compacted, objects, history, history_limit: history_limit.max(1) }),
            events,
            _checkpointer: checkpointer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write: SQLite rolls back an
        // unfinished transaction and memory is only touched after the commit.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest revision.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// The oldest revision a watch can start from.
    pub fn compacted_revision(&self) -> u64 {
        self.lock().compacted
    }

    pub fn get(&self, key: &ObjectKey) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .objects
            .get(&key.resource.storage_name())
            .and_then(|m| m.get(&(key.namespace.clone(), key.name.clone())))
            .cloned()
    }

    /// Every object of a resource (in one namespace, or all), ordered by namespace and name,
    /// with the revision the snapshot was taken at.
    pub fn list(&self, resource: &ResourceInfo, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        (Self::snapshot(&inner, resource, namespace), inner.revision)
    }

    fn snapshot(inner: &Inner, resource: &ResourceInfo, namespace: Option<&str>) -> Vec<Arc<Value>> {
        let Some(map) = inner.objects.get(&resource.storage_name()) else {
            return Vec::new();
        };
        match namespace {
            None => map.values().cloned().collect(),
            Some(ns) => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// One page of a list: the objects after `after` (a `(namespace, name)` key, in the store's
    /// order) that `keep` accepts, at most `limit` of them. Seeks in the index, so a page costs
    /// its size, not the size of the collection. `remaining` (how many more objects there are) is
    /// only counted when `count_remaining` is set (lists without selectors, as upstream).
    pub fn list_page(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        after: Option<&(String, String)>,
        limit: Option<usize>,
        count_remaining: bool,
        keep: impl Fn(&Value) -> bool,
    ) -> Page {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let inner = self.lock();
        let mut page = Page { items: Vec::new(), revision: inner.revision, more: false, remaining: None };
        let Some(map) = inner.objects.get(&resource.storage_name()) else {
            return page;
        };
        let start = match (after, namespace) {
            (Some(key), _) => Excluded(key.clone()),
            (None, Some(ns)) => Included((ns.to_string(), String::new())),
            (None, None) => Unbounded,
        };
        let mut entries = map.range((start, Unbounded)).take_while(|((n, _), _)| namespace.is_none_or(|ns| n == ns));
        let limit = limit.unwrap_or(usize::MAX);
        for (_, obj) in entries.by_ref() {
            if !keep(obj) {
                continue;
            }
            if page.items.len() == limit {
                page.more = true;
                if count_remaining {
                    page.remaining = Some(1 + entries.count());
                }
                break;
            }
            page.items.push(obj.clone());
        }
        page
    }

    /// Counts the objects of a resource in a namespace (used to refuse deleting busy things and
    /// to finish namespace deletion).
    pub fn count(&self, resource: &ResourceInfo, namespace: &str) -> usize {
        let inner = self.lock();
        inner
            .objects
            .get(&resource.storage_name())
            .map(|m| m.range((namespace.to_string(), String::new())..).take_while(|((n, _), _)| n == namespace).count())
            .unwrap_or(0)
    }

    /// Atomically reads the object at `key`, lets `decide` choose a change, and commits it.
    /// `decide` runs under the store lock, so no other write can interleave: it is where
    /// preconditions (resourceVersion, existence) are checked. With `dry_run` nothing is stored.
    pub fn mutate<F>(&self, key: &ObjectKey, dry_run: bool, decide: F) -> ApiResult<Committed>
    where
        F: FnOnce(Option<&Arc<Value>>) -> ApiResult<Change>,
    {
        let mut inner = self.lock();
        let resource = key.resource.storage_name();
        let map_key = (key.namespace.clone(), key.name.clone());
        let current = inner.objects.get(&resource).and_then(|m| m.get(&map_key)).cloned();
        let change = decide(current.as_ref())?;
        let next = inner.revision + 1;
        let (kind, object) = match change {
            Change::Unchanged => return Ok(Committed { object: current, event: None }),
            Change::Put(mut value) => {
                set_resource_version(&mut value, next);
                let kind = if current.is_some() { EventKind::Modified } else { EventKind::Added };
                (kind, value)
            }
            Change::Delete => {
                let Some(cur) = current.as_ref() else {
                    return Ok(Committed { object: None, event: None });
                };
                let mut last = (**cur).clone();
                set_resource_version(&mut last, next);
                (EventKind::Deleted, last)
            }
        };
        if dry_run {
            return Ok(Committed { object: Some(Arc::new(object)), event: Some(kind) });
        }
        let object = Arc::new(object);
        let event = Arc::new(Event {
            revision: next,
            kind,
            resource: resource.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            object: object.clone(),
            previous: current.clone(),
        });
        inner.persist(&event).map_err(ApiError::from)?;
        inner.revision = next;
        let map = inner.objects.entry(resource).or_default();
        if kind == EventKind::Deleted {
            map.remove(&map_key);
        } else {
            map.insert(map_key, object.clone());
        }
        inner.history.push_back(event.clone());
        inner.compact_if_needed();
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
        Ok(Committed { object: Some(object), event: Some(kind) })
    }

    /// Starts a watch after `revision`: returns the events already in the history that are newer,
    /// and a receiver for those still to come. `410 Expired` if that part of the history is gone.
    pub fn watch_from(&self, revision: u64) -> ApiResult<WatchStart> {
        let inner = self.lock();
        if revision < inner.compacted {
            return Err(ApiError::Expired {
                message: format!("too old resource version: {revision} ({})", inner.compacted + 1),
            });
        }
        let rx = self.events.subscribe();
        let start = inner.history.partition_point(|e| e.revision <= revision);
        let missed = inner.history.range(start..).cloned().collect();
        Ok((missed, rx))
    }

    /// A consistent snapshot of a resource together with a receiver for every later event: the
    /// start of a watch that first sends the current state as ADDED events.
    pub fn snapshot_and_subscribe(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        let rx = self.events.subscribe();
        (Self::snapshot(&inner, resource, namespace), inner.revision, rx)
    }

    /// Events with revision > `after`, for a watcher that fell behind the broadcast channel.
    pub fn events_since(&self, after: u64) -> ApiResult<Vec<Arc<Event>>> {
        let inner = self.lock();
        if after < inner.compacted {
            return Err(ApiError::Expired {
                message: format!("too old resource version: {after} ({})", inner.compacted + 1),
            });
        }
        let start = inner.history.partition_point(|e| e.revision <= after);
        Ok(inner.history.range(start..).cloned().collect())
    }
}

impl Inner {
    fn persist(&mut self, event: &Event) -> Result<(), StoreError> {
        let value = serde_json::to_vec(&*event.object).expect("JSON values serialize");
        let previous = event.previous.as_ref().map(|p| serde_json::to_vec(&**p).expect("JSON values serialize"));
        let rev = event.revision as i64;
        let tx = self.db.transaction()?;
        match event.kind {
            EventKind::Deleted => {
                tx.prepare_cached("DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3")?
                    .execute(params![event.resource, event.namespace, event.name])?;
            }
            _ => {
                tx.prepare_cached(
                    "INSERT INTO objects (resource, namespace, name, revision, value) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (resource, namespace, name) DO UPDATE SET revision = excluded.revision, value = excluded.value",
                )?
                .execute(params![event.resource, event.namespace, event.name, rev, value])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO log (revision, kind, resource, namespace, name, value, previous) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![rev, event.kind.code(), event.resource, event.namespace, event.name, value, previous])?;
        tx.prepare_cached("INSERT INTO meta (name, value) VALUES ('revision', ?1) ON CONFLICT (name) DO UPDATE SET value = excluded.value")?
            .execute([rev])?;
        tx.commit()?;
        Ok(())
    }

    /// Keeps the history within its limit, dropping the oldest events in small batches (at most
    /// 64 rows): a large DELETE inside the write lock stalls every write and watch behind it.
    fn compact_if_needed(&mut self) {
        let slack = (self.history_limit / 10).clamp(1, 64);
        if self.history.len() <= self.history_limit + slack {
            return;
        }
        let drop = self.history.len() - self.history_limit;
        let upto = self.history[drop - 1].revision;
        let result = (|| -> Result<(), rusqlite::Error> {
            let tx = self.db.transaction()?;
            tx.execute("DELETE FROM log WHERE revision <= ?1", [upto as i64])?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted', ?1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [upto as i64],
            )?;
            tx.commit()
        })();
        match result {
            Ok(()) => {
                self.history.drain(..drop);
                self.compacted = upto;
            }
            Err(e) => tracing::warn!(error = %e, "compacting the history failed; will retry"),
        }
    }
}

fn set_resource_version(value: &mut Value, revision: u64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(revision.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_kind;
    use serde_json::json;

    fn key(name: &str) -> ObjectKey {
        ObjectKey { resource: by_kind("", "ConfigMap").unwrap(), namespace: "default".into(), name: name.into() }
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn writes_survive_reopen_and_history_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let store = Store::open(&path, 10).unwrap();
            for i in 0..30 {
                let name = format!("c{i}");
                store.mutate(&key(&name), false, |_| Ok(Change::Put(cm(&name)))).unwrap();
            }
            store.mutate(&key("c0"), false, |_| Ok(Change::Delete)).unwrap();
            assert_eq!(store.revision(), 31);
            assert!(store.compacted_revision() >= 20);
            assert!(matches!(store.watch_from(1), Err(ApiError::Expired { .. })));
        }
        let store = Store::open(&path, 10).unwrap();
        assert_eq!(store.revision(), 31);
        let (objs, rev) = store.list(by_kind("", "ConfigMap").unwrap(), Some("default"));
        assert_eq!((objs.len(), rev), (29, 31));
        assert_eq!(store.get(&key("c5")).unwrap()["metadata"]["resourceVersion"], "6");
        let (missed, _) = store.watch_from(29).unwrap();
        assert_eq!(missed.iter().map(|e| e.revision).collect::<Vec<_>>(), vec![30, 31]);
        assert_eq!(missed[1].kind, EventKind::Deleted);
    }

    #[test]
    fn pages_follow_the_store_order_across_namespaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), 100).unwrap();
        let res = by_kind("", "ConfigMap").unwrap();
        // "pg-b" sorts after "pg" as a namespace, but "pg-b/x" sorts before "pg/x" as a string.
        for ns in ["pg", "pg-b"] {
            for name in ["a", "b", "c"] {
                let key = ObjectKey { resource: res, namespace: ns.into(), name: name.into() };
                let obj = json!({"metadata": {"name": name, "namespace": ns}});
                store.mutate(&key, false, |_| Ok(Change::Put(obj))).unwrap();
            }
        }
        let mut seen = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store.list_page(res, None, after.as_ref(), Some(2), true, |_| true);
            for o in &page.items {
                seen.push(format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ));
            }
            if !page.more {
                break;
            }
            assert_eq!(page.remaining, Some(6 - seen.len()));
            let last = page.items.last().unwrap();
            after = Some((
                last["metadata"]["namespace"].as_str().unwrap().into(),
                last["metadata"]["name"].as_str().unwrap().into(),
            ));
        }
        assert_eq!(seen, ["pg/a", "pg/b", "pg/c", "pg-b/a", "pg-b/b", "pg-b/c"]);
        let only_b = store.list_page(res, Some("pg-b"), None, Some(10), false, |o| o["metadata"]["name"] != "a");
        assert_eq!((only_b.items.len(), only_b.more), (2, false));
    }

    #[test]
    fn unchanged_and_dry_run_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db"), 100).unwrap();
        store.mutate(&key("a"), true, |_| Ok(Change::Put(cm("a")))).unwrap();
        assert!(store.get(&key("a")).is_none());
        store.mutate(&key("a"), false, |_| Ok(Change::Put(cm("a")))).unwrap();
        let c = store.mutate(&key("a"), false, |_| Ok(Change::Unchanged)).unwrap();
        assert!(c.event.is_none());
        assert_eq!(store.revision(), 1);
    }
}
