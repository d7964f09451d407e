//! One sync of a Deployment, decided without the API: from the Deployment, the ReplicaSets it
//! owns and the phases of their pods, the [`Plan`] of writes that moves the rollout one step,
//! as upstream's `syncDeployment` does it (`sync.go`, `rolling.go`, `recreate.go`,
//! `progress.go`).
//!
//! Upstream interleaves decisions and writes; here the writes are applied to working copies of
//! the ReplicaSets and collected, so one sync is one pure function and the writes are made by the
//! caller in order. The control flow is upstream's: a sync that scales something stops there and
//! reports status; the next one starts from what the watch then shows.
//!
//! One deliberate difference: when deciding how far the new ReplicaSet may grow, a ReplicaSet
//! counts as `max(spec.replicas, status.replicas)` pods instead of `spec.replicas`, so pods that
//! an old ReplicaSet is still deleting count against maxSurge. Upstream counts desired replicas
//! only, which lets the number of pods exceed `replicas + maxSurge` while old pods go.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::util::{
    by_creation, by_revision, condition, desired_replicas_annotation, equal_ignore_hash, has_progress_deadline,
    is_rolling_update, max_replicas_annotation, max_surge, max_unavailable, new_condition, normalized_status,
    pod_template_hash, remove_condition, replicas, replicas_annotations_need_update, revision, rs_actual, rs_available,
    rs_ready, rs_replicas, set_condition, set_new_rs_annotations, set_replicas_annotations, POD_TEMPLATE_HASH,
    REVISION,
};
use crate::events::EventType;
use crate::replicaset::logic::{new_controller_ref, whole_seconds};

/// What a sync starts from.
pub struct Input<'a> {
    pub deployment: &'a Deployment,
    /// The ReplicaSets the Deployment owns (after adoption and release).
    pub replica_sets: Vec<ReplicaSet>,
    /// The phases of the pods of each of those ReplicaSets, by ReplicaSet uid, terminating pods
    /// included: a Recreate waits until none of the old ones runs.
    pub pod_phases: HashMap<String, Vec<Option<String>>>,
    pub now: Timestamp,
}

/// An event to record, once the write of the named ReplicaSet (if any) has succeeded.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
    pub after_write_of: Option<String>,
}

/// The writes of one sync, to make in this order.
#[derive(Debug, Default)]
pub struct Plan {
    /// The new ReplicaSet to create.
    pub create: Option<ReplicaSet>,
    /// ReplicaSets whose `spec.replicas`, `spec.minReadySeconds` or annotations changed (scale
    /// downs first).
    pub updates: Vec<ReplicaSet>,
    /// Old ReplicaSets beyond `revisionHistoryLimit`.
    pub deletes: Vec<ReplicaSet>,
    /// The new status, when it differs.
    pub status: Option<DeploymentStatus>,
    /// The new value of the Deployment's revision annotation, when it differs.
    pub revision: Option<String>,
    pub events: Vec<PlannedEvent>,
    /// When to look again even if nothing happens (the progress deadline).
    pub requeue_after: Option<Duration>,
}

struct Sync<'a> {
    d: &'a Deployment,
    rss: Vec<ReplicaSet>,
    /// `spec.replicas` of each ReplicaSet before this sync.
    original: Vec<i32>,
    /// Indices of updated ReplicaSets, in the order they were first changed.
    dirty: Vec<usize>,
    created: Option<usize>,
    deletes: Vec<usize>,
    /// The Deployment's status as this sync has changed it so far (conditions, collisionCount).
    status: DeploymentStatus,
    final_status: Option<DeploymentStatus>,
    revision: Option<String>,
    events: Vec<PlannedEvent>,
    pod_phases: HashMap<String, Vec<Option<String>>>,
    now: Timestamp,
}

