//! A fake Kubernetes API server on loopback, kept only where a real server
//! cannot be made to fail on demand: writes that fail after the n-th
//! (`fail_writes_after`, a run stopped half-way, a checkpoint that must not
//! move), and the `serve` tests, which count the writes and requests a
//! burst of webhooks becomes (a real server cannot count them). Every other
//! cluster test runs against a real kube-apiserver (`apiserver`,
//! `real_cluster`, `blast`).
//!
//! The real `kubectl` and the
//! binary's kube-rs client both work against it. It speaks HTTPS (kubectl
//! sends credentials only over TLS) with a self-signed certificate, and
//! writes kubeconfig files that trust it. It serves discovery, a minimal
//! OpenAPI v3 document (what `kubectl apply` reads to learn that the server
//! validates fields), list/get/create/replace/delete, server-side apply with
//! field ownership, JSON merge patch and dry runs, for a few core and
//! networking resources and (optionally) Tetragon's two kinds, described
//! from the CRDs under `crds/tetragon/main`. Errors are the API server's
//! `Status` bodies, and it rejects what a real cluster with Tetragon's CRDs
//! rejects: names, labels and annotations, the CRD schema and CEL rules
//! (`crd_problems`), fields the schema does not declare (as the server does
//! for each `fieldValidation`), NetworkPolicy CIDRs, ports and policy types,
//! ConfigMap data.
//!
//! Simplified: no watches, no `Table` answers, no JSON patch, strategic
//! merge patch is a merge patch, field ownership is tracked per label,
//! annotation, key under `spec` and `data`, and other top-level field.
//!
//! This module starts the server (TLS, kubeconfig files), authenticates and
//! routes requests; `discovery` describes the served resources, `request`
//! reads a request, `store` carries out the verbs on the stored objects,
//! `validate` admits objects, `apply` tracks field ownership, `selector`
//! filters lists and `status` words the answers.

mod apply;
mod discovery;
mod request;
mod selector;
mod status;
mod store;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use discovery::{Resource, resources};
use request::Request;
use status::{Answer, method_not_allowed, not_found, page_not_found, respond, status, unknown_resource};

/// How to start a [`FakeKube`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve the `cilium.io` group, as a cluster with Tetragon's CRDs does.
    pub tetragon: bool,
    /// The bearer tokens it accepts, each with the user it authenticates.
    pub tokens: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { tetragon: true, tokens: vec![("admin-token".into(), "admin".into())] }
    }
}

/// A running fake API server. Its kubeconfig files live in a temporary
/// directory that goes away with it.
pub struct FakeKube {
    /// `https://127.0.0.1:PORT`; the certificate is self-signed, the
    /// kubeconfig files name it as the cluster's certificate authority.
    pub url: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

impl FakeKube {
    /// Starts a server with [`Options::default`].
    pub fn start() -> FakeKube {
        FakeKube::start_with(Options::default())
    }

    /// Starts a server seeded with four namespaces, two nodes, the
    /// `kubernetes` and `kube-dns` services, the API server's endpoints and
    /// the cluster's ServiceCIDR.
    pub fn start_with(options: Options) -> FakeKube {
        let mut inner =
            Inner { resources: resources(options.tetragon), tokens: options.tokens.clone(), ..Inner::default() };
        seed(&mut inner);
        let inner = Arc::new(Mutex::new(inner));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&inner));
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let acceptor = crate::tls::tls_acceptor(&certified);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender.send(tcp.local_addr().unwrap()).unwrap();
                axum::serve(TlsListener { tcp, acceptor }, app).await.unwrap();
            });
        });
        let addr: SocketAddr = receiver.recv().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(dir.path().join("ca.crt"), certified.cert.pem()).unwrap();
        let fake = FakeKube { url: format!("https://{addr}"), dir, kubeconfig, inner };
        let (token, user) = options.tokens.first().cloned().unwrap_or_default();
        fake.write_kubeconfig("kubeconfig", &user, &format!("    token: {token}\n"));
        let script = fake.dir.path().join("credential.sh");
        let credential = json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": {"token": token}});
        std::fs::write(&script, format!("#!/bin/sh\necho '{credential}'\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            script.display()
        );
        fake.write_kubeconfig("exec-kubeconfig", "exec", &exec);
        fake
    }

    fn write_kubeconfig(&self, file: &str, user: &str, credentials: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: {user}\n    namespace: default\n\
             current-context: fake\nusers:\n- name: {user}\n  user:\n{credentials}",
            self.url,
            self.dir.path().join("ca.crt").display()
        );
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    /// A kubeconfig whose current context (`fake`, namespace `default`)
    /// reaches the server as the first user of the options (`admin`) with
    /// its bearer token.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig like [`FakeKube::kubeconfig`] whose user gets the token
    /// from an `exec` credential plugin (a shell script printing an
    /// `ExecCredential` of `client.authentication.k8s.io/v1`).
    pub fn exec_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("exec-kubeconfig")
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }

    /// Stores `object` as it is, where its `apiVersion`, `kind` and metadata
    /// say (namespace `default` when a namespaced object names none), with a
    /// uid, resourceVersion and creationTimestamp. Panics for kinds the
    /// server does not serve.
    pub fn insert(&self, object: Value) {
        self.with(|inner| inner.insert(object));
    }

    /// The stored object of `resource` (a plural such as `tracingpolicies`).
    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.with(|inner| inner.objects.get(&(resource.into(), namespace.unwrap_or("").into(), name.into())).cloned())
    }

    /// Every stored object of `resource`, sorted by namespace and name.
    pub fn list(&self, resource: &str) -> Vec<Value> {
        self.with(|inner| inner.objects.iter().filter(|((r, _, _), _)| r == resource).map(|(_, o)| o.clone()).collect())
    }

    /// From now on, the first `n` mutating requests (POST, PUT, PATCH,
    /// DELETE; not dry runs, not SelfSubjectReviews) go through and every
    /// later one answers 500 `InternalError`.
    pub fn fail_writes_after(&self, n: usize) {
        self.with(|inner| inner.writes_left = Some(n));
    }

    /// Writes that changed what is stored (not dry runs, not no-op applies).
    pub fn writes(&self) -> usize {
        self.with(|inner| inner.writes)
    }

    /// `METHOD /path?query` of every request so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.with(|inner| inner.requests.clone())
    }
}

