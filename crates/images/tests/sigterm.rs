//! A built-in server stops gracefully on SIGTERM: `run` returns Ok (the process would exit 0).
//! Its own test binary, so that the signal reaches no other test.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_server_gracefully() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("addr").port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let args = vec!["--listen".to_string(), addr.to_string()];
    let server = tokio::spawn(async move { podnet_images::run("echo", &args).await });
    let mut up = false;
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "the server listens");

    // A request in flight when the signal arrives still gets its answer.
    let in_flight = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /?delay=400ms HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.expect("sends");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("reads");
        String::from_utf8_lossy(&raw).into_owned()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("runs kill");
    assert!(status.success());
    let result = tokio::time::timeout(Duration::from_secs(10), server).await.expect("stops in time");
    result.expect("no panic").expect("exits cleanly");
    let answer = in_flight.await.expect("no panic");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(TcpStream::connect(addr).await.is_err(), "no longer listening");
}