/// Decides the writes of one sync of a Deployment.
pub fn plan(input: Input<'_>) -> Plan {
    let d = input.deployment;
    let original = input.replica_sets.iter().map(rs_replicas).collect();
    let mut s = Sync {
        d,
        original,
        rss: input.replica_sets,
        dirty: Vec::new(),
        created: None,
        deletes: Vec::new(),
        status: d.status.clone().unwrap_or_default(),
        final_status: None,
        revision: None,
        events: Vec::new(),
        pod_phases: input.pod_phases,
        now: input.now,
    };
    let spec = d.spec.as_ref();
    let selector = spec.map(|s| &s.selector);
    let selects_all = selector.is_none_or(|sel| {
        sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    if selects_all {
        s.event(
            EventType::Warning,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
            None,
        );
        if s.status.observed_generation < d.metadata.generation {
            let mut status = s.status.clone();
            status.observed_generation = d.metadata.generation;
            s.final_status = Some(status);
        }
        return s.finish();
    }
    if d.metadata.deletion_timestamp.is_some() {
        let new = s.sync_revision(false);
        s.final_status = Some(s.calculate_status(new));
        return s.finish();
    }
    s.check_paused_conditions();
    let paused = spec.and_then(|s| s.paused).unwrap_or(false);
    if paused || s.is_scaling_event() {
        s.sync_scale(paused);
    } else if is_rolling_update(d) {
        s.rollout_rolling();
    } else {
        s.rollout_recreate();
    }
    s.finish()
}

impl Sync<'_> {
    fn template(&self) -> PodTemplateSpec {
        self.d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default()
    }

    fn name(&self, i: usize) -> String {
        self.rss[i].metadata.name.clone().unwrap_or_default()
    }

    fn event(&mut self, type_: EventType, reason: &'static str, message: String, after_write_of: Option<String>) {
        self.events.push(PlannedEvent { type_, reason, message, after_write_of });
    }

    fn mark_dirty(&mut self, i: usize) {
        if Some(i) != self.created && !self.dirty.contains(&i) {
            self.dirty.push(i);
        }
    }

    /// The oldest ReplicaSet whose template is the Deployment's (`FindNewReplicaSet`).
    fn find_new(&self) -> Option<usize> {
        let template = self.template();
        let mut indices: Vec<usize> = (0..self.rss.len()).collect();
        indices.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
        indices.into_iter().find(|i| {
            self.rss[*i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &template))
        })
    }

    fn olds(&self, new: Option<usize>) -> Vec<usize> {
        (0..self.rss.len()).filter(|i| Some(*i) != new).collect()
    }

    fn sorted(&self, mut indices: Vec<usize>) -> Vec<usize> {
        indices.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
        indices
    }

    fn active(&self, indices: &[usize]) -> Vec<usize> {
        indices.iter().copied().filter(|i| rs_replicas(&self.rss[*i]) > 0).collect()
    }

    fn set_deployment_revision(&mut self, rev: &str) {
        let current = self
            .revision
            .clone()
            .or_else(|| self.d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned());
        if current.as_deref() != Some(rev) {
            self.revision = Some(rev.to_string());
        }
    }

    /// The new ReplicaSet with its annotations and revision brought up to date, created when
    /// `create` and there is none (`getAllReplicaSetsAndSyncRevision`).
    fn sync_revision(&mut self, create: bool) -> Option<usize> {
        let new = self.find_new();
        let max_old = self.olds(new).iter().map(|i| revision(&self.rss[*i])).max().unwrap_or(0);
        let new_revision = max_old + 1;
        let d = self.d;
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0);
        if let Some(i) = new {
            let mut rs = self.rss[i].clone();
            let annotations_changed = set_new_rs_annotations(d, &mut rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = Some(min_ready);
                self.rss[i] = rs;
                self.mark_dirty(i);
            }
            let rev = self.rss[i].metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned();
            if let Some(rev) = rev {
                self.set_deployment_revision(&rev);
            }
            if has_progress_deadline(d) && condition(&self.status, "Progressing").is_none() {
                let message = format!("Found new replica set {:?}", self.name(i));
                set_condition(
                    &mut self.status,
                    new_condition("Progressing", "True", "FoundNewReplicaSet", message, self.now),
                );
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let mut template = self.template();
        let hash = pod_template_hash(&template, self.status.collision_count);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![new_controller_ref("apps/v1", "Deployment", &d.metadata)]),
                creation_timestamp: Some(Time(whole_seconds(self.now))),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: Some(min_ready),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        set_new_rs_annotations(d, &mut rs, new_revision, false);
        self.rss.push(rs);
        let i = self.rss.len() - 1;
        self.created = Some(i);
        let count = self.new_rs_new_replicas(i);
        self.rss[i].spec.as_mut().expect("spec").replicas = Some(count);
        if count > 0 {
            let message = format!("Scaled up replica set {name} from 0 to {count}");
            self.event(EventType::Normal, "ScalingReplicaSet", message, Some(name.clone()));
        }
        self.set_deployment_revision(&new_revision.to_string());
        if has_progress_deadline(d) {
            let message = format!("Created new replica set {name:?}");
            set_condition(
                &mut self.status,
                new_condition("Progressing", "True", "NewReplicaSetCreated", message, self.now),
            );
        }
        Some(i)
    }

    /// How many replicas the new ReplicaSet may have now (`NewRSNewReplicas`); pods still
    /// present count against maxSurge (see the module documentation).
    fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let d = self.d;
        let desired = replicas(d);
        let current_new = rs_replicas(&self.rss[new]);
        if !is_rolling_update(d) {
            return desired;
        }
        let current: i32 = self.rss.iter().map(|rs| rs_replicas(rs).max(rs_actual(rs))).sum();
        let max_total = desired + max_surge(d);
        if current >= max_total {
            return current_new;
        }
        let scale_up = (max_total - current).min(desired - current_new);
        current_new + scale_up.max(0)
    }

    /// Sets `spec.replicas` of a ReplicaSet and the replicas annotations (`scaleReplicaSet`);
    /// whether the size changed.
    fn scale_replica_set(&mut self, i: usize, new_scale: i32, operation: &str) -> bool {
        let d = self.d;
        let (desired, max) = (replicas(d), replicas(d) + max_surge(d));
        let old_scale = rs_replicas(&self.rss[i]);
        let size_changed = old_scale != new_scale;
        if size_changed || replicas_annotations_need_update(&self.rss[i], desired, max) {
            self.rss[i].spec.get_or_insert_with(Default::default).replicas = Some(new_scale);
            set_replicas_annotations(&mut self.rss[i], desired, max);
            self.mark_dirty(i);
            if size_changed {
                let name = self.name(i);
                let message = format!("Scaled {operation} replica set {name} to {new_scale} from {old_scale}");
                self.event(EventType::Normal, "ScalingReplicaSet", message, Some(name));
            }
        }
        size_changed
    }

    /// `scaleReplicaSetAndRecordEvent`: scales when the size differs.
    fn scale(&mut self, i: usize, new_scale: i32) -> bool {
        let current = rs_replicas(&self.rss[i]);
        if current == new_scale {
            return false;
        }
        let operation = if current < new_scale { "up" } else { "down" };
        self.scale_replica_set(i, new_scale, operation)
    }

    fn rollout_rolling(&mut self) {
        let new = self.sync_revision(true);
        let Some(new_index) = new else {
            return;
        };
        if self.reconcile_new(new_index) || self.reconcile_old(new_index) {
            self.rollout_status(new);
            return;
        }
        if deployment_complete(self.d, self.d.status.as_ref().unwrap_or(&DeploymentStatus::default())) {
            self.cleanup(new);
        }
        self.rollout_status(new);
    }

    fn reconcile_new(&mut self, new: usize) -> bool {
        let desired = replicas(self.d);
        let current = rs_replicas(&self.rss[new]);
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale(new, desired);
        }
        let count = self.new_rs_new_replicas(new);
        self.scale(new, count)
    }

    /// Scales old ReplicaSets down as far as maxUnavailable allows (`reconcileOldReplicaSets`):
    /// unhealthy replicas first, then available ones, oldest ReplicaSets first.
    fn reconcile_old(&mut self, new: usize) -> bool {
        let olds = self.sorted(self.active(&self.olds(Some(new))));
        let old_count: i32 = olds.iter().map(|i| rs_replicas(&self.rss[*i])).sum();
        if old_count == 0 {
            return false;
        }
        let all_count: i32 = self.rss.iter().map(rs_replicas).sum();
        let min_available = replicas(self.d) - max_unavailable(self.d);
        let new_unavailable = rs_replicas(&self.rss[new]) - rs_available(&self.rss[new]);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy replicas first: they do not reduce availability.
        let mut cleaned = 0;
        for &i in &olds {
            if cleaned >= max_scaled_down {
                break;
            }
            let (spec, available) = (rs_replicas(&self.rss[i]), rs_available(&self.rss[i]));
            if spec == 0 || spec == available {
                continue;
            }
            let count = (max_scaled_down - cleaned).min(spec - available);
            self.scale(i, spec - count);
            cleaned += count;
        }
        // Then as many available ones as minAvailable allows.
        let available: i32 = self.rss.iter().map(rs_available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for &i in &olds {
                if scaled >= total {
                    break;
                }
                let spec = rs_replicas(&self.rss[i]);
                if spec == 0 {
                    continue;
                }
                let count = spec.min(total - scaled);
                self.scale(i, spec - count);
                scaled += count;
            }
        }
        cleaned + scaled > 0
    }

    /// Recreate: all old pods gone before the new ReplicaSet scales up (`rolloutRecreate`).
    fn rollout_recreate(&mut self) {
        let mut new = self.sync_revision(false);
        let olds = self.active(&self.olds(new));
        let mut scaled_down = false;
        for i in olds {
            scaled_down |= self.scale(i, 0);
        }
        if scaled_down || self.old_pods_running(new) {
            self.rollout_status(new);
            return;
        }
        if new.is_none() {
            new = self.sync_revision(true);
        }
        if let Some(i) = new {
            let desired = replicas(self.d);
            self.scale(i, desired);
        }
        if deployment_complete(self.d, self.d.status.as_ref().unwrap_or(&DeploymentStatus::default())) {
            self.cleanup(new);
        }
        self.rollout_status(new);
    }

    /// Whether a pod of an old ReplicaSet may still run (`oldPodsRunning`).
    fn old_pods_running(&self, new: Option<usize>) -> bool {
        let olds = self.olds(new);
        if olds.iter().map(|i| rs_actual(&self.rss[*i])).sum::<i32>() > 0 {
            return true;
        }
        olds.iter().filter_map(|i| self.rss[*i].metadata.uid.as_ref()).any(|uid| {
            self.pod_phases
                .get(uid)
                .is_some_and(|phases| phases.iter().any(|p| !matches!(p.as_deref(), Some("Succeeded" | "Failed"))))
        })
    }

    /// Whether the Deployment's replicas changed since its active ReplicaSets were last scaled
    /// (`isScalingEvent`).
    fn is_scaling_event(&mut self) -> bool {
        let new = self.sync_revision(false);
        let desired = replicas(self.d);
        let mut all = self.olds(new);
        all.extend(new);
        self.active(&all).iter().any(|i| desired_replicas_annotation(&self.rss[*i]).is_some_and(|a| a != desired))
    }

    /// A scaling event or a paused Deployment: scale without rolling (`sync`).
    fn sync_scale(&mut self, paused: bool) {
        let new = self.sync_revision(false);
        self.proportional_scale(new);
        if paused {
            self.cleanup(new);
        }
        self.final_status = Some(self.calculate_status(new));
    }

    /// Scales the active ReplicaSets to the Deployment's replicas (`scale`): the only active one
    /// takes them all; a saturated new one leaves the old ones none; otherwise, during a rolling
    /// update, each gets its proportion of the change.
    fn proportional_scale(&mut self, new: Option<usize>) {
        let d = self.d;
        let desired = replicas(d);
        let mut olds = self.olds(new);
        olds.sort_by(|a, b| by_creation(&self.rss[*b], &self.rss[*a]));
        // FindActiveOrLatest.
        if new.is_some() || !olds.is_empty() {
            let mut all = olds.clone();
            all.extend(new);
            let active = self.active(&all);
            let only = match active.len() {
                0 => new.or(olds.first().copied()),
                1 => Some(active[0]),
                _ => None,
            };
            if let Some(i) = only {
                if rs_replicas(&self.rss[i]) != desired {
                    self.scale(i, desired);
                }
                return;
            }
        }
        // A saturated new ReplicaSet: the old ones go.
        if let Some(i) = new {
            let rs = &self.rss[i];
            if desired_replicas_annotation(rs) == Some(desired)
                && rs_replicas(rs) == desired
                && rs_available(rs) == desired
            {
                for j in self.active(&olds) {
                    self.scale(j, 0);
                }
                return;
            }
        }
        if !is_rolling_update(d) {
            return;
        }
        let mut all = olds;
        all.extend(new);
        let mut all = self.active(&all);
        let all_replicas: i32 = all.iter().map(|i| rs_replicas(&self.rss[*i])).sum();
        let allowed = if desired > 0 { desired + max_surge(d) } else { 0 };
        let to_add = allowed - all_replicas;
        let operation = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                // Largest first, newest first among equals.
                all.sort_by(|a, b| {
                    let (x, y) = (&self.rss[*a], &self.rss[*b]);
                    rs_replicas(y).cmp(&rs_replicas(x)).then_with(|| by_creation(y, x))
                });
                "up"
            }
            std::cmp::Ordering::Less => {
                // Largest first, oldest first among equals.
                all.sort_by(|a, b| {
                    let (x, y) = (&self.rss[*a], &self.rss[*b]);
                    rs_replicas(y).cmp(&rs_replicas(x)).then_with(|| by_creation(x, y))
                });
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            let spec = rs_replicas(&self.rss[i]);
            if to_add != 0 {
                let proportion = self.proportion(i, to_add, added);
                sizes.push(spec + proportion);
                added += proportion;
            } else {
                sizes.push(spec);
            }
        }
        for (k, &i) in all.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.scale_replica_set(i, size, operation);
        }
    }

    /// The share of a change of `to_add` replicas for one ReplicaSet (`GetProportion`).
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let rs = &self.rss[i];
        let spec = rs_replicas(rs);
        if spec == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(rs);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// How much a ReplicaSet grows or shrinks with the Deployment (`getReplicaSetFraction`).
    fn fraction(&self, rs: &ReplicaSet) -> i32 {
        let d = self.d;
        let spec = rs_replicas(rs);
        if replicas(d) == 0 {
            return -spec;
        }
        let max_replicas = replicas(d) + max_surge(d);
        let before = match max_replicas_annotation(rs) {
            Some(n) if n != 0 => n,
            _ => self.status.replicas.unwrap_or(0),
        };
        if before == 0 {
            return 0;
        }
        let size = f64::from(spec) * f64::from(max_replicas) / f64::from(before);
        size.round() as i32 - spec
    }

    /// Deletes the oldest old ReplicaSets beyond `revisionHistoryLimit` that have no pods
    /// (`cleanupDeployment`).
    fn cleanup(&mut self, new: Option<usize>) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut cleanable: Vec<usize> = self
            .olds(new)
            .into_iter()
            .filter(|i| self.rss[*i].metadata.deletion_timestamp.is_none() && Some(*i) != self.created)
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit.max(0));
        if excess <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| by_revision(&self.rss[*a], &self.rss[*b]));
        for &i in cleanable.iter().take(excess as usize) {
            let rs = &self.rss[i];
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if rs_actual(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
                || self.dirty.contains(&i)
            {
                continue;
            }
            self.deletes.push(i);
        }
    }

    /// The status from the ReplicaSets (`calculateStatus`), with the Available condition.
    fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let d = self.d;
        let available: i32 = self.rss.iter().map(rs_available).sum();
        let total: i32 = self.rss.iter().map(rs_replicas).sum();
        let nonzero = |n: i32| (n != 0).then_some(n);
        let mut status = DeploymentStatus {
            observed_generation: d.metadata.generation,
            replicas: nonzero(self.rss.iter().map(rs_actual).sum()),
            updated_replicas: nonzero(new.map_or(0, |i| rs_actual(&self.rss[i]))),
            ready_replicas: nonzero(self.rss.iter().map(rs_ready).sum()),
            available_replicas: nonzero(available),
            unavailable_replicas: nonzero((total - available).max(0)),
            collision_count: self.status.collision_count,
            conditions: self.status.conditions.clone(),
            terminating_replicas: None,
        };
        let condition = if available >= replicas(d) - max_unavailable(d) {
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, condition);
        status
    }

    /// The status with the Progressing condition of a rollout (`syncRolloutStatus`).
    fn rollout_status(&mut self, new: Option<usize>) {
        let d = self.d;
        let mut status = self.calculate_status(new);
        if !has_progress_deadline(d) {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(&self.status, "Progressing").cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
        if has_progress_deadline(d) && !complete_before {
            let subject = match new {
                Some(i) => format!("ReplicaSet {:?}", self.name(i)),
                None => format!("Deployment {:?}", d.metadata.name.as_deref().unwrap_or_default()),
            };
            if deployment_complete(d, &status) {
                let message = format!("{subject} has successfully progressed.");
                set_condition(
                    &mut status,
                    new_condition("Progressing", "True", "NewReplicaSetAvailable", message, self.now),
                );
            } else if self.progressing(&status) {
                let message = format!("{subject} is progressing.");
                let mut cond = new_condition("Progressing", "True", "ReplicaSetUpdated", message, self.now);
                if let Some(current) = &current {
                    if current.status == "True" {
                        cond.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, cond);
            } else if timed_out(d, &status, self.now) {
                let message = format!("{subject} has timed out progressing.");
                set_condition(
                    &mut status,
                    new_condition("Progressing", "False", "ProgressDeadlineExceeded", message, self.now),
                );
            }
        }
        match self.replica_failure(new) {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        self.final_status = Some(status);
    }

    /// Whether the rollout moved since the last status (`DeploymentProgressing`).
    fn progressing(&self, new: &DeploymentStatus) -> bool {
        let old = &self.status;
        let n = |v: Option<i32>| v.unwrap_or(0);
        let old_olds = n(old.replicas) - n(old.updated_replicas);
        let new_olds = n(new.replicas) - n(new.updated_replicas);
        n(new.updated_replicas) > n(old.updated_replicas)
            || new_olds < old_olds
            || n(new.ready_replicas) > n(old.ready_replicas)
            || n(new.available_replicas) > n(old.available_replicas)
    }

    /// The ReplicaFailure condition of the new ReplicaSet, else of any (`getReplicaFailures`).
    fn replica_failure(&self, new: Option<usize>) -> Option<DeploymentCondition> {
        let failure = |rs: &ReplicaSet| {
            rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "ReplicaFailure").map(|c| {
                DeploymentCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                }
            })
        };
        new.and_then(|i| failure(&self.rss[i])).or_else(|| self.rss.iter().find_map(failure))
    }

    /// Checks the Progressing condition against `spec.paused` (`checkPausedConditions`).
    fn check_paused_conditions(&mut self) {
        let d = self.d;
        if !has_progress_deadline(d) {
            return;
        }
        let reason = condition(&self.status, "Progressing").and_then(|c| c.reason.clone());
        if reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return;
        }
        let paused_condition = reason.as_deref() == Some("DeploymentPaused");
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused && !paused_condition {
            let cond =
                new_condition("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused".into(), self.now);
            set_condition(&mut self.status, cond);
        } else if !paused && paused_condition {
            let cond =
                new_condition("Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed".into(), self.now);
            set_condition(&mut self.status, cond);
        }
    }

    /// When to look again for the progress deadline (`requeueStuckDeployment`).
    fn requeue_after(&self, new: &DeploymentStatus) -> Option<Duration> {
        let d = self.d;
        let current = condition(&self.status, "Progressing")?;
        if !has_progress_deadline(d)
            || deployment_complete(d, new)
            || current.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            return None;
        }
        let deadline = i64::from(d.spec.as_ref()?.progress_deadline_seconds?);
        let from = current.last_update_time.as_ref()?.0.as_second();
        let after = from + deadline - self.now.as_second();
        Some(Duration::from_secs(after.max(1) as u64))
    }

    fn finish(self) -> Plan {
        let mut plan = Plan::default();
        if let Some(i) = self.created {
            let mut rs = self.rss[i].clone();
            rs.metadata.creation_timestamp = None;
            plan.create = Some(rs);
        }
        let mut updates: Vec<usize> = self.dirty.clone();
        // Scale downs before scale ups: the number of pods never overshoots in between.
        updates.sort_by_key(|i| rs_replicas(&self.rss[*i]) >= self.original.get(*i).copied().unwrap_or(0));
        plan.updates = updates.iter().map(|i| self.rss[*i].clone()).collect();
        plan.deletes = self.deletes.iter().map(|i| self.rss[*i].clone()).collect();
        if let Some(status) = &self.final_status {
            plan.requeue_after = self.requeue_after(status);
            let status = normalized_status(Some(status));
            if status != normalized_status(self.d.status.as_ref()) {
                plan.status = Some(status);
            }
        }
        plan.revision = self.revision;
        plan.events = self.events;
        plan
    }
}

