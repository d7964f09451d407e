//! A work queue with client-go's semantics, for the garbage collector's workers: an item is
//! queued at most once, never handed to two workers at the same time (added again while being
//! processed, it comes back when done), and retried after failures with exponential backoff.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    /// Added while being processed.
    dirty: HashSet<String>,
    /// Consecutive failures, for the backoff.
    failures: HashMap<String, u32>,
    /// Retries waiting for their time.
    delayed: BTreeMap<Instant, Vec<String>>,
}

/// The queue; share it in an `Arc`.
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Notify,
    delayed: Notify,
    base: Duration,
    max: Duration,
}

impl WorkQueue {
    /// A queue whose retries wait `base`, doubling at each failure up to `max`.
    pub fn new(base: Duration, max: Duration) -> WorkQueue {
        WorkQueue { state: Mutex::new(State::default()), ready: Notify::new(), delayed: Notify::new(), base, max }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` unless it is already queued.
    pub fn add(&self, item: String) {
        let mut s = self.lock();
        if s.processing.contains(&item) {
            s.dirty.insert(item);
            return;
        }
        if s.queued.insert(item.clone()) {
            s.ready.push_back(item);
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Queues `item` after its backoff (which grows with each call until [`forget`](Self::forget)).
    pub fn add_after_failure(&self, item: String) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(item.clone()).or_insert(0);
            let delay = backoff(self.base, self.max, *n);
            *n = n.saturating_add(1);
            let at = Instant::now() + delay;
            s.delayed.entry(at).or_default().push(item);
            delay
        };
        tracing::trace!(?delay, "requeued");
        self.delayed.notify_one();
    }

    /// Forgets the failures of `item`: its next retry waits the base delay.
    pub fn forget(&self, item: &str) {
        self.lock().failures.remove(item);
    }

    /// Waits for an item; the caller must call [`done`](Self::done) with it afterwards.
    pub async fn get(&self) -> String {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if let Some(item) = s.ready.pop_front() {
                    s.queued.remove(&item);
                    s.processing.insert(item.clone());
                    if !s.ready.is_empty() {
                        // Let another worker pick up the rest.
                        self.ready.notify_one();
                    }
                    return item;
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed; queued again if it was added meanwhile.
    pub fn done(&self, item: &str) {
        let again = {
            let mut s = self.lock();
            s.processing.remove(item);
            s.dirty.remove(item)
        };
        if again {
            self.add(item.to_string());
        }
    }

    /// Moves the retries whose time has come to the queue, forever: run it in a task.
    pub async fn pump_retries(&self) {
        loop {
            let notified = self.delayed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let (due, next) = {
                let mut s = self.lock();
                let later = s.delayed.split_off(&(now + Duration::from_nanos(1)));
                let due: Vec<String> = std::mem::replace(&mut s.delayed, later).into_values().flatten().collect();
                (due, s.delayed.keys().next().copied())
            };
            for item in due {
                self.add(item);
            }
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Items queued or waiting for a retry (not those being processed).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.ready.len() + s.delayed.values().map(Vec::len).sum::<usize>()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `base * 2^failures`, at most `max`.
pub fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let (b, m) = (Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(backoff(b, m, 0), b);
        assert_eq!(backoff(b, m, 3), Duration::from_millis(80));
        assert_eq!(backoff(b, m, 20), m);
        assert_eq!(backoff(b, m, 200), m);
    }

    #[tokio::test]
    async fn items_are_deduplicated_and_never_processed_twice_at_once() {
        let q = WorkQueue::new(Duration::from_millis(1), Duration::from_millis(10));
        q.add("a".into());
        q.add("a".into());
        q.add("b".into());
        assert_eq!(q.len(), 2);
        let a = q.get().await;
        assert_eq!(a, "a");
        // Added while processing: not handed out until done.
        q.add("a".into());
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
        q.done("b");
        q.done("a");
        assert_eq!(q.get().await, "a");
        q.done("a");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn failures_come_back_after_their_backoff() {
        let q = Arc::new(WorkQueue::new(Duration::from_millis(20), Duration::from_secs(1)));
        let pump = tokio::spawn({
            let q = q.clone();
            async move { q.pump_retries().await }
        });
        let start = Instant::now();
        q.add_after_failure("x".into());
        q.add_after_failure("y".into());
        assert_eq!(q.len(), 2);
        let first = q.get().await;
        let second = q.get().await;
        assert!(start.elapsed() >= Duration::from_millis(20));
        let mut got = vec![first.clone(), second.clone()];
        got.sort();
        assert_eq!(got, ["x", "y"]);
        q.done(&first);
        q.done(&second);
        // The second failure of x waits twice as long.
        let t = Instant::now();
        q.add_after_failure("x".into());
        assert_eq!(q.get().await, "x");
        assert!(t.elapsed() >= Duration::from_millis(40));
        q.done("x");
        // Forgetting resets the count.
        assert_eq!(q.lock().failures.get("x"), Some(&2));
        q.forget("x");
        assert_eq!(q.lock().failures.get("x"), None);
        pump.abort();
    }

    #[tokio::test]
    async fn workers_share_the_items() {
        let q = Arc::new(WorkQueue::new(Duration::from_millis(1), Duration::from_millis(10)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let (q, seen) = (q.clone(), seen.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let item = q.get().await;
                    seen.lock().unwrap().push(item.clone());
                    tokio::task::yield_now().await;
                    q.done(&item);
                }
            }));
        }
        for i in 0..100 {
            q.add(format!("i{i}"));
        }
        for _ in 0..1000 {
            if seen.lock().unwrap().len() == 100 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut s = seen.lock().unwrap().clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 100);
        tasks.iter().for_each(|t| t.abort());
    }
}
