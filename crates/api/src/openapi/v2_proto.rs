//! `/openapi/v2` in the protobuf form kubectl asks for: gnostic's `openapi.v2.Document`
//! (`openapiv2/OpenAPIv2.proto`), encoded from the JSON Swagger document of [`super::v2`].
//!
//! kubectl asks for `/openapi/v2` only as `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! and uses it wherever it cannot count on the server validating fields: `kind: List` documents
//! (`kubectl create -f` of what `kubectl get -o yaml` prints for several objects) are validated
//! client-side against it, and `kubectl explain --output=plaintext-openapiv2` renders it. Both go
//! through kube-openapi's `proto` package, which
//!
//! - reads only `definitions`: each schema is a reference (`$ref`, with at most a `description`
//!   beside it), an array (`type: array` with exactly one `items` schema), a map (`type: object`
//!   without `properties`, `additionalProperties` its values), a kind (`properties`), or a
//!   primitive (`string`, `integer`, `number`, `boolean`);
//! - reads vendor extensions (`NamedAny { name, value: Any { yaml } }`) from their YAML text, and
//!   finds the schema of a kind by its `x-kubernetes-group-version-kind` list.
//!
//! So a reference that the v3 dialect wraps in a one-element `allOf` (to keep a description beside
//! it) becomes a plain `$ref` with its description, as kube-apiserver publishes it in v2; without
//! that, kube-openapi would take such fields (a Service's `spec`) for arbitrary values. `kubectl
//! apply` also reads the PATCH operations' `consumes` from here: as in the v3 documents they do
//! not list strategic merge patch, so kubectl keeps computing its patches from its compiled-in
//! types.
//!
//! The encoder is a few lines of protobuf wire format (varints and length-delimited fields,
//! proto3 rules: empty strings, `false` and zeros are left out, messages that are present are
//! written even when empty, a `oneof` member is written even when it holds its zero value).
//! Only the messages kube's documents use are encoded; unknown JSON keys are skipped.

use std::sync::LazyLock;

use serde_json::{Map, Value};

/// The media type kube-apiserver answers the protobuf form with.
pub const MIME: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The older spelling, which client-go still sends in its `Accept` header.
const MIME_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Whether a client's `Accept` header prefers the protobuf form to JSON (highest `q` first, then
/// the order given, as kube-apiserver negotiates).
pub fn wants_protobuf(accept: &str) -> bool {
    let mut ranges: Vec<(f32, usize, String)> = accept
        .split(',')
        .enumerate()
        .map(|(i, range)| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, i, media)
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, _, media) in ranges {
        if media == MIME || media == MIME_DEPRECATED {
            return true;
        }
        if media.contains("json") || media == "*/*" || media == "application/*" {
            return false;
        }
    }
    false
}

/// The protobuf form of `/openapi/v2`, encoded once.
pub fn v2_protobuf() -> &'static [u8] {
    static BYTES: LazyLock<Vec<u8>> = LazyLock::new(|| encode(super::v2()));
    &BYTES
}

/// Encodes a Swagger 2.0 JSON document as an `openapi.v2.Document`.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    document(&mut w, doc.as_object().unwrap_or(&Map::new()));
    w.0
}

/// A protobuf message being written.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A submessage, written even when empty (its presence is what the reader sees).
    fn message(&mut self, field: u32, write: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        write(&mut inner);
        self.bytes(field, &inner.0);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A repeated string from a JSON array (or a lone string).
    fn strings(&mut self, field: u32, v: Option<&Value>) {
        match v {
            Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
            Some(Value::Array(items)) => {
                items.iter().filter_map(Value::as_str).for_each(|s| self.bytes(field, s.as_bytes()))
            }
            _ => {}
        }
    }

    /// A bool, written even when false (a `oneof` member).
    fn bool_always(&mut self, field: u32, b: bool) {
        self.key(field, 0);
        self.varint(u64::from(b));
    }

    fn bool(&mut self, field: u32, v: Option<&Value>) {
        if v.and_then(Value::as_bool) == Some(true) {
            self.bool_always(field, true);
        }
    }

    fn int64(&mut self, field: u32, v: Option<&Value>) {
        let i = v.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))).unwrap_or(0);
        if i != 0 {
            self.key(field, 0);
            self.varint(i as u64);
        }
    }

    fn double(&mut self, field: u32, v: Option<&Value>) {
        let f = v.and_then(Value::as_f64).unwrap_or(0.0);
        if f != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&f.to_le_bytes());
        }
    }

    /// An `Any { yaml }`: a value as YAML text, which is what kube-openapi parses.
    fn any(&mut self, field: u32, v: &Value) {
        self.message(field, |w| w.string(2, &yaml(v)));
    }

    /// The `x-…` keys of `m` as repeated `NamedAny`.
    fn extensions(&mut self, field: u32, m: &Map<String, Value>) {
        for (name, value) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
            self.message(field, |w| {
                w.string(1, name);
                w.any(2, value);
            });
        }
    }

    /// A JSON object as repeated `Named… { name = 1; value = 2; }` (its `x-…` keys left out).
    fn named(&mut self, field: u32, m: &Map<String, Value>, write: impl Fn(&mut Writer, &Value)) {
        for (name, value) in m.iter().filter(|(k, _)| !k.starts_with("x-")) {
            self.message(field, |w| {
                w.string(1, name);
                w.message(2, |w| write(w, value));
            });
        }
    }
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

