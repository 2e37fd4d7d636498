//! `diff`: what an apply would change, object by object, as unified diffs
//! of the live object and the object the server would store (asked with a
//! server-side dry run, so defaults and merges are the server's own).

use serde_json::Value;
use similar::TextDiff;

use super::connect::Cluster;
use super::error::ClusterError;
use crate::reconcile::Change;
use crate::yaml;

/// Metadata the server owns; shown in neither side.
const SERVER_FIELDS: &[&str] =
    &["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"];

fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        SERVER_FIELDS.iter().for_each(|f| {
            metadata.remove(*f);
        });
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    object
}

/// `object` as the YAML `sync` prints, so a diff reads like the policies it shows.
fn as_yaml(object: Option<&Value>) -> String {
    object.map(|o| yaml::to_string(&comparable(o))).unwrap_or_default()
}

/// The unified diffs of `changes`, one per changed object; empty when none changes.
pub async fn render(cluster: &Cluster, changes: &[Change]) -> Result<String, ClusterError> {
    let mut out = String::new();
    for change in changes {
        let (live, wanted) = match change {
            Change::Apply { desired, existing } => {
                let body = super::apply::guarded(cluster, desired, existing.as_ref()).await?;
                let wanted = cluster.apply(&body, true).await?;
                (as_yaml(existing.as_ref()), as_yaml(Some(&wanted)))
            }
            Change::Delete { existing, .. } => (as_yaml(Some(existing)), String::new()),
        };
        if live == wanted {
            continue;
        }
        let name = super::apply::change_name(change);
        let diff = TextDiff::from_lines(&live, &wanted);
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("live/{name}"), &format!("wanted/{name}"))
                .to_string(),
        );
    }
    Ok(out)
}
