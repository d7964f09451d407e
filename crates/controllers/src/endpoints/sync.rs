//! The API edge: a Service's sync (compute, compare, write the difference), the retry policy,
//! and the clean-up after a deleted Service.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::Resource;

use super::{lock, pods, slices, subsets, Key, State};
use crate::events::EventType;
use crate::Error;

const ENDPOINTS_CONTROLLER: &str = "endpoint-controller";
const SLICES_CONTROLLER: &str = "endpointslice-controller";

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A write in a namespace being deleted, which will never succeed.
fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

fn version<K: Resource>(obj: &K) -> Option<String> {
    obj.meta().resource_version.clone()
}

/// Syncs a Service's Endpoints and EndpointSlices.
pub(super) async fn reconcile(svc: Arc<Service>, st: Arc<State>) -> Result<Action, Error> {
    st.wait_synced().await;
    let key = Key::of(svc.as_ref());
    if !pods::manages(&svc) {
        // No selector (endpoints managed by hand) or ExternalName: nothing of ours.
        lock(&st.failures).remove(&key);
        return Ok(Action::await_change());
    }
    let selected = lock(&st.members).pods_of(&key);
    // Both at once; the slices (what kube-proxy and DNS read) first.
    let (slices, endpoints) =
        tokio::join!(sync_slices(&st, &svc, &key, &selected), sync_endpoints(&st, &svc, &key, &selected));
    // Deleted (or replaced) while this sync wrote: clean up after it, again.
    let current_uid = st.services.get(&key.service_ref()).and_then(|s| s.metadata.uid.clone());
    if current_uid != svc.metadata.uid {
        let _ = st.gone.send(key.clone());
    }
    endpoints?;
    let waiting_for_nodes = slices?;
    lock(&st.failures).remove(&key);
    Ok(if waiting_for_nodes {
        // The node's arrival resyncs the Service; this is a safety net.
        Action::requeue(Duration::from_secs(30))
    } else {
        Action::await_change()
    })
}

