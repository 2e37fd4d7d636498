//! The manifests `kubectl qualys-respond install` prints: a namespace, one
//! service account and least-privilege RBAC per mode (only what that mode
//! calls), the design's CronJob, a Deployment for the controller
//! (`sync --watch --apply`) and one for `serve`, with hardened pods and the
//! credentials as Secret *references*.

use serde_json::{Value, json};

use crate::cluster::CHECKPOINT_CONFIGMAP;
use crate::policy::Mode;

/// How the tool runs in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum InstallMode {
    /// The hourly CronJob of the design: `--once --hours=24 --apply`.
    Cronjob,
    /// A Deployment running `sync --watch --apply`.
    Controller,
    /// A Deployment running `serve` (two replicas, Service, PodDisruptionBudget).
    Webhook,
}

impl InstallMode {
    /// The mode's name in object names.
    pub fn name(self) -> &'static str {
        match self {
            InstallMode::Cronjob => "cronjob",
            InstallMode::Controller => "controller",
            InstallMode::Webhook => "webhook",
        }
    }

    /// The service account (and RBAC) name of the mode.
    pub fn account(self) -> String {
        format!("qualys-respond-{}", self.name())
    }
}

/// What to install.
#[derive(Debug, Clone)]
pub struct Install {
    /// The modes, each with its own service account and RBAC.
    pub modes: Vec<InstallMode>,
    /// Where everything goes.
    pub namespace: String,
    /// The container image.
    pub image: String,
    /// The CronJob's schedule.
    pub schedule: String,
    /// Audit (`Post`) or enforce new policies.
    pub action: Mode,
    /// This cluster's name as Qualys knows it.
    pub cluster_name: Option<String>,
    /// Without a name: apply every cluster's findings here.
    pub all_clusters: bool,
    /// The Qualys platform.
    pub platform: String,
    /// The Secret holding `username` and `password` (and, for the webhook
    /// mode, `webhook-secret` and `api-tokens`).
    pub secret: String,
    /// Let the modes manage NetworkPolicy companions of IP blocks.
    pub network_policy: bool,
    /// A Prometheus Operator ServiceMonitor for the server.
    pub service_monitor: bool,
    /// A NetworkPolicy that admits only port 8080 to the server.
    pub server_network_policy: bool,
}

const LABEL: &str = "app.kubernetes.io/name";
const APP: &str = "kubectl-qualys-respond";
const PORT: u16 = 8080;

