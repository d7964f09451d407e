//! Services: upstream's `ValidateService` and `ValidateServiceUpdate` (ports, types, session
//! affinity, cluster IPs and IP families, external IPs, traffic policies, load balancers).

use std::collections::HashSet;
use std::net::IpAddr;

use podnet_meta::names;
use serde_json::Value;

use super::{
    array, child, cidr, dns_label, dns_subdomain, field, go_string_slice, index, int, invalid_go, labels,
    non_special_ip, opt_string, parse_ip, port_num_or_name, protocol, push_all, qualified_name, show, string, Errs,
};
use crate::status::Cause;

const MAX_CLIENT_IP_AFFINITY_SECONDS: i64 = 86400;
const LB_SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// The `type` of a service spec, `ClusterIP` when unset (what defaulting makes of it).
fn service_type(spec: &Value) -> &str {
    match string(spec, "type") {
        "" => "ClusterIP",
        other => other,
    }
}

/// The cluster IPs of a spec: `clusterIPs`, or the single `clusterIP` when that is all there is.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = array(spec, "clusterIPs").iter().map(show).collect();
    if !ips.is_empty() {
        return ips;
    }
    match string(spec, "clusterIP") {
        "" => Vec::new(),
        ip => vec![ip.to_string()],
    }
}

fn is_headless(spec: &Value) -> bool {
    let ips = cluster_ips(spec);
    ips.len() == 1 && ips[0] == "None"
}

