//! Recording core/v1 Events, the way `kubectl describe` shows them ("Events: Type Reason Age
//! From Message"). Repeats of the same event (same object, reason and message) are counted on
//! one Event object instead of creating new ones, as client-go's recorder does.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Event, ObjectReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Normal or Warning, as Events classify themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two events the same: (namespace, involved object's uid, reason, message).
type EventKey = (String, String, String, String);

/// Writes Events for the controllers. Failures to record are logged, never fatal.
pub struct Recorder {
    client: kube::Client,
    /// Events already written → (event name, count).
    seen: Mutex<HashMap<EventKey, (String, i32)>>,
}

impl Recorder {
    pub fn new(client: kube::Client) -> Self {
        Recorder { client, seen: Mutex::new(HashMap::new()) }
    }

    /// Records an event about `object`, reported by `component` (e.g. `replicaset-controller`,
    /// `default-scheduler`), which `kubectl describe` shows in its "From" column.
    pub async fn record(
        &self,
        object: &ObjectReference,
        component: &str,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.try_record(object, component, kind, reason, message).await {
            tracing::warn!(reason, message, error = %e, "could not record an event");
        }
    }

    async fn try_record(
        &self,
        object: &ObjectReference,
        component: &str,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let ns = object.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let key = (ns.clone(), object.uid.clone().unwrap_or_default(), reason.to_string(), message.to_string());
        let previous = self.seen.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            if api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.is_ok() {
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (name, count + 1));
                return Ok(());
            }
            // The event is gone (expired or deleted): create a new one.
        }
        let base = object.name.clone().unwrap_or_default();
        let name = format!("{base}.{:x}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
        let event: Event = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": object,
            "reason": reason,
            "message": message,
            "type": kind.as_str(),
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))
        .expect("a valid Event");
        api.create(&PostParams::default(), &event).await?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (name, 1));
        Ok(())
    }
}
