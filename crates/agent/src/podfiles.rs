//! The files a pod sees that kubelet writes for it: `/etc/resolv.conf` from the pod's dnsPolicy
//! and dnsConfig, `/etc/hosts` and `/etc/hostname`. Pure: the agent hands the contents to the
//! runtime, which mounts them into the sandbox.

use k8s_openapi::api::core::v1::Pod;

/// The cluster's DNS settings and the node's own resolver, as kubelet gets them from
/// `--cluster-dns`, `--cluster-domain` and `--resolv-conf`.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// The cluster DNS Service's address (10.96.0.10 by default).
    pub cluster_dns: Vec<String>,
    /// The cluster domain (cluster.local).
    pub cluster_domain: String,
    /// The node's resolv.conf, for dnsPolicy Default (and ClusterFirst on hostNetwork).
    pub node_resolv_conf: String,
}

/// Kubelet's limits on what it writes: at most 3 nameservers and 32 search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The parts of a resolv.conf.
#[derive(Debug, Default, PartialEq)]
struct ResolvConf {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

impl ResolvConf {
    fn parse(text: &str) -> ResolvConf {
        let mut out = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(str::to_string)),
                Some("search") | Some("domain") => out.searches = words.map(str::to_string).collect(),
                Some("options") => out.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        out
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// Merges `options` as kubelet does: a later option of the same name replaces an earlier one.
fn merge_options(base: &mut Vec<String>, extra: impl IntoIterator<Item = String>) {
    for opt in extra {
        let name = opt.split(':').next().unwrap_or(&opt).to_string();
        base.retain(|o| o.split(':').next() != Some(name.as_str()));
        base.push(opt);
    }
}

/// `/etc/resolv.conf` for `pod`, as kubelet writes it for its dnsPolicy (ClusterFirst by default;
/// ClusterFirstWithHostNet, Default and None) and dnsConfig.
pub fn resolv_conf(pod: &Pod, dns: &DnsSettings) -> String {
    let spec = pod.spec.as_ref();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        // On the host network ClusterFirst falls back to Default, as in kubelet.
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let node = ResolvConf::parse(&dns.node_resolv_conf);
    let mut conf = if policy == "None" {
        ResolvConf::default()
    } else if cluster_first && !dns.cluster_dns.is_empty() {
        let domain = &dns.cluster_domain;
        let mut searches = vec![format!("{namespace}.svc.{domain}"), format!("svc.{domain}"), domain.clone()];
        searches.extend(node.searches.iter().filter(|s| !searches.contains(s)).cloned().collect::<Vec<_>>());
        ResolvConf { nameservers: dns.cluster_dns.clone(), searches, options: vec!["ndots:5".into()] }
    } else {
        node
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for ns in cfg.nameservers.iter().flatten() {
            if !conf.nameservers.contains(ns) {
                conf.nameservers.push(ns.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !conf.searches.contains(s) {
                conf.searches.push(s.clone());
            }
        }
        let extra = cfg.options.iter().flatten().filter_map(|o| {
            let name = o.name.clone()?;
            Some(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            })
        });
        merge_options(&mut conf.options, extra);
    }
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    conf.render()
}

/// The pod's hostname and, with a subdomain, its fully qualified name: spec.hostname (else the
/// pod's name, cut to 63 characters), `<hostname>.<subdomain>.<namespace>.svc.<domain>`.
pub fn hostname(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let name = pod.metadata.name.as_deref().unwrap_or("pod");
    let mut host = spec.and_then(|s| s.hostname.clone()).unwrap_or_else(|| name.to_string());
    host.truncate(63);
    let host = host.trim_end_matches(['-', '.']).to_string();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let fqdn = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
        .map(|sub| format!("{host}.{sub}.{namespace}.svc.{cluster_domain}"));
    (host, fqdn)
}

/// `/etc/hosts` as kubelet writes it for a pod with its own network namespace: localhost
/// entries, the pod's IPs with its (fully qualified) hostname, then spec.hostAliases.
pub fn etc_hosts(pod: &Pod, pod_ips: &[String], cluster_domain: &str) -> String {
    let (host, fqdn) = hostname(pod, cluster_domain);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match &fqdn {
            Some(f) => out.push_str(&format!("{ip}\t{f}\t{host}\n")),
            None => out.push_str(&format!("{ip}\t{host}\n")),
        }
    }
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.clone().unwrap_or_default();
            if !names.is_empty() {
                out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec})).unwrap()
    }

    fn dns() -> DnsSettings {
        DnsSettings {
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            node_resolv_conf: "# node\nsearch lab.example\nnameserver 192.0.2.53\noptions edns0\n".into(),
        }
    }

    #[test]
    fn cluster_first_is_what_kubelet_writes() {
        let text = resolv_conf(&pod(json!({"containers": []})), &dns());
        assert_eq!(
            text,
            "search shop.svc.cluster.local svc.cluster.local cluster.local lab.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_cluster_first_falls_back_to_the_node_unless_with_host_net() {
        let p = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(resolv_conf(&p, &dns()), "search lab.example\nnameserver 192.0.2.53\noptions edns0\n");
        let p = pod(json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(resolv_conf(&p, &dns()).contains("nameserver 10.96.0.10\n"));
    }

    #[test]
    fn none_takes_only_dns_config_and_options_merge() {
        let p = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        assert_eq!(
            resolv_conf(&p, &dns()),
            "search ns1.svc.cluster-domain.example\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"
        );
        let p = pod(json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}));
        assert!(resolv_conf(&p, &dns()).ends_with("options ndots:1\n"));
    }

    #[test]
    fn default_policy_copies_the_node() {
        let p = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(resolv_conf(&p, &dns()), "search lab.example\nnameserver 192.0.2.53\noptions edns0\n");
    }

    #[test]
    fn hosts_name_the_pod_with_its_subdomain_and_aliases() {
        let p = pod(json!({"containers": [], "hostname": "h1", "subdomain": "sub",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}));
        let hosts = etc_hosts(&p, &["10.244.1.5".into()], "cluster.local");
        assert!(hosts.contains("10.244.1.5\th1.sub.shop.svc.cluster.local\th1\n"), "{hosts}");
        assert!(hosts.contains("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"));
        let (h, f) = hostname(&pod(json!({"containers": []})), "cluster.local");
        assert_eq!((h.as_str(), f), ("web-0", None));
    }
}
