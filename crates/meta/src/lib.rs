//! Kubernetes object semantics shared by podnet's components.
//!
//! Everything here is pure logic over `serde_json::Value` and strings — no I/O — so it can be
//! unit-tested without a cluster and reused by the API server, the controllers, the proxy and DNS:
//!
//! - [`labels`]: label selectors, in their string form (`app=web,tier in (a,b),!canary`) and in
//!   their structured form (`metav1.LabelSelector`), and matching them against label maps.
//! - [`fields`]: field selectors (`metadata.name=x,spec.nodeName!=y`).
//! - [`names`]: the validation rules of object names and label keys/values (DNS-1123 and friends).
//! - [`smp`]: strategic merge patch with its directives and the merge keys of the built-in types,
//!   and the merge used by server-side apply.
#![forbid(unsafe_code)]

pub mod fields;
pub mod labels;
pub mod names;
pub mod smp;