/// `ValidateService`, and `ValidateServiceUpdate` when `old` is given.
pub(super) fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let spec = field(obj, "spec").unwrap_or(&Value::Null);
    let old_spec = old.map(|o| field(o, "spec").unwrap_or(&Value::Null));
    let ty = service_type(spec);
    let headless = is_headless(spec);
    let ports = array(spec, "ports");

    let cluster_ip_changed = match old_spec {
        Some(old_spec) => validate_update(spec, old_spec, errs),
        None => false,
    };

    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(Cause::required("spec.ports"));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => {
            errs.push(Cause::invalid(
                "spec.clusterIPs[0]",
                "None",
                format!("may not be set to 'None' for {ty} services"),
            ));
        }
        "ExternalName" => {
            if !cluster_ips(spec).is_empty() {
                errs.push(Cause::forbidden("spec.clusterIPs", "may not be set for ExternalName services"));
            }
            if !array(spec, "ipFamilies").is_empty() {
                errs.push(Cause::forbidden("spec.ipFamilies", "may not be set for ExternalName services"));
            }
            if field(spec, "ipFamilyPolicy").is_some() {
                errs.push(Cause::forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"));
            }
            let external_name = string(spec, "externalName");
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                errs.push(Cause::required("spec.externalName"));
            } else {
                dns_subdomain(cname, "spec.externalName", errs);
            }
        }
        _ => {}
    }

    let mut port_names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        validate_port(port, ports.len() > 1, &mut port_names, &index("spec.ports", i), errs);
    }
    labels(field(spec, "selector"), "spec.selector", errs);

    if let Some(affinity) = opt_string(spec, "sessionAffinity") {
        match affinity {
            "" => errs.push(Cause::required("spec.sessionAffinity")),
            "None" => {}
            "ClientIP" => {
                let timeout = field(spec, "sessionAffinityConfig")
                    .and_then(|c| field(c, "clientIP"))
                    .and_then(|c| int(c, "timeoutSeconds"));
                if let Some(timeout) = timeout {
                    if timeout <= 0 || timeout > MAX_CLIENT_IP_AFFINITY_SECONDS {
                        errs.push(Cause::invalid(
                            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                            timeout,
                            format!("must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"),
                        ));
                    }
                }
            }
            other => errs.push(Cause::not_supported("spec.sessionAffinity", other, &["ClientIP", "None"])),
        }
    }

    validate_cluster_ips(spec, cluster_ip_changed, errs);

    for (i, ip) in array(spec, "externalIPs").iter().enumerate() {
        let ip = show(ip);
        let p = index("spec.externalIPs", i);
        let problems = names::is_valid_ip(&ip);
        if problems.is_empty() {
            non_special_ip(&ip, &p, false, errs);
        } else {
            push_all(errs, &p, &ip, problems);
        }
    }

    if let Some(raw_type) = opt_string(spec, "type") {
        let supported = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
        if raw_type.is_empty() {
            errs.push(Cause::required("spec.type"));
        } else if !supported.contains(&raw_type) {
            errs.push(Cause::not_supported("spec.type", raw_type, &supported));
        }
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(Cause::forbidden(
                    child(&index("spec.ports", i), "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // Duplicate node ports and ports, per protocol.
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let node_port = int(port, "nodePort").unwrap_or(0);
        if node_port != 0 && !node_ports.insert((string(port, "protocol"), node_port)) {
            errs.push(Cause::duplicate(child(&index("spec.ports", i), "nodePort"), node_port));
        }
    }
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (proto, number) = (string(port, "protocol"), int(port, "port").unwrap_or(0));
        if !seen.insert((proto, number)) {
            errs.push(Cause::duplicate(index("spec.ports", i), format!("{number}/{proto}")));
        }
    }

    // Load balancer fields.
    let ranges = array(spec, "loadBalancerSourceRanges");
    let annotation = field(obj, "metadata")
        .and_then(|m| field(m, "annotations"))
        .and_then(|a| opt_string(a, LB_SOURCE_RANGES_ANNOTATION));
    if !ranges.is_empty() {
        let p = "spec.LoadBalancerSourceRanges";
        if ty != "LoadBalancer" {
            errs.push(Cause::forbidden(p, "may only be used when `type` is 'LoadBalancer'"));
        }
        for (i, range) in ranges.iter().enumerate() {
            cidr(show(range).trim(), &index(p, i), errs);
        }
    } else if let Some(value) = annotation {
        let p = format!("metadata.annotations[{LB_SOURCE_RANGES_ANNOTATION}]");
        if ty != "LoadBalancer" {
            errs.push(Cause::forbidden(&p, "may only be used when `type` is 'LoadBalancer'"));
        }
        let value = value.trim();
        if !value.is_empty() {
            for range in value.split(',') {
                cidr(range.trim(), &p, errs);
            }
        }
    }
    if field(spec, "allocateLoadBalancerNodePorts").is_some() && ty != "LoadBalancer" {
        errs.push(Cause::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if let Some(class) = opt_string(spec, "loadBalancerClass") {
        if ty != "LoadBalancer" {
            errs.push(Cause::forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"));
        } else {
            qualified_name(class, "spec.loadBalancerClass", errs);
        }
    }

    // Traffic policies.
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && !array(spec, "externalIPs").is_empty());
    let external_policy = string(spec, "externalTrafficPolicy");
    if !externally_accessible {
        if !external_policy.is_empty() {
            errs.push(Cause::invalid(
                "spec.externalTrafficPolicy",
                external_policy,
                "may only be set for externally-accessible services",
            ));
        }
    } else if !external_policy.is_empty() && external_policy != "Cluster" && external_policy != "Local" {
        errs.push(Cause::not_supported("spec.externalTrafficPolicy", external_policy, &["Cluster", "Local"]));
    }
    let needs_health_check = ty == "LoadBalancer" && external_policy == "Local";
    let health_check = int(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_health_check && health_check != 0 {
        errs.push(Cause::invalid(
            "spec.healthCheckNodePort",
            health_check,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if health_check != 0 {
        push_all(errs, "spec.healthCheckNodePort", health_check, names::is_valid_port_num(health_check));
    }
    if let Some(policy) = opt_string(spec, "internalTrafficPolicy") {
        if policy != "Cluster" && policy != "Local" {
            errs.push(Cause::not_supported("spec.internalTrafficPolicy", policy, &["Cluster", "Local"]));
        }
    }
    if let Some(distribution) = opt_string(spec, "trafficDistribution") {
        let supported = ["PreferClose", "PreferSameNode", "PreferSameZone"];
        if !supported.contains(&distribution) {
            errs.push(Cause::not_supported("spec.trafficDistribution", distribution, &supported));
        }
    }
}

/// `validateServicePort`.
fn validate_port<'a>(port: &'a Value, require_name: bool, seen: &mut HashSet<&'a str>, path: &str, errs: &mut Errs) {
    let name = string(port, "name");
    if require_name && name.is_empty() {
        errs.push(Cause::required(child(path, "name")));
    } else if !name.is_empty() {
        dns_label(name, &child(path, "name"), errs);
        if !seen.insert(name) {
            errs.push(Cause::duplicate(child(path, "name"), name));
        }
    }
    let number = int(port, "port").unwrap_or(0);
    push_all(errs, &child(path, "port"), number, names::is_valid_port_num(number));
    if let Some(proto) = opt_string(port, "protocol") {
        protocol(Some(proto), &child(path, "protocol"), errs);
    }
    if let Some(target) = field(port, "targetPort") {
        port_num_or_name(Some(target), &child(path, "targetPort"), errs);
    }
    let node_port = int(port, "nodePort").unwrap_or(0);
    if node_port != 0 {
        push_all(errs, &child(path, "nodePort"), node_port, names::is_valid_port_num(node_port));
    }
    if let Some(app_protocol) = opt_string(port, "appProtocol") {
        qualified_name(app_protocol, &child(path, "appProtocol"), errs);
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ips(spec: &Value, cluster_ip_changed: bool, errs: &mut Errs) {
    let families = array(spec, "ipFamilies");
    let mut seen = HashSet::new();
    for (i, family) in families.iter().enumerate() {
        let family = show(family);
        let p = index("spec.ipFamilies", i);
        if family != "IPv4" && family != "IPv6" {
            errs.push(Cause::not_supported(&p, &family, &["IPv4", "IPv6"]));
        }
        if !seen.insert(family.clone()) {
            errs.push(Cause::duplicate(&p, family));
        }
    }
    let policy = opt_string(spec, "ipFamilyPolicy");
    if let Some(policy) = policy {
        let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !supported.contains(&policy) {
            errs.push(Cause::not_supported("spec.ipFamilyPolicy", policy, &supported));
        }
    }
    if families.len() > 2 {
        errs.push(invalid_go("spec.ipFamilies", &go_string_slice(families), "may only hold up to 2 values"));
    }
    if policy == Some("SingleStack") && families.len() == 2 {
        errs.push(invalid_go(
            "spec.ipFamilies",
            &go_string_slice(families),
            "must be at most one value when `ipFamilyPolicy` is 'SingleStack'",
        ));
    }
    if service_type(spec) == "ExternalName" {
        return;
    }

    let raw = array(spec, "clusterIPs");
    let ips: Vec<String> = raw.iter().map(show).collect();
    let shown = go_string_slice(raw);
    if ips.len() > 2 {
        errs.push(invalid_go("spec.clusterIPs", &shown, "may only hold up to 2 values"));
    }
    let cluster_ip = string(spec, "clusterIP");
    if !cluster_ip_changed && !ips.is_empty() && cluster_ip != ips[0] {
        errs.push(invalid_go("spec.clusterIPs", &shown, "first value must match `clusterIP`"));
    }
    if policy == Some("SingleStack") && ips.len() == 2 {
        errs.push(invalid_go(
            "spec.clusterIPs",
            &shown,
            "must be at most one value when `ipFamilyPolicy` is 'SingleStack'",
        ));
    }
    // Without clusterIPs, the single clusterIP is what the registry turns into clusterIPs[0].
    let ips = if ips.is_empty() { cluster_ips(spec) } else { ips };
    if ips.first().is_some_and(|ip| ip == "None") {
        if ips.len() > 1 {
            errs.push(invalid_go("spec.clusterIPs", &shown, "'None' must be the first and only value"));
        }
        return;
    }
    let mut parsed = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let problems = names::is_valid_ip(ip);
        if problems.is_empty() {
            parsed.extend(parse_ip(ip));
        } else {
            push_all(errs, &index("spec.clusterIPs", i), ip, problems);
        }
    }
    if parsed.len() == 2 && parsed[0].is_ipv4() == parsed[1].is_ipv4() {
        errs.push(invalid_go("spec.clusterIPs", &shown, "may specify no more than one IP for each IP family"));
    }
    for (i, ip) in parsed.iter().enumerate() {
        match families.get(i).map(show).as_deref() {
            Some("IPv4") if matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none()) => {
                errs.push(Cause::invalid(
                    index("spec.clusterIPs", i),
                    &ips[i],
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            Some("IPv6") if ip.is_ipv4() => {
                errs.push(Cause::invalid(
                    index("spec.clusterIPs", i),
                    &ips[i],
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            _ => {}
        }
    }
}

/// The update-only rules; returns whether the cluster IP was changed (already reported).
fn validate_update(spec: &Value, old: &Value, errs: &mut Errs) -> bool {
    let mut changed = false;
    if service_type(spec) != "ExternalName"
        && service_type(old) != "ExternalName"
        && !(is_headless(spec) && is_headless(old))
    {
        let (new_ip, old_ip) = (string(spec, "clusterIP"), string(old, "clusterIP"));
        if !old_ip.is_empty() && !new_ip.is_empty() && new_ip != old_ip {
            errs.push(Cause::immutable("spec.clusterIP", new_ip));
            changed = true;
        } else {
            let new_ips = array(spec, "clusterIPs");
            let old_ips = array(old, "clusterIPs");
            if !new_ips.is_empty() {
                if old_ips.len() > new_ips.len() && new_ips.is_empty() {
                    errs.push(Cause::invalid("spec.clusterIPs[0]", "", "primary clusterIP can not be unset"));
                }
                for (i, (o, n)) in old_ips.iter().zip(new_ips).enumerate() {
                    // A secondary IP may be released (downgrade) or added (upgrade), not changed.
                    if o != n {
                        errs.push(invalid_go(
                            index("spec.clusterIPs", i),
                            &go_string_slice(new_ips),
                            "may not change once set",
                        ));
                        changed = true;
                    }
                }
            }
        }
    }
    let needs_health_check =
        |s: &Value| service_type(s) == "LoadBalancer" && string(s, "externalTrafficPolicy") == "Local";
    if needs_health_check(spec)
        && needs_health_check(old)
        && int(spec, "healthCheckNodePort").unwrap_or(0) != int(old, "healthCheckNodePort").unwrap_or(0)
    {
        errs.push(Cause::forbidden("spec.healthCheckNodePort", "field is immutable"));
    }
    if service_type(spec) == "LoadBalancer" && service_type(old) == "LoadBalancer" {
        let (new_class, old_class) = (opt_string(spec, "loadBalancerClass"), opt_string(old, "loadBalancerClass"));
        if new_class != old_class {
            errs.push(Cause::invalid("spec.loadBalancerClass", new_class.unwrap_or("null"), "may not change once set"));
        }
    }
    changed
}
