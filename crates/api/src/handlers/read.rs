//! GET and LIST: objects or Tables from memory, with selectors and `limit`/`continue`.

use chrono::Utc;
use serde_json::{json, Value};

use super::*;
use crate::request::{Query, Representation, Target};
use crate::resources::Subresource;
use crate::status::{ApiError, ApiResult};
use crate::table::{self, TableMeta};
use crate::Api;

impl Api {
    pub fn get(&self, t: &Target, q: &Query, repr: Representation) -> ApiResult<Reply> {
        let name = t.name.as_deref().expect("get has a name");
        let obj = self.store.get(&key(t, name)).ok_or_else(|| not_found(t.resource, name))?;
        if t.subresource == Some(Subresource::Scale) {
            return Ok(Reply::json(200, scale_view(t.resource, &obj), vec![]));
        }
        if repr == Representation::Table {
            let rv = meta(&obj)["resourceVersion"].as_str().unwrap_or("");
            let include = include_object(q)?;
            return Ok(Reply::json(200, table::table(t.resource.kind, &[&obj], rv, include, Utc::now()), vec![]));
        }
        Ok(Reply::json(200, (*obj).clone(), vec![]))
    }

    pub fn list(&self, t: &Target, q: &Query, repr: Representation) -> ApiResult<Reply> {
        let filter = ObjectFilter::from_query(t.resource, q)?;
        // Pagination: `continue` holds the revision of the first page and the last key sent.
        let mut after = None;
        let mut first_rev = None;
        if let Some(token) = q.get("continue") {
            let (crev, key) = decode_continue(token)?;
            if crev < self.store.compacted_revision() {
                return Err(ApiError::Expired {
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                });
            }
            first_rev = Some(crev);
            after = Some(key);
        }
        let limit = q.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let page =
            self.store.list_page(t.resource, t.namespace.as_deref(), after.as_ref(), limit, filter.is_empty(), |o| {
                filter.matches(o)
            });
        let list_rev = first_rev.unwrap_or(page.revision);
        let items = page.items;
        let continue_token =
            if page.more { items.last().map(|o| encode_continue(list_rev, &object_key(o))) } else { None };
        let remaining = page.remaining.map(|r| r as i64);
        let rv = list_rev.to_string();
        if repr == Representation::Table {
            let refs: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
            let meta = TableMeta {
                resource_version: &rv,
                continue_token: continue_token.as_deref(),
                remaining_item_count: remaining,
                no_headers: false,
            };
            return Ok(Reply::json(
                200,
                table::table_with_meta(t.resource.kind, &refs, &meta, include_object(q)?, Utc::now()),
                vec![],
            ));
        }
        // Write the list straight into bytes: no copy of the items.
        let mut meta = json!({ "resourceVersion": rv });
        if let Some(c) = continue_token {
            meta["continue"] = json!(c);
            meta["remainingItemCount"] = json!(remaining);
        }
        let mut out = Vec::with_capacity(64 + items.len() * 512);
        out.extend_from_slice(b"{\"kind\":");
        serde_json::to_writer(&mut out, &t.resource.list_kind()).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"apiVersion\":");
        serde_json::to_writer(&mut out, &t.resource.api_version()).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut out, &meta).map_err(ApiError::internal)?;
        out.extend_from_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, item.as_ref()).map_err(ApiError::internal)?;
        }
        out.extend_from_slice(b"]}");
        Ok(Reply { code: 200, body: ReplyBody::Bytes(out), warnings: vec![] })
    }
}

/// An object's key in the store's order: (namespace, name).
fn object_key(o: &Value) -> (String, String) {
    (
        o["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
        o["metadata"]["name"].as_str().unwrap_or("").to_string(),
    )
}

fn encode_continue(rev: u64, (ns, name): &(String, String)) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": rev, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, (String, String))> {
    use base64::Engine;
    let bad = || ApiError::bad_request("invalid continue token: it was not issued by this server");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let field = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(bad);
    Ok((v["rv"].as_u64().ok_or_else(bad)?, (field("ns")?, field("name")?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("default".to_string(), "web".to_string());
        let t = encode_continue(42, &key);
        assert_eq!(decode_continue(&t).unwrap(), (42, key));
        assert!(decode_continue("garbage!").is_err());
    }
}
