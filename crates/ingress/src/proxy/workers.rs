//! The data plane's threads: one single-threaded tokio runtime per core, each running the client
//! connections the accept loop hands it from their first byte to their last, as nginx's worker
//! processes do. A proxied request then never waits on another thread: no work stealing between
//! runtime workers, no wake-up of a parked thread to run a task another one made ready (perf of
//! the shared multi-threaded runtime showed the scheduler's wake-ups and context switches as
//! the largest cost). Each worker keeps its own backend connections: the upstream pools are keyed
//! by [`worker_index`], so a connection is only ever driven by the thread whose runtime owns it.
//! Each worker's own task is the reaper of its idle connections ([`super::idle`]).

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The worker the calling thread is (1, 2, …), or 0 outside the workers.
pub fn worker_index() -> usize {
    WORKER.with(Cell::get)
}

/// Running worker threads. Dropped, they stop: each runtime is dropped, cancelling the
/// connections still on it (shutdown drains them first).
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Dropping a sender ends its worker.
    _stops: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").field("threads", &self.handles.len()).finish()
    }
}

impl Workers {
    /// Starts `n` workers (0: one per core this process may use).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let n = if n == 0 { std::thread::available_parallelism().map_or(1, |p| p.get()) } else { n };
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for i in 1..=n {
            let (stop, stopped) = oneshot::channel::<()>();
            let (ready, handle) = std::sync::mpsc::channel();
            std::thread::Builder::new().name(format!("ingress-{i}")).spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                WORKER.with(|w| w.set(i));
                let _ = ready.send(Ok(rt.handle().clone()));
                // The worker's own task: the reaper of its idle connections, until it stops.
                rt.block_on(async {
                    tokio::select! {
                        _ = stopped => {}
                        _ = super::idle::reap() => {}
                    }
                });
            })?;
            let handle = handle.recv().map_err(|_| std::io::Error::other("an ingress worker thread died"))??;
            handles.push(handle);
            stops.push(stop);
        }
        Ok(Workers { handles, next: AtomicUsize::new(0), _stops: stops })
    }

    /// Runs `task` on the next worker, in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }

    /// Wakes every worker's idle connections, for the server's stop (set before): they close.
    pub fn close_idle(&self) {
        for handle in &self.handles {
            handle.spawn(async { super::idle::wake_all() });
        }
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_workers_in_turn_and_stop_with_them() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = oneshot::channel();
            workers.spawn(async move {
                let _ = tx.send((worker_index(), std::thread::current().name().map(str::to_string)));
            });
            seen.push(rx.await.unwrap());
        }
        let names: Vec<_> = seen.iter().map(|(i, n)| (*i, n.clone().unwrap())).collect();
        assert_eq!(
            names,
            [(1, "ingress-1".into()), (2, "ingress-2".into()), (1, "ingress-1".into()), (2, "ingress-2".into())]
        );
        assert_eq!(worker_index(), 0, "not a worker");
        // A task still running when the workers stop is dropped with its runtime.
        let (tx, rx) = oneshot::channel::<()>();
        workers.spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert!(rx.await.is_err(), "the pending task was dropped");
    }
}
