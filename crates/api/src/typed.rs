//! Shape checking: every object is decoded into its k8s-openapi type and encoded back, so what
//! is stored and returned has exactly the shape of the Kubernetes types. Fields of the request
//! that the type does not know are reported (and, under `fieldValidation=Strict`, rejected).

use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coordination, core::v1 as core};
use k8s_openapi::api::{discovery::v1 as discovery, networking::v1 as networking};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// Decodes `obj` as `T` and encodes it back.
fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// Decodes and re-encodes an object of `kind` through its k8s-openapi type. Kinds without a
/// type are returned unchanged.
pub fn normalize(kind: &str, obj: &Value) -> Result<Value, String> {
    match kind {
        "Namespace" => round_trip::<core::Namespace>(obj),
        "Node" => round_trip::<core::Node>(obj),
        "Pod" => round_trip::<core::Pod>(obj),
        "Service" => round_trip::<core::Service>(obj),
        "Endpoints" => round_trip::<core::Endpoints>(obj),
        "ConfigMap" => round_trip::<core::ConfigMap>(obj),
        "Secret" => round_trip::<core::Secret>(obj),
        "Event" => round_trip::<core::Event>(obj),
        "ServiceAccount" => round_trip::<core::ServiceAccount>(obj),
        "Binding" => round_trip::<core::Binding>(obj),
        "ReplicationController" => round_trip::<core::ReplicationController>(obj),
        "Deployment" => round_trip::<apps::Deployment>(obj),
        "ReplicaSet" => round_trip::<apps::ReplicaSet>(obj),
        "DaemonSet" => round_trip::<apps::DaemonSet>(obj),
        "EndpointSlice" => round_trip::<discovery::EndpointSlice>(obj),
        "Ingress" => round_trip::<networking::Ingress>(obj),
        "IngressClass" => round_trip::<networking::IngressClass>(obj),
        "NetworkPolicy" => round_trip::<networking::NetworkPolicy>(obj),
        "Lease" => round_trip::<coordination::Lease>(obj),
        "Scale" => round_trip::<k8s_openapi::api::autoscaling::v1::Scale>(obj),
        _ => Ok(obj.clone()),
    }
}

/// The paths (`spec.foo`, `spec.containers[0].bar`) of fields in `input` that `normalized`
/// lost: the fields the type does not know. Explicit nulls are not unknown fields.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, normalized, String::new(), &mut out);
    out
}

fn walk(input: &Value, normalized: &Value, path: String, out: &mut Vec<String>) {
    match (input, normalized) {
        (Value::Object(i), Value::Object(n)) => {
            for (k, v) in i {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match n.get(k) {
                    Some(nv) => walk(v, nv, p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(n)) => {
            for (idx, (iv, nv)) in i.iter().zip(n.iter()).enumerate() {
                walk(iv, nv, format!("{path}[{idx}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "imagePull": "x"}], "bogus": 1, "nodeName": null}});
        let n = normalize("Pod", &pod).unwrap();
        assert_eq!(unknown_fields(&pod, &n), vec!["spec.containers[0].imagePull", "spec.bogus"]);
        assert_eq!(n["metadata"]["labels"]["a"], "b");
    }

    #[test]
    fn wrong_types_are_errors() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": "three", "selector": {}, "template": {}}});
        let err = normalize("Deployment", &d).unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
    }
}
