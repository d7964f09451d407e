//! Tests of the Corefile parser and options with kubeadm's default Corefile and error cases.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

pub(crate) use super::KUBEADM_COREFILE as KUBEADM;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Corefile, CorefileError> {
    Corefile::parse_with(text, "Corefile", &no_env)
}

fn configure_err(text: &str) -> String {
    parse(text).unwrap().servers[0].configure().unwrap_err().to_string()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn kubeadm_default_corefile_parses() {
    let cf = parse(KUBEADM).unwrap();
    assert_eq!(cf.servers.len(), 1);
    let block = &cf.servers[0];
    assert_eq!(block.zones, ["."]);
    assert_eq!(block.port, 53);
    let names: Vec<&str> = block.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance"]
    );
    let k8s = block.plugin("kubernetes").unwrap();
    assert_eq!(k8s.line, 7);
    assert_eq!(k8s.args, ["cluster.local", "in-addr.arpa", "ip6.arpa"]);
    assert_eq!(k8s.block[1].name, "fallthrough");
    assert_eq!(k8s.block[1].line, 9);
    assert_eq!(block.plugin("health").unwrap().block[0].args, ["5s"]);
}

#[test]
fn kubeadm_default_corefile_configures_in_plugin_cfg_order() {
    let cf = parse(KUBEADM).unwrap();
    let plugins = cf.servers[0].configure().unwrap();
    let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        ["reload", "ready", "health", "prometheus", "errors", "loadbalance", "cache", "kubernetes", "loop", "forward"]
    );
    for p in &plugins {
        match &p.config {
            PluginConfig::Health(h) => {
                assert_eq!(h.addr, addr("0.0.0.0:8080"));
                assert_eq!(h.lameduck, Duration::from_secs(5));
            }
            PluginConfig::Ready(r) => assert_eq!(r.addr, addr("0.0.0.0:8181")),
            PluginConfig::Prometheus(m) => assert_eq!(m.addr, addr("0.0.0.0:9153")),
            PluginConfig::Kubernetes(k) => {
                assert_eq!(k.zones, ["cluster.local.", "in-addr.arpa.", "ip6.arpa."]);
                assert_eq!(k.pods, PodsMode::Insecure);
                assert_eq!(k.ttl, 30);
                let ft = k.fallthrough.as_ref().unwrap();
                assert_eq!(ft.zones, ["in-addr.arpa.", "ip6.arpa."]);
                assert!(!k.endpoint_pod_names && !k.noendpoints && k.namespaces.is_empty());
            }
            PluginConfig::Forward(f) => {
                assert_eq!(f.from, ["."]);
                assert_eq!(f.to, [UpstreamSpec::ResolvConf("/etc/resolv.conf".into())]);
                assert_eq!(f.max_concurrent, 1000);
                assert_eq!(f.policy, Policy::Random);
                assert_eq!(f.max_fails, 2);
            }
            PluginConfig::Cache(c) => {
                assert_eq!(c.zones, ["."]);
                assert_eq!(c.success.max_ttl, Duration::from_secs(30));
                assert_eq!(c.denial.max_ttl, Duration::from_secs(30));
                assert_eq!(c.success.capacity, 9984);
                assert_eq!(c.servfail, Duration::from_secs(5));
            }
            PluginConfig::Reload(r) => {
                assert_eq!(r.interval, Duration::from_secs(30));
                assert_eq!(r.jitter, Duration::from_secs(15));
            }
            _ => {}
        }
    }
    assert_eq!(cf.reload_options(), Some(ReloadOptions::default()));
}

#[test]
fn several_blocks_ports_and_reverse_zones() {
    let cf = parse(
        "cluster.local:1053 10.0.0.0/23:1053 {\n  kubernetes\n}\n\nexample.org example.net:5300 {\n  forward . 8.8.8.8\n}\n",
    )
    .unwrap();
    assert_eq!(cf.servers.len(), 3);
    assert_eq!(cf.servers[0].zones, ["cluster.local.", "0.0.10.in-addr.arpa.", "1.0.10.in-addr.arpa."]);
    assert_eq!(cf.servers[0].port, 1053);
    assert_eq!((cf.servers[1].zones.clone(), cf.servers[1].port), (vec!["example.org.".to_string()], 53));
    assert_eq!((cf.servers[2].zones.clone(), cf.servers[2].port), (vec!["example.net.".to_string()], 5300));
    // kubernetes with no zones takes the block's.
    let k = &cf.servers[0].configure().unwrap()[0];
    let PluginConfig::Kubernetes(k) = &k.config else { panic!() };
    assert_eq!(k.zones, cf.servers[0].zones);
}

#[test]
fn dns_scheme_comma_keys_and_one_line_blocks() {
    let cf = parse("dns://.:1053, example.org:1053 { health { lameduck 1s }\nlog }").unwrap();
    let s = &cf.servers[0];
    assert_eq!(s.zones, [".", "example.org."]);
    assert_eq!(s.port, 1053);
    assert_eq!(s.plugins.len(), 2);
    assert_eq!(s.plugins[0].block[0].name, "lameduck");
    assert_eq!(s.plugins[1].name, "log");
}