/// Whether the rollout is done: all replicas updated, present and available, and the latest
/// generation observed (`DeploymentComplete`).
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let desired = Some(replicas(d)).filter(|r| *r != 0);
    let n = |v: Option<i32>| v.filter(|x| *x != 0);
    n(status.updated_replicas) == desired
        && n(status.replicas) == desired
        && n(status.available_replicas) == desired
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Whether the rollout made no progress for `progressDeadlineSeconds` (`DeploymentTimedOut`).
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(cond) = condition(status, "Progressing") else {
        return false;
    };
    match cond.reason.as_deref() {
        Some("NewReplicaSetAvailable") => return false,
        Some("ProgressDeadlineExceeded") => return true,
        _ => {}
    }
    let Some(from) = cond.last_update_time.as_ref() else {
        return false;
    };
    let deadline = i64::from(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(0));
    from.0.as_second() + deadline < now.as_second()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::util::{DESIRED_REPLICAS, MAX_REPLICAS, REVISION_HISTORY};
    use k8s_openapi::api::apps::v1::ReplicaSetStatus;
    use serde_json::{json, Value};

    fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn deployment(replicas: i32, image: &str, strategy: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "strategy": strategy,
                     "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
        }))
        .unwrap()
    }

    fn rolling(surge: Value, unavailable: Value) -> Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    /// A small cluster: the Deployment, its ReplicaSets, and a clock.
    struct Cluster {
        d: Deployment,
        rss: Vec<ReplicaSet>,
        clock: i64,
        events: Vec<String>,
    }

    impl Cluster {
        fn new(d: Deployment) -> Cluster {
            Cluster { d, rss: Vec::new(), clock: 1000, events: Vec::new() }
        }

        fn plan(&self) -> Plan {
            plan(Input {
                deployment: &self.d,
                replica_sets: self.rss.clone(),
                pod_phases: HashMap::new(),
                now: ts(self.clock),
            })
        }

        /// Applies the writes of a plan as the API server would.
        fn apply(&mut self, plan: Plan) {
            self.clock += 1;
            if let Some(mut rs) = plan.create {
                let name = rs.metadata.name.clone().unwrap();
                assert!(self.rss.iter().all(|r| r.metadata.name.as_ref() != Some(&name)), "duplicate {name}");
                rs.metadata.uid = Some(format!("uid-{name}"));
                rs.metadata.creation_timestamp = Some(Time(ts(self.clock)));
                rs.metadata.generation = Some(1);
                rs.status = Some(ReplicaSetStatus { observed_generation: Some(1), ..Default::default() });
                self.rss.push(rs);
            }
            for rs in plan.updates {
                let slot = self.rss.iter_mut().find(|r| r.metadata.name == rs.metadata.name).unwrap();
                let status = slot.status.clone();
                *slot = rs;
                slot.status = status;
            }
            for rs in plan.deletes {
                self.rss.retain(|r| r.metadata.name != rs.metadata.name);
            }
            if let Some(status) = plan.status {
                self.d.status = Some(status);
            }
            if let Some(rev) = plan.revision {
                self.d.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(REVISION.into(), rev);
            }
            self.events.extend(plan.events.into_iter().map(|e| e.message));
        }

        /// The ReplicaSet controller: surplus pods deleted (unavailable ones first), missing
        /// ones created (not yet available).
        fn replicaset_controller(&mut self) {
            for rs in &mut self.rss {
                let spec = rs_replicas(rs);
                let status = rs.status.get_or_insert_with(Default::default);
                let available = status.available_replicas.unwrap_or(0).min(spec);
                status.replicas = spec;
                status.available_replicas = Some(available);
                status.ready_replicas = Some(available);
            }
        }

        /// The node agents: every pod becomes available.
        fn kubelet(&mut self) {
            for rs in &mut self.rss {
                let status = rs.status.get_or_insert_with(Default::default);
                status.available_replicas = Some(status.replicas);
                status.ready_replicas = Some(status.replicas);
            }
        }

        fn pods(&self) -> (i32, i32) {
            (self.rss.iter().map(rs_actual).sum(), self.rss.iter().map(rs_available).sum())
        }

        /// Runs until nothing changes; `check` sees the pods after every step.
        fn converge(&mut self, mut check: impl FnMut(i32, i32)) {
            for _ in 0..200 {
                let before = (self.rss.clone(), self.d.clone());
                let plan = self.plan();
                self.apply(plan);
                self.replicaset_controller();
                let (pods, available) = self.pods();
                check(pods, available);
                self.kubelet();
                let (pods, available) = self.pods();
                check(pods, available);
                if before == (self.rss.clone(), self.d.clone()) {
                    return;
                }
            }
            panic!("no convergence: {:?}", self.rss);
        }

        fn image(&mut self, image: &str) {
            let spec = self.d.spec.as_mut().unwrap();
            spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
            self.d.metadata.generation = Some(self.d.metadata.generation.unwrap() + 1);
        }

        fn status(&self) -> DeploymentStatus {
            self.d.status.clone().unwrap_or_default()
        }
    }

    fn cond<'a>(s: &'a DeploymentStatus, t: &str) -> (&'a str, &'a str) {
        let c = condition(s, t).unwrap_or_else(|| panic!("no {t} in {s:?}"));
        (c.status.as_str(), c.reason.as_deref().unwrap_or(""))
    }

    #[test]
    fn a_new_deployment_gets_its_replica_set() {
        let c = Cluster::new(deployment(3, "nginx:1.14", rolling(json!("25%"), json!("25%"))));
        let plan = c.plan();
        let rs = plan.create.as_ref().unwrap();
        let hash = rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH].clone();
        assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH], hash);
        assert_eq!(spec.template.as_ref().unwrap().metadata.as_ref().unwrap().labels.as_ref().unwrap()["app"], "web");
        let a = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!((a[REVISION].as_str(), a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()), ("1", "3", "4"));
        let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str(), owner.controller), ("Deployment", "d-uid", Some(true)));
        assert_eq!(rs.metadata.creation_timestamp, None);
        assert_eq!(plan.revision.as_deref(), Some("1"));
        assert_eq!(plan.events[0].message, format!("Scaled up replica set web-{hash} from 0 to 3"));
        assert_eq!(plan.events[0].after_write_of.as_deref(), Some(format!("web-{hash}").as_str()));
        let status = plan.status.as_ref().unwrap();
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(status.unavailable_replicas, Some(3));
        assert_eq!(cond(status, "Progressing"), ("True", "NewReplicaSetCreated"));
        assert_eq!(cond(status, "Available"), ("False", "MinimumReplicasUnavailable"));
        // Deterministic: the same plan again.
        assert_eq!(c.plan().create.unwrap().metadata.name, rs.metadata.name);
    }

    #[test]
    fn rollout_completes_with_conditions_rollout_status_accepts() {
        let mut c = Cluster::new(deployment(3, "nginx:1.14", rolling(json!("25%"), json!("25%"))));
        c.converge(|_, _| {});
        let s = c.status();
        assert_eq!(
            (s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas),
            (Some(3), Some(3), Some(3), Some(3))
        );
        assert_eq!(s.unavailable_replicas, None);
        assert_eq!(cond(&s, "Available"), ("True", "MinimumReplicasAvailable"));
        assert_eq!(cond(&s, "Progressing"), ("True", "NewReplicaSetAvailable"));
        let name = c.rss[0].metadata.name.clone().unwrap();
        assert_eq!(
            condition(&s, "Progressing").unwrap().message.as_deref(),
            Some(format!("ReplicaSet {name:?} has successfully progressed.").as_str())
        );
        assert!(deployment_complete(&c.d, &s));
        // Nothing more to do.
        let plan = c.plan();
        assert!(plan.create.is_none() && plan.updates.is_empty() && plan.status.is_none() && plan.revision.is_none());
        assert_eq!(plan.requeue_after, None);
    }

    #[test]
    fn rolling_update_stays_within_surge_and_unavailability() {
        let mut c = Cluster::new(deployment(10, "v1", rolling(json!(3), json!("20%"))));
        c.converge(|_, _| {});
        c.image("v2");
        let mut steps = 0;
        c.converge(|pods, available| {
            steps += 1;
            assert!(pods <= 13, "{pods} pods");
            assert!(available >= 8, "{available} available");
        });
        assert!(steps > 4);
        assert_eq!(c.rss.len(), 2);
        assert_eq!((rs_replicas(&c.rss[0]), rs_replicas(&c.rss[1])), (0, 10));
        assert_eq!(revision(&c.rss[1]), 2);
        assert_eq!(c.d.metadata.annotations.as_ref().unwrap()[REVISION], "2");
        assert!(deployment_complete(&c.d, &c.status()));
        let old = c.rss[0].metadata.name.clone().unwrap();
        let down = format!("Scaled down replica set {old} to 0 from ");
        assert!(c.events.iter().any(|e| e.starts_with(&down)), "{:?}", c.events);
    }

    #[test]
    fn max_surge_zero_rolls_by_unavailability() {
        let mut c = Cluster::new(deployment(4, "v1", rolling(json!(0), json!(1))));
        c.converge(|_, _| {});
        c.image("v2");
        c.converge(|pods, available| {
            assert!(pods <= 4, "{pods} pods");
            assert!(available >= 3, "{available} available");
        });
        assert_eq!((rs_replicas(&c.rss[0]), rs_replicas(&c.rss[1])), (0, 4));
    }

    #[test]
    fn new_replica_set_waits_for_old_pods_to_go() {
        // The old ReplicaSet was scaled down but still has its pods: no room to surge yet.
        let mut c = Cluster::new(deployment(3, "v1", rolling(json!(1), json!(0))));
        c.converge(|_, _| {});
        c.image("v2");
        c.apply(c.plan());
        c.replicaset_controller();
        c.kubelet();
        let plan = c.plan();
        assert_eq!(plan.updates.len(), 1, "{:?}", plan.updates);
        assert_eq!(rs_replicas(&plan.updates[0]), 2, "the old one goes down first");
        c.apply(plan);
        // The old ReplicaSet's status still shows 3 pods: the new one may not grow.
        let plan = c.plan();
        assert!(plan.updates.is_empty(), "{:?}", plan.updates);
    }

    #[test]
    fn recreate_scales_down_before_up() {
        let mut c = Cluster::new(deployment(2, "v1", json!({"type": "Recreate"})));
        c.converge(|_, _| {});
        c.image("v2");
        let plan = c.plan();
        assert!(plan.create.is_none());
        assert_eq!(rs_replicas(&plan.updates[0]), 0);
        c.apply(plan);
        // Old pods are still there: no new ReplicaSet yet.
        assert!(c.plan().create.is_none());
        c.replicaset_controller();
        // Status says no pods, but one is still terminating.
        let mut phases = HashMap::new();
        phases.insert(c.rss[0].metadata.uid.clone().unwrap(), vec![Some("Running".to_string())]);
        let waiting = plan_with_pods(&c, phases);
        assert!(waiting.create.is_none());
        // A failed pod does not count.
        let mut phases = HashMap::new();
        phases.insert(c.rss[0].metadata.uid.clone().unwrap(), vec![Some("Failed".to_string())]);
        let plan = plan_with_pods(&c, phases);
        assert_eq!(plan.create.as_ref().and_then(|rs| rs.spec.as_ref()?.replicas), Some(2));
        c.converge(|pods, _| assert!(pods <= 2));
        assert_eq!((rs_replicas(&c.rss[0]), rs_replicas(&c.rss[1])), (0, 2));
    }

    fn plan_with_pods(c: &Cluster, pod_phases: HashMap<String, Vec<Option<String>>>) -> Plan {
        plan(Input { deployment: &c.d, replica_sets: c.rss.clone(), pod_phases, now: ts(c.clock) })
    }

    #[test]
    fn paused_deployments_scale_but_do_not_roll() {
        let mut c = Cluster::new(deployment(3, "v1", rolling(json!(1), json!(0))));
        c.converge(|_, _| {});
        c.d.spec.as_mut().unwrap().paused = Some(true);
        c.image("v2");
        let plan = c.plan();
        assert!(plan.create.is_none());
        assert!(plan.updates.is_empty());
        let status = plan.status.as_ref().unwrap();
        assert_eq!(cond(status, "Progressing"), ("Unknown", "DeploymentPaused"));
        assert_eq!(status.observed_generation, Some(2));
        c.apply(plan);
        c.d.spec.as_mut().unwrap().replicas = Some(5);
        c.converge(|_, _| {});
        assert_eq!(c.rss.len(), 1);
        assert_eq!(rs_replicas(&c.rss[0]), 5);
        c.d.spec.as_mut().unwrap().paused = Some(false);
        c.converge(|_, _| {});
        assert_eq!(c.rss.len(), 2);
        assert_eq!(rs_replicas(&c.rss[1]), 5);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let mut c = Cluster::new(deployment(10, "v1", rolling(json!(3), json!(2))));
        c.converge(|_, _| {});
        c.image("v2");
        // A few steps into the rollout, without pods becoming available.
        for _ in 0..2 {
            c.apply(c.plan());
            c.replicaset_controller();
        }
        let before: Vec<i32> = c.rss.iter().map(rs_replicas).collect();
        assert!(before.iter().all(|n| *n > 0), "{before:?}");
        c.d.spec.as_mut().unwrap().replicas = Some(20);
        let plan = c.plan();
        let after: Vec<i32> = c
            .rss
            .iter()
            .map(|rs| {
                plan.updates.iter().find(|u| u.metadata.name == rs.metadata.name).map_or(rs_replicas(rs), rs_replicas)
            })
            .collect();
        // 20 + maxSurge 3 in all, each grown.
        assert_eq!(after.iter().sum::<i32>(), 23, "{before:?} → {after:?}");
        assert!(after.iter().zip(&before).all(|(a, b)| a > b), "{before:?} → {after:?}");
        for rs in &plan.updates {
            let a = rs.metadata.annotations.as_ref().unwrap();
            assert_eq!((a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()), ("20", "23"));
        }
        c.apply(plan);
        c.converge(|_, _| {});
        let sizes: Vec<(i32, i32, i32)> =
            c.rss.iter().map(|r| (rs_replicas(r), rs_actual(r), rs_available(r))).collect();
        assert_eq!(rs_replicas(c.rss.last().unwrap()), 20, "{sizes:?} {:?} {:?}", c.status(), c.events);
    }

    #[test]
    fn rollback_reuses_the_old_replica_set_as_a_new_revision() {
        let mut c = Cluster::new(deployment(3, "v1", rolling(json!(1), json!(0))));
        c.converge(|_, _| {});
        c.image("v2");
        c.converge(|_, _| {});
        c.image("v1");
        c.converge(|_, _| {});
        assert_eq!(c.rss.len(), 2);
        let first = &c.rss[0];
        assert_eq!(rs_replicas(first), 3);
        let a = first.metadata.annotations.as_ref().unwrap();
        assert_eq!((a[REVISION].as_str(), a[REVISION_HISTORY].as_str()), ("3", "1"));
        assert_eq!(c.d.metadata.annotations.as_ref().unwrap()[REVISION], "3");
    }

    #[test]
    fn history_beyond_the_limit_is_deleted() {
        let mut d = deployment(1, "v1", rolling(json!(1), json!(0)));
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let mut c = Cluster::new(d);
        c.converge(|_, _| {});
        for image in ["v2", "v3", "v4"] {
            c.image(image);
            c.converge(|_, _| {});
        }
        let revisions: Vec<i64> = c.rss.iter().map(revision).collect();
        assert_eq!(revisions, [3, 4]);
    }

    #[test]
    fn a_stuck_rollout_times_out() {
        let mut c = Cluster::new(deployment(2, "v1", rolling(json!(1), json!(0))));
        c.converge(|_, _| {});
        c.image("v2");
        c.apply(c.plan());
        c.replicaset_controller();
        // The new pod never becomes available.
        let plan = c.plan();
        assert!(plan.requeue_after.is_some_and(|d| d <= Duration::from_secs(600)));
        c.apply(plan);
        c.clock += 601;
        let plan = c.plan();
        let status = plan.status.unwrap();
        assert_eq!(cond(&status, "Progressing"), ("False", "ProgressDeadlineExceeded"));
    }

    #[test]
    fn an_empty_selector_is_refused() {
        let mut d = deployment(1, "v1", rolling(json!(1), json!(0)));
        d.spec.as_mut().unwrap().selector = Default::default();
        let plan = plan(Input { deployment: &d, replica_sets: vec![], pod_phases: HashMap::new(), now: ts(0) });
        assert!(plan.create.is_none());
        assert_eq!(plan.events[0].reason, "SelectingAll");
        assert_eq!(plan.status.unwrap().observed_generation, Some(1));
    }

    #[test]
    fn replica_failures_surface_on_the_deployment() {
        let mut c = Cluster::new(deployment(2, "v1", rolling(json!(1), json!(0))));
        c.apply(c.plan());
        let status = c.rss[0].status.get_or_insert_with(Default::default);
        status.conditions = Some(vec![k8s_openapi::api::apps::v1::ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("quota".into()),
            last_transition_time: Some(Time(ts(5))),
        }]);
        let status = c.plan().status.unwrap();
        assert_eq!(cond(&status, "ReplicaFailure"), ("True", "FailedCreate"));
    }
}
