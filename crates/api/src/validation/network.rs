//! Service plumbing and traffic rules: endpoints, endpoint slices (`discovery/v1`), ingresses,
//! ingress classes and network policies (`networking/v1`).

use std::collections::HashSet;

use podnet_meta::names;
use serde_json::Value;

use super::{
    array, child, cidr, cidr_contains, dns_label, dns_subdomain, field, index, int, invalid_go, ip_address,
    label_selector, labels, non_special_ip, opt_string, parse_ip, protocol, push_all, qualified_name, required_because,
    show, string, too_long, too_many, Errs,
};
use crate::status::Cause;

// ----------------------------------------------------------------------------------- endpoints

/// `ValidateEndpoints`: every subset has addresses, valid IPs and valid ports.
pub(super) fn validate_endpoints(obj: &Value, errs: &mut Errs) {
    for (i, subset) in array(obj, "subsets").iter().enumerate() {
        let p = index("subsets", i);
        let addresses = array(subset, "addresses");
        let not_ready = array(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(required_because(&p, "must specify `addresses` or `notReadyAddresses`"));
        }
        for (list, items) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, address) in items.iter().enumerate() {
                endpoint_address(address, &index(&child(&p, list), j), errs);
            }
        }
        let ports = array(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = string(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(Cause::required(child(&pp, "name")));
            } else if !name.is_empty() {
                dns_label(name, &child(&pp, "name"), errs);
            }
            let number = int(port, "port").unwrap_or(0);
            push_all(errs, &child(&pp, "port"), number, names::is_valid_port_num(number));
            protocol(opt_string(port, "protocol"), &child(&pp, "protocol"), errs);
            if let Some(app_protocol) = opt_string(port, "appProtocol") {
                qualified_name(app_protocol, &child(&pp, "appProtocol"), errs);
            }
        }
    }
}

fn endpoint_address(address: &Value, path: &str, errs: &mut Errs) {
    let ip = string(address, "ip");
    let ip_path = child(path, "ip");
    if ip_address(ip, &ip_path, errs) {
        non_special_ip(ip, &ip_path, true, errs);
    }
    let hostname = string(address, "hostname");
    if !hostname.is_empty() {
        dns_label(hostname, &child(path, "hostname"), errs);
    }
    if let Some(node) = opt_string(address, "nodeName") {
        push_all(errs, &child(path, "nodeName"), node, names::name_is_dns_subdomain(node, false));
    }
}

// ------------------------------------------------------------------------------ endpoint slices

const MAX_SLICE_ENDPOINTS: usize = 1000;
const MAX_SLICE_ADDRESSES: usize = 100;
const MAX_SLICE_PORTS: usize = 20000;
const MAX_TOPOLOGY_LABELS: usize = 16;

