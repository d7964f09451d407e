//! Table building from cluster objects: classes, merging, precedence, backends, canaries, TLS.

use super::*;
use serde_json::json;

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).unwrap())
}

fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
    let ann = if default { json!({DEFAULT_CLASS_ANNOTATION: "true"}) } else { json!({}) };
    obj(json!({"metadata": {"name": name, "annotations": ann}, "spec": {"controller": controller}}))
}

fn service(ns: &str, name: &str, ports: serde_json::Value) -> Arc<Service> {
    obj(json!({"metadata": {"namespace": ns, "name": name}, "spec": {"ports": ports}}))
}

fn slice(ns: &str, svc: &str, port_name: &str, port: u16, ready: &[&str], not_ready: &[&str]) -> Arc<EndpointSlice> {
    let mut eps: Vec<_> = ready.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect();
    eps.extend(not_ready.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": false}})));
    obj(json!({
        "metadata": {"namespace": ns, "name": format!("{svc}-x"), "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }))
}

fn ingress(
    ns: &str,
    name: &str,
    created: &str,
    annotations: serde_json::Value,
    spec: serde_json::Value,
) -> Arc<Ingress> {
    obj(json!({
        "metadata": {"namespace": ns, "name": name, "creationTimestamp": created, "annotations": annotations},
        "spec": spec,
    }))
}

fn backend(svc: &str, port: u16) -> serde_json::Value {
    json!({"service": {"name": svc, "port": {"number": port}}})
}

fn path(p: &str, kind: &str, svc: &str, port: u16) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": backend(svc, port)})
}

/// A cluster with services a (2 ready endpoints, 1 not ready) and b (1), both port 80 → 8080.
fn cluster(ingresses: Vec<Arc<Ingress>>) -> Cluster {
    Cluster {
        ingresses,
        classes: vec![class("podnet", CONTROLLER, true), class("other", "example.com/other", false)],
        services: vec![
            service("default", "a", json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}])),
            service("default", "b", json!([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])),
        ],
        slices: vec![
            slice("default", "a", "", 8080, &["10.0.0.2", "10.0.0.1"], &["10.0.0.3"]),
            slice("default", "b", "http", 9090, &["10.0.1.1"], &[]),
        ],
        secrets: vec![],
    }
}

fn hit<'t>(t: &'t RouteTable, host: &str, p: &str) -> Option<&'t str> {
    t.server(host).route(p).map(|r| r.upstream.service.as_str())
}

