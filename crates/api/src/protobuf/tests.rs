//! Hand-built protobuf bodies, encoded the way client-go's gogo-protobuf code does: every
//! non-pointer field written, zero or not.

use serde_json::json;

use super::wire::encode::Msg;
use super::*;

/// The `k8s\0` + `runtime.Unknown` envelope around an object.
fn envelope(api_version: &str, kind: &str, raw: &Msg) -> Vec<u8> {
    let unknown = Msg::new().msg(1, Msg::new().str(1, api_version).str(2, kind)).bytes(2, &raw.0).str(3, "").str(4, "");
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

/// ObjectMeta as gogo writes it: the empty strings, generation 0, the zero creationTimestamp.
fn object_meta(name: &str, namespace: &str) -> Msg {
    Msg::new().str(1, name).str(2, "").str(3, namespace).str(4, "").str(5, "").str(6, "").int(7, 0).msg(8, Msg::new())
}

fn int_or_string_int(v: i32) -> Msg {
    Msg::new().int(1, 0).int(2, i64::from(v)).str(3, "")
}

fn int_or_string_str(v: &str) -> Msg {
    Msg::new().int(1, 1).int(2, 0).str(3, v)
}

#[test]
fn namespace() {
    let raw = Msg::new().msg(1, object_meta("foo", "")).msg(2, Msg::new()).msg(3, Msg::new().str(1, ""));
    let got = decode(&envelope("v1", "Namespace", &raw)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}, "spec": {}, "status": {}})
    );
    // apiVersion and kind come first, as kubectl writes them.
    let keys: Vec<_> = got.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys[..2], ["apiVersion", "kind"]);
}

#[test]
fn config_map_with_data_and_binary_data() {
    let meta = object_meta("x", "default").entry(11, "app", b"web");
    let raw = Msg::new()
        .msg(1, meta)
        .entry(2, "a", b"b")
        .entry(2, "empty", b"")
        .entry(3, "bin", &[0, 1, 2, 0xff])
        .entry(3, "none", b"");
    assert_eq!(
        decode(&envelope("v1", "ConfigMap", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "default", "labels": {"app": "web"}},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": "AAEC/w==", "none": ""},
        })
    );
}

/// What `kubectl create deployment web --image=nginx --port=80 --replicas=0` builds.
fn deployment(replicas: i64) -> Msg {
    let labels = |m: Msg| m.entry(11, "app", b"web");
    let container = Msg::new()
        .str(1, "nginx")
        .str(2, "nginx")
        .str(5, "")
        .msg(6, Msg::new().str(1, "").int(2, 0).int(3, 80).str(4, "").str(5, ""))
        .msg(7, Msg::new().str(1, "MODE").str(2, "fast"))
        .msg(7, Msg::new().str(1, "EMPTY").str(2, ""))
        .msg(8, Msg::new())
        .str(13, "")
        .str(14, "")
        .bool(16, false)
        .bool(17, false)
        .bool(18, false)
        .str(20, "");
    let pod_spec =
        Msg::new().msg(2, container).str(3, "").str(6, "").str(8, "").bool(11, false).bool(12, false).bool(13, false);
    let spec = Msg::new()
        .int(1, replicas)
        .msg(2, Msg::new().entry(1, "app", b"web"))
        .msg(3, Msg::new().msg(1, labels(object_meta("", ""))).msg(2, pod_spec))
        .msg(
            4,
            Msg::new()
                .str(1, "RollingUpdate")
                .msg(2, Msg::new().msg(1, int_or_string_int(0)).msg(2, int_or_string_str("25%"))),
        )
        .int(5, 0)
        .bool(7, false);
    let status = Msg::new().int(1, 0).int(2, 0).int(3, 0).int(4, 0).int(5, 0);
    Msg::new().msg(1, labels(object_meta("web", "default"))).msg(2, spec).msg(3, status)
}