/// Accepts TLS connections for `axum::serve`; a failed handshake (an
/// untrusting client) just ends that connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            if let Ok((stream, addr)) = self.tcp.accept().await
                && let Ok(tls) = self.acceptor.accept(stream).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn seed(inner: &mut Inner) {
    for name in ["default", "kube-system", "qualys-respond", "payments"] {
        inner.insert(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    }
    for (name, cidrs, ip) in [
        ("node-1", vec!["10.244.0.0/24", "fd00:10:244::/64"], "192.168.49.2"),
        ("node-2", vec!["10.244.1.0/24"], "192.168.49.3"),
    ] {
        inner.insert(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}));
    }
    inner.insert(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]}}));
    inner.insert(json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.168.49.2"}],
            "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}]}]}));
    inner.insert(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "selector": {"k8s-app": "kube-dns"},
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}}));
    inner.insert(json!({"apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
        "metadata": {"name": "kubernetes"}, "spec": {"cidrs": ["10.96.0.0/12"]}}));
}

/// Stored objects by (plural, namespace or "", name).
type Key = (String, String, String);

#[derive(Default)]
struct Inner {
    resources: Vec<Resource>,
    tokens: Vec<(String, String)>,
    objects: BTreeMap<Key, Value>,
    /// The global resourceVersion counter.
    revision: u64,
    uids: u64,
    writes: usize,
    requests: Vec<String>,
    writes_left: Option<usize>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let mut inner = inner.lock().unwrap();
    inner.requests.push(format!("{method} {target}"));
    inner.serve(&Request { method, path: uri.path().to_string(), query, headers, body })
}

impl Inner {
    fn serve(&mut self, request: &Request) -> Response {
        let token = request.headers.get("authorization").and_then(|v| v.to_str().ok());
        let token = token.and_then(|v| v.strip_prefix("Bearer "));
        let Some(user) = token.and_then(|t| self.tokens.iter().find(|(known, _)| known == t)).map(|(_, u)| u.clone())
        else {
            return *status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized", Value::Null);
        };
        let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
        if let Some(document) = self.discovery(&segments) {
            return if request.method == Method::GET {
                respond(StatusCode::OK, &document)
            } else {
                *method_not_allowed()
            };
        }
        let answer = match segments.as_slice() {
            ["api", "v1", rest @ ..] => self.resource_request("", "v1", rest, request, &user),
            ["apis", group, version, rest @ ..] => self.resource_request(group, version, rest, request, &user),
            _ => Err(page_not_found()),
        };
        answer.unwrap_or_else(|error| *error)
    }

    fn resource_request(&mut self, group: &str, version: &str, rest: &[&str], request: &Request, user: &str) -> Answer {
        if !self.resources.iter().any(|r| r.group == group && r.version == version) {
            return Err(page_not_found());
        }
        let (plural, namespace, name) = match rest {
            [plural] => (plural, None, None),
            [plural, name] => (plural, None, Some(*name)),
            ["namespaces", namespace, plural] => (plural, Some(*namespace), None),
            ["namespaces", namespace, plural, name] => (plural, Some(*namespace), Some(*name)),
            _ => return Err(unknown_resource()),
        };
        let found = self.resources.iter().find(|r| r.group == group && r.version == version && r.plural == *plural);
        let resource = found.cloned().ok_or_else(unknown_resource)?;
        if (namespace.is_some() && !resource.namespaced)
            || (namespace.is_none() && name.is_some() && resource.namespaced)
        {
            return Err(unknown_resource());
        }
        let mutating = request.method != Method::GET && !request.dry_run() && resource.kind != "SelfSubjectReview";
        if mutating && self.injected_failure() {
            let details = json!({"causes": [{"message": "injected failure"}]});
            return Err(status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "Internal error occurred: injected failure",
                details,
            ));
        }
        let allowed = |verb: &str| resource.verbs.contains(&verb);
        let watch = matches!(request.param("watch"), Some("true" | "1"));
        let ns = namespace.unwrap_or_default();
        match (&request.method, name) {
            (&Method::GET, None) if allowed("list") && !watch => self.list(&resource, namespace, request),
            (&Method::GET, Some(name)) if allowed("get") => {
                let object = self.objects.get(&key(&resource, ns, name)).ok_or_else(|| not_found(&resource, name))?;
                Ok(respond(StatusCode::OK, object))
            }
            (&Method::POST, None) if allowed("create") && (namespace.is_some() || !resource.namespaced) => {
                self.create(&resource, ns, request, user)
            }
            (&Method::PUT, Some(name)) if allowed("update") => self.replace(&resource, ns, name, request),
            (&Method::PATCH, Some(name)) if allowed("patch") => self.patch(&resource, ns, name, request),
            (&Method::DELETE, Some(name)) if allowed("delete") => self.delete(&resource, ns, name, request),
            _ => Err(method_not_allowed()),
        }
    }

    /// Counts a write against `fail_writes_after`: whether it fails.
    fn injected_failure(&mut self) -> bool {
        match &mut self.writes_left {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        }
    }
}

fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
    (resource.plural.clone(), if resource.namespaced { namespace.into() } else { String::new() }, name.into())
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}
