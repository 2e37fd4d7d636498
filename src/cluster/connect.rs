//! Connecting to the cluster the way kubectl does, and the few calls every
//! command needs: discovery of the TracingPolicy CRDs, get, list, server-side
//! apply, delete, and who we are.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::Value;

use super::FIELD_MANAGER;
use super::error::ClusterError;
use super::resource::{Resource, display};
use crate::policy::Inventory;

/// The kubectl flags every plugin user expects.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config,
    /// then the pod's service account when running in a cluster).
    #[arg(long, value_name = "PATH", help_heading = "Cluster")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME", help_heading = "Cluster")]
    pub context: Option<String>,

    /// Timeout of one request to the API server.
    #[arg(long = "request-timeout", value_name = "DURATION", value_parser = crate::duration::wait,
        default_value = "30s", help_heading = "Cluster")]
    pub request_timeout: Duration,
}

/// A connected client.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    /// The context's user name, for the history when the server cannot tell us.
    kubeconfig_user: Option<String>,
    /// Take over fields another field manager set (`--force-conflicts`).
    force_conflicts: bool,
}

impl Cluster {
    /// Connects as kubectl would: `--kubeconfig`, else `KUBECONFIG` or
    /// `~/.kube/config`, else the in-cluster service account.
    pub async fn connect(args: &KubeArgs) -> Result<Cluster, ClusterError> {
        let options = KubeConfigOptions { context: args.context.clone(), ..KubeConfigOptions::default() };
        let (mut config, kubeconfig_user) = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| ClusterError::Config(format!("cannot read the kubeconfig {}: {e}", path.display())))?;
                let user = context_user(&kubeconfig, args.context.as_deref());
                let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| ClusterError::Config(format!("the kubeconfig {}: {e}", path.display())))?;
                (config, user)
            }
            None => match Kubeconfig::read() {
                Ok(kubeconfig) => {
                    let user = context_user(&kubeconfig, args.context.as_deref());
                    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                        .await
                        .map_err(|e| ClusterError::Config(format!("the kubeconfig: {e}")))?;
                    (config, user)
                }
                Err(kubeconfig_error) if args.context.is_none() => {
                    let config = Config::incluster().map_err(|incluster| {
                        ClusterError::Config(format!(
                            "no kubeconfig ({kubeconfig_error}) and not inside a cluster ({incluster}); pass --kubeconfig"
                        ))
                    })?;
                    (config, None)
                }
                Err(e) => return Err(ClusterError::Config(format!("cannot read the kubeconfig: {e}"))),
            },
        };
        config.read_timeout = Some(args.request_timeout);
        config.write_timeout = Some(args.request_timeout);
        config.connect_timeout = Some(args.request_timeout);
        let client = Client::try_from(config).map_err(|e| ClusterError::Config(e.to_string()))?;
        Ok(Cluster { client, kubeconfig_user, force_conflicts: false })
    }

    /// With `force`, applies take over the fields another field manager
    /// set instead of being refused with [`ClusterError::Conflict`].
    pub fn forcing_conflicts(mut self, force: bool) -> Cluster {
        self.force_conflicts = force;
        self
    }

    /// The namespace of the current context (or of the service account).
    pub fn default_namespace(&self) -> &str {
        self.client.default_namespace()
    }

    /// Fails with [`ClusterError::TetragonMissing`] unless both TracingPolicy
    /// kinds are served.
    pub async fn ensure_tetragon(&self) -> Result<(), ClusterError> {
        let resources = match self.client.list_api_group_resources("cilium.io/v1alpha1").await {
            Ok(list) => list.resources,
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(ClusterError::TetragonMissing),
            Err(e) => return Err(ClusterError::from_kube("discovering cilium.io/v1alpha1", e)),
        };
        let served = |plural: &str| resources.iter().any(|r| r.name == plural);
        if served("tracingpolicies") && served("tracingpoliciesnamespaced") {
            Ok(())
        } else {
            Err(ClusterError::TetragonMissing)
        }
    }

    fn api(&self, resource: Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = resource.api_resource();
        match namespace.filter(|_| resource.namespaced()) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        }
    }

    /// Objects of `resource` matching `selector`, in `namespace` or everywhere.
    pub async fn list(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>, ClusterError> {
        let ar = resource.api_resource();
        let list = self
            .api(resource, namespace)
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| ClusterError::from_kube(format!("listing {}", resource.short()), e))?;
        list.items.into_iter().map(|item| as_value(item, &ar)).collect()
    }

    /// Every policy object we manage (both TracingPolicy kinds and, when a
    /// block has them, the NetworkPolicy companions), in `namespace` (plus
    /// the cluster-wide ones) or everywhere.
    pub async fn managed(&self, namespace: Option<&str>) -> Result<Inventory, ClusterError> {
        let selector = super::managed_selector();
        let mut out = Vec::new();
        for resource in [Resource::TracingPolicy, Resource::TracingPolicyNamespaced] {
            out.extend(self.list(resource, namespace, &selector).await?);
        }
        let mut inventory = Inventory::new(out);
        // Companions exist only for blocks made with --network-policy: a
        // cluster without them needs no right to read NetworkPolicies.
        if inventory.wants_companions() {
            inventory.others.extend(self.list(Resource::NetworkPolicy, namespace, &selector).await?);
        }
        Ok(inventory)
    }

    /// One object, or `None` when it does not exist.
    pub async fn get(
        &self,
        resource: Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ClusterError> {
        let ar = resource.api_resource();
        let found = self
            .api(resource, namespace)
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::from_kube(format!("reading {}/{name}", resource.short()), e))?;
        found.map(|item| as_value(item, &ar)).transpose()
    }

    /// Server-side applies `object` with our field manager, or only asks the
    /// server what would happen with `dry_run`. A field another manager set
    /// to a different value is a [`ClusterError::Conflict`] (their edit
    /// stays) unless [`Cluster::forcing_conflicts`]. Returns the object as
    /// the server has it.
    pub async fn apply(&self, object: &Value, dry_run: bool) -> Result<Value, ClusterError> {
        let what = format!("applying {}", display(object));
        let resource = Resource::of(object).ok_or_else(|| ClusterError::Object(format!("{what}: unknown kind")))?;
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if self.force_conflicts {
            params = params.force();
        }
        if dry_run {
            params = params.dry_run();
        }
        let body = applicable(object);
        let applied = self
            .api(resource, namespace)
            .patch(name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ClusterError::from_kube(what.clone(), e))?;
        serde_json::to_value(applied).map_err(|e| ClusterError::Object(format!("{what}: {e}")))
    }

    /// Deletes `object`; an object already gone is not an error.
    pub async fn delete(&self, object: &Value, dry_run: bool) -> Result<(), ClusterError> {
        let what = format!("deleting {}", display(object));
        let resource = Resource::of(object).ok_or_else(|| ClusterError::Object(format!("{what}: unknown kind")))?;
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let namespace = object.pointer("/metadata/namespace").and_then(Value::as_str);
        // Only the object we read: if it changed since, the server refuses.
        let text =
            |field: &str| object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).map(str::to_string);
        let mut params = DeleteParams::default()
            .preconditions(Preconditions { resource_version: text("resourceVersion"), uid: text("uid") });
        if dry_run {
            params = params.dry_run();
        }
        match self.api(resource, namespace).delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube(what, e)),
        }
    }

    /// True when the namespace exists.
    pub async fn namespace_exists(&self, name: &str) -> Result<bool, ClusterError> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let found = namespaces
            .get_opt(name)
            .await
            .map_err(|e| ClusterError::from_kube(format!("reading namespace {name}"), e))?;
        Ok(found.is_some())
    }

    /// Who is making changes, for the history: the user the API server sees
    /// (SelfSubjectReview), else the kubeconfig user, else the OS user.
    pub async fn actor(&self) -> String {
        let reviews: Api<SelfSubjectReview> = Api::all(self.client.clone());
        if let Ok(review) = reviews.create(&PostParams::default(), &SelfSubjectReview::default()).await
            && let Some(name) = review.status.and_then(|s| s.user_info).and_then(|u| u.username)
        {
            return name;
        }
        self.kubeconfig_user.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".to_string())
    }

    /// The underlying client, for the calls of [`super::resource`] users.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// An object from the server as JSON, with the apiVersion and kind that
/// list items lack.
fn as_value(mut item: DynamicObject, ar: &kube::core::ApiResource) -> Result<Value, ClusterError> {
    item.types = Some(kube::core::TypeMeta { api_version: ar.api_version.clone(), kind: ar.kind.clone() });
    serde_json::to_value(item).map_err(|e| ClusterError::Object(e.to_string()))
}

/// `object` without what the server owns (managedFields, uid, timestamps,
/// status), which an apply must not send. A `resourceVersion` stays: the
/// server then refuses the apply if the object changed since we read it.
fn applicable(object: &Value) -> Value {
    let mut body = object.clone();
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["managedFields", "uid", "creationTimestamp", "generation", "selfLink"] {
            metadata.remove(field);
        }
    }
    if let Some(map) = body.as_object_mut() {
        map.remove("status");
    }
    body
}

fn context_user(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context.map(str::to_string).or_else(|| kubeconfig.current_context.clone())?;
    kubeconfig.contexts.iter().find(|c| c.name == name)?.context.as_ref().and_then(|c| c.user.clone())
}
