//! The sync checkpoint kept in the cluster when applying, so a CronJob's
//! pods (and a controller's replicas) share it and a restart loses nothing:
//! the ConfigMap `qualys-respond-checkpoint`, key `checkpoint.json`.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::connect::Cluster;
use super::error::ClusterError;
use super::resource::Resource;
use crate::checkpoint::Checkpoint;
use crate::policy::labels;

/// The ConfigMap's name.
pub const NAME: &str = "qualys-respond-checkpoint";
const KEY: &str = "checkpoint.json";

impl Cluster {
    /// The checkpoint stored in `namespace`, if any.
    pub async fn load_checkpoint(&self, namespace: &str) -> Result<Option<Checkpoint>, ClusterError> {
        let Some(map) = self.get(Resource::ConfigMap, Some(namespace), NAME).await? else { return Ok(None) };
        let Some(text) = map.get("data").and_then(|d| d.get(KEY)).and_then(Value::as_str) else {
            return Ok(None);
        };
        let origin = PathBuf::from(format!("configmap/{namespace}/{NAME}"));
        Checkpoint::parse(text, &origin).map(Some).map_err(|e| ClusterError::Object(e.to_string()))
    }

    /// Stores `checkpoint` in `namespace`.
    pub async fn store_checkpoint(&self, namespace: &str, checkpoint: &Checkpoint) -> Result<(), ClusterError> {
        let object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": NAME,
                "namespace": namespace,
                "labels": {labels::MANAGED_BY: labels::MANAGER},
            },
            "data": {KEY: checkpoint.to_json()},
        });
        self.apply(&object, false).await.map(|_| ())
    }
}
