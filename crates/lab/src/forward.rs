//! Loopback port forwards: how the host reaches a lab without any route into it. A listener on
//! `127.0.0.1` in the host's namespace; each accepted connection is matched by a connection
//! opened from inside a lab namespace (the socket is created by a thread that entered it), and
//! bytes are copied both ways until either side closes.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use podnet_netlink::Netns;

/// Serves `listener` forever, forwarding each connection to `target` as seen from `netns`.
pub fn serve(listener: TcpListener, netns: Netns, target: SocketAddr) {
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let ns = match netns.try_clone() {
            Ok(ns) => ns,
            Err(e) => {
                tracing::warn!(error = %e, "port forward: cannot use the namespace");
                continue;
            }
        };
        thread::spawn(move || {
            if let Err(e) = forward(client, &ns, target) {
                tracing::debug!(error = %e, %target, "port forward: connection failed");
            }
        });
    }
}

/// Connects to `target` from inside `netns`.
pub fn connect_in(netns: &Netns, target: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    podnet_netlink::run_in(netns, move || TcpStream::connect_timeout(&target, timeout))
        .map_err(|e| io::Error::other(e.to_string()))?
}

fn forward(client: TcpStream, netns: &Netns, target: SocketAddr) -> io::Result<()> {
    let upstream = connect_in(netns, target, Duration::from_secs(5))?;
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (c2, u2) = (client.try_clone()?, upstream.try_clone()?);
    let up = thread::spawn(move || pipe(c2, u2));
    pipe(upstream, client);
    let _ = up.join();
    Ok(())
}

/// Copies `from` to `to` until EOF, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