#[test]
fn seed_000_minimal_ingress_serves_every_path_of_every_host() {
    let ing = ingress(
        "default",
        "minimal-ingress",
        "2026-01-01T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/rewrite-target": "/"}),
        json!({"rules": [{"http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let t = build(&cluster(vec![ing]), &ClassPolicy::default());
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    let route = t.server("anything.example").route("/x/y").unwrap();
    assert_eq!(route.upstream.endpoints, vec!["10.0.0.1:8080".parse().unwrap(), "10.0.0.2:8080".parse().unwrap()]);
    assert_eq!(route.path.rewrite(route.settings.rewrite_target.as_deref().unwrap(), "/x/y"), "/");
    assert_eq!(t.served, vec![IngressRef { namespace: "default".into(), name: "minimal-ingress".into() }]);
}

#[test]
fn classes_decide_which_ingresses_are_ours() {
    let spec = json!({"rules": [{"http": {"paths": [path("/", "Prefix", "a", 80)]}}]});
    let with_class = |name: &str, class: Option<&str>| {
        let mut s = spec.clone();
        if let Some(c) = class {
            s["ingressClassName"] = json!(c);
        }
        ingress("default", name, "2026-01-01T00:00:00Z", json!({}), s)
    };
    let c = cluster(vec![
        with_class("mine", Some("podnet")),
        with_class("theirs", Some("other")),
        with_class("none", None),
        with_class("ghost", Some("missing")),
    ]);
    let t = build(&c, &ClassPolicy::default());
    let names: Vec<_> = t.served.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["mine", "none"], "the default class takes class-less Ingresses");
    // Without a default class, class-less Ingresses are taken only with watch_without_class.
    let mut c2 = c.clone();
    c2.classes = vec![class("podnet", CONTROLLER, false)];
    let served = |c: &Cluster, p: &ClassPolicy| build(c, p).served.iter().map(|i| i.name.clone()).collect::<Vec<_>>();
    assert_eq!(served(&c2, &ClassPolicy::default()), vec!["mine"]);
    assert_eq!(served(&c2, &ClassPolicy { watch_without_class: true, ..Default::default() }), vec!["mine", "none"]);
    // The deprecated annotation still works.
    let annotated =
        ingress("default", "old", "2026-01-01T00:00:00Z", json!({CLASS_ANNOTATION: "podnet"}), spec.clone());
    c2.ingresses = vec![annotated];
    assert_eq!(served(&c2, &ClassPolicy::default()), vec!["old"]);
}

#[test]
fn rules_merge_per_host_with_precedence_and_the_older_ingress_wins() {
    let first = ingress(
        "default",
        "first",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "foo.bar.com", "http": {"paths": [path("/", "Prefix", "a", 80), path("/api", "Prefix", "a", 80)]}}]}),
    );
    let second = ingress(
        "default",
        "second",
        "2026-02-01T00:00:00Z",
        json!({}),
        json!({"rules": [
            {"host": "foo.bar.com", "http": {"paths": [path("/api/v2", "Prefix", "b", 80), path("/api", "Exact", "b", 80), path("/", "Prefix", "b", 80)]}},
            {"host": "*.bar.com", "http": {"paths": [path("/", "Prefix", "b", 80)]}},
        ]}),
    );
    let t = build(&cluster(vec![second, first]), &ClassPolicy::default());
    assert_eq!(hit(&t, "foo.bar.com", "/"), Some("a"));
    assert_eq!(hit(&t, "foo.bar.com", "/api"), Some("b"), "Exact beats Prefix on a tie");
    assert_eq!(hit(&t, "foo.bar.com", "/api/"), Some("a"));
    assert_eq!(hit(&t, "foo.bar.com", "/api/v2/x"), Some("b"), "longest path");
    assert_eq!(hit(&t, "foo.bar.com", "/apix"), Some("a"), "element-wise prefix");
    assert_eq!(hit(&t, "baz.bar.com", "/"), Some("b"), "wildcard");
    assert_eq!(hit(&t, "x.baz.bar.com", "/"), None, "one label only → catch-all, which is empty");
    let conflict: Vec<_> = t.problems.iter().filter(|p| p.ingress.name == "second").collect();
    assert_eq!(conflict.len(), 1, "{:?}", t.problems);
    assert!(!conflict[0].rejected && conflict[0].message.contains("default/first"));
}

#[test]
fn backends_resolve_by_number_or_name_to_ready_endpoints() {
    let by_name = json!({"service": {"name": "b", "port": {"name": "http"}}});
    let ing = ingress(
        "default",
        "i",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"defaultBackend": backend("a", 80), "rules": [{"host": "b.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": by_name},
            path("/missing", "Prefix", "nope", 80),
            path("/wrongport", "Prefix", "a", 81),
        ]}}]}),
    );
    let t = build(&cluster(vec![ing]), &ClassPolicy::default());
    let s = t.server("b.example");
    assert_eq!(s.route("/").unwrap().upstream.endpoints, vec!["10.0.1.1:9090".parse().unwrap()]);
    assert!(s.route("/missing").unwrap().upstream.endpoints.is_empty(), "→ 503");
    assert!(s.route("/wrongport").unwrap().upstream.endpoints.is_empty());
    assert_eq!(s.default_backend.as_ref().unwrap().service, "a");
    assert_eq!(t.server("elsewhere").default_backend.as_ref().unwrap().service, "a");
}