#[test]
fn deployment_keeps_pointer_zeros_and_drops_value_zeros() {
    let got = decode(&envelope("apps/v1", "Deployment", &deployment(0))).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "MODE", "value": "fast"}, {"name": "EMPTY"}],
                        "resources": {},
                    }]},
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            },
            "status": {},
        })
    );
    let two = decode(&envelope("apps/v1", "Deployment", &deployment(2))).unwrap();
    assert_eq!(two["spec"]["replicas"], 2);
}

#[test]
fn service_ports_with_int_and_named_target_ports() {
    let port = |name: &str, port: i64, target: Msg| {
        Msg::new().str(1, name).str(2, "TCP").int(3, port).msg(4, target).int(5, 0)
    };
    let spec = Msg::new()
        .msg(1, port("http", 80, int_or_string_int(8080)))
        .msg(1, port("https", 443, int_or_string_str("https")))
        .entry(2, "app", b"web")
        .str(3, "")
        .str(4, "ClusterIP")
        .str(7, "")
        .bool(13, false)
        .bool(20, false);
    let raw = Msg::new().msg(1, object_meta("web", "")).msg(2, spec).msg(3, Msg::new().msg(1, Msg::new()));
    assert_eq!(
        decode(&envelope("v1", "Service", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
                // A pointer: false was set explicitly.
                "allocateLoadBalancerNodePorts": false,
            },
            "status": {"loadBalancer": {}},
        })
    );
}

#[test]
fn secret() {
    let raw = Msg::new()
        .msg(1, object_meta("s", "default"))
        .entry(2, "k", b"v")
        .entry(2, "bin", &[0xde, 0xad, 0xbe, 0xef])
        .str(3, "Opaque")
        .bool(5, false);
    assert_eq!(
        decode(&envelope("v1", "Secret", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"k": "dg==", "bin": "3q2+7w=="},
            "type": "Opaque",
            "immutable": false,
        })
    );
}

#[test]
fn pod_volumes_inline_sources_and_quantities() {
    let empty_dir = Msg::new().str(1, "").msg(2, Msg::new().str(1, "1Gi"));
    let volume = Msg::new().str(1, "scratch").msg(2, Msg::new().msg(2, empty_dir));
    let bare = Msg::new().str(1, "cache").msg(2, Msg::new().msg(2, Msg::new().str(1, "")));
    let resources =
        Msg::new().entry(1, "cpu", &Msg::new().str(1, "500m").0).entry(2, "memory", &Msg::new().str(1, "64Mi").0);
    let probe = Msg::new()
        .msg(1, Msg::new().msg(2, Msg::new().str(1, "/healthz").msg(2, int_or_string_str("http"))))
        .int(2, 5)
        .int(3, 0);
    let container = Msg::new().str(1, "app").msg(8, resources).msg(10, probe);
    let spec = Msg::new().msg(1, volume).msg(1, bare).msg(2, container);
    let meta = object_meta("p", "default").msg(8, Msg::new().int(1, 1_700_000_000));
    let raw = Msg::new().msg(1, meta).msg(2, spec);
    assert_eq!(
        decode(&envelope("v1", "Pod", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2023-11-14T22:13:20Z"},
            "spec": {
                "volumes": [
                    {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "cache", "emptyDir": {}},
                ],
                "containers": [{
                    "name": "app",
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5},
                }],
            },
        })
    );
}