fn text<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

fn object(v: &Value) -> &Map<String, Value> {
    static EMPTY: LazyLock<Map<String, Value>> = LazyLock::new(Map::new);
    v.as_object().unwrap_or(&EMPTY)
}

/// `Document`.
fn document(w: &mut Writer, m: &Map<String, Value>) {
    w.string(1, text(m, "swagger"));
    if let Some(info) = m.get("info").and_then(Value::as_object) {
        w.message(2, |w| {
            w.string(1, text(info, "title"));
            w.string(2, text(info, "version"));
            w.string(3, text(info, "description"));
            w.string(4, text(info, "termsOfService"));
            w.extensions(7, info);
        });
    }
    w.string(3, text(m, "host"));
    w.string(4, text(m, "basePath"));
    w.strings(5, m.get("schemes"));
    w.strings(6, m.get("consumes"));
    w.strings(7, m.get("produces"));
    if let Some(paths) = m.get("paths").and_then(Value::as_object) {
        w.message(8, |w| {
            w.extensions(1, paths);
            w.named(2, paths, |w, item| path_item(w, object(item)));
        });
    }
    if let Some(definitions) = m.get("definitions").and_then(Value::as_object) {
        w.message(9, |w| w.named(1, definitions, schema));
    }
    w.extensions(16, m);
}