/// `ValidateEndpointSlice` and, on updates, the immutable address type.
pub(super) fn validate_endpoint_slice(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let address_type = string(obj, "addressType");
    match address_type {
        "" => errs.push(Cause::required("addressType")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(Cause::not_supported("addressType", other, &["FQDN", "IPv4", "IPv6"])),
    }

    let endpoints = array(obj, "endpoints");
    if endpoints.len() > MAX_SLICE_ENDPOINTS {
        errs.push(too_many("endpoints", endpoints.len(), MAX_SLICE_ENDPOINTS));
    } else {
        for (i, endpoint) in endpoints.iter().enumerate() {
            slice_endpoint(endpoint, address_type, &index("endpoints", i), errs);
        }
    }

    let ports = array(obj, "ports");
    if ports.len() > MAX_SLICE_PORTS {
        errs.push(too_many("ports", ports.len(), MAX_SLICE_PORTS));
    } else {
        let mut seen = HashSet::new();
        for (i, port) in ports.iter().enumerate() {
            let p = index("ports", i);
            let name = string(port, "name");
            if !name.is_empty() {
                dns_label(name, &child(&p, "name"), errs);
            }
            if !seen.insert(name) {
                errs.push(Cause::duplicate(child(&p, "name"), name));
            }
            if let Some(proto) = field(port, "protocol") {
                protocol(proto.as_str(), &child(&p, "protocol"), errs);
            }
            if let Some(number) = int(port, "port") {
                push_all(errs, &child(&p, "port"), number, names::is_valid_port_num(number));
            }
            if let Some(app_protocol) = opt_string(port, "appProtocol") {
                qualified_name(app_protocol, &child(&p, "appProtocol"), errs);
            }
        }
    }

    if let Some(old) = old {
        let old_type = string(old, "addressType");
        if !old_type.is_empty() && old_type != address_type {
            errs.push(Cause::immutable("addressType", address_type));
        }
    }
}

fn slice_endpoint(endpoint: &Value, address_type: &str, path: &str, errs: &mut Errs) {
    let addresses_path = child(path, "addresses");
    let addresses = array(endpoint, "addresses");
    if addresses.is_empty() {
        errs.push(required_because(&addresses_path, "must contain at least 1 address"));
    } else if addresses.len() > MAX_SLICE_ADDRESSES {
        errs.push(too_many(&addresses_path, addresses.len(), MAX_SLICE_ADDRESSES));
    }
    for (i, address) in addresses.iter().enumerate() {
        let address = show(address);
        let p = index(&addresses_path, i);
        match address_type {
            "IPv4" => {
                let problems = names::is_valid_ipv4_address(&address);
                if problems.is_empty() {
                    non_special_ip(&address, &p, true, errs);
                } else {
                    push_all(errs, &p, &address, problems);
                }
            }
            "IPv6" => {
                let problems = names::is_valid_ipv6_address(&address);
                if problems.is_empty() {
                    non_special_ip(&address, &p, true, errs);
                } else {
                    push_all(errs, &p, &address, problems);
                }
            }
            "FQDN" => fully_qualified_domain_name(&address, &p, errs),
            _ => {}
        }
    }
    if let Some(node) = opt_string(endpoint, "nodeName") {
        push_all(errs, &child(path, "nodeName"), node, names::name_is_dns_subdomain(node, false));
    }
    let topology = field(endpoint, "deprecatedTopology");
    let topology_path = child(path, "deprecatedTopology");
    if let Some(count) = topology.and_then(Value::as_object).map(|t| t.len()).filter(|n| *n > MAX_TOPOLOGY_LABELS) {
        errs.push(too_many(&topology_path, count, MAX_TOPOLOGY_LABELS));
    }
    labels(topology, &topology_path, errs);
    if let Some(hostname) = opt_string(endpoint, "hostname") {
        dns_label(hostname, &child(path, "hostname"), errs);
    }
    if let Some(zones) = field(endpoint, "hints").map(|h| array(h, "forZones")) {
        let zones_path = child(&child(path, "hints"), "forZones");
        if zones.len() > 8 {
            errs.push(too_many(&zones_path, zones.len(), 8));
        }
        let mut seen = HashSet::new();
        for (i, zone) in zones.iter().enumerate() {
            let name = string(zone, "name");
            let p = child(&index(&zones_path, i), "name");
            if !seen.insert(name) {
                errs.push(Cause::duplicate(&p, name));
            }
            push_all(errs, &p, name, names::is_valid_label_value(name));
        }
    }
}

/// `IsFullyQualifiedDomainName`: a DNS subdomain of at least two labels (a trailing dot is fine).
fn fully_qualified_domain_name(name: &str, path: &str, errs: &mut Errs) {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        errs.push(Cause::required(path));
        return;
    }
    if !name.contains('.') {
        errs.push(Cause::invalid(path, name, "should be a domain with at least two segments separated by dots"));
    }
    dns_subdomain(name, path, errs);
}

// ----------------------------------------------------------------------------------- ingresses