#[test]
fn braceless_single_block() {
    let cf = parse(".:1053\nerrors\nlog\n").unwrap();
    assert_eq!(cf.servers[0].port, 1053);
    assert_eq!(cf.servers[0].plugins.len(), 2);
}

#[test]
fn snippets_and_import() {
    let text = "(common) {\n  errors\n  log\n}\n(more) {\n  import common\n  cache 10\n}\n.:53 {\n  import more\n  forward . 1.1.1.1\n}\n";
    let cf = parse(text).unwrap();
    let names: Vec<&str> = cf.servers[0].plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["errors", "log", "cache", "forward"]);
    assert_eq!(cf.servers[0].plugins[0].line, 2);
    let err = parse(".:53 {\n  import nope\n}").unwrap_err();
    assert_eq!(err.to_string(), "Corefile:2: import: no snippet named \"nope\"");
    let err = parse("(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}").unwrap_err();
    assert!(matches!(err.kind, ErrorKind::ImportCycle(_)), "{err}");
}

#[test]
fn environment_variables() {
    let env = |name: &str| match name {
        "PORT" => Some("1053".to_string()),
        "UP" => Some("9.9.9.9".to_string()),
        _ => None,
    };
    let cf = Corefile::parse_with(".:{$PORT} {\n forward . {$UP}\n}", "Corefile", &env).unwrap();
    assert_eq!(cf.servers[0].port, 1053);
    assert_eq!(cf.servers[0].plugins[0].args, [".", "9.9.9.9"]);
}

#[test]
fn syntax_errors_name_the_line() {
    let cases = [
        (".:53 {\n  errors\n", "Corefile:1: unclosed '{'"),
        (".:53 {\n}\n}\n", "Corefile:3: unexpected '}'"),
        (".:53 {\n  log \"x\n}\n", "Corefile:2: unterminated quoted string"),
        ("tls://.:853 {\n}\n", "Corefile:1: bad server address \"tls://.:853\": scheme tls:// is not supported"),
        (".:53 {\n}\n.:53 {\n}\n", "Corefile:3: zone . on port 53 is defined twice"),
        (".:53 {\n}\nexample.org\nlog\n", "Corefile:4: expected '{' after the server block's keys"),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err().to_string(), want, "{text}");
    }
}

#[test]
fn plugin_errors_name_the_line() {
    let cases = [
        (".:53 {\n  errors\n  bogus\n}", "Corefile:3: unknown plugin \"bogus\""),
        (".:53 {\n  etcd\n}", "Corefile:2: plugin \"etcd\" is not supported by podnet"),
        (".:53 {\n cache\n cache\n}", "Corefile:3: cache: plugin used more than once in this server block"),
        (
            ".:53 {\n  errors\n  forward . 8.8.8.8 {\n    max_concurrent 10\n    policy random\n\n    foo bar\n  }\n}",
            "Corefile:7: forward: unknown option \"foo\"",
        ),
        (".:53 {\n forward . 1.1.1.1 {\n policy fastest\n }\n}", "Corefile:3: forward: unknown policy \"fastest\""),
        (".:53 {\n forward .\n}", "Corefile:2: forward: needs FROM and at least one TO"),
        (
            ".:53 {\n forward . 1.1.1.1 {\n force_tcp\n prefer_udp\n }\n}",
            "Corefile:2: forward: both force_tcp and prefer_udp specified",
        ),
        (".:53 {\n forward . tls://1.1.1.1\n}", "Corefile:2: forward: upstream scheme tls:// is not supported"),
        (".:53 {\n health {\n lameduck soon\n }\n}", "Corefile:3: health: bad duration \"soon\""),
        (".:53 {\n health localhost\n}", "Corefile:2: health: address \"localhost\" has no port"),
        (".:53 {\n cache 0\n}", "Corefile:2: cache: cache TTL can not be zero or negative"),
        (".:53 {\n cache {\n  success 0\n }\n}", "Corefile:3: cache: capacity must be positive"),
        (
            ".:53 {\n cache {\n  prefetch 2 1m 200%\n }\n}",
            "Corefile:3: cache: prefetch percentage must be in range [0, 100]",
        ),
        (".:53 {\n kubernetes {\n  ttl 4000\n }\n}", "Corefile:3: kubernetes: ttl must be in range [0, 3600]: 4000"),
        (".:53 {\n kubernetes {\n  pods maybe\n }\n}", "Corefile:3: kubernetes: unknown pods mode \"maybe\""),
        (".:53 {\n kubernetes {\n  upstream\n }\n}", "Corefile:3: kubernetes: unknown option \"upstream\""),
        (".:53 {\n hosts {\n  bogus 1\n }\n}", "Corefile:3: hosts: unknown option \"bogus\""),
        (".:53 {\n loop now\n}", "Corefile:2: loop: too many arguments to \"loop\""),
        (".:53 {\n reload 1s\n}", "Corefile:2: reload: interval value must be greater or equal to 2s"),
        (".:53 {\n loadbalance weighted\n}", "Corefile:2: loadbalance: unknown policy \"weighted\""),
        (".:53 {\n errors {\n consolidate 5m x\n }\n}", "Corefile:3: errors: unknown option \"consolidate\""),
        (".:53 {\n log {\n class sometimes\n }\n}", "Corefile:3: log: unknown class \"sometimes\""),
    ];
    for (text, want) in cases {
        assert_eq!(configure_err(text), want, "{text}");
    }
}

