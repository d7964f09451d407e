//! The server's stop signal as connections see it: a flag to check between requests, and a wait
//! for connections busy with something long (HTTP/2, upgraded connections). Idle HTTP/1
//! connections are not waiters here: their worker wakes its idle list ([`super::idle`]).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Set once, when the server stops.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Stops: wakes every waiter, and every later wait returns at once.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Returns once the server stops.
    pub async fn stopped(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a stop between the two is not missed.
        notified.as_mut().enable();
        if !self.is_stopped() {
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_before_and_after_the_stop_return() {
        let stop = Arc::new(Stop::default());
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move { stop.stopped().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(!stop.is_stopped());
        let early = tokio::time::timeout(Duration::from_millis(20), stop.stopped()).await;
        assert!(early.is_err(), "no stop yet");
        stop.stop();
        for w in waiting {
            tokio::time::timeout(Duration::from_secs(5), w).await.expect("woken").unwrap();
        }
        assert!(stop.is_stopped());
        tokio::time::timeout(Duration::from_secs(5), stop.stopped()).await.expect("returns at once");
    }
}
