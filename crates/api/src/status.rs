//! API errors and the `meta/v1` Status objects they become on the wire.
//!
//! Every failure a request can meet ends as an [`ApiError`]; [`ApiError::to_status`] renders it
//! with the reason and code kube-apiserver uses, so clients (kubectl, client-go, kube-rs) react
//! the same way: `IsNotFound`, `IsConflict`, `IsAlreadyExists`, `IsInvalid`, `IsResourceExpired`…

use serde_json::{json, Value};

/// One field-level cause of an `Invalid` error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueNotSupported`…
    pub reason: &'static str,
    /// The field path, e.g. `spec.ports[0].port`.
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn required(field: impl Into<String>) -> Self {
        Cause { reason: "FieldValueRequired", field: field.into(), message: "Required value".into() }
    }
    pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, detail: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {}: {detail}", quote_value(&value.to_string())),
        }
    }
    pub fn not_supported(field: impl Into<String>, value: impl std::fmt::Display, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: format!("Unsupported value: \"{value}\": supported values: {}", list.join(", ")),
        }
    }
    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Cause {
            reason: "FieldValueDuplicate",
            field: field.into(),
            message: format!("Duplicate value: {}", quote_value(&value.to_string())),
        }
    }
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Cause { reason: "FieldValueForbidden", field: field.into(), message: format!("Forbidden: {}", detail.into()) }
    }
    /// `field is immutable`, as kube-apiserver words it.
    pub fn immutable(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Cause::invalid(field, value, "field is immutable")
    }
}

fn quote_value(v: &str) -> String {
    if v.parse::<f64>().is_ok() || v == "true" || v == "false" || v == "null" {
        v.to_string()
    } else {
        format!("\"{v}\"")
    }
}

/// What went wrong with a request, as the Kubernetes API classifies it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{kind} \"{name}\" not found")]
    NotFound { group: String, kind: String, name: String },
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { group: String, kind: String, name: String },
    #[error("{message}")]
    Conflict { group: String, kind: String, name: String, message: String },
    #[error("{message}")]
    Invalid { group: String, kind: String, name: String, message: String, causes: Vec<Cause> },
    #[error("{message}")]
    Expired { message: String },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    #[error("{message}")]
    NotAcceptable { message: String },
    #[error("{message}")]
    UnsupportedMediaType { message: String },
    #[error("the request is too large: {message}")]
    TooLarge { message: String },
    #[error("{message}")]
    Forbidden { group: String, kind: String, name: String, message: String },
    #[error("Internal error occurred: {message}")]
    Internal { message: String },
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest { message: message.into() }
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        ApiError::Internal { message: message.to_string() }
    }
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let details: Vec<String> = causes
            .iter()
            .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
            .collect();
        let joined = if details.len() == 1 { details[0].clone() } else { format!("[{}]", details.join(", ")) };
        ApiError::Invalid {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            message: format!("{kind} \"{name}\" is invalid: {joined}"),
            causes,
        }
    }
    pub fn conflict(group: &str, kind: &str, name: &str, detail: &str) -> Self {
        ApiError::Conflict {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
            message: format!("Operation cannot be fulfilled on {kind} \"{name}\": {detail}"),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized => 401,
            ApiError::Forbidden { .. } => 403,
            ApiError::NotFound { .. } | ApiError::NoSuchResource => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::NotAcceptable { .. } => 406,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Expired { .. } => 410,
            ApiError::TooLarge { .. } => 413,
            ApiError::UnsupportedMediaType { .. } => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal { .. } => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound { .. } | ApiError::NoSuchResource => "NotFound",
            ApiError::MethodNotAllowed { .. } => "MethodNotAllowed",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Expired { .. } => "Expired",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal { .. } => "InternalError",
        }
    }

    /// The `Status` object sent to the client.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { group, kind, name }
            | ApiError::AlreadyExists { group, kind, name }
            | ApiError::Conflict { group, kind, name, .. }
            | ApiError::Forbidden { group, kind, name, .. } => Some(details(group, kind, name, &[])),
            ApiError::Invalid { group, kind, name, causes, .. } => Some(details(group, kind, name, causes)),
            ApiError::Internal { message } => Some(json!({"causes": [{"message": message}]})),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn details(group: &str, kind: &str, name: &str, causes: &[Cause]) -> Value {
    let mut d = json!({ "name": name, "kind": kind });
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    if !causes.is_empty() {
        d["causes"] =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
    }
    d
}

/// The `Status` of a successful delete of an object that is gone at once (`status: Success`).
pub fn success_status(group: &str, kind: &str, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(group, kind, name, &[]);
    if let Some(uid) = uid {
        d["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

pub type ApiResult<T> = Result<T, ApiError>;
