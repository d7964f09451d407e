//! Tests of the built-in servers, each started in-process on 127.0.0.1 and asked over a real
//! TCP connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;

type Env = HashMap<String, String>;

fn env_of(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl Running {
    async fn stop(mut self) -> Result<(), Error> {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("stops in time").expect("no panic")
    }
}

/// Starts built-in server `name` with `args` and `env` on 127.0.0.1 (an ephemeral port).
async fn start_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> Running {
    let env = env_of(env);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let plan = plan(name, &args, &|k| env.get(k).cloned()).expect("plans");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = tcp.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let handler = plan.handler.expect("a server");
    let task = tokio::spawn(server::serve(vec![Listener::plain(tcp)], handler, async move {
        let _ = rx.await;
    }));
    Running { addr, stop: Some(tx), task }
}

async fn start(name: &str, env: &[(&str, &str)]) -> Running {
    start_with(name, &[], env).await
}

#[derive(Debug)]
struct Resp {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status = parts.next().expect("status").parse().expect("numeric status");
    let reason = parts.next().unwrap_or("").to_string();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Resp { status, reason, headers, body: raw[split + 4..].to_vec() }
}

/// Sends one request (with `Connection: close`) and reads the whole response.
async fn request_on<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str("Host: lab.test\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.expect("sends");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.expect("answers in time").ok();
    parse(&raw)
}

async fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    request_on(&mut stream, method, target, headers).await
}

async fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, &[]).await
}

fn host() -> String {
    server::hostname()
}

