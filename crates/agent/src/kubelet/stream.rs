//! Kubernetes' streaming protocols over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
//! and the exec and attach sessions that speak them.
//!
//! Every binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the error
//! channel (one metav1.Status at the end: Success, or Failure with reason NonZeroExitCode and
//! the exit code as cause `ExitCode`), 4 terminal resizes; v5 adds 255 "close", whose payload
//! is the channel the client will not write again (stdin at its EOF).

use std::process::Stdio;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::query::StreamOptions;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// A streaming subprotocol podnet speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    V4,
    V5,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V4 => "v4.channel.k8s.io",
            Protocol::V5 => "v5.channel.k8s.io",
        }
    }

    /// The best protocol of a `Sec-WebSocket-Protocol` list (v5 over v4), if any.
    pub fn negotiate(offered: &str) -> Option<Protocol> {
        let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
        [Protocol::V5, Protocol::V4].into_iter().find(|p| offered.contains(&p.name()))
    }
}

/// A message carrying `data` on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// What a client's message means.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientFrame<'a> {
    Stdin(&'a [u8]),
    /// The client closed its stdin (v5).
    CloseStdin,
    Resize(&'a [u8]),
    /// Empty, or on a channel clients do not write.
    Ignored,
}

pub fn parse_client_frame(msg: &[u8]) -> ClientFrame<'_> {
    match msg {
        [STDIN, data @ ..] => ClientFrame::Stdin(data),
        [CLOSE, STDIN, ..] => ClientFrame::CloseStdin,
        [RESIZE, data @ ..] => ClientFrame::Resize(data),
        _ => ClientFrame::Ignored,
    }
}

/// The error channel's Status for a command that exited with `code`.
pub fn exit_status(code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The error channel's Status for a session that failed (e.g. the command could not be run).
pub fn failure_status(message: &str) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
        "details": {"causes": [{"message": message}]}, "code": 500})
}

/// The exit code of a finished process (`128 + signal` when killed).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Writes the frames sent to it, then closes the WebSocket once every sender is gone.
fn spawn_writer<S>(
    mut sink: futures::stream::SplitSink<WebSocketStream<S>, Message>,
) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let task = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if sink.send(Message::Binary(f.into())).await.is_err() {
                return;
            }
        }
        // A normal closure (1000): clients take a close without a code (1005) as an error.
        let normal = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    });
    (tx, task)
}

/// Sends what `source` produces on `channel` until its end.
async fn pump(mut source: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs `command` (already set to enter the pod) as an exec session: the client's stdin to the
/// process, its stdout and stderr to the client, its exit code on the error channel. Without a
/// terminal in podnet's runtime, `tty` only means stderr is not separate.
pub async fn run_exec<S>(ws: WebSocketStream<S>, command: std::process::Command, opts: StreamOptions)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut source) = ws.split();
    let (tx, writer) = spawn_writer(sink);
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut command = tokio::process::Command::from(command);
    command.stdin(piped(opts.stdin)).stdout(piped(opts.stdout)).stderr(piped(opts.stderr)).kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let status = failure_status(&format!("running {:?}: {e}", opts.command));
            let _ = tx.send(frame(ERROR, status.to_string().as_bytes())).await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let mut input = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            let Message::Binary(data) = msg else {
                if msg.is_close() {
                    break;
                }
                continue;
            };
            match parse_client_frame(&data) {
                ClientFrame::Stdin(d) if !d.is_empty() => {
                    if let Some(s) = stdin.as_mut() {
                        if s.write_all(d).await.is_err() || s.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                ClientFrame::CloseStdin => stdin = None,
                _ => {}
            }
        }
        // The client is gone (or closed): the process's stdin ends.
    });
    let out = child.stdout.take().map(|o| tokio::spawn(pump(o, STDOUT, tx.clone())));
    let err = child.stderr.take().map(|e| tokio::spawn(pump(e, STDERR, tx.clone())));
    let status = tokio::select! {
        s = child.wait() => s,
        // The client left before the command ended: stop it (kill_on_drop).
        _ = &mut input => return,
        _ = tx.closed() => return,
    };
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    let status = match status {
        Ok(s) => exit_status(exit_code(s)),
        Err(e) => failure_status(&format!("waiting for the command: {e}")),
    };
    let _ = tx.send(frame(ERROR, status.to_string().as_bytes())).await;
    drop(tx);
    input.abort();
    let _ = writer.await;
}

/// An attach session: `lines` (a container's output, ending when the container does) to the
/// client, then Success on the error channel. The client's stdin is read and dropped: podnet's
/// containers have none.
pub async fn run_attach<S>(ws: WebSocketStream<S>, mut lines: mpsc::Receiver<super::logs::Line>, opts: StreamOptions)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut source) = ws.split();
    let (tx, writer) = spawn_writer(sink);
    let input = tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            if msg.is_close() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    let channel = if line.stderr && !opts.tty { STDERR } else { STDOUT };
                    let wanted = if channel == STDERR { opts.stderr } else { opts.stdout };
                    if wanted && tx.send(frame(channel, &line.text)).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = tx.send(frame(ERROR, exit_status(0).to_string().as_bytes())).await;
                    break;
                }
            },
            _ = tx.closed() => break,
        }
    }
    drop(tx);
    input.abort();
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates() {
        assert_eq!(Protocol::negotiate("v4.channel.k8s.io, v5.channel.k8s.io"), Some(Protocol::V5));
        assert_eq!(Protocol::negotiate("v4.channel.k8s.io,channel.k8s.io"), Some(Protocol::V4));
        assert_eq!(Protocol::negotiate("SPDY/3.1"), None);
    }

    #[test]
    fn frames() {
        assert_eq!(frame(STDOUT, b"hi"), b"\x01hi");
        assert_eq!(parse_client_frame(b"\x00abc"), ClientFrame::Stdin(b"abc"));
        assert_eq!(parse_client_frame(&[CLOSE, STDIN]), ClientFrame::CloseStdin);
        assert_eq!(parse_client_frame(b"\x04{}"), ClientFrame::Resize(b"{}"));
        assert_eq!(parse_client_frame(b""), ClientFrame::Ignored);
        assert_eq!(parse_client_frame(b"\x01x"), ClientFrame::Ignored);
    }

    #[test]
    fn statuses() {
        assert_eq!(exit_status(0), json!({"metadata": {}, "status": "Success"}));
        let s = exit_status(3);
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"], json!([{"reason": "ExitCode", "message": "3"}]));
        assert_eq!(failure_status("boom")["status"], "Failure");
    }
}
