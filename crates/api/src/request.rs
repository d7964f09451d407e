//! Request parsing: the URL into a [`Route`], the query into [`Query`], and the negotiation of
//! what the client sends (JSON or YAML, a patch type) and accepts (an object or a Table).

use std::collections::HashMap;

use serde_json::Value;

use crate::resources::{self, ResourceInfo, Subresource};
use crate::status::{ApiError, ApiResult};

/// What a URL addresses.
#[derive(Debug)]
pub enum Route {
    Version,
    Health,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1`, `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    OpenApiV2,
    OpenApiV3Root,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`
    OpenApiV3 {
        group: String,
        version: String,
    },
    Resource(Target),
}

/// A resource, a collection of it, or a subresource of one object.
#[derive(Debug, Clone)]
pub struct Target {
    pub resource: &'static ResourceInfo,
    /// The namespace in the URL (namespaced resources only).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

impl Route {
    pub fn parse(path: &str) -> ApiResult<Route> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        Ok(match segs.as_slice() {
            ["version"] => Route::Version,
            ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
            ["healthz" | "livez" | "readyz", _] => Route::Health,
            ["api"] => Route::CoreVersions,
            ["apis"] => Route::Groups,
            ["apis", group] => Route::Group(group.to_string()),
            ["api", version] => Route::ResourceList { group: String::new(), version: version.to_string() },
            ["apis", group, version] => Route::ResourceList { group: group.to_string(), version: version.to_string() },
            ["openapi", "v2"] => Route::OpenApiV2,
            ["openapi", "v3"] => Route::OpenApiV3Root,
            ["openapi", "v3", "api", version] => {
                Route::OpenApiV3 { group: String::new(), version: version.to_string() }
            }
            ["openapi", "v3", "apis", group, version] => {
                Route::OpenApiV3 { group: group.to_string(), version: version.to_string() }
            }
            ["api", version, rest @ ..] => Route::Resource(Target::parse("", version, rest)?),
            ["apis", group, version, rest @ ..] => Route::Resource(Target::parse(group, version, rest)?),
            _ => return Err(ApiError::NoSuchResource),
        })
    }
}

impl Target {
    fn parse(group: &str, version: &str, rest: &[&str]) -> ApiResult<Target> {
        let find = |plural: &str| resources::lookup(group, version, plural).ok_or(ApiError::NoSuchResource);
        let sub = |r: &ResourceInfo, s: &str| -> ApiResult<Subresource> {
            r.subresources.iter().copied().find(|x| x.name() == s).ok_or(ApiError::NoSuchResource)
        };
        let t = match rest {
            [plural] => Target { resource: find(plural)?, namespace: None, name: None, subresource: None },
            ["namespaces", ns, plural] => match find(plural) {
                Ok(r) if r.namespaced => {
                    Target { resource: r, namespace: Some(ns.to_string()), name: None, subresource: None }
                }
                _ => {
                    // `/api/v1/namespaces/<name>/status`: a subresource of a namespace.
                    let ns_res = find("namespaces")?;
                    Target {
                        resource: ns_res,
                        namespace: None,
                        name: Some(ns.to_string()),
                        subresource: Some(sub(ns_res, plural)?),
                    }
                }
            },
            ["namespaces", ns, plural, name] => {
                let r = find(plural)?;
                if !r.namespaced {
                    return Err(ApiError::NoSuchResource);
                }
                Target { resource: r, namespace: Some(ns.to_string()), name: Some(name.to_string()), subresource: None }
            }
            ["namespaces", ns, plural, name, s] => {
                let r = find(plural)?;
                if !r.namespaced {
                    return Err(ApiError::NoSuchResource);
                }
                Target {
                    resource: r,
                    namespace: Some(ns.to_string()),
                    name: Some(name.to_string()),
                    subresource: Some(sub(r, s)?),
                }
            }
            [plural, name] => {
                let r = find(plural)?;
                if r.namespaced {
                    return Err(ApiError::NoSuchResource);
                }
                Target { resource: r, namespace: None, name: Some(name.to_string()), subresource: None }
            }
            [plural, name, s] => {
                let r = find(plural)?;
                if r.namespaced {
                    return Err(ApiError::NoSuchResource);
                }
                Target { resource: r, namespace: None, name: Some(name.to_string()), subresource: Some(sub(r, s)?) }
            }
            _ => return Err(ApiError::NoSuchResource),
        };
        Ok(t)
    }

    /// The namespace objects of this target live in ("" for cluster-scoped).
    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// The query string, decoded.
#[derive(Debug, Default)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut map = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(percent_decode(k), percent_decode(v));
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    pub fn number(&self, key: &str) -> ApiResult<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid {key} {v:?}: not an integer")))
            }
        }
    }

    /// `dryRun=All`; any other value is refused as kube-apiserver does.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!("unsupported dryRun value {v:?}: supported values: \"All\""))),
        }
    }

    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(v) => Err(ApiError::bad_request(format!(
                "invalid fieldValidation {v:?}: supported values: \"Ignore\", \"Warn\", \"Strict\""
            ))),
        }
    }
}

/// What to do with fields the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the client wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    Object,
    /// `application/json;as=Table;g=meta.k8s.io;v=v1`
    Table,
}

impl Representation {
    pub fn from_accept(accept: Option<&str>) -> Representation {
        match accept {
            Some(a) if a.split(',').next().is_some_and(|first| first.contains("as=Table")) => Representation::Table,
            _ => Representation::Object,
        }
    }
}

/// The kinds of patch the server applies, by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: Option<&str>) -> ApiResult<PatchType> {
        let ct = ct.unwrap_or("").split(';').next().unwrap_or("").trim();
        match ct {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            other => Err(ApiError::UnsupportedMediaType {
                message: format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            }),
        }
    }
}

/// Decodes a request body: JSON, or YAML when the content type says so (or JSON fails and the
/// body looks like YAML).
pub fn decode_body(body: &[u8], content_type: Option<&str>) -> ApiResult<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty: an object was expected"));
    }
    let ct = content_type.unwrap_or("");
    if ct.starts_with(crate::protobuf::CONTENT_TYPE) {
        return crate::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid Kubernetes protobuf: {e}")));
    }
    let media = ct.split(';').next().unwrap_or("").trim();
    if !(media.is_empty()
        || media.contains("json")
        || media.contains("yaml")
        || media == "*/*"
        || media == "text/plain")
    {
        // 415 tells client-go to fall back to JSON (as it does after trying CBOR).
        return Err(ApiError::UnsupportedMediaType {
            message: format!(
                "the body of the request was in an unknown format ({media}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
            ),
        });
    }
    let yaml = ct.contains("yaml");
    let value: Value = if yaml {
        serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let Route::Resource(t) = Route::parse("/api/v1/namespaces/default/pods/web/status").unwrap() else { panic!() };
        assert_eq!((t.resource.plural, t.ns(), t.name.as_deref()), ("pods", "default", Some("web")));
        assert_eq!(t.subresource, Some(Subresource::Status));
        let Route::Resource(t) = Route::parse("/api/v1/namespaces/kube-system").unwrap() else { panic!() };
        assert_eq!(
            (t.resource.plural, t.name.as_deref(), t.namespace.as_deref()),
            ("namespaces", Some("kube-system"), None)
        );
        let Route::Resource(t) = Route::parse("/api/v1/namespaces/x/status").unwrap() else { panic!() };
        assert_eq!(
            (t.resource.plural, t.name.as_deref(), t.subresource),
            ("namespaces", Some("x"), Some(Subresource::Status))
        );
        let Route::Resource(t) = Route::parse("/apis/apps/v1/deployments").unwrap() else { panic!() };
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(matches!(
            Route::parse("/api/v1/namespaces/x/pods/p/ephemeralcontainers"),
            Err(ApiError::NoSuchResource)
        ));
        let Route::Resource(t) = Route::parse("/api/v1/namespaces/x/pods/p/exec").unwrap() else { panic!() };
        assert_eq!(t.subresource, Some(Subresource::Exec));
        assert!(matches!(Route::parse("/apis/apps/v1/namespaces/x/nodes"), Err(ApiError::NoSuchResource)));
        assert!(matches!(Route::parse("/openapi/v3/apis/apps/v1").unwrap(), Route::OpenApiV3 { .. }));
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&limit=500"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
        assert_eq!(q.number("limit").unwrap(), Some(500));
        assert!(Query::parse(Some("limit=x")).number("limit").is_err());
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            Representation::from_accept(Some("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")),
            Representation::Table
        );
        assert_eq!(Representation::from_accept(Some("application/json")), Representation::Object);
        assert_eq!(PatchType::from_content_type(Some("application/merge-patch+json")).unwrap(), PatchType::Merge);
        assert!(PatchType::from_content_type(Some("text/plain")).is_err());
    }
}
