//! The snapshot the plugin answers from, shared with whatever keeps it current: readers take
//! the current `Arc<Cluster>` (a clone of an `Arc` under a read lock, never waiting on a
//! rebuild), the watcher swaps in a new one. `synced` turns true once the first full lists of
//! every watched kind are in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::cluster::Cluster;

/// The current snapshot and whether the API has been synced.
#[derive(Debug, Default)]
pub struct SharedCluster {
    current: RwLock<Arc<Cluster>>,
    synced: AtomicBool,
    changed: tokio::sync::Notify,
}

impl SharedCluster {
    /// An empty, unsynced snapshot (everything in the zones is SERVFAIL until synced).
    pub fn new() -> Arc<SharedCluster> {
        Arc::new(SharedCluster::default())
    }

    /// A synced snapshot that never changes (tests, benchmarks).
    pub fn fixed(cluster: Cluster) -> Arc<SharedCluster> {
        let s = SharedCluster::default();
        s.replace(cluster);
        s.mark_synced();
        Arc::new(s)
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Cluster> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swaps in a new snapshot.
    pub fn replace(&self, cluster: Cluster) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cluster);
        self.changed.notify_waiters();
    }

    /// Whether the first full lists from the API are in.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Records that the first full lists are in.
    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Waits until synced.
    pub async fn wait_synced(&self) {
        loop {
            let n = self.changed.notified();
            if self.synced() {
                return;
            }
            n.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn swaps_and_syncs() {
        let s = SharedCluster::new();
        assert!(!s.synced());
        let waiter = {
            let s = s.clone();
            tokio::spawn(async move { s.wait_synced().await })
        };
        s.replace(Cluster::new([], [], [], ["default".to_string()], 3));
        assert_eq!(s.current().serial(), 3);
        s.mark_synced();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert!(SharedCluster::fixed(Cluster::default()).synced());
    }
}