impl Install {
    /// Every object, in the order `kubectl apply` should create them.
    pub fn objects(&self) -> Vec<Value> {
        let mut modes = self.modes.clone();
        modes.sort();
        modes.dedup();
        let mut out = vec![json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": self.namespace, "labels": self.labels(None)}})];
        for mode in &modes {
            out.extend(self.rbac(*mode));
        }
        for mode in &modes {
            match mode {
                InstallMode::Cronjob => out.push(self.cronjob()),
                InstallMode::Controller => out.push(self.controller()),
                InstallMode::Webhook => out.extend(self.webhook()),
            }
        }
        out
    }

    fn labels(&self, mode: Option<InstallMode>) -> Value {
        let mut labels = json!({LABEL: APP, "app.kubernetes.io/managed-by": "kubectl-qualys-respond-install"});
        if let Some(mode) = mode {
            labels["app.kubernetes.io/component"] = json!(mode.name());
        }
        labels
    }

    fn metadata(&self, name: &str, mode: InstallMode) -> Value {
        json!({"name": name, "namespace": self.namespace, "labels": self.labels(Some(mode))})
    }

    /// The service account and exactly the rights `mode` uses.
    fn rbac(&self, mode: InstallMode) -> Vec<Value> {
        let account = mode.account();
        let mut rules = vec![json!({"apiGroups": ["cilium.io"],
            "resources": ["tracingpolicies", "tracingpoliciesnamespaced"],
            "verbs": ["get", "list", "create", "patch", "delete"]})];
        if self.network_policy {
            rules.push(json!({"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                "verbs": ["get", "list", "create", "patch", "delete"]}));
        }
        rules.extend([
            json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}),
            json!({"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["get"]}),
            json!({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}),
            json!({"apiGroups": ["networking.k8s.io"], "resources": ["servicecidrs"], "verbs": ["list"]}),
        ]);
        // Cluster-wide names carry the namespace: a second install elsewhere
        // must not take over this one's binding.
        let cluster_wide = format!("{}-{}", self.namespace, mode.name());
        let cluster_metadata = json!({"name": cluster_wide, "labels": self.labels(Some(mode))});
        let subject = json!({"kind": "ServiceAccount", "name": account, "namespace": self.namespace});
        let mut out = vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": self.metadata(&account, mode),
                "automountServiceAccountToken": false}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": cluster_metadata, "rules": rules}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": cluster_metadata,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_wide},
                "subjects": [subject]}),
        ];
        let mut rules = Vec::new();
        if matches!(mode, InstallMode::Cronjob | InstallMode::Controller) {
            // The checkpoint, by name; creating it cannot be limited to a name.
            rules.extend([
                json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CHECKPOINT_CONFIGMAP],
                    "verbs": ["get", "patch"]}),
                json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}),
            ]);
        }
        if matches!(mode, InstallMode::Controller | InstallMode::Webhook) {
            // The mode's own Lease for leader election, likewise.
            rules.extend([
                json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [account],
                    "verbs": ["get", "update"]}),
                json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}),
            ]);
        }
        if !rules.is_empty() {
            let name = format!("{account}-namespace");
            out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": self.metadata(&name, mode), "rules": rules}));
            out.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": self.metadata(&name, mode),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [subject]}));
        }
        out
    }

    /// The flags every mode passes on.
    fn common_args(&self) -> Vec<String> {
        let mut args = vec![format!("--action={}", self.action.action()), "--log-format=json".to_string()];
        match (&self.cluster_name, self.all_clusters) {
            (Some(name), _) => args.push(format!("--cluster-name={name}")),
            (None, true) => args.push("--all-clusters".to_string()),
            // Findings that name a cluster are then refused, with the way to set it.
            (None, false) => {}
        }
        args
    }

    /// Leader election among the mode's replicas, on the mode's own Lease.
    fn election_args(mode: InstallMode) -> Vec<String> {
        vec!["--leader-elect".to_string(), format!("--lease-name={}", mode.account())]
    }

    /// The environment: the Qualys credentials for the modes that fetch
    /// findings (`serve` only receives them), the pod's name for the Lease.
    fn environment(&self, mode: InstallMode) -> Value {
        let key = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": self.secret, "key": key}}});
        let mut variables = Vec::new();
        if mode != InstallMode::Webhook {
            variables.extend([key("QUALYS_USERNAME", "username"), key("QUALYS_PASSWORD", "password")]);
        }
        variables.push(json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}));
        variables.push(json!({"name": "QUALYS_RESPOND_CACHE_DIR", "value": "/tmp/cache"}));
        Value::Array(variables)
    }

    /// A hardened pod running `args` as `mode`'s service account (for the
    /// webhook, with its port, probes and secret files).
    fn pod(&self, mode: InstallMode, args: Vec<String>) -> Value {
        let mut container = json!({
            "name": mode.name(),
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": args,
            "env": self.environment(mode),
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        });
        let mut volumes = vec![json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})];
        if mode == InstallMode::Webhook {
            let probe = |path: &str| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 10});
            container["ports"] = json!([{"name": "http", "containerPort": PORT, "protocol": "TCP"}]);
            container["livenessProbe"] = probe("/health");
            container["readinessProbe"] = probe("/readyz");
            container["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"},
                {"name": "webhook", "mountPath": "/secrets/webhook", "readOnly": true}]);
            volumes.push(json!({"name": "webhook", "secret": {"secretName": self.secret,
                "items": [{"key": "webhook-secret", "path": "webhook-secret"}, {"key": "api-tokens", "path": "api-tokens"}]}}));
        }
        // serve drains for up to --shutdown-grace (30 s) after SIGTERM, then releases its Lease.
        let grace = if mode == InstallMode::Webhook { 45 } else { 30 };
        json!({
            "metadata": {"labels": self.labels(Some(mode))},
            "spec": {
                "serviceAccountName": mode.account(),
                "terminationGracePeriodSeconds": grace,
                // The token is mounted only into the pods: the account itself does not hand it out.
                "automountServiceAccountToken": true,
                "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [container],
                "volumes": volumes,
            },
        })
    }

    fn cronjob(&self) -> Value {
        let mut args: Vec<String> = ["--once", "--hours=24", "--apply"].map(String::from).to_vec();
        args.extend([format!("--platform={}", self.platform), "--prune".to_string()]);
        args.extend(self.common_args());
        let mut pod = self.pod(InstallMode::Cronjob, args);
        pod["spec"]["restartPolicy"] = json!("OnFailure");
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": self.metadata("qualys-respond-sync", InstallMode::Cronjob),
            "spec": {"schedule": self.schedule, "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
                "jobTemplate": {"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 3000, "template": pod}}}})
    }

    fn controller(&self) -> Value {
        let mut args: Vec<String> =
            ["sync", "--watch", "--interval=1h", "--hours=24", "--apply"].map(String::from).to_vec();
        args.extend([format!("--platform={}", self.platform), "--prune".to_string()]);
        args.extend(Install::election_args(InstallMode::Controller));
        args.extend(self.common_args());
        let pod = self.pod(InstallMode::Controller, args);
        let selector = json!({"matchLabels": self.labels(Some(InstallMode::Controller))});
        // Two replicas, one of them syncing (the Lease's holder).
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.metadata("qualys-respond-controller", InstallMode::Controller),
            "spec": {"replicas": 2, "selector": selector, "template": pod}})
    }

    fn webhook(&self) -> Vec<Value> {
        let mode = InstallMode::Webhook;
        let mut args: Vec<String> = vec!["serve".into(), format!("--listen=0.0.0.0:{PORT}"), "--apply".into()];
        args.extend([
            "--webhook-secret-file=/secrets/webhook/webhook-secret".to_string(),
            "--api-token-file=/secrets/webhook/api-tokens".to_string(),
        ]);
        args.extend(Install::election_args(mode));
        args.extend(self.common_args());
        let pod = self.pod(mode, args);
        let labels = self.labels(Some(mode));
        let name = "qualys-respond-webhook";
        let mut out = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": self.metadata(name, mode),
                "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": pod}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": self.metadata(name, mode),
                "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}}),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": self.metadata(name, mode),
                "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}}),
        ];
        if self.service_monitor {
            out.push(json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
                "metadata": self.metadata(name, mode),
                "spec": {"selector": {"matchLabels": labels}, "endpoints": [{"port": "http", "path": "/metrics"}]}}));
        }
        if self.server_network_policy {
            out.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": self.metadata(name, mode),
                "spec": {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"],
                    "ingress": [{"ports": [{"port": PORT, "protocol": "TCP"}]}]}}));
        }
        out
    }
}