#[tokio::test]
async fn nginx_serves_its_welcome_page() {
    let s = start("nginx", &[]).await;
    let r = get(s.addr, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), nginx::WELCOME);
    assert_eq!(r.header("server"), Some("nginx"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("content-length"), Some("615"));
    assert_eq!(r.header("etag"), Some("\"61cb2d26-267\""));
    assert_eq!(r.header("last-modified"), Some("Tue, 28 Dec 2021 15:28:38 GMT"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert!(r.header("date").is_some());
    assert_eq!(get(s.addr, "/index.html").await.text(), nginx::WELCOME);
    assert!(get(s.addr, "/50x.html").await.text().contains("<h1>An error occurred.</h1>"));

    let r = get(s.addr, "/nope").await;
    assert_eq!((r.status, r.text()), (404, nginx::error_page(http::StatusCode::NOT_FOUND)));
    assert_eq!(r.header("server"), Some("nginx"));
    assert!(r.text().contains("<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>"));

    let r = request(s.addr, "POST", "/", &[("Content-Length", "0")]).await;
    assert_eq!((r.status, r.reason.as_str()), (405, "Not Allowed"));
    let r = request(s.addr, "DELETE", "/", &[]).await;
    assert_eq!(r.status, 405);
    let r = request(s.addr, "HEAD", "/", &[]).await;
    assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("615"), 0));
    assert_eq!(get(s.addr, "/../etc/passwd").await.status, 400);
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn nginx_1_14_serves_the_older_page() {
    let s = start("nginx", &[(IMAGE_ENV, "nginx:1.14")]).await;
    let r = get(s.addr, "/").await;
    assert_eq!((r.status, r.text()), (200, nginx::WELCOME_OLD.to_string()));
    assert_eq!(r.header("content-length"), Some("612"));
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn nginx_serves_a_root_directory_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<p>mine</p>\n").expect("writes");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    std::fs::write(dir.path().join("sub/a.txt"), "a\n").expect("writes");
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    let root = dir.path().to_string_lossy().into_owned();
    let s = start_with("nginx", &["-g", "daemon off;", "--root", &root], &[]).await;
    let r = get(s.addr, "/").await;
    assert_eq!((r.status, r.text().as_str()), (200, "<p>mine</p>\n"));
    let r = get(s.addr, "/sub/a.txt").await;
    assert_eq!((r.status, r.text().as_str(), r.header("content-type")), (200, "a\n", Some("text/plain")));
    let r = get(s.addr, "/sub").await;
    assert_eq!((r.status, r.header("location")), (301, Some("http://lab.test/sub/")));
    assert_eq!(get(s.addr, "/empty/").await.status, 403);
    assert!(get(s.addr, "/50x.html").await.text().contains("An error occurred."));
    assert_eq!(get(s.addr, "/missing").await.status, 404);
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn go_myweb_says_hello_and_its_hostname() {
    let s = start("go-myweb", &[]).await;
    for target in ["/", "/anything"] {
        let r = get(s.addr, target).await;
        assert_eq!((r.status, r.text()), (200, format!("Hello World!\n{}\n", host())));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    s.stop().await.expect("stops");
    let s = start("go-myweb", &[("MESSAGE", "Customized Hello World")]).await;
    assert_eq!(get(s.addr, "/").await.text(), format!("Customized Hello World\n{}\n", host()));
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn p8000_and_p8080_name_their_port() {
    for (name, port) in [("p8000", 8000), ("p8080", 8080)] {
        let s = start(name, &[]).await;
        let r = get(s.addr, "/").await;
        assert_eq!((r.status, r.text()), (200, format!("containerPort : {port}\n")));
        assert_eq!(r.header("content-type"), None);
        assert_eq!(request(s.addr, "POST", "/x", &[("Content-Length", "0")]).await.status, 200);
        s.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn kubetm_app_answers_the_course_paths() {
    let s = start("app", &[(IMAGE_ENV, "kubetm/app:v2")]).await;
    assert_eq!(get(s.addr, "/hostname").await.text(), format!("Hostname : {}\n", host()));
    assert_eq!(get(s.addr, "/").await.text(), format!("Hostname : {}\n", host()));
    assert_eq!(get(s.addr, "/version").await.text(), "Version : v2\n");
    let r = get(s.addr, "/health").await;
    assert_eq!((r.status, r.text()), (200, format!("{} is Running\n", host())));
    assert_eq!(get(s.addr, "/status500").await.text(), "Status Code has Changed to 500\n");
    let r = get(s.addr, "/health").await;
    assert_eq!((r.status, r.text()), (500, format!("{} : Internal Server Error\n", host())));
    let r = get(s.addr, "/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("Cannot GET /nope"), "{}", r.text());
    s.stop().await.expect("stops");

    let s = start("init", &[]).await;
    assert_eq!(get(s.addr, "/version").await.text(), "Version : v1\n");
    assert_eq!(get(s.addr, "/hostname").await.text(), format!("Hostname : {}\n", host()));
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn multitool_shows_its_page() {
    let s = start("multitool", &[]).await;
    let r = get(s.addr, "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!(
            "WBITT Network MultiTool (with NGINX) - {} - 127.0.0.1 - HTTP: 80 , HTTPS: 443 . \
             (Formerly praqma/network-multitool)\n",
            host()
        )
    );
    assert_eq!(r.header("server"), Some("nginx"));
    assert_eq!(get(s.addr, "/x").await.status, 404);
    s.stop().await.expect("stops");
    let s = start("multitool", &[("HTTP_PORT", "1180"), ("HTTPS_PORT", "11443")]).await;
    assert!(get(s.addr, "/").await.text().contains("HTTP: 1180 , HTTPS: 11443 ."));
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn echo_answers_with_the_request() {
    let env = [("POD_NAME", "echo-1"), ("NAMESPACE", "apps"), ("SERVICE_NAME", "echo-svc"), ("INGRESS_NAME", "ing")];
    let s = start("echo", &env).await;
    let r = request(
        s.addr,
        "GET",
        "/foo//bar?x=1&y=2",
        &[("Host", "example.com"), ("user-agent", "curl/8"), ("x-multi", "a"), ("X-Multi", "b"), ("x-html", "<b>")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let text = r.text();
    assert!(text.starts_with("{\n \"path\": \"/foo//bar?x=1\\u0026y=2\",\n \"host\""), "{text}");
    assert!(text.contains("\"X-Html\": [\n   \"\\u003cb\\u003e\"\n  ]"), "{text}");
    let v = r.json();
    assert_eq!(v["path"], "/foo//bar?x=1&y=2");
    assert_eq!(v["headers"]["X-Html"], serde_json::json!(["<b>"]));
    assert_eq!(v["host"], "example.com");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["proto"], "HTTP/1.1");
    assert_eq!(v["headers"]["User-Agent"], serde_json::json!(["curl/8"]));
    assert_eq!(v["headers"]["X-Multi"], serde_json::json!(["a", "b"]));
    assert_eq!(v["headers"]["Connection"], serde_json::json!(["close"]));
    assert!(v["headers"].get("Host").is_none());
    assert_eq!(v["namespace"], "apps");
    assert_eq!(v["ingress"], "ing");
    assert_eq!(v["service"], "echo-svc");
    assert_eq!(v["pod"], "echo-1");
    assert_eq!(v["sni"], "");
    assert!(v.get("tls").is_none());
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["path", "host", "method", "proto", "headers", "namespace", "ingress", "service", "pod", "sni"]);

    let mut stream = TcpStream::connect(s.addr).await.expect("connects");
    stream
        .write_all(b"POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .await
        .expect("sends");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads");
    let r = parse(&raw);
    assert_eq!((r.status, r.json()["method"].as_str()), (200, Some("POST")));
    assert_eq!(r.json()["headers"]["Content-Length"], serde_json::json!(["5"]));

    let r = get(s.addr, "/health").await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert_eq!(get(s.addr, "/status/418").await.status, 418);
    assert_eq!(get(s.addr, "/status/503").await.status, 503);
    assert_eq!(get(s.addr, "/status/abc").await.status, 400);

    let r = request(s.addr, "GET", "/", &[("X-Echo-Set-Header", "X-Foo: bar, X-Foo: baz,X-Other:1")]).await;
    assert_eq!(r.header("x-foo"), Some("bar,baz"));
    assert_eq!(r.header("x-other"), Some("1"));

    let started = std::time::Instant::now();
    let r = get(s.addr, "/?delay=200ms").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let r = get(s.addr, "/?delay=abc").await;
    assert_eq!((r.status, r.json()["message"].as_str()), (500, Some("time: invalid duration \"abc\"")));
    s.stop().await.expect("stops");
}

#[tokio::test]
async fn echo_reports_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["echo.lab.test".to_string()]).expect("a certificate");
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, ck.cert.pem()).expect("writes");
    std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("writes");
    let env = env_of(&[
        ("TLS_SERVER_CERT", &cert_path.to_string_lossy()),
        ("TLS_SERVER_PRIVKEY", &key_path.to_string_lossy()),
        ("POD_NAME", "echo-tls"),
    ]);
    let plan = plan("echo", &[], &|k| env.get(k).cloned()).expect("plans");
    let (acceptor, specs) = plan.tls.expect("TLS planned");
    assert_eq!(specs, vec![ListenSpec::Port(8443)]);
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = tcp.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(
        vec![Listener { tcp, tls: Some(acceptor) }],
        plan.handler.expect("handler"),
        async move {
            let _ = rx.await;
        },
    ));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connects");
    let name = rustls::pki_types::ServerName::try_from("echo.lab.test").expect("a name");
    let mut tls = connector.connect(name, tcp).await.expect("handshakes");
    let r = request_on(&mut tls, "GET", "/secure", &[("Host", "echo.lab.test")]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["path"], "/secure");
    assert_eq!(v["pod"], "echo-tls");
    assert_eq!(v["tls"]["version"], "TLSv1.3");
    assert_eq!(v["tls"]["serverName"], "echo.lab.test");
    assert_eq!(v["tls"]["negotiatedProtocol"], "http/1.1");
    let suite = v["tls"]["cipherSuite"].as_str().expect("a suite");
    assert!(suite.starts_with("TLS_") && !suite.starts_with("TLS13_"), "{suite}");
    let keys: Vec<&str> = v.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(&keys[keys.len() - 2..], ["tls", "sni"]);

    let _ = tx.send(());
    task.await.expect("no panic").expect("stops");
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_stops_accepting() {
    let s = start("echo", &[]).await;
    let addr = s.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/?delay=500ms").await });
    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("sends");
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.expect("reads");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200 OK"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    s.stop().await.expect("stops cleanly");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    let r = in_flight.await.expect("no panic");
    assert_eq!(r.status, 200, "the request in flight finished");
    assert!(TcpStream::connect(addr).await.is_err(), "no longer accepting");
    // The idle connection was closed.
    let n =
        tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn run_until_listens_where_told_and_stops() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("addr").port()
    };
    let (tx, rx) = oneshot::channel::<()>();
    let args = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
    let task = tokio::spawn(async move {
        run_until("p8080", &args, async move {
            let _ = rx.await;
        })
        .await
    });
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut ok = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "listening");
    assert_eq!(get(addr, "/").await.text(), "containerPort : 8080\n");
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("in time").expect("no panic").expect("ok");
}

#[tokio::test]
async fn pause_waits_for_shutdown() {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_until("pause", &[], async move {
            let _ = rx.await;
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished());
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("in time").expect("no panic").expect("ok");
}

#[tokio::test]
async fn unknown_names_and_bad_arguments_are_errors() {
    let e = run_until("shell", &[], async {}).await.expect_err("not a built-in server");
    assert!(matches!(&e, Error::Unknown(n) if n == "shell"));
    assert!(e.to_string().contains("built-in servers: nginx, go-myweb"), "{e}");
    let e = run_until("nope", &[], async {}).await.expect_err("unknown");
    assert!(matches!(e, Error::Unknown(_)));
    let e = run_until("nginx", &["--listen".to_string()], async {}).await.expect_err("missing value");
    assert!(matches!(e, Error::Usage(_)), "{e}");
    let e = run_until("nginx", &["--listen=bogus".to_string()], async {}).await.expect_err("bad value");
    assert!(matches!(e, Error::Usage(_)), "{e}");
}

#[test]
fn plans_follow_arguments_and_environment() {
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let no_env = |_: &str| None;
    let p = plan("nginx", &args(&["-g", "daemon off;"]), &no_env).expect("plans");
    assert_eq!(p.listen, vec![ListenSpec::Port(80)]);
    assert_eq!(p.ignored, args(&["-g", "daemon off;"]));
    let p = plan("app", &args(&["--listen=:9000", "--listen", "127.0.0.1:9001"]), &no_env).expect("plans");
    assert_eq!(p.listen, vec![ListenSpec::Port(9000), ListenSpec::Addr("127.0.0.1:9001".parse().unwrap())]);
    assert!(p.ignored.is_empty());
    let p = plan("echo", &[], &no_env).expect("plans");
    assert_eq!(p.listen, vec![ListenSpec::Port(80), ListenSpec::Port(3000), ListenSpec::Port(8080)]);
    assert!(!p.all_required && p.tls.is_none());
    let env = env_of(&[("PORT", "3333")]);
    let p = plan("echo", &[], &|k| env.get(k).cloned()).expect("plans");
    assert_eq!((p.listen, p.all_required), (vec![ListenSpec::Port(3333)], true));
    let env = env_of(&[("PODNET_LISTEN", "127.0.0.1:1, :2")]);
    let p = plan("p8000", &[], &|k| env.get(k).cloned()).expect("plans");
    assert_eq!(p.listen, vec![ListenSpec::Addr("127.0.0.1:1".parse().unwrap()), ListenSpec::Port(2)]);
    let env = env_of(&[("HTTP_PORT", "x")]);
    assert!(matches!(plan("multitool", &[], &|k| env.get(k).cloned()), Err(Error::Usage(_))));
    let p = plan("pause", &args(&["whatever"]), &no_env).expect("plans");
    assert!(p.handler.is_none() && p.listen.is_empty());
    for (name, ports) in
        [("go-myweb", vec![8080]), ("p8000", vec![8000]), ("init", vec![8080]), ("multitool", vec![80])]
    {
        let p = plan(name, &[], &no_env).expect("plans");
        assert_eq!(p.listen, ports.into_iter().map(ListenSpec::Port).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn every_builtin_image_has_a_server() {
    for name in builtin_names() {
        let p = plan(name, &[], &|_| None).expect("plans");
        assert_eq!(p.handler.is_none(), name == "pause", "{name}");
    }
    assert_eq!(builtin_names(), ["nginx", "go-myweb", "p8000", "p8080", "app", "init", "echo", "multitool", "pause"]);
}

#[test]
fn the_readme_holds_the_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme.find("<!-- table:").expect("table start marker");
    let start = start + readme[start..].find('\n').expect("marker line") + 1;
    let end = readme.find("<!-- /table -->").expect("table end marker");
    let want = table_doc();
    if readme[start..end] != want {
        if std::env::var_os("PODNET_BLESS").is_some() {
            std::fs::write(path, format!("{}{}{}", &readme[..start], want, &readme[end..])).expect("writes");
        } else {
            panic!("README.md's table is stale: run `PODNET_BLESS=1 cargo test -p podnet-images` and commit it");
        }
    }
}

#[test]
fn errors_have_reasons() {
    let e = Error::NotInTable { reference: "foo/bar".into() };
    assert_eq!(e.reason(), Some("ErrImagePull"));
    assert_eq!(e.to_string(), not_in_table_message("foo/bar"));
    assert_eq!(Error::Usage("x".into()).reason(), None);
}