#[test]
fn lease_micro_time_and_go_zero_time() {
    let spec = Msg::new()
        .str(1, "node-a")
        .int(2, 40)
        .msg(3, Msg::new().int(1, 1_700_000_000).int(2, 123_456_789))
        .msg(4, Msg::new().int(1, GO_ZERO_TIME))
        .int(5, 0);
    let raw = Msg::new().msg(1, object_meta("l", "kube-node-lease")).msg(2, spec);
    assert_eq!(
        decode(&envelope("coordination.k8s.io/v1", "Lease", &raw)).unwrap()["spec"],
        json!({"holderIdentity": "node-a", "leaseDurationSeconds": 40, "acquireTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0})
    );
}

#[test]
fn delete_options_in_any_group_version() {
    let raw = Msg::new().int(1, 0).str(4, "Foreground").str(5, "All");
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        assert_eq!(
            decode(&envelope(api_version, "DeleteOptions", &raw)).unwrap(),
            json!({"apiVersion": api_version, "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground", "dryRun": ["All"]})
        );
    }
}

#[test]
fn negative_int32_and_unknown_fields() {
    // int32 -1 is a 10-byte varint; unknown fields of every wire type are skipped.
    let spec = Msg::new().int(1, -1).fixed64(99, 5).fixed32(98, 5).str(97, "?");
    let raw = Msg::new().msg(2, spec);
    let got = decode(&envelope("autoscaling/v1", "Scale", &raw)).unwrap();
    assert_eq!(got["spec"], json!({"replicas": -1}));
}

#[test]
fn repeated_scalars_packed_or_not() {
    // PodSecurityContext.supplementalGroups (tag 4): gogo writes it unpacked; packed is accepted.
    let mut packed = Vec::new();
    for v in [3u64, 4] {
        super::wire::encode::varint(&mut packed, v);
    }
    let security = Msg::new().int(4, 1).int(4, 2).bytes(4, &packed).int(2, 0);
    let raw = Msg::new().msg(2, Msg::new().msg(14, security));
    let got = decode(&envelope("v1", "Pod", &raw)).unwrap();
    assert_eq!(got["spec"]["securityContext"], json!({"supplementalGroups": [1, 2, 3, 4], "runAsUser": 0}));
}

#[test]
fn errors_name_the_problem() {
    assert_eq!(decode(b"{\"kind\":\"Namespace\"}"), Err(ProtobufError::BadMagic));
    assert_eq!(decode(b"k8s"), Err(ProtobufError::BadMagic));
    assert_eq!(decode(b"k8s\0"), Err(ProtobufError::NoKind));

    let err = decode(&envelope("v1", "Widget", &Msg::new())).unwrap_err();
    assert_eq!(err.to_string(), "unknown kind \"Widget\" (apiVersion \"v1\"): not accepted in protobuf");

    // ConfigMap.data (tag 2) sent as a varint.
    let body = envelope("v1", "ConfigMap", &Msg::new().int(2, 1));
    let err = decode(&body).unwrap_err();
    assert!(matches!(err, ProtobufError::WireType { found: 0, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "malformed protobuf: field 2 (data) of k8s.io.api.core.v1.ConfigMap has wire type 0, expected 2 (length-delimited)"
    );

    // A string field whose bytes are not UTF-8.
    let body = envelope("v1", "Namespace", &Msg::new().msg(1, Msg::new().bytes(1, &[0xff])));
    assert!(matches!(decode(&body), Err(ProtobufError::Utf8 { .. })));

    // The object cut short inside metadata.name.
    let raw = Msg::new().msg(1, object_meta("foo", ""));
    let mut truncated = Msg::new().msg(1, Msg::new().str(1, "v1").str(2, "Namespace")).0;
    truncated.push(0x12); // raw: bytes
    encode_len(&mut truncated, raw.0.len());
    truncated.extend_from_slice(&raw.0[..raw.0.len() - 3]);
    let mut body = b"k8s\0".to_vec();
    body.extend_from_slice(&truncated);
    let err = decode(&body).unwrap_err();
    assert!(matches!(err, ProtobufError::Truncated { .. }), "{err}");

    let mut gzip = b"k8s\0".to_vec();
    gzip.extend_from_slice(&Msg::new().msg(1, Msg::new().str(1, "v1").str(2, "Namespace")).str(3, "gzip").0);
    assert_eq!(decode(&gzip), Err(ProtobufError::ContentEncoding("gzip".into())));

    let bad_intstr = envelope(
        "v1",
        "Service",
        &Msg::new().msg(2, Msg::new().msg(1, Msg::new().int(3, 80).msg(4, Msg::new().int(1, 7)))),
    );
    assert!(matches!(decode(&bad_intstr), Err(ProtobufError::BadValue { .. })));
}

fn encode_len(out: &mut Vec<u8>, len: usize) {
    super::wire::encode::varint(out, len as u64);
}

/// Every prefix and many corruptions of a real body give a result or an error, never a panic.
#[test]
fn malformed_bodies_never_panic() {
    let body = envelope("apps/v1", "Deployment", &deployment(3));
    for len in 0..body.len() {
        let _ = decode(&body[..len]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..3000 {
        let mut b = body.clone();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = 4 + (seed as usize) % (b.len() - 4);
            b[i] = (seed >> 32) as u8;
        }
        let _ = decode(&b);
    }
}

/// The schema has no recursive message today; the limit guards the stack if one comes.
#[test]
fn nesting_beyond_the_limit_is_refused() {
    let err = decode_message(message(0), &[], &mut Map::new(), MAX_DEPTH + 1).unwrap_err();
    assert!(matches!(err, ProtobufError::TooDeep { .. }), "{err}");
}

/// The kinds no served object uses today, through a message made for the test.
#[test]
fn doubles_and_durations() {
    static FIELDS: [Field; 4] = [
        f(1, "ratio", Kind::F64, Card::One, false),
        f(2, "timeout", Kind::Duration, Card::One, false),
        f(3, "weights", Kind::F64, Card::Rep, false),
        f(4, "window", Kind::Duration, Card::Map, false),
    ];
    let msg = Message { name: "test.Durations", fields: &FIELDS };
    let duration = |nanos: i64| Msg::new().int(1, nanos).0;
    let buf = Msg::new()
        .fixed64(1, 0.25f64.to_bits())
        .bytes(2, &duration(90_000_000_000))
        .fixed64(3, 1.5f64.to_bits())
        .fixed64(3, 0f64.to_bits())
        .entry(4, "short", &duration(1_500_000));
    let mut out = Map::new();
    decode_message(&msg, &buf.0, &mut out, 0).unwrap();
    assert_eq!(
        Value::Object(out),
        json!({"ratio": 0.25, "timeout": "1m30s", "weights": [1.5, 0.0], "window": {"short": "1.5ms"}})
    );
    // A zero double is left out like any zero value; NaN is no JSON number.
    let mut out = Map::new();
    decode_message(&msg, &Msg::new().fixed64(1, 0).0, &mut out, 0).unwrap();
    assert!(out.is_empty());
    let err = decode_message(&msg, &Msg::new().fixed64(1, f64::NAN.to_bits()).0, &mut Map::new(), 0).unwrap_err();
    assert!(matches!(err, ProtobufError::BadValue { .. }), "{err}");
    let err = decode_message(&msg, &Msg::new().int(1, 1).0, &mut Map::new(), 0).unwrap_err();
    assert!(matches!(err, ProtobufError::WireType { found: 0, expected: "1 (64-bit)", .. }), "{err}");
}

#[test]
fn go_durations() {
    for (nanos, s) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (2_000_000, "2ms"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_000_000_001, "1h2m3.000000001s"),
        (-5_000_000_000, "-5s"),
    ] {
        assert_eq!(go_duration(nanos), s, "{nanos}");
    }
}

#[test]
fn the_table_is_consistent() {
    for (i, msg) in schema::MESSAGES.iter().enumerate() {
        assert!(msg.fields.windows(2).all(|w| w[0].tag < w[1].tag), "{} fields not sorted", msg.name);
        for field in msg.fields {
            if let Kind::Msg(inner) = field.kind {
                assert!(usize::from(inner) < schema::MESSAGES.len(), "{}.{}", msg.name, field.json);
            }
            assert_eq!(field.json.is_empty(), field.card == Card::Inline, "{i} {}", msg.name);
        }
    }
    for root in &schema::ROOTS {
        let msg = message(root.message);
        assert!(msg.name.ends_with(&format!(".{}", root.kind)), "{} → {}", root.kind, msg.name);
    }
}
