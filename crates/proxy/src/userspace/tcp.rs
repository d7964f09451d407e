//! TCP: a frontend accepts connections and relays each one to a backend. Per connection, as
//! kube-proxy's userspace proxy did: the balancer chooses a backend, the proxy connects to it
//! (on failure it forgets the client's affinity and tries another backend, with kube-proxy's
//! growing dial timeouts), then copies both ways until both sides are done. A connection the
//! proxy cannot serve — no backend, a source outside loadBalancerSourceRanges, every dial
//! failed — is reset at once (`SO_LINGER` 0, then close); a backend's reset is passed on the
//! same way.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::balancer::Lease;
use super::{Binding, SharedBinding};

/// The timeouts of the successive dial attempts of one connection (kube-proxy's
/// `EndpointDialTimeouts`).
pub const DIAL_TIMEOUTS: [Duration; 4] =
    [Duration::from_millis(250), Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)];

/// How long accepting pauses after an error (out of file descriptors…).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `stop`; each connection runs on `tracker` until it
/// ends or `shutdown`.
pub async fn serve(
    listener: TcpListener,
    binding: SharedBinding,
    stop: CancellationToken,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    let binding = super::current(&binding);
                    tracker.spawn(connection(stream, client, binding, shutdown.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "userspace proxy: accept");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Closes a connection with a reset.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connection(mut client: TcpStream, peer: SocketAddr, binding: Arc<Binding>, shutdown: CancellationToken) {
    let client_ip = peer.ip().to_canonical();
    if !binding.target.allows(client_ip) {
        return reset(client);
    }
    // The address the client connected to (the frontend's, or the node's for a wildcard one).
    let service = client.local_addr().map(|a| a.ip().to_canonical()).unwrap_or(client_ip);
    let Some((mut backend, lease)) = dial(&binding, client_ip, service).await else {
        tracing::debug!(service = %binding.target.service, client = %peer, "userspace proxy: no backend");
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if copied.is_err() {
                let _ = client.set_zero_linger();
                let _ = backend.set_zero_linger();
            }
        }
        _ = shutdown.cancelled() => {
            let _ = client.set_zero_linger();
            let _ = backend.set_zero_linger();
        }
    }
    drop(lease);
}

/// Connects to a backend chosen by the balancer, trying others when one fails; once every
/// backend failed, the remaining attempts may choose any again.
async fn dial(binding: &Arc<Binding>, client: IpAddr, service: IpAddr) -> Option<(TcpStream, Lease)> {
    let balancer = &binding.balancer;
    let scope = binding.target.scope;
    let mut failed: Vec<SocketAddr> = Vec::new();
    for timeout in DIAL_TIMEOUTS {
        let lease = match balancer.pick(scope, client, service, &failed) {
            Some(lease) => lease,
            None if !failed.is_empty() => {
                failed.clear();
                balancer.pick(scope, client, service, &failed)?
            }
            None => return None,
        };
        match tokio::time::timeout(timeout, TcpStream::connect(lease.addr)).await {
            Ok(Ok(stream)) => return Some((stream, lease)),
            Ok(Err(e)) => tracing::debug!(backend = %lease.addr, error = %e, "userspace proxy: dial"),
            Err(_) => tracing::debug!(backend = %lease.addr, ?timeout, "userspace proxy: dial timed out"),
        }
        balancer.forget(client);
        failed.push(lease.addr);
    }
    None
}