/// `PathItem`.
fn path_item(w: &mut Writer, m: &Map<String, Value>) {
    w.string(1, text(m, "$ref"));
    for (field, method) in
        [(2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")]
    {
        if let Some(op) = m.get(method).and_then(Value::as_object) {
            w.message(field, |w| operation(w, op));
        }
    }
    for p in m.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        w.message(9, |w| parameters_item(w, object(p)));
    }
    w.extensions(10, m);
}

/// `Operation`.
fn operation(w: &mut Writer, m: &Map<String, Value>) {
    w.strings(1, m.get("tags"));
    w.string(2, text(m, "summary"));
    w.string(3, text(m, "description"));
    w.string(5, text(m, "operationId"));
    w.strings(6, m.get("produces"));
    w.strings(7, m.get("consumes"));
    for p in m.get("parameters").and_then(Value::as_array).into_iter().flatten() {
        w.message(8, |w| parameters_item(w, object(p)));
    }
    if let Some(responses) = m.get("responses").and_then(Value::as_object) {
        w.message(9, |w| {
            w.named(1, responses, |w, r| {
                let r = object(r);
                if r.contains_key("$ref") {
                    w.message(2, |w| json_reference(w, r));
                } else {
                    w.message(1, |w| response(w, r));
                }
            });
            w.extensions(2, responses);
        });
    }
    w.strings(10, m.get("schemes"));
    w.bool(11, m.get("deprecated"));
    w.extensions(13, m);
}

/// `JsonReference`.
fn json_reference(w: &mut Writer, m: &Map<String, Value>) {
    w.string(1, text(m, "$ref"));
    w.string(2, text(m, "description"));
}

/// `Response`.
fn response(w: &mut Writer, m: &Map<String, Value>) {
    w.string(1, text(m, "description"));
    if let Some(s) = m.get("schema") {
        // SchemaItem { oneof { Schema schema = 1; FileSchema file_schema = 2; } }
        w.message(2, |w| w.message(1, |w| schema(w, s)));
    }
    w.extensions(5, m);
}

/// `ParametersItem { oneof { Parameter parameter = 1; JsonReference json_reference = 2; } }`.
fn parameters_item(w: &mut Writer, m: &Map<String, Value>) {
    if m.contains_key("$ref") {
        return w.message(2, |w| json_reference(w, m));
    }
    // Parameter { oneof { BodyParameter body_parameter = 1; NonBodyParameter non_body_parameter = 2; } }
    w.message(1, |w| {
        let location = text(m, "in");
        if location == "body" {
            return w.message(1, |w| {
                w.string(1, text(m, "description"));
                w.string(2, text(m, "name"));
                w.string(3, location);
                w.bool(4, m.get("required"));
                if let Some(s) = m.get("schema") {
                    w.message(5, |w| schema(w, s));
                }
                w.extensions(6, m);
            });
        }
        // NonBodyParameter { oneof { Header… = 1; FormData… = 2; Query… = 3; Path… = 4; } }: the
        // query and formData messages have `allow_empty_value` as field 5, which moves every
        // later field of theirs one number up from the header and path messages.
        let (which, shift) = match location {
            "header" => (1, 0),
            "formData" => (2, 1),
            "path" => (4, 0),
            _ => (3, 1),
        };
        w.message(2, |w| {
            w.message(which, |w| {
                w.bool(1, m.get("required"));
                w.string(2, location);
                w.string(3, text(m, "description"));
                w.string(4, text(m, "name"));
                if shift == 1 {
                    w.bool(5, m.get("allowEmptyValue"));
                }
                primitive(w, m, 5 + shift);
                w.extensions(22 + shift, m);
            });
        });
    });
}

/// The fields that parameters, headers and `PrimitivesItems` share, from `type` (at `first`) to
/// `multiple_of` (at `first + 12`): `type`, `format`, `items`, `collection_format`, `default`,
/// `maximum`, `exclusive_maximum`, `minimum`, `exclusive_minimum`, `max_length`, `min_length`,
/// `pattern`, `max_items`, `min_items`, `unique_items`, `enum`, `multiple_of`.
fn primitive(w: &mut Writer, m: &Map<String, Value>, first: u32) {
    w.string(first, text(m, "type"));
    w.string(first + 1, text(m, "format"));
    if let Some(items) = m.get("items").and_then(Value::as_object) {
        w.message(first + 2, |w| {
            primitive(w, items, 1);
            w.extensions(18, items);
        });
    }
    w.string(first + 3, text(m, "collectionFormat"));
    let c = first + 4;
    if let Some(d) = m.get("default") {
        w.any(c, d);
    }
    w.double(c + 1, m.get("maximum"));
    w.bool(c + 2, m.get("exclusiveMaximum"));
    w.double(c + 3, m.get("minimum"));
    w.bool(c + 4, m.get("exclusiveMinimum"));
    w.int64(c + 5, m.get("maxLength"));
    w.int64(c + 6, m.get("minLength"));
    w.string(c + 7, text(m, "pattern"));
    w.int64(c + 8, m.get("maxItems"));
    w.int64(c + 9, m.get("minItems"));
    w.bool(c + 10, m.get("uniqueItems"));
    for e in m.get("enum").and_then(Value::as_array).into_iter().flatten() {
        w.any(c + 11, e);
    }
    w.double(c + 12, m.get("multipleOf"));
}

/// The target of a v3-style `allOf: [{$ref}]` wrapper (a reference with siblings), when `m` is one.
fn wrapped_ref(m: &Map<String, Value>) -> Option<&str> {
    if m.contains_key("$ref") || m.contains_key("type") || m.contains_key("properties") {
        return None;
    }
    match m.get("allOf")?.as_array()?.as_slice() {
        [only] => {
            let only = only.as_object()?;
            (only.len() == 1).then(|| only.get("$ref")?.as_str()).flatten()
        }
        _ => None,
    }
}

/// `Schema`.
fn schema(w: &mut Writer, s: &Value) {
    let m = object(s);
    let wrapped = wrapped_ref(m);
    w.string(1, wrapped.unwrap_or(text(m, "$ref")));
    w.string(2, text(m, "format"));
    w.string(3, text(m, "title"));
    w.string(4, text(m, "description"));
    if let Some(d) = m.get("default") {
        w.any(5, d);
    }
    w.double(6, m.get("multipleOf"));
    w.double(7, m.get("maximum"));
    w.bool(8, m.get("exclusiveMaximum"));
    w.double(9, m.get("minimum"));
    w.bool(10, m.get("exclusiveMinimum"));
    w.int64(11, m.get("maxLength"));
    w.int64(12, m.get("minLength"));
    w.string(13, text(m, "pattern"));
    w.int64(14, m.get("maxItems"));
    w.int64(15, m.get("minItems"));
    w.bool(16, m.get("uniqueItems"));
    w.int64(17, m.get("maxProperties"));
    w.int64(18, m.get("minProperties"));
    w.strings(19, m.get("required"));
    for e in m.get("enum").and_then(Value::as_array).into_iter().flatten() {
        w.any(20, e);
    }
    // AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }
    match m.get("additionalProperties") {
        Some(Value::Bool(b)) => w.message(21, |w| w.bool_always(2, *b)),
        Some(a @ Value::Object(_)) => w.message(21, |w| w.message(1, |w| schema(w, a))),
        _ => {}
    }
    // TypeItem { repeated string value = 1; }
    if let Some(t) = m.get("type") {
        w.message(22, |w| w.strings(1, Some(t)));
    }
    // ItemsItem { repeated Schema schema = 1; }
    match m.get("items") {
        Some(Value::Array(items)) => w.message(23, |w| items.iter().for_each(|i| w.message(1, |w| schema(w, i)))),
        Some(i @ Value::Object(_)) => w.message(23, |w| w.message(1, |w| schema(w, i))),
        _ => {}
    }
    if wrapped.is_none() {
        for a in m.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            w.message(24, |w| schema(w, a));
        }
    }
    // Properties { repeated NamedSchema additional_properties = 1; }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        w.message(25, |w| {
            for (name, p) in props {
                w.message(1, |w| {
                    w.string(1, name);
                    w.message(2, |w| schema(w, p));
                });
            }
        });
    }
    w.string(26, text(m, "discriminator"));
    w.bool(27, m.get("readOnly"));
    if let Some(e) = m.get("example") {
        w.any(30, e);
    }
    w.extensions(31, m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One decoded field: a varint, a fixed64, or length-delimited bytes.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Field<'a> {
        Varint(u64),
        Fixed64(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(b: &[u8], pos: &mut usize) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = b[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return v;
            }
        }
        panic!("varint too long");
    }

    /// A minimal protobuf decoder: the fields of one message, in order.
    fn decode(b: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let key = read_varint(b, &mut pos);
            let field = (key >> 3) as u32;
            let value = match key & 7 {
                0 => Field::Varint(read_varint(b, &mut pos)),
                1 => {
                    let v = u64::from_le_bytes(b[pos..pos + 8].try_into().unwrap());
                    pos += 8;
                    Field::Fixed64(v)
                }
                2 => {
                    let len = read_varint(b, &mut pos) as usize;
                    let v = &b[pos..pos + len];
                    pos += len;
                    Field::Bytes(v)
                }
                t => panic!("unexpected wire type {t}"),
            };
            out.push((field, value));
        }
        assert_eq!(pos, b.len(), "trailing bytes");
        out
    }

    fn all(b: &[u8], field: u32) -> Vec<&[u8]> {
        decode(b)
            .into_iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, v)| match v {
                Field::Bytes(b) => b,
                other => panic!("field {field} is {other:?}"),
            })
            .collect()
    }

    fn one(b: &[u8], field: u32) -> &[u8] {
        let found = all(b, field);
        assert_eq!(found.len(), 1, "field {field} occurs {} times", found.len());
        found[0]
    }

    fn text(b: &[u8], field: u32) -> String {
        all(b, field).last().map(|s| String::from_utf8(s.to_vec()).unwrap()).unwrap_or_default()
    }

    fn texts(b: &[u8], field: u32) -> Vec<String> {
        all(b, field).into_iter().map(|s| String::from_utf8(s.to_vec()).unwrap()).collect()
    }

    fn varint(b: &[u8], field: u32) -> Option<u64> {
        decode(b).into_iter().find_map(|(f, v)| match v {
            Field::Varint(v) if f == field => Some(v),
            _ => None,
        })
    }

    /// The `Named…` entries of a message's repeated field, by name.
    fn named(b: &[u8], field: u32) -> Vec<(String, &[u8])> {
        all(b, field).into_iter().map(|n| (text(n, 1), one(n, 2))).collect()
    }

    /// The vendor extensions (`NamedAny`) of a message, their YAML parsed.
    fn extensions(b: &[u8], field: u32) -> Vec<(String, Value)> {
        named(b, field).into_iter().map(|(n, any)| (n, serde_yaml::from_str(&text(any, 2)).unwrap())).collect()
    }

    #[test]
    fn wire_format_of_small_values() {
        let mut w = Writer::default();
        w.int64(1, Some(&json!(300)));
        w.int64(2, Some(&json!(-1)));
        w.int64(3, Some(&json!(0)));
        w.string(4, "");
        w.bool(5, Some(&json!(false)));
        w.bool_always(6, false);
        w.double(7, Some(&json!(1.5)));
        let mut expected = vec![0x08, 0xac, 0x02, 0x10];
        expected.extend([0xff; 9]);
        expected.extend([0x01, 0x30, 0x00, 0x39]);
        expected.extend(1.5f64.to_le_bytes());
        assert_eq!(w.0, expected);
        assert_eq!(encode(&json!({"swagger": "2.0"})), b"\x0a\x032.0");
        // An empty `properties` is present (a kind with no fields), not absent.
        assert_eq!(
            encode(&json!({"definitions": {"E": {"properties": {}}}})),
            b"\x4a\x0a\x0a\x08\x0a\x01E\x12\x03\xca\x01\x00"
        );
    }

    #[test]
    fn a_tiny_document_decodes_back() {
        let gvk = json!([{"group": "", "version": "v1", "kind": "A"}]);
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {"/api/v1/as/{name}": {"patch": {
                "operationId": "patchA",
                "consumes": ["application/merge-patch+json", "application/json-patch+json"],
                "parameters": [
                    {"name": "dryRun", "in": "query", "type": "string", "uniqueItems": true},
                    {"name": "name", "in": "path", "type": "string", "required": true},
                    {"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/A"}},
                ],
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/A"}}},
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "A"},
            }}},
            "definitions": {
                "A": {
                    "description": "An A.",
                    "type": "object",
                    "required": ["b"],
                    "properties": {
                        "b": {"allOf": [{"$ref": "#/definitions/B"}], "description": "The B."},
                        "n": {"type": "integer", "format": "int32", "minimum": -2},
                        "l": {"type": "array", "items": {"type": "string"}},
                        "m": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                    "x-kubernetes-group-version-kind": gvk,
                },
                "B": {"type": "object", "additionalProperties": false, "allOf": [{"type": "object"}, {"type": "object"}]},
            },
        });
        let bytes = encode(&doc);
        assert_eq!(text(&bytes, 1), "2.0");
        let info = one(&bytes, 2);
        assert_eq!((text(info, 1), text(info, 2)), ("Kubernetes".into(), "v1.32.0".into()));

        let paths = named(one(&bytes, 8), 2);
        assert_eq!(paths.len(), 1);
        assert_eq!(paths[0].0, "/api/v1/as/{name}");
        let patch = one(paths[0].1, 8);
        assert_eq!(text(patch, 5), "patchA");
        assert_eq!(texts(patch, 7), ["application/merge-patch+json", "application/json-patch+json"]);
        assert_eq!(
            extensions(patch, 13),
            [("x-kubernetes-group-version-kind".to_string(), json!({"group": "", "version": "v1", "kind": "A"}))]
        );
        let params: Vec<&[u8]> = all(patch, 8).into_iter().map(|p| one(p, 1)).collect();
        assert_eq!(params.len(), 3);
        let query = one(one(params[0], 2), 3);
        assert_eq!(
            (text(query, 4), text(query, 2), text(query, 6)),
            ("dryRun".into(), "query".into(), "string".into())
        );
        assert_eq!(varint(query, 20), Some(1));
        let path = one(one(params[1], 2), 4);
        assert_eq!((text(path, 4), text(path, 5), varint(path, 1)), ("name".into(), "string".into(), Some(1)));
        let body = one(params[2], 1);
        assert_eq!((text(body, 2), text(body, 3), varint(body, 4)), ("body".into(), "body".into(), Some(1)));
        assert_eq!(text(one(body, 5), 1), "#/definitions/A");
        let responses = named(one(patch, 9), 1);
        assert_eq!(responses[0].0, "200");
        let ok = one(responses[0].1, 1);
        assert_eq!(text(ok, 1), "OK");
        assert_eq!(text(one(one(ok, 2), 1), 1), "#/definitions/A");

        let definitions = named(one(&bytes, 9), 1);
        assert_eq!(definitions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["A", "B"]);
        let a = definitions[0].1;
        assert_eq!(text(a, 4), "An A.");
        assert_eq!(texts(one(a, 22), 1), ["object"]);
        assert_eq!(texts(a, 19), ["b"]);
        assert_eq!(extensions(a, 31), [("x-kubernetes-group-version-kind".to_string(), gvk)]);
        let props = named(one(a, 25), 1);
        assert_eq!(props.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["b", "n", "l", "m"]);
        // The allOf wrapper became a plain reference with its description.
        let b = props[0].1;
        assert_eq!((text(b, 1), text(b, 4)), ("#/definitions/B".into(), "The B.".into()));
        assert!(all(b, 24).is_empty() && all(b, 22).is_empty());
        let n = props[1].1;
        assert_eq!((texts(one(n, 22), 1), text(n, 2)), (vec!["integer".to_string()], "int32".into()));
        assert_eq!(decode(n).iter().find(|(f, _)| *f == 9).unwrap().1, Field::Fixed64((-2f64).to_bits()));
        let l = props[2].1;
        assert_eq!(texts(one(one(one(l, 23), 1), 22), 1), ["string"]);
        let m = props[3].1;
        assert_eq!(texts(one(one(one(m, 21), 1), 22), 1), ["string"]);
        // `additionalProperties: false` is written (a oneof member); a real allOf stays one.
        let b_def = definitions[1].1;
        assert_eq!(decode(one(b_def, 21)), [(2, Field::Varint(0))]);
        assert_eq!(all(b_def, 24).len(), 2);
    }

    #[test]
    fn every_definition_and_its_gvk_is_in_the_served_document() {
        let json = super::super::v2();
        let bytes = v2_protobuf();
        assert_eq!(text(bytes, 1), "2.0");
        let definitions = named(one(bytes, 9), 1);
        let expected = json["definitions"].as_object().unwrap();
        assert_eq!(definitions.len(), expected.len());
        let mut kinds = 0;
        for (name, schema) in &definitions {
            let source = &expected[name];
            let gvk = extensions(schema, 31).into_iter().find(|(n, _)| n == "x-kubernetes-group-version-kind");
            assert_eq!(gvk.as_ref().map(|(_, v)| v), source.get("x-kubernetes-group-version-kind"), "{name}");
            kinds += usize::from(gvk.is_some());
        }
        assert!(kinds >= crate::resources::RESOURCES.len(), "{kinds}");

        let (_, service) = definitions.iter().find(|(n, _)| n == "io.k8s.api.core.v1.Service").unwrap();
        let props = named(one(service, 25), 1);
        let (_, spec) = props.iter().find(|(n, _)| n == "spec").unwrap();
        assert_eq!(text(spec, 1), "#/definitions/io.k8s.api.core.v1.ServiceSpec");
        assert!(text(spec, 4).starts_with("Spec defines the behavior of a service."));
        assert!(all(spec, 24).is_empty());
        // No reference anywhere is left wrapped in an allOf: kube-openapi would not follow it.
        fn no_all_of(schema: &[u8], path: &str) {
            assert!(all(schema, 24).is_empty(), "{path}");
            for (name, p) in all(schema, 25).into_iter().flat_map(|p| named(p, 1)) {
                no_all_of(p, &format!("{path}.{name}"));
            }
            for items in all(schema, 23).into_iter().flat_map(|i| all(i, 1)) {
                no_all_of(items, &format!("{path}[]"));
            }
        }
        for (name, schema) in &definitions {
            no_all_of(schema, name);
        }

        let paths = named(one(bytes, 8), 2);
        assert_eq!(paths.len(), json["paths"].as_object().unwrap().len());
        let (_, svc) = paths.iter().find(|(n, _)| n == "/api/v1/namespaces/{namespace}/services/{name}").unwrap();
        let patch = one(svc, 8);
        assert!(!texts(patch, 7).iter().any(|c| c.contains("strategic")), "{:?}", texts(patch, 7));
        assert_eq!(
            extensions(patch, 13).into_iter().find(|(n, _)| n == "x-kubernetes-group-version-kind").unwrap().1,
            json!({"group": "", "version": "v1", "kind": "Service"})
        );
    }

    #[test]
    fn accept_negotiation() {
        assert!(wants_protobuf(MIME_DEPRECATED));
        assert!(wants_protobuf(MIME));
        assert!(wants_protobuf(&format!("application/json;q=0.5, {MIME}")));
        assert!(!wants_protobuf(&format!("application/json, {MIME}")));
        assert!(!wants_protobuf("application/json"));
        assert!(!wants_protobuf("*/*"));
        assert!(!wants_protobuf("text/plain"));
    }
}