#[test]
fn invalid_ingresses_are_reported_and_left_out_alone() {
    let good = ingress(
        "default",
        "good",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "g.example", "http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let bad_path = ingress(
        "default",
        "bad-path",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "x.example", "http": {"paths": [path("relative", "Prefix", "a", 80)]}}]}),
    );
    let bad_ann = ingress(
        "default",
        "bad-annotation",
        "2026-01-01T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/proxy-body-size": "lots"}),
        json!({"rules": [{"host": "y.example", "http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let bad_host = ingress(
        "default",
        "bad-host",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "a..b", "http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let t = build(&cluster(vec![good, bad_path, bad_ann, bad_host]), &ClassPolicy::default());
    assert_eq!(hit(&t, "g.example", "/"), Some("a"));
    assert!(!t.exact.contains_key("x.example") && !t.exact.contains_key("y.example"));
    let mut rejected: Vec<_> =
        t.problems.iter().filter(|p| p.rejected).map(|p| (p.ingress.name.as_str(), p.message.as_str())).collect();
    rejected.sort();
    assert_eq!(rejected.len(), 3, "{rejected:?}");
    assert!(rejected[0].1.contains("proxy-body-size"));
    assert!(rejected[1].1.contains("a..b"));
    assert!(rejected[2].1.contains("absolute"));
}

#[test]
fn canaries_attach_to_the_main_route() {
    let main = ingress(
        "default",
        "main",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "c.example", "http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let canary = ingress(
        "default",
        "canary",
        "2026-01-02T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "20"}),
        json!({"rules": [{"host": "c.example", "http": {"paths": [path("/", "Prefix", "b", 80), path("/solo", "Prefix", "b", 80)]}}]}),
    );
    let t = build(&cluster(vec![main, canary]), &ClassPolicy::default());
    let r = t.server("c.example").route("/").unwrap();
    assert_eq!(r.upstream.service, "a");
    let c = r.canary.as_ref().unwrap();
    assert_eq!((c.upstream.service.as_str(), c.rule.weight), ("b", 20));
    assert_eq!(hit(&t, "c.example", "/solo"), Some("a"), "a canary creates no route of its own");
    assert!(t.problems.iter().any(|p| p.message.contains("/solo")));
}

#[test]
fn regex_hosts_turn_every_path_into_a_regex() {
    let plain = ingress(
        "default",
        "plain",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"rules": [{"host": "r.example", "http": {"paths": [path("/foo", "Prefix", "a", 80)]}}]}),
    );
    let rx = ingress(
        "default",
        "rx",
        "2026-01-02T00:00:00Z",
        json!({"nginx.ingress.kubernetes.io/use-regex": "true"}),
        json!({"rules": [{"host": "r.example", "http": {"paths": [path("/ba[rz]", "ImplementationSpecific", "b", 80)]}}]}),
    );
    let t = build(&cluster(vec![plain, rx]), &ClassPolicy::default());
    assert_eq!(hit(&t, "r.example", "/baz"), Some("b"));
    assert_eq!(hit(&t, "r.example", "/foobar"), Some("a"), "ingress-nginx: /foo is now ^/foo");
    assert_eq!(hit(&t, "r.example", "/FOO"), Some("a"), "case-insensitive");
}

#[test]
fn tls_sections_load_certificates_by_host() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["s.example".into()]).unwrap().self_signed(&key).unwrap();
    let b64 = |s: String| k8s_openapi::ByteString(s.into_bytes());
    let secret: Arc<Secret> = Arc::new(Secret {
        metadata: kube::api::ObjectMeta {
            namespace: Some("default".into()),
            name: Some("s-tls".into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [("tls.crt".to_string(), b64(cert.pem())), ("tls.key".to_string(), b64(key.serialize_pem()))].into(),
        ),
        ..Default::default()
    });
    let ing = ingress(
        "default",
        "secure",
        "2026-01-01T00:00:00Z",
        json!({}),
        json!({"tls": [{"hosts": ["s.example"], "secretName": "s-tls"}, {"hosts": ["*.w.example"], "secretName": "missing"}],
               "rules": [{"host": "s.example", "http": {"paths": [path("/", "Prefix", "a", 80)]}}]}),
    );
    let mut c = cluster(vec![ing]);
    c.secrets = vec![secret];
    let t = build(&c, &ClassPolicy::default());
    assert_eq!(t.certificate("S.example").unwrap().source, "default/s-tls");
    assert!(t.certificate("x.w.example").is_none());
    assert!(t.server("s.example").tls && t.has_tls("s.example"));
    assert!(
        t.problems.iter().any(|p| !p.rejected && p.message.contains("default/missing not found")),
        "{:?}",
        t.problems
    );
}
