//! Idle keep-alive client connections, kept per worker thread as nginx keeps them: each worker
//! has one list of its idle connections and one reaper that closes those past their keep-alive
//! timeout, and the server's stop wakes the whole list at once (nginx's
//! `ngx_close_idle_connections`). A connection waiting for its next request then holds only its
//! place in the list, instead of a timer (112 bytes) and a stop waiter (96) of its own: with
//! 10,000 idle connections that is most of what each one costs.
//!
//! The list is thread-local: [`IdleWait`] must be polled on the thread whose [`reap`] runs it,
//! which the worker threads ([`super::workers`], one single-threaded runtime each) ensure.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::stop::Stop;

/// The reaper's tick for a keep-alive timeout: a timeout ends at most this late.
fn tick_for(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// One worker's idle connections.
#[derive(Default)]
struct Idle {
    waiting: Slab<Waiting>,
    /// The shortest tick any wait asked for.
    tick: Option<Duration>,
    /// The reaper, woken when it has to start ticking or tick faster.
    reaper: Option<Waker>,
}

/// A connection in the list.
struct Waiting {
    waker: Waker,
    deadline: Instant,
    /// Past its deadline: the connection closes when next polled.
    expired: bool,
}

/// Waits for a client's next request on `socket`: `true` once it is readable, `false` when the
/// keep-alive timeout passes first or the server stops. Holds no buffer; while it is in the
/// list it counts in `parked`. Every idle connection holds one, so it is kept to 48 bytes; its
/// timeout counts from its first wait.
pub struct IdleWait<'a> {
    socket: &'a TcpStream,
    stop: &'a Stop,
    parked: &'a AtomicU64,
    /// The keep-alive timeout, counted from when the wait joins the list.
    timeout: Duration,
    /// The place in this thread's list ([`NOT_LISTED`] until the wait has had to wait).
    key: u32,
}

/// The key of a wait not in the list.
const NOT_LISTED: u32 = u32::MAX;

impl<'a> IdleWait<'a> {
    pub fn new(socket: &'a TcpStream, stop: &'a Stop, parked: &'a AtomicU64, timeout: Duration) -> Self {
        IdleWait { socket, stop, parked, timeout, key: NOT_LISTED }
    }

    fn leave(&mut self) {
        if self.key != NOT_LISTED {
            IDLE.with(|idle| idle.borrow_mut().waiting.remove(self.key as usize));
            self.key = NOT_LISTED;
            self.parked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Future for IdleWait<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        // Readiness is polled on the socket's own waker slot: no waiter of its own.
        if let Poll::Ready(ready) = self.socket.poll_read_ready(cx) {
            self.leave();
            return Poll::Ready(ready.is_ok());
        }
        if self.stop.is_stopped() {
            self.leave();
            return Poll::Ready(false);
        }
        let this = &mut *self;
        let ended = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            match this.key {
                // The clock is read once per wait, and only by one that has to wait.
                NOT_LISTED => {
                    let deadline = Instant::now() + this.timeout;
                    let waiting = Waiting { waker: cx.waker().clone(), deadline, expired: false };
                    let key = idle.waiting.insert(waiting);
                    // More than 4 billion idle connections on one thread cannot be.
                    this.key = u32::try_from(key).expect("idle connections fit a u32");
                    this.parked.fetch_add(1, Ordering::Relaxed);
                    let tick = tick_for(this.timeout);
                    if idle.tick.is_none_or(|t| tick < t) {
                        idle.tick = Some(tick);
                        if let Some(reaper) = &idle.reaper {
                            reaper.wake_by_ref();
                        }
                    }
                    false
                }
                key => {
                    let waiting = &mut idle.waiting[key as usize];
                    if !waiting.expired {
                        waiting.waker.clone_from(cx.waker());
                    }
                    waiting.expired
                }
            }
        });
        if ended {
            this.leave();
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for IdleWait<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

/// The reaper of this thread's idle connections: each tick, wakes those past their deadline
/// (they close); sleeps while none wait. Runs as long as its worker.
pub async fn reap() {
    let mut sleep = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // The tick the sleep was armed with.
    let mut armed = None;
    std::future::poll_fn(|cx| loop {
        let tick = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            if idle.reaper.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                idle.reaper = Some(cx.waker().clone());
            }
            if idle.waiting.is_empty() {
                idle.tick = None;
            }
            idle.tick
        });
        let Some(tick) = tick else {
            armed = None;
            return Poll::Pending;
        };
        if armed != Some(tick) {
            sleep.as_mut().reset(Instant::now() + tick);
            armed = Some(tick);
        }
        std::task::ready!(sleep.as_mut().poll(cx));
        armed = None;
        let now = Instant::now();
        IDLE.with(|idle| {
            for (_, waiting) in idle.borrow_mut().waiting.iter_mut() {
                if !waiting.expired && waiting.deadline <= now {
                    waiting.expired = true;
                    waiting.waker.wake_by_ref();
                }
            }
        });
    })
    .await
}

