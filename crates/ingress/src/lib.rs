//! podnet's ingress controller — the ingress-nginx job in a Kubernetes cluster.
//!
//! The controller ([`controller`]) watches Ingresses, IngressClasses, Services, EndpointSlices
//! and Secrets through the `kube` crate and builds one immutable [`table::RouteTable`] per
//! change; the data plane ([`proxy`]) reads the current table for every request and TLS
//! handshake ([`tls`]), so changes apply atomically with no reload and no dropped connection.
//! What an Ingress means — path and host matching ([`paths`]), ingress-nginx's annotations
//! ([`annotations`]), merging and precedence ([`table`]) — is pure logic, unit-tested apart
//! from sockets and the API.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod controller;
pub mod metrics;
pub mod paths;
pub mod proxy;
pub mod table;
pub mod tls;