/// Retries a failed sync with an exponential backoff per Service: 10 ms, 20 ms, … up to a minute.
pub(super) fn error_policy(svc: Arc<Service>, error: &Error, st: Arc<State>) -> Action {
    let key = Key::of(svc.as_ref());
    let failures = {
        let mut failures = lock(&st.failures);
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    if failures >= 3 {
        tracing::warn!(service = %key, %error, failures, "syncing endpoints");
    } else {
        tracing::debug!(service = %key, %error, failures, "syncing endpoints");
    }
    let delay = Duration::from_millis(5).saturating_mul(1 << failures.min(14));
    Action::requeue(delay.min(Duration::from_secs(60)))
}

/// The Endpoints object: created or replaced when it differs from the desired one.
async fn sync_endpoints(
    st: &State,
    svc: &Service,
    key: &Key,
    selected: &[Arc<k8s_openapi::api::core::v1::Pod>],
) -> Result<(), Error> {
    let current = {
        let watched = lock(&st.endpoints).group(key).cloned();
        lock(&st.written_endpoints)
            .resolve(key, watched.as_ref())
            .into_iter()
            .find(|e| e.metadata.name.as_deref() == Some(key.name.as_str()))
    };
    let (trigger_time, seen) = lock(&st.endpoints_times).compute(key, svc, selected);
    let desired = subsets::desired_subsets(svc, selected);
    let Some(endpoints) = subsets::endpoints_to_write(svc, current.as_deref(), desired, trigger_time) else {
        lock(&st.endpoints_times).commit(key.clone(), seen);
        return Ok(());
    };
    let api: Api<Endpoints> = Api::namespaced(st.ctx.client.clone(), &key.namespace);
    let based_on = current.as_deref().and_then(version);
    let result = match &current {
        None => api.create(&PostParams::default(), &endpoints).await,
        Some(_) => api.replace(&key.name, &PostParams::default(), &endpoints).await,
    };
    match result {
        Ok(written) => {
            lock(&st.written_endpoints).record(key, &key.name, based_on, Some(Arc::new(written)));
            lock(&st.endpoints_times).commit(key.clone(), seen);
            Ok(())
        }
        Err(e) if current.is_none() && namespace_terminating(&e) => Ok(()),
        Err(e) => {
            if status_code(&e) == Some(409) {
                lock(&st.written_endpoints).forget(key, &key.name);
            } else {
                let (reason, message) = match current {
                    None => ("FailedToCreateEndpoint", format!("Failed to create endpoint for service {key}: {e}")),
                    Some(_) => ("FailedToUpdateEndpoint", format!("Failed to update endpoint {key}: {e}")),
                };
                let reference = endpoints.object_ref(&());
                st.ctx.recorder.record(&reference, ENDPOINTS_CONTROLLER, EventType::Warning, reason, &message).await;
            }
            Err(e.into())
        }
    }
}

/// What became of one slice write: the slice's name, the version it replaced, what it left.
type Outcome = Result<(String, Option<String>, Option<Arc<EndpointSlice>>), (String, kube::Error)>;

/// The EndpointSlices: the planned creates, updates and deletes, all at once. Returns whether
/// pods wait for their node.
async fn sync_slices(
    st: &State,
    svc: &Service,
    key: &Key,
    selected: &[Arc<k8s_openapi::api::core::v1::Pod>],
) -> Result<bool, Error> {
    let existing: Vec<Arc<EndpointSlice>> = {
        let watched = lock(&st.slices).group(key).cloned();
        let current = lock(&st.written_slices).resolve(key, watched.as_ref());
        current.into_iter().filter(|s| s.metadata.deletion_timestamp.is_none()).collect()
    };
    let (trigger_time, seen) = lock(&st.slices_times).compute(key, svc, selected);
    let plan = slices::plan(
        svc,
        selected,
        &existing,
        |node| st.node_zone(node),
        trigger_time,
        slices::MAX_ENDPOINTS_PER_SLICE,
    );
    let waiting = !plan.missing_nodes.is_empty();
    if waiting {
        let mut nodes = lock(&st.waiting_for_nodes);
        for node in &plan.missing_nodes {
            nodes.entry(node.clone()).or_default().insert(key.clone());
        }
    }
    if plan.is_empty() {
        lock(&st.slices_times).commit(key.clone(), seen);
        return Ok(waiting);
    }

    let api: Api<EndpointSlice> = Api::namespaced(st.ctx.client.clone(), &key.namespace);
    let pp = PostParams::default();
    let creates = plan.create.iter().map(|slice| {
        let (api, pp) = (&api, &pp);
        async move {
            match api.create(pp, slice).await {
                Ok(created) => Ok((created.metadata.name.clone().unwrap_or_default(), None, Some(Arc::new(created)))),
                Err(e) => Err((String::new(), e)),
            }
        }
    });
    let updates = plan.update.iter().map(|slice| {
        let (api, pp) = (&api, &pp);
        let name = slice.metadata.name.clone().unwrap_or_default();
        async move {
            match api.replace(&name, pp, slice).await {
                Ok(updated) => Ok((name, version(slice), Some(Arc::new(updated)))),
                Err(e) => Err((name, e)),
            }
        }
    });
    let deletes = plan.delete.iter().map(|slice| {
        let api = &api;
        let name = slice.metadata.name.clone().unwrap_or_default();
        async move {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Ok((name, version(slice.as_ref()), None)),
                Err(e) if status_code(&e) == Some(404) => Ok((name, version(slice.as_ref()), None)),
                Err(e) => Err((name, e)),
            }
        }
    });
    let (created, updated, deleted): (Vec<Outcome>, Vec<Outcome>, Vec<Outcome>) =
        tokio::join!(join_all(creates), join_all(updates), join_all(deletes));

    let mut first_error = None;
    {
        let mut written = lock(&st.written_slices);
        for outcome in created.into_iter().chain(updated).chain(deleted) {
            match outcome {
                Ok((name, based_on, result)) => written.record(key, &name, based_on, result),
                Err((_, e)) if namespace_terminating(&e) => {}
                Err((name, e)) => {
                    if status_code(&e) == Some(409) && !name.is_empty() {
                        written.forget(key, &name);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    match first_error {
        None => {
            lock(&st.slices_times).commit(key.clone(), seen);
            Ok(waiting)
        }
        Some(e) => {
            if status_code(&e) != Some(409) {
                let message = format!("Error updating Endpoint Slices for Service {key}: {e}");
                let reference = svc.object_ref(&());
                st.ctx
                    .recorder
                    .record(&reference, SLICES_CONTROLLER, EventType::Warning, "FailedToUpdateEndpointSlices", &message)
                    .await;
            }
            Err(e.into())
        }
    }
}

/// After a Service is deleted: deletes its Endpoints (which have no owner; a hand-made one
/// too, as upstream) and this controller's slices (owned, so the garbage collector would too),
/// and forgets it. If the Service exists again, it is synced instead.
pub(super) async fn clean_up(st: Arc<State>, key: Key) {
    let services: Api<Service> = Api::namespaced(st.ctx.client.clone(), &key.namespace);
    let mut attempt = 0u32;
    loop {
        match services.get_opt(&key.name).await {
            Ok(Some(_)) => {
                let _ = st.requeue.send(key);
                return;
            }
            Ok(None) => break,
            Err(e) if attempt < 5 => {
                tracing::debug!(service = %key, error = %e, "checking a deleted service");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => {
                tracing::warn!(service = %key, error = %e, "could not clean up after a deleted service");
                return;
            }
        }
    }
    let endpoints: Api<Endpoints> = Api::namespaced(st.ctx.client.clone(), &key.namespace);
    match endpoints.delete(&key.name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if status_code(&e) == Some(404) => {}
        Err(e) => tracing::warn!(service = %key, error = %e, "deleting the endpoints of a deleted service"),
    }
    let owned = {
        let watched = lock(&st.slices).group(&key).cloned();
        lock(&st.written_slices).resolve(&key, watched.as_ref())
    };
    let api: Api<EndpointSlice> = Api::namespaced(st.ctx.client.clone(), &key.namespace);
    for slice in owned {
        let name = slice.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                tracing::warn!(service = %key, slice = %name, error = %e, "deleting a slice of a deleted service")
            }
        }
    }
    lock(&st.written_endpoints).forget_group(&key);
    lock(&st.written_slices).forget_group(&key);
    lock(&st.endpoints_times).forget(&key);
    lock(&st.slices_times).forget(&key);
    lock(&st.failures).remove(&key);
    for services in lock(&st.waiting_for_nodes).values_mut() {
        services.remove(&key);
    }
}