/// Wakes every idle connection of this thread, for the server's stop (set before): they see it
/// and close.
pub fn wake_all() {
    IDLE.with(|idle| {
        for (_, waiting) in idle.borrow().waiting.iter() {
            waiting.waker.wake_by_ref();
        }
    });
}

/// How many connections of this thread wait.
#[cfg(test)]
fn waiting() -> usize {
    IDLE.with(|idle| idle.borrow().waiting.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let server = listener.accept().await.unwrap().0;
        // A new socket counts as readable until a read finds nothing (as after a request).
        let nothing = server.try_read(&mut [0; 8]).unwrap_err();
        assert_eq!(nothing.kind(), std::io::ErrorKind::WouldBlock);
        (server, client)
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_client_sends_or_the_timeout_passes_or_the_server_stops() {
        tokio::spawn(reap());
        let stop = Stop::default();
        let parked = AtomicU64::new(0);
        // The client sends: readable.
        let (server, mut client) = pair().await;
        let wait = IdleWait::new(&server, &stop, &parked, Duration::from_secs(30));
        let send = async {
            tokio::task::yield_now().await;
            assert_eq!(waiting(), 1, "the wait is in the list");
            client.write_all(b"GET").await.unwrap();
        };
        let (woke, ()) = tokio::join!(wait, send);
        assert!(woke);
        assert_eq!(waiting(), 0, "and out of it");

        // Nothing comes: the keep-alive timeout ends it (the reaper's tick is 1/8 of it).
        let (server, _client) = pair().await;
        let started = Instant::now();
        assert!(!IdleWait::new(&server, &stop, &parked, Duration::from_millis(200)).await);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(200), "not before the timeout ({took:?})");
        assert_eq!(waiting(), 0);

        // The server stops: every wait ends.
        let (a, _ca) = pair().await;
        let (b, _cb) = pair().await;
        let stopping = async {
            tokio::task::yield_now().await;
            assert_eq!(waiting(), 2);
            stop.stop();
            wake_all();
        };
        let long = Duration::from_secs(30);
        let (woke_a, woke_b, ()) =
            tokio::join!(IdleWait::new(&a, &stop, &parked, long), IdleWait::new(&b, &stop, &parked, long), stopping);
        assert!(!woke_a && !woke_b);
        assert_eq!(waiting(), 0);
        // And a wait begun after the stop ends at once.
        assert!(!IdleWait::new(&a, &stop, &parked, long).await);
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_list() {
        let (server, _client) = pair().await;
        let stop = Stop::default();
        let parked = AtomicU64::new(0);
        let mut wait = Box::pin(IdleWait::new(&server, &stop, &parked, Duration::from_secs(30)));
        assert!(futures::poll!(wait.as_mut()).is_pending());
        assert_eq!(waiting(), 1);
        drop(wait);
        assert_eq!(waiting(), 0);
    }
}