/// `IsWildcardDNS1123Subdomain`: `*.` followed by a DNS subdomain.
fn wildcard_subdomain(host: &str, path: &str, errs: &mut Errs) {
    const FMT: &str = "\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
    if host.len() > 253 {
        errs.push(Cause::invalid(path, host, names::max_len_error(253)));
    }
    let ok = host.strip_prefix("*.").is_some_and(|rest| names::is_dns1123_subdomain(rest).is_empty());
    if !ok {
        errs.push(Cause::invalid(
            path,
            host,
            names::regex_error(
                "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character",
                FMT,
                &["*.example.com"],
            ),
        ));
    }
}

/// An ingress host: a DNS name, not an IP, optionally with a leading wildcard label.
fn ingress_host(host: &str, path: &str, errs: &mut Errs) {
    if parse_ip(host).is_some() {
        errs.push(Cause::invalid(path, host, "must be a DNS name, not an IP address"));
    }
    if host.contains('*') {
        wildcard_subdomain(host, path, errs);
    } else {
        dns_subdomain(host, path, errs);
    }
}

/// `ValidateIngressSpec`.
pub(super) fn validate_ingress(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let rules = array(spec, "rules");
    let default_backend = field(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.push(invalid_go(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        ingress_backend(backend, "spec.defaultBackend", errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = index("spec.rules", i);
        let host = string(rule, "host");
        if !host.is_empty() {
            ingress_host(host, &child(&p, "host"), errs);
        }
        if let Some(http) = field(rule, "http") {
            let hp = child(&p, "http");
            let paths = array(http, "paths");
            if paths.is_empty() {
                errs.push(Cause::required(child(&hp, "paths")));
            }
            for (j, path) in paths.iter().enumerate() {
                ingress_path(path, &index(&child(&hp, "paths"), j), errs);
            }
        }
    }
    for (i, tls) in array(spec, "tls").iter().enumerate() {
        let p = index("spec.tls", i);
        for (j, host) in array(tls, "hosts").iter().enumerate() {
            let host = show(host);
            let hp = index(&child(&p, "hosts"), j);
            if host.contains('*') {
                wildcard_subdomain(&host, &hp, errs);
            } else {
                dns_subdomain(&host, &hp, errs);
            }
        }
        let secret = string(tls, "secretName");
        if !secret.is_empty() {
            push_all(errs, &child(&p, "secretName"), secret, names::name_is_dns_subdomain(secret, false));
        }
    }
    if let Some(class) = opt_string(spec, "ingressClassName") {
        push_all(errs, "spec.ingressClassName", class, names::name_is_dns_subdomain(class, false));
    }
}

/// `validateHTTPIngressPath`.
fn ingress_path(path: &Value, p: &str, errs: &mut Errs) {
    let Some(path_type) = opt_string(path, "pathType") else {
        errs.push(required_because(child(p, "pathType"), "pathType must be specified"));
        return;
    };
    let value = string(path, "path");
    let path_field = child(p, "path");
    match path_type {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(Cause::invalid(&path_field, value, "must be an absolute path"));
            }
            if !value.is_empty() {
                for bad in ["//", "/./", "/../", "%2f", "%2F"] {
                    if value.contains(bad) {
                        errs.push(Cause::invalid(&path_field, value, format!("must not contain '{bad}'")));
                    }
                }
                for bad in ["/..", "/."] {
                    if value.ends_with(bad) {
                        errs.push(Cause::invalid(&path_field, value, format!("cannot end with '{bad}'")));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(Cause::invalid(&path_field, value, "must be an absolute path"));
            }
        }
        other => {
            errs.push(Cause::not_supported(child(p, "pathType"), other, &["Exact", "ImplementationSpecific", "Prefix"]))
        }
    }
    ingress_backend(field(path, "backend").unwrap_or(&Value::Null), &child(p, "backend"), errs);
}

/// `validateIngressBackend`: a service (name and port number or name) or a resource.
fn ingress_backend(backend: &Value, path: &str, errs: &mut Errs) {
    match (field(backend, "resource"), field(backend, "service")) {
        (Some(_), Some(_)) => errs.push(Cause::invalid(path, "", "cannot set both resource and service backends")),
        (Some(resource), None) => {
            let rp = child(path, "resource");
            if let Some(group) = opt_string(resource, "apiGroup").filter(|g| !g.is_empty()) {
                dns_subdomain(group, &child(&rp, "apiGroup"), errs);
            }
            for name in ["kind", "name"] {
                let value = string(resource, name);
                if value.is_empty() {
                    errs.push(Cause::required(child(&rp, name)));
                } else {
                    push_all(errs, &child(&rp, name), value, super::path_segment_name(value, false));
                }
            }
        }
        (None, Some(service)) => {
            let sp = child(path, "service");
            let name = string(service, "name");
            if name.is_empty() {
                errs.push(Cause::required(child(&sp, "name")));
            } else {
                push_all(errs, &child(&sp, "name"), name, names::name_is_dns1035_label(name, false));
            }
            let port = field(service, "port").unwrap_or(&Value::Null);
            let port_name = string(port, "name");
            let number = int(port, "number").unwrap_or(0);
            let pp = child(&sp, "port");
            match (port_name.is_empty(), number == 0) {
                (false, false) => errs.push(Cause::invalid(path, "", "cannot set both port name & port number")),
                (false, true) => push_all(errs, &child(&pp, "name"), port_name, names::is_valid_port_name(port_name)),
                (true, false) => push_all(errs, &child(&pp, "number"), number, names::is_valid_port_num(number)),
                (true, true) => errs.push(required_because(path, "port name or number is required")),
            }
        }
        (None, None) => errs.push(Cause::invalid(path, "", "resource or service backend is required")),
    }
}

/// `ValidateIngressClass` and, on updates, the immutable controller.
pub(super) fn validate_ingress_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let controller = string(spec, "controller");
    let p = "spec.controller";
    if controller.len() > 250 {
        errs.push(too_long(p, 250));
    }
    domain_prefixed_path(controller, p, errs);
    if let Some(params) = field(spec, "parameters") {
        let pp = "spec.parameters";
        if let Some(group) = opt_string(params, "apiGroup").filter(|g| !g.is_empty()) {
            dns_subdomain(group, &child(pp, "apiGroup"), errs);
        }
        for name in ["kind", "name"] {
            let value = string(params, name);
            if value.is_empty() {
                errs.push(Cause::required(child(pp, name)));
            } else {
                push_all(errs, &child(pp, name), value, super::path_segment_name(value, false));
            }
        }
        let namespace = opt_string(params, "namespace");
        match opt_string(params, "scope") {
            None | Some("Cluster") => {
                if namespace.is_some() {
                    errs.push(Cause::forbidden(child(pp, "namespace"), "`parameters.scope` is set to 'Cluster'"));
                }
            }
            Some("Namespace") => match namespace {
                None | Some("") => {
                    errs.push(required_because(child(pp, "namespace"), "`parameters.scope` is set to 'Namespace'"))
                }
                Some(ns) => dns_label(ns, &child(pp, "namespace"), errs),
            },
            Some(other) => errs.push(Cause::not_supported(child(pp, "scope"), other, &["Cluster", "Namespace"])),
        }
    }
    if let Some(old) = old {
        let old_controller = field(old, "spec").map(|s| string(s, "controller")).unwrap_or("");
        if !old_controller.is_empty() && old_controller != controller {
            errs.push(Cause::immutable(p, controller));
        }
    }
}

/// `IsDomainPrefixedPath`: `example.com/some/path`.
fn domain_prefixed_path(value: &str, path: &str, errs: &mut Errs) {
    if value.is_empty() {
        errs.push(Cause::required(path));
        return;
    }
    let Some((host, rest)) = value.split_once('/').filter(|(h, r)| !h.is_empty() && !r.is_empty()) else {
        errs.push(Cause::invalid(path, value, "must be a domain-prefixed path (such as \"acme.io/foo\")"));
        return;
    };
    dns_subdomain(host, path, errs);
    let valid_path = rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !valid_path {
        errs.push(Cause::invalid(
            path,
            rest,
            names::regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
        ));
    }
}

// ---------------------------------------------------------------------------- network policies

/// `ValidateNetworkPolicySpec`.
pub(super) fn validate_network_policy(obj: &Value, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    if let Some(selector) = field(spec, "podSelector") {
        label_selector(selector, "spec.podSelector", errs);
    }
    for (i, rule) in array(spec, "ingress").iter().enumerate() {
        let p = index("spec.ingress", i);
        for (j, port) in array(rule, "ports").iter().enumerate() {
            policy_port(port, &index(&child(&p, "ports"), j), errs);
        }
        for (j, peer) in array(rule, "from").iter().enumerate() {
            policy_peer(peer, &index(&child(&p, "from"), j), errs);
        }
    }
    for (i, rule) in array(spec, "egress").iter().enumerate() {
        let p = index("spec.egress", i);
        for (j, peer) in array(rule, "to").iter().enumerate() {
            policy_peer(peer, &index(&child(&p, "to"), j), errs);
        }
        for (j, port) in array(rule, "ports").iter().enumerate() {
            policy_port(port, &index(&child(&p, "ports"), j), errs);
        }
    }
    let types = array(spec, "policyTypes");
    if types.len() > 2 {
        errs.push(invalid_go(
            "spec.policyTypes",
            &super::go_string_slice(types),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = show(t);
        if t != "Ingress" && t != "Egress" {
            errs.push(Cause::not_supported(index("spec.policyTypes", i), t, &["Ingress", "Egress"]));
        }
    }
}

/// `ValidateNetworkPolicyPort`.
fn policy_port(port: &Value, path: &str, errs: &mut Errs) {
    if let Some(proto) = opt_string(port, "protocol") {
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            errs.push(Cause::not_supported(child(path, "protocol"), proto, &["TCP", "UDP", "SCTP"]));
        }
    }
    let end_port = int(port, "endPort");
    let end_path = child(path, "endPort");
    match field(port, "port") {
        Some(Value::String(name)) => {
            if let Some(end) = end_port {
                errs.push(Cause::invalid(&end_path, end, "may not be specified when `port` is non-numeric"));
            }
            push_all(errs, &child(path, "port"), name, names::is_valid_port_name(name));
        }
        Some(number) => {
            let number = super::as_int(number).unwrap_or(0);
            push_all(errs, &child(path, "port"), number, names::is_valid_port_num(number));
            if let Some(end) = end_port {
                if end < number {
                    errs.push(Cause::invalid(&end_path, number, "must be greater than or equal to `port`"));
                }
                push_all(errs, &end_path, end, names::is_valid_port_num(end));
            }
        }
        None => {
            if let Some(end) = end_port {
                errs.push(Cause::invalid(&end_path, end, "may not be specified when `port` is not specified"));
            }
        }
    }
}

/// `ValidateNetworkPolicyPeer`.
fn policy_peer(peer: &Value, path: &str, errs: &mut Errs) {
    let mut peers = 0;
    for name in ["podSelector", "namespaceSelector"] {
        if let Some(selector) = field(peer, name) {
            peers += 1;
            label_selector(selector, &child(path, name), errs);
        }
    }
    let ip_block = field(peer, "ipBlock");
    if let Some(block) = ip_block {
        peers += 1;
        let bp = child(path, "ipBlock");
        let block_cidr = string(block, "cidr");
        if block_cidr.is_empty() {
            errs.push(Cause::required(child(&bp, "cidr")));
        } else if let Some(outer) = cidr(block_cidr, &child(&bp, "cidr"), errs) {
            for (i, except) in array(block, "except").iter().enumerate() {
                let except = show(except);
                let ep = index(&child(&bp, "except"), i);
                if let Some(inner) = cidr(&except, &ep, errs) {
                    if !cidr_contains(outer, inner.0) || outer.1 >= inner.1 {
                        errs.push(Cause::invalid(&ep, &except, "must be a strict subset of `cidr`"));
                    }
                }
            }
        }
    }
    if peers == 0 {
        errs.push(required_because(path, "must specify a peer"));
    } else if peers > 1 && ip_block.is_some() {
        errs.push(Cause::forbidden(path, "may not specify both ipBlock and another peer"));
    }
}
