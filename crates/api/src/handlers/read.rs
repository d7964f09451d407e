//! GET and LIST: objects or Tables from memory, with selectors and `limit`/`continue`.

use std::sync::Arc;

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
        let (items, rev) = self.store.list(t.resource, t.namespace.as_deref());
        let mut items: Vec<Arc<Value>> = items.into_iter().filter(|o| filter.matches(o)).collect();

        // Pagination: `continue` holds the revision of the first page and the last key sent.
        let mut list_rev = rev;
        if let Some(token) = q.get("continue") {
            let (crev, after) = decode_continue(token)?;
            if crev < self.store.compacted_revision() {
                return Err(ApiError::Expired {
                    message: "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                });
            }
            list_rev = crev;
            items.retain(|o| object_sort_key(o) > after);
        }
        let limit = q.number("limit")?.filter(|l| *l > 0).map(|l| l as usize);
        let (mut continue_token, mut remaining) = (None, None);
        if let Some(limit) = limit {
            if items.len() > limit {
                remaining = Some((items.len() - limit) as i64);
                items.truncate(limit);
                continue_token = items.last().map(|o| encode_continue(list_rev, &object_sort_key(o)));
            }
        }
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

fn object_sort_key(o: &Value) -> String {
    format!("{}/{}", o["metadata"]["namespace"].as_str().unwrap_or(""), o["metadata"]["name"].as_str().unwrap_or(""))
}

fn encode_continue(rev: u64, after: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"rv": rev, "start": after}).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(u64, String)> {
    use base64::Engine;
    let bad = || ApiError::bad_request("invalid continue token: it was not issued by this server");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((v["rv"].as_u64().ok_or_else(bad)?, v["start"].as_str().ok_or_else(bad)?.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web");
        assert_eq!(decode_continue(&t).unwrap(), (42, "default/web".to_string()));
        assert!(decode_continue("garbage!").is_err());
    }
}
