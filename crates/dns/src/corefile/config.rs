//! A server block's directives as typed plugin configurations, validated and sorted in
//! plugin.cfg order.

use std::collections::HashSet;

use super::error::{CorefileError, ErrorKind};
use super::options::{self, Reader};
use super::options::{
    CacheOptions, ErrorsOptions, ForwardOptions, HealthOptions, HostsOptions, KubernetesOptions, LoadBalanceOptions,
    LogOptions, LoopOptions, PrometheusOptions, ReadyOptions, ReloadOptions,
};
use super::order;
use super::{Directive, ServerBlock};

/// One plugin's typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginConfig {
    Reload(ReloadOptions),
    Ready(ReadyOptions),
    Health(HealthOptions),
    Prometheus(PrometheusOptions),
    Errors(ErrorsOptions),
    Log(LogOptions),
    LoadBalance(LoadBalanceOptions),
    Cache(CacheOptions),
    Hosts(HostsOptions),
    Kubernetes(KubernetesOptions),
    Loop(LoopOptions),
    Forward(ForwardOptions),
}

/// A configured plugin and the Corefile line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredPlugin {
    pub name: &'static str,
    pub line: usize,
    pub config: PluginConfig,
}

impl ServerBlock {
    /// The block's plugins, typed and validated, in plugin.cfg order. An unknown plugin, a
    /// plugin used twice or a bad option is an error naming its line.
    pub fn configure(&self) -> Result<Vec<ConfiguredPlugin>, CorefileError> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(self.plugins.len());
        for d in &self.plugins {
            let Some(&name) = order::SUPPORTED.iter().find(|n| **n == d.name) else {
                let kind = if order::position(&d.name).is_some() {
                    ErrorKind::UnsupportedPlugin(d.name.clone())
                } else {
                    ErrorKind::UnknownPlugin(d.name.clone())
                };
                return Err(CorefileError::new(&self.file, d.line, kind));
            };
            let r = Reader { file: &self.file, plugin: name };
            if !seen.insert(name) {
                return Err(r.err(d.line, "plugin used more than once in this server block"));
            }
            out.push(ConfiguredPlugin { name, line: d.line, config: configure_one(&r, d, &self.zones)? });
        }
        out.sort_by_key(|p| order::position(p.name));
        Ok(out)
    }
}

fn configure_one(r: &Reader, d: &Directive, zones: &[String]) -> Result<PluginConfig, CorefileError> {
    use PluginConfig as P;
    Ok(match r.plugin {
        "reload" => P::Reload(options::reload(r, d, zones)?),
        "ready" => P::Ready(options::ready(r, d, zones)?),
        "health" => P::Health(options::health(r, d, zones)?),
        "prometheus" => P::Prometheus(options::prometheus(r, d, zones)?),
        "errors" => P::Errors(options::errors(r, d, zones)?),
        "log" => P::Log(options::log(r, d, zones)?),
        "loadbalance" => P::LoadBalance(options::loadbalance(r, d, zones)?),
        "cache" => P::Cache(options::cache(r, d, zones)?),
        "hosts" => P::Hosts(options::hosts(r, d, zones)?),
        "kubernetes" => P::Kubernetes(options::kubernetes(r, d, zones)?),
        "loop" => P::Loop(options::loop_detect(r, d, zones)?),
        "forward" => P::Forward(options::forward(r, d, zones)?),
        other => unreachable!("plugin {other} is in SUPPORTED"),
    })
}
