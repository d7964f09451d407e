//! Config maps and secrets: their keys, sizes, the keys each secret type needs and the
//! `immutable` flag.

use podnet_meta::names;
use serde_json::Value;

use super::{boolean, field, key, object, push_all, same, string, too_long, Errs};
use crate::status::Cause;

/// Upstream's `MaxSecretSize`, which also bounds config maps.
const MAX_SIZE: usize = 1024 * 1024;

pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let data = object(obj, "data");
    let binary = object(obj, "binaryData");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        let p = key("data", k);
        push_all(errs, &p, k, names::is_config_map_key(k));
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(Cause::invalid(&p, k, "duplicate of key present in binaryData"));
        }
        total += v.as_str().map_or(0, str::len);
    }
    for (k, v) in binary.into_iter().flatten() {
        let p = key("binaryData", k);
        push_all(errs, &p, k, names::is_config_map_key(k));
        if data.is_some_and(|d| d.contains_key(k)) {
            errs.push(Cause::invalid(&p, k, "duplicate of key present in data"));
        }
        total += v.as_str().map_or(0, decoded_len);
    }
    if total > MAX_SIZE {
        errs.push(too_long("", MAX_SIZE));
    }
    if let Some(old) = old {
        immutable_data(obj, old, &["data", "binaryData"], errs);
    }
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let data = object(obj, "data");
    // `stringData` is merged into `data` before validation upstream.
    let string_data = object(obj, "stringData");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        let p = key("data", k);
        push_all(errs, &p, k, names::is_config_map_key(k));
        let encoded = v.as_str().unwrap_or("");
        if !is_base64(encoded) {
            errs.push(Cause::invalid(&p, "<secret contents redacted>", "illegal base64 data"));
        }
        if !string_data.is_some_and(|s| s.contains_key(k)) {
            total += decoded_len(encoded);
        }
    }
    for (k, v) in string_data.into_iter().flatten() {
        push_all(errs, &key("data", k), k, names::is_config_map_key(k));
        total += v.as_str().map_or(0, str::len);
    }
    if total > MAX_SIZE {
        errs.push(too_long("data", MAX_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k)) || string_data.is_some_and(|s| s.contains_key(k));
    let value_len = |k: &str| {
        string_data
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .map(str::len)
            .or_else(|| data.and_then(|d| d.get(k)).and_then(Value::as_str).map(decoded_len))
            .unwrap_or(0)
    };
    match string(obj, "type") {
        "kubernetes.io/service-account-token" => {
            let annotation = field(obj, "metadata")
                .and_then(|m| object(m, "annotations"))
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if annotation.is_empty() {
                errs.push(Cause::required("metadata.annotations[kubernetes.io/service-account.name]"));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(Cause::required(key("data", ".dockercfg")));
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(Cause::required(key("data", ".dockerconfigjson")));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(Cause::required(key("data", "username")));
            errs.push(Cause::required(key("data", "password")));
        }
        "kubernetes.io/ssh-auth" if value_len("ssh-privatekey") == 0 => {
            errs.push(Cause::required(key("data", "ssh-privatekey")));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(Cause::required(key("data", k)));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let (new_type, old_type) = (string(obj, "type"), string(old, "type"));
        if !old_type.is_empty() && new_type != old_type {
            errs.push(Cause::immutable("type", new_type));
        }
        immutable_data(obj, old, &["data"], errs);
    }
}

/// The `immutable` flag: once set, the data and the flag stay as they are.
fn immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if !boolean(old, "immutable") {
        return;
    }
    if !boolean(obj, "immutable") {
        errs.push(Cause::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    for name in fields {
        if !same(field(obj, name), field(old, name)) {
            errs.push(Cause::forbidden(*name, "field is immutable when `immutable` is set"));
        }
    }
}

/// Whether `s` is standard base64 (with padding), as Go decodes `[]byte` fields.
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    padding <= 2 && bytes[..bytes.len() - padding].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The size of the data a base64 string encodes.
fn decoded_len(s: &str) -> usize {
    let padding = s.bytes().rev().take_while(|b| *b == b'=').count();
    (s.len() / 4 * 3).saturating_sub(padding)
}