#[test]
fn full_options() {
    let text = r#".:53 {
    forward example.org 10.0.0.1 10.0.0.2:5353 dns://[fd00::1]:53 {
        except internal.example.org
        force_tcp
        expire 20s
        max_fails 3
        policy sequential
        health_check 1s no_rec domain health.example.org
        next NXDOMAIN SERVFAIL
    }
    cache 300 example.org {
        success 100 60 10
        denial 50 20
        prefetch 3 30s 20%
        serve_stale 10m verify
        servfail 0
        disable denial sub.example.org
        keepttl
    }
    hosts /tmp/hosts example.org {
        10.1.1.1 a.example.org b.example.org
        ttl 60
        no_reverse
        reload 0
        fallthrough
    }
    log example.org "{remote} {name}" {
        class denial error
    }
    reload 10s 2s
}"#;
    let plugins = parse(text).unwrap().servers[0].configure().unwrap();
    let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
    assert_eq!(names, ["reload", "log", "cache", "hosts", "forward"]);
    for p in plugins {
        match p.config {
            PluginConfig::Forward(f) => {
                assert_eq!(f.from, ["example.org."]);
                assert_eq!(
                    f.to,
                    [
                        UpstreamSpec::Address(addr("10.0.0.1:53")),
                        UpstreamSpec::Address(addr("10.0.0.2:5353")),
                        UpstreamSpec::Address(addr("[fd00::1]:53")),
                    ]
                );
                assert_eq!(f.except, ["internal.example.org."]);
                assert!(f.force_tcp);
                assert_eq!(f.expire, Duration::from_secs(20));
                assert_eq!(f.max_fails, 3);
                assert_eq!(f.policy, Policy::Sequential);
                assert_eq!(f.health_check, Duration::from_secs(1));
                assert!(f.health_check_no_rec);
                assert_eq!(f.health_check_domain, "health.example.org.");
                assert_eq!(f.next.len(), 2);
            }
            PluginConfig::Cache(c) => {
                assert_eq!(c.zones, ["example.org."]);
                assert_eq!(c.success.capacity, 100);
                assert_eq!(c.success.max_ttl, Duration::from_secs(60));
                assert_eq!(c.success.min_ttl, Duration::from_secs(10));
                assert_eq!(c.denial.capacity, 50);
                assert_eq!(c.denial.max_ttl, Duration::from_secs(20));
                let p = c.prefetch.unwrap();
                assert_eq!((p.amount, p.duration, p.percentage), (3, Duration::from_secs(30), 20));
                let s = c.serve_stale.unwrap();
                assert_eq!(s.duration, Duration::from_secs(600));
                assert_eq!(s.refresh, RefreshMode::Verify);
                assert_eq!(c.servfail, Duration::ZERO);
                assert_eq!(c.denial.disabled, Some(vec!["sub.example.org.".to_string()]));
                assert!(c.keepttl);
            }
            PluginConfig::Hosts(h) => {
                assert_eq!(h.file, std::path::PathBuf::from("/tmp/hosts"));
                assert_eq!(h.zones, ["example.org."]);
                assert_eq!(
                    h.inline,
                    [("10.1.1.1".parse().unwrap(), vec!["a.example.org.".to_string(), "b.example.org.".to_string()])]
                );
                assert_eq!(h.ttl, 60);
                assert!(h.no_reverse);
                assert_eq!(h.reload, Duration::ZERO);
                assert_eq!(h.fallthrough, Some(Fallthrough::default()));
            }
            PluginConfig::Log(l) => {
                assert_eq!(l.names, ["example.org."]);
                assert_eq!(l.format, "{remote} {name}");
                assert!(!l.classes.success && l.classes.denial && l.classes.error);
            }
            PluginConfig::Reload(r) => {
                assert_eq!(r.interval, Duration::from_secs(10));
                assert_eq!(r.jitter, Duration::from_secs(2));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn load_reports_missing_files() {
    let err = Corefile::load(std::path::Path::new("/nonexistent/Corefile")).unwrap_err();
    assert_eq!(err.line, 0);
    assert!(err.to_string().starts_with("/nonexistent/Corefile: cannot read"), "{err}");
}
