//! A fake Kubernetes API server on loopback: the real `kubectl` and the
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

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{SecondsFormat, Utc};
use qualys_respond::policy::validate::{Problem, TetragonVersion, crd_problems};
use serde_json::{Value, json};

const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const STRATEGIC: &str = "application/strategic-merge-patch+json";
const CRUD: [&str; 6] = ["create", "delete", "get", "list", "patch", "update"];
const TETRAGON_CRDS: [&str; 2] = [
    include_str!("../../crds/tetragon/main/cilium.io_tracingpolicies.yaml"),
    include_str!("../../crds/tetragon/main/cilium.io_tracingpoliciesnamespaced.yaml"),
];

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
        let acceptor = tls_acceptor(&certified);
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

/// A TLS server configuration for a self-signed certificate.
fn tls_acceptor(certified: &rcgen::CertifiedKey<rcgen::KeyPair>) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
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

/// A served resource, as discovery describes it.
#[derive(Debug, Clone, Default)]
struct Resource {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    verbs: Vec<&'static str>,
    short_names: Vec<String>,
    categories: Vec<String>,
    /// Defined by a CustomResourceDefinition.
    custom: bool,
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `tracingpolicies.cilium.io`, or `configmaps` in the core group.
    fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    fn details(&self, name: &str) -> Value {
        let mut details = json!({"name": name, "group": self.group, "kind": self.plural});
        if self.group.is_empty() {
            details.as_object_mut().unwrap().remove("group");
        }
        details
    }

    fn discovery(&self) -> Value {
        let mut entry = json!({"name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": self.verbs});
        for (key, list) in [("shortNames", &self.short_names), ("categories", &self.categories)] {
            if !list.is_empty() {
                entry[key] = json!(list);
            }
        }
        entry
    }
}

fn builtin(group: &str, plural: &str, kind: &str, namespaced: bool, short_names: &[&str]) -> Resource {
    Resource {
        group: group.into(),
        version: "v1".into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        kind: kind.into(),
        namespaced,
        verbs: CRUD.to_vec(),
        short_names: short_names.iter().map(|s| s.to_string()).collect(),
        ..Resource::default()
    }
}

fn from_crd(yaml: &str) -> Resource {
    let crd: Value = serde_yaml::from_str(yaml).unwrap();
    let (spec, names) = (&crd["spec"], &crd["spec"]["names"]);
    let text = |value: &Value| value.as_str().unwrap().to_string();
    let strings = |value: &Value| -> Vec<String> { value.as_array().into_iter().flatten().map(text).collect() };
    Resource {
        group: text(&spec["group"]),
        version: text(&spec["versions"][0]["name"]),
        plural: text(&names["plural"]),
        singular: text(&names["singular"]),
        kind: text(&names["kind"]),
        namespaced: spec["scope"] == "Namespaced",
        verbs: CRUD.to_vec(),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        custom: true,
    }
}

fn resources(tetragon: bool) -> Vec<Resource> {
    let mut all = vec![
        builtin("", "namespaces", "Namespace", false, &["ns"]),
        builtin("", "nodes", "Node", false, &["no"]),
        builtin("", "configmaps", "ConfigMap", true, &["cm"]),
        builtin("", "services", "Service", true, &["svc"]),
        builtin("", "endpoints", "Endpoints", true, &["ep"]),
        builtin("networking.k8s.io", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        builtin("networking.k8s.io", "servicecidrs", "ServiceCIDR", false, &[]),
        Resource {
            verbs: vec!["create"],
            ..builtin("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview", false, &[])
        },
    ];
    if tetragon {
        all.extend(TETRAGON_CRDS.map(from_crd));
    }
    all
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

/// An error answer, boxed: it travels through every `?`.
type Failure = Box<Response>;

/// A response either way: `Err` is the error answered early.
type Answer = Result<Response, Failure>;

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

/// The parts of a request the server looks at.
struct Request {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
}

/// What a write does with fields the schema does not declare (`fieldValidation`).
#[derive(Clone, Copy, PartialEq)]
enum Unknown {
    Strict,
    Warn,
    Ignore,
}

impl Request {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    fn content_type(&self) -> &str {
        let header = self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        header.split(';').next().unwrap_or_default().trim()
    }

    /// The field manager of a write other than apply: the parameter, else the
    /// client's name from its user agent.
    fn manager(&self) -> String {
        let agent = self.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        self.param("fieldManager").unwrap_or(agent.split('/').next().unwrap_or_default()).to_string()
    }

    fn unknown_fields(&self) -> Unknown {
        match self.param("fieldValidation") {
            Some("Strict") => Unknown::Strict,
            Some("Ignore") => Unknown::Ignore,
            _ => Unknown::Warn,
        }
    }

    /// The body as a JSON object (YAML for apply patches).
    fn object(&self, kind: &str) -> Result<Value, Failure> {
        let parsed = if self.content_type() == APPLY {
            serde_yaml::from_slice(&self.body).map_err(|e| e.to_string())
        } else {
            serde_json::from_slice(&self.body).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(object @ Value::Object(_)) if object["metadata"].is_object() || object["metadata"].is_null() => {
                Ok(object)
            }
            Ok(other) => {
                Err(bad_request(&format!("the object provided is unrecognized (must be of type {kind}): {other}")))
            }
            Err(e) => Err(bad_request(&format!(
                "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
            ))),
        }
    }
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

    fn group_versions(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        for r in self.resources.iter().filter(|r| !r.group.is_empty()) {
            if !seen.contains(&(r.group.clone(), r.version.clone())) {
                seen.push((r.group.clone(), r.version.clone()));
            }
        }
        seen
    }

    fn discovery(&self, segments: &[&str]) -> Option<Value> {
        let group_doc = |(group, version): &(String, String)| {
            let version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [version], "preferredVersion": version})
        };
        let served = self.group_versions();
        Some(match segments {
            ["version"] => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "gitTreeState": "clean",
                "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828", "buildDate": "2025-05-15T08:19:19Z",
                "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}),
            ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "192.168.49.2:8443"}]}),
            ["apis"] => json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": served.iter().map(group_doc).collect::<Vec<_>>()}),
            ["apis", group] => {
                let mut doc = group_doc(served.iter().find(|(g, _)| g == group)?);
                doc.as_object_mut()?.extend([("kind".into(), json!("APIGroup")), ("apiVersion".into(), json!("v1"))]);
                doc
            }
            ["api", "v1"] => self.resource_list("", "v1")?,
            ["apis", group, version] => self.resource_list(group, version)?,
            ["openapi", "v3"] => {
                let mut paths = serde_json::Map::new();
                for (group, version) in [(String::new(), "v1".to_string())].into_iter().chain(served) {
                    let path = if group.is_empty() { "api/v1".into() } else { format!("apis/{group}/{version}") };
                    paths.insert(path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=fake")}));
                }
                json!({"paths": paths})
            }
            ["openapi", "v3", "api", "v1"] => self.openapi("", "v1")?,
            ["openapi", "v3", "apis", group, version] => self.openapi(group, version)?,
            _ => return None,
        })
    }

    fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let served: Vec<Value> = self
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .map(Resource::discovery)
            .collect();
        let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        (!served.is_empty())
            .then(|| json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": served}))
    }

    /// The OpenAPI v3 document of one group version, reduced to what
    /// `kubectl` reads: which PATCH operations take `fieldValidation`.
    fn openapi(&self, group: &str, version: &str) -> Option<Value> {
        let mut paths = serde_json::Map::new();
        for r in
            self.resources.iter().filter(|r| r.group == group && r.version == version && r.verbs.contains(&"patch"))
        {
            let prefix = if group.is_empty() { "/api/v1".into() } else { format!("/apis/{group}/{version}") };
            let scope = if r.namespaced { "/namespaces/{namespace}" } else { "" };
            let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
                .iter()
                .map(|name| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
                .collect();
            let patch = json!({"operationId": format!("patch{}", r.kind), "parameters": parameters,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind}});
            paths.insert(format!("{prefix}{scope}/{}/{{name}}", r.plural), json!({"patch": patch}));
        }
        (!paths.is_empty())
            .then(|| json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.1"}, "paths": paths}))
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

    fn list(&self, resource: &Resource, namespace: Option<&str>, request: &Request) -> Answer {
        let labels = parse_label_selector(request.param("labelSelector").unwrap_or_default())?;
        let fields = parse_field_selector(request.param("fieldSelector").unwrap_or_default())?;
        let items: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((plural, ns, _), _)| *plural == resource.plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .filter(|object| labels.iter().all(|r| r.matches(&object["metadata"]["labels"])))
            .filter(|object| {
                fields.iter().all(|(field, negate, value)| (object["metadata"][field] == **value) != *negate)
            })
            .collect();
        let offset: usize = request.param("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
        let limit = request.param("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<&Value> = items.iter().skip(offset).take(limit).copied().collect();
        let mut metadata = json!({"resourceVersion": self.revision.to_string()});
        if offset + page.len() < items.len() {
            metadata["continue"] = json!((offset + page.len()).to_string());
            metadata["remainingItemCount"] = json!(items.len() - offset - page.len());
        }
        let kind = format!("{}List", resource.kind);
        Ok(respond(
            StatusCode::OK,
            &json!({"apiVersion": resource.api_version(), "kind": kind, "metadata": metadata, "items": page}),
        ))
    }

    fn create(&mut self, resource: &Resource, namespace: &str, request: &Request, user: &str) -> Answer {
        if resource.kind == "SelfSubjectReview" {
            let user_info = json!({"username": user, "groups": ["system:authenticated"]});
            return Ok(respond(
                StatusCode::CREATED,
                &json!({"kind": "SelfSubjectReview", "apiVersion": resource.api_version(),
                "metadata": {"creationTimestamp": null}, "status": {"userInfo": user_info}}),
            ));
        }
        let object = request.object(&resource.kind)?;
        check_body(resource, &object, namespace, None)?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_string();
        if name.is_empty() {
            let cause =
                cause("metadata.name", "FieldValueRequired", "Required value: name or generateName is required");
            return Err(invalid(resource, "", vec![cause]));
        }
        self.namespace_exists(resource, namespace)?;
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        let key = key(resource, namespace, &name);
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{name}\" already exists", resource.qualified());
            return Err(status(StatusCode::CONFLICT, "AlreadyExists", &message, resource.details(&name)));
        }
        record_update(None, &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, None, object, request.dry_run(), warnings))
    }

    fn replace(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let object = request.object(&resource.kind)?;
        check_body(resource, &object, namespace, Some(name))?;
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        match object["metadata"]["resourceVersion"].as_str() {
            Some(version) if old["metadata"]["resourceVersion"] != version => return Err(modified(resource, name)),
            None if resource.custom => {
                let message = "Invalid value: 0x0: must be specified for an update";
                return Err(invalid(
                    resource,
                    name,
                    vec![cause("metadata.resourceVersion", "FieldValueInvalid", message)],
                ));
            }
            _ => {}
        }
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        record_update(Some(&old), &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, Some(old), object, request.dry_run(), warnings))
    }

    fn patch(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let apply = request.content_type() == APPLY;
        let mut causes = Vec::new();
        if apply && request.param("fieldManager").is_none_or(str::is_empty) {
            causes.push(cause("fieldManager", "FieldValueRequired", "Required value: is required for apply patch"));
        }
        if !apply && request.param("force").is_some() {
            causes.push(cause("force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"));
        }
        if !causes.is_empty() {
            return Err(invalid_kind("PatchOptions.meta.k8s.io", "meta.k8s.io", "PatchOptions", "", causes));
        }
        match request.content_type() {
            APPLY => self.apply(resource, namespace, name, request),
            MERGE => self.merge(resource, namespace, name, request),
            STRATEGIC if !resource.custom => self.merge(resource, namespace, name, request),
            _ => Err(status(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                Value::Null,
            )),
        }
    }

    fn apply(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let applied = request.object(&resource.kind)?;
        check_body(resource, &applied, namespace, Some(name))?;
        if !applied["metadata"]["managedFields"].is_null() {
            return Err(bad_request("metadata.managedFields must be nil"));
        }
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned();
        if old.is_none() {
            self.namespace_exists(resource, namespace)?;
        }
        if let (Some(version), Some(old)) = (applied["metadata"]["resourceVersion"].as_str(), &old)
            && old["metadata"]["resourceVersion"] != version
        {
            return Err(modified(resource, name));
        }
        let undeclared = undeclared(&applied);
        if !undeclared.is_empty() {
            let errors: Vec<String> =
                undeclared.iter().map(|p| format!(".{p}: field not declared in schema")).collect();
            let message = format!(
                "failed to create typed patch object ({namespace}/{name}; {}, Kind={}): {}",
                resource.api_version(),
                resource.kind,
                errors.join("\n")
            );
            return Err(status(StatusCode::INTERNAL_SERVER_ERROR, "", &message, Value::Null));
        }
        let manager = request.param("fieldManager").unwrap_or_default();
        let force = request.param("force") == Some("true");
        let merged = server_side_apply(old.as_ref(), &applied, manager, force, &resource.api_version())?;
        let (merged, warnings) = admit(resource, merged, Unknown::Strict)?;
        Ok(self.store(resource, key, old, merged, request.dry_run(), warnings))
    }

    fn merge(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let patch = request.object(&resource.kind)?;
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        if let Some(version) = patch["metadata"]["resourceVersion"].as_str()
            && old["metadata"]["resourceVersion"] != version
        {
            return Err(modified(resource, name));
        }
        let mut object = old.clone();
        merge_patch(&mut object, &patch);
        check_body(resource, &object, namespace, Some(name))?;
        let (mut object, warnings) = admit(resource, object, request.unknown_fields())?;
        record_update(Some(&old), &mut object, &request.manager(), &resource.api_version());
        Ok(self.store(resource, key, Some(old), object, request.dry_run(), warnings))
    }

    fn delete(&mut self, resource: &Resource, namespace: &str, name: &str, request: &Request) -> Answer {
        let key = key(resource, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| not_found(resource, name))?;
        let options: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        for (field, label) in [("resourceVersion", "ResourceVersion"), ("uid", "UID")] {
            if let Some(wanted) = options["preconditions"][field].as_str()
                && old["metadata"][field] != wanted
            {
                let actual = old["metadata"][field].as_str().unwrap_or_default();
                let reason =
                    format!("Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {actual}");
                return Err(conflict(resource, name, &reason));
            }
        }
        if !request.dry_run() {
            self.objects.remove(&key);
            if resource.kind == "Namespace" {
                self.objects.retain(|(_, ns, _), _| ns != name);
            }
            self.revision += 1;
            self.writes += 1;
        }
        if resource.custom || resource.kind == "Namespace" {
            return Ok(respond(StatusCode::OK, &old));
        }
        let mut details = resource.details(name);
        details["uid"] = old["metadata"]["uid"].clone();
        Ok(respond(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        ))
    }

    fn namespace_exists(&self, resource: &Resource, namespace: &str) -> Result<(), Failure> {
        if !resource.namespaced || self.objects.contains_key(&("namespaces".into(), String::new(), namespace.into())) {
            return Ok(());
        }
        let message = format!("namespaces \"{namespace}\" not found");
        Err(status(StatusCode::NOT_FOUND, "NotFound", &message, json!({"name": namespace, "kind": "namespaces"})))
    }

    /// Stamps and stores `object` (unless `dry_run`), or answers `old` as it
    /// is when nothing but timestamps would change.
    fn store(
        &mut self,
        resource: &Resource,
        key: Key,
        old: Option<Value>,
        mut object: Value,
        dry_run: bool,
        warnings: Vec<String>,
    ) -> Response {
        let metadata = object["metadata"].as_object_mut().unwrap();
        match resource.namespaced {
            true => metadata.insert("namespace".into(), json!(key.1)),
            false => metadata.remove("namespace"),
        };
        let code = match &old {
            Some(old) => {
                for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                    match old["metadata"].get(field) {
                        Some(value) => metadata.insert(field.into(), value.clone()),
                        None => metadata.remove(field),
                    };
                }
                if comparable(old) == comparable(&object) {
                    return with_warnings(respond(StatusCode::OK, old), &warnings);
                }
                if let Some(generation) = old["metadata"]["generation"].as_u64()
                    && without_metadata(old) != without_metadata(&object)
                {
                    object["metadata"]["generation"] = json!(generation + 1);
                }
                StatusCode::OK
            }
            None => {
                self.uids += 1;
                metadata.insert("uid".into(), json!(format!("{:08x}-fa4e-4b0e-9c3d-{:012x}", self.uids, self.uids)));
                metadata.insert("creationTimestamp".into(), json!(now()));
                if !resource.group.is_empty() {
                    metadata.insert("generation".into(), json!(1));
                }
                StatusCode::CREATED
            }
        };
        if !dry_run {
            self.revision += 1;
            object["metadata"]["resourceVersion"] = json!(self.revision.to_string());
            self.objects.insert(key, object.clone());
            self.writes += 1;
        }
        with_warnings(respond(code, &object), &warnings)
    }

    fn insert(&mut self, mut object: Value) {
        let found = self.resources.iter().find(|r| object["apiVersion"] == r.api_version() && object["kind"] == r.kind);
        let resource = found.cloned().unwrap_or_else(|| panic!("the fake does not serve {}", object["kind"]));
        let namespace =
            if resource.namespaced { object["metadata"]["namespace"].as_str().unwrap_or("default") } else { "" };
        let key = key(&resource, namespace, object["metadata"]["name"].as_str().expect("a name"));
        self.uids += 1;
        self.revision += 1;
        let metadata = object["metadata"].as_object_mut().unwrap();
        let uid = json!(format!("{:08x}-5eed-4b0e-9c3d-{:012x}", self.uids, self.uids));
        let mut defaults = vec![("uid", uid), ("creationTimestamp", json!(now()))];
        if resource.namespaced {
            defaults.push(("namespace", json!(key.1)));
        }
        if !resource.group.is_empty() {
            defaults.push(("generation", json!(1)));
        }
        for (field, value) in defaults {
            metadata.entry(field).or_insert(value);
        }
        metadata.insert("resourceVersion".into(), json!(self.revision.to_string()));
        self.objects.insert(key, object);
    }
}

fn key(resource: &Resource, namespace: &str, name: &str) -> Key {
    (resource.plural.clone(), if resource.namespaced { namespace.into() } else { String::new() }, name.into())
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn without_metadata(object: &Value) -> Value {
    let mut object = object.clone();
    object.as_object_mut().map(|fields| fields.remove("metadata"));
    object
}

/// The object without the times in its managedFields, to tell real changes.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    for entry in object["metadata"]["managedFields"].as_array_mut().into_iter().flatten() {
        entry.as_object_mut().map(|e| e.remove("time"));
    }
    object
}

fn respond(code: StatusCode, body: &Value) -> Response {
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        response.headers_mut().append("warning", HeaderValue::from_str(&format!("299 - {warning:?}")).unwrap());
    }
    response
}

/// A failure `Status`; an empty `reason` or null `details` are left out.
fn status(code: StatusCode, reason: &str, message: &str, details: Value) -> Failure {
    let no_details = details.is_null();
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": details, "code": code.as_u16()});
    let fields = body.as_object_mut().unwrap();
    if reason.is_empty() {
        fields.remove("reason");
    }
    if no_details {
        fields.remove("details");
    }
    Box::new(respond(code, &body))
}

fn bad_request(message: &str) -> Failure {
    status(StatusCode::BAD_REQUEST, "BadRequest", message, Value::Null)
}

fn not_found(resource: &Resource, name: &str) -> Failure {
    let message = format!("{} \"{name}\" not found", resource.qualified());
    status(StatusCode::NOT_FOUND, "NotFound", &message, resource.details(name))
}

fn conflict(resource: &Resource, name: &str, reason: &str) -> Failure {
    let message = format!("Operation cannot be fulfilled on {} \"{name}\": {reason}", resource.qualified());
    status(StatusCode::CONFLICT, "Conflict", &message, resource.details(name))
}

fn modified(resource: &Resource, name: &str) -> Failure {
    conflict(
        resource,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

fn method_not_allowed() -> Failure {
    let message = "the server does not allow this method on the requested resource";
    status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message, json!({}))
}

/// A known group version without the resource.
fn unknown_resource() -> Failure {
    status(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource", json!({}))
}

/// A path no API serves: the plain-text answer of the server's mux.
fn page_not_found() -> Failure {
    Box::new(
        (StatusCode::NOT_FOUND, [("content-type", "text/plain; charset=utf-8")], "404 page not found\n")
            .into_response(),
    )
}

/// One entry of `details.causes` of an `Invalid` status.
fn cause(field: &str, reason: &str, message: &str) -> Value {
    json!({"reason": reason, "message": message, "field": field})
}

fn invalid(resource: &Resource, name: &str, causes: Vec<Value>) -> Failure {
    let qualified =
        if resource.group.is_empty() { resource.kind.clone() } else { format!("{}.{}", resource.kind, resource.group) };
    invalid_kind(&qualified, &resource.group, &resource.kind, name, causes)
}

fn invalid_kind(qualified: &str, group: &str, kind: &str, name: &str, causes: Vec<Value>) -> Failure {
    let listed: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c["field"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    let joined = if listed.len() == 1 { listed[0].clone() } else { format!("[{}]", listed.join(", ")) };
    let message = format!("{qualified} \"{name}\" is invalid: {joined}");
    let details = json!({"name": name, "group": group, "kind": kind, "causes": causes});
    status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &message, details)
}

/// What the URL says the body must be.
fn check_body(resource: &Resource, object: &Value, namespace: &str, name: Option<&str>) -> Result<(), Failure> {
    let (api_version, kind) =
        (object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default());
    if api_version != resource.api_version() {
        let expected = resource.api_version();
        return Err(bad_request(&format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected})"
        )));
    }
    if kind != resource.kind {
        return Err(bad_request(&format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            resource.kind
        )));
    }
    let actual = object["metadata"]["name"].as_str().unwrap_or_default();
    if let Some(name) = name
        && actual != name
    {
        return Err(bad_request(&format!(
            "the name of the object ({actual}) does not match the name on the URL ({name})"
        )));
    }
    if resource.namespaced
        && let Some(ns) = object["metadata"]["namespace"].as_str()
        && ns != namespace
    {
        return Err(bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// Paths (`spec.kprobes[0].bogus`) of the fields Tetragon's schema does not declare.
fn undeclared(object: &Value) -> Vec<String> {
    let problems = crd_problems(object, TetragonVersion::Main).unwrap_or_default();
    problems.into_iter().filter(|p| p.message == "unknown field").map(|p| p.path).collect()
}

/// Validates `object` as the API server does before storing it. Answers
/// the object as stored (undeclared fields dropped where `unknown` allows)
/// with the warnings for the client, or the error.
fn admit(resource: &Resource, mut object: Value, unknown: Unknown) -> Result<(Value, Vec<String>), Failure> {
    string_maps(resource, &object)?;
    let undeclared = undeclared(&object);
    let listed: Vec<String> = undeclared.iter().map(|path| format!("unknown field {path:?}")).collect();
    if !undeclared.is_empty() && unknown == Unknown::Strict {
        let (kind, version) = (&resource.kind, &resource.version);
        let message = format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            listed.join(", ")
        );
        return Err(bad_request(&message));
    }
    for path in &undeclared {
        if let Some((parent, last)) = json_pointer(path).rsplit_once('/')
            && let Some(Value::Object(map)) = object.pointer_mut(parent)
        {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
    }
    let mut causes = metadata_causes(resource, &object);
    let problems = crd_problems(&object, TetragonVersion::Main).unwrap_or_default();
    causes.extend(problems.iter().map(|p| crd_cause(&object, p)));
    match resource.kind.as_str() {
        "NetworkPolicy" => network_policy_causes(&object["spec"], &mut causes),
        "ConfigMap" => {
            for key in object["data"].as_object().into_iter().flatten().map(|(k, _)| k) {
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) {
                    let message = format!(
                        "Invalid value: {key:?}: a valid config key must consist of alphanumeric \
                        characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for \
                        validation is '[-._a-zA-Z0-9]+')"
                    );
                    causes.push(cause(&format!("data[{key}]"), "FieldValueInvalid", &message));
                }
            }
        }
        _ => {}
    }
    if !causes.is_empty() {
        return Err(invalid(resource, object["metadata"]["name"].as_str().unwrap_or_default(), causes));
    }
    let warnings = if unknown == Unknown::Warn { listed } else { Vec::new() };
    Ok((object, warnings))
}

/// Labels, annotations and ConfigMap data are maps of strings: anything else
/// does not decode (400).
fn string_maps(resource: &Resource, object: &Value) -> Result<(), Failure> {
    let mut maps = vec![(&object["metadata"]["labels"], "ObjectMeta.metadata.labels")];
    maps.push((&object["metadata"]["annotations"], "ObjectMeta.metadata.annotations"));
    let data = format!("{}.data", resource.kind);
    if resource.kind == "ConfigMap" {
        maps.push((&object["data"], &data));
    }
    let go_type = |value: &Value| match value {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "string",
    };
    for (map, field) in maps {
        let wrong = match map {
            Value::Null => None,
            Value::Object(entries) => entries.values().find(|v| !v.is_string()).map(|v| (go_type(v), "string")),
            other => Some((go_type(other), "map[string]string")),
        };
        if let Some((found, expected)) = wrong {
            let kind = &resource.kind;
            return Err(bad_request(&format!(
                "{kind} in version {:?} cannot be handled as a {kind}: json: cannot unmarshal {found} into Go struct \
                 field {field} of type {expected}",
                resource.version
            )));
        }
    }
    Ok(())
}

const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or \
    '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
    start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
    '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
    alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for \
    validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
    with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
    '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or \
    '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex \
    used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Non-empty, made of `inner` characters, starting and ending with `edge` ones.
fn shaped(text: &str, inner: impl Fn(char) -> bool, edge: impl Fn(char) -> bool) -> bool {
    !text.is_empty() && text.chars().all(inner) && text.starts_with(&edge) && text.ends_with(&edge)
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn name_part(text: &str) -> bool {
    text.len() <= 63 && shaped(text, |c| c.is_ascii_alphanumeric() || "-_.".contains(c), |c| c.is_ascii_alphanumeric())
}

/// What is wrong with a label or annotation key, if anything.
fn qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = key.split_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    if let Some(prefix) = prefix
        && (prefix.len() > 253 || !prefix.split('.').all(|p| shaped(p, |c| lower_alnum(c) || c == '-', lower_alnum)))
    {
        return Some(format!("prefix part {SUBDOMAIN}"));
    }
    (!name_part(name))
        .then(|| if name.len() > 63 { "name part must be no more than 63 characters".into() } else { NAME_PART.into() })
}

fn metadata_causes(resource: &Resource, object: &Value) -> Vec<Value> {
    let metadata = &object["metadata"];
    let name = metadata["name"].as_str().unwrap_or_default();
    let dashed = |c: char| lower_alnum(c) || c == '-';
    let problem = match resource.kind.as_str() {
        "Namespace" => (name.len() > 63 || !shaped(name, dashed, lower_alnum)).then_some(LABEL),
        "Service" => (name.len() > 63
            || !shaped(name, dashed, lower_alnum)
            || !name.starts_with(|c: char| c.is_ascii_lowercase()))
        .then_some(DNS1035),
        _ => (name.len() > 253 || !name.split('.').all(|part| shaped(part, dashed, lower_alnum))).then_some(SUBDOMAIN),
    };
    let mut causes = Vec::new();
    let mut push = |field: &str, value: &str, message: &str| {
        causes.push(cause(field, "FieldValueInvalid", &format!("Invalid value: {value:?}: {message}")));
    };
    if let Some(problem) = problem {
        push("metadata.name", name, problem);
    }
    for (key, value) in metadata["labels"].as_object().into_iter().flatten() {
        if let Some(problem) = qualified_name(key) {
            push("metadata.labels", key, &problem);
        }
        let value = value.as_str().unwrap_or_default();
        if !value.is_empty() && !name_part(value) {
            let problem = if value.len() > 63 { "must be no more than 63 characters" } else { LABEL_VALUE };
            push("metadata.labels", value, problem);
        }
    }
    let mut size = 0;
    for (key, value) in metadata["annotations"].as_object().into_iter().flatten() {
        size += key.len() + value.as_str().unwrap_or_default().len();
        if let Some(problem) = qualified_name(key) {
            push("metadata.annotations", key, &problem);
        }
    }
    if size > 262_144 {
        causes.push(cause("metadata.annotations", "FieldValueTooLong", "Too long: must have at most 262144 bytes"));
    }
    causes
}

/// `spec.kprobes[0].bogus` as the JSON pointer `/spec/kprobes/0/bogus`.
fn json_pointer(path: &str) -> String {
    let steps = path.split('.').flat_map(|part| part.split('[')).filter(|s| !s.is_empty());
    steps.map(|s| format!("/{}", s.trim_end_matches(']').replace('~', "~0").replace('/', "~1"))).collect()
}

/// A value as the API server quotes it in messages.
fn quoted(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => format!("{text:?}"),
        Some(Value::Object(_)) => "\"object\"".into(),
        Some(Value::Array(_)) => "\"array\"".into(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

/// A schema or CEL problem as the API server words it.
fn crd_cause(object: &Value, problem: &Problem) -> Value {
    let value = quoted(object.pointer(&json_pointer(&problem.path)));
    if problem.message == "required field is missing" {
        return cause(&problem.path, "FieldValueRequired", "Required value");
    }
    if let Some((_, allowed)) = problem.message.split_once(" is not one of: ") {
        let allowed: Vec<String> = allowed.split(", ").map(|a| format!("{a:?}")).collect();
        let message = format!("Unsupported value: {value}: supported values: {}", allowed.join(", "));
        return cause(&problem.path, "FieldValueNotSupported", &message);
    }
    cause(&problem.path, "FieldValueInvalid", &format!("Invalid value: {value}: {}", problem.message))
}

fn network_policy_causes(spec: &Value, causes: &mut Vec<Value>) {
    for (i, kind) in spec["policyTypes"].as_array().into_iter().flatten().enumerate() {
        if kind != "Ingress" && kind != "Egress" {
            let message =
                format!("Unsupported value: {}: supported values: \"Ingress\", \"Egress\"", quoted(Some(kind)));
            causes.push(cause(&format!("spec.policyTypes[{i}]"), "FieldValueNotSupported", &message));
        }
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in spec[direction].as_array().into_iter().flatten().enumerate() {
            let here = format!("spec.{direction}[{i}]");
            for (j, port) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                for field in ["port", "endPort"] {
                    if let Some(number) = port[field].as_i64()
                        && !(1..=65535).contains(&number)
                    {
                        let message = format!("Invalid value: {number}: must be between 1 and 65535, inclusive");
                        causes.push(cause(&format!("{here}.ports[{j}].{field}"), "FieldValueInvalid", &message));
                    }
                }
            }
            for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                if !peer["ipBlock"].is_null() {
                    ip_block_causes(&peer["ipBlock"], &format!("{here}.{peers}[{j}].ipBlock"), causes);
                }
            }
        }
    }
}

fn ip_block_causes(block: &Value, here: &str, causes: &mut Vec<Value>) {
    let text = block["cidr"].as_str().unwrap_or_default();
    let Some(cidr) = parse_cidr(text) else {
        let (reason, message) = if text.is_empty() {
            ("FieldValueRequired", "Required value".to_string())
        } else {
            (
                "FieldValueInvalid",
                format!("Invalid value: {text:?}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"),
            )
        };
        causes.push(cause(&format!("{here}.cidr"), reason, &message));
        return;
    };
    for (i, except) in block["except"].as_array().into_iter().flatten().enumerate() {
        let text = except.as_str().unwrap_or_default();
        let message = match parse_cidr(text) {
            None => "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            Some((ip, bits)) if !contains(cidr, ip) || bits <= cidr.1 => "must be a strict subset of `cidr`",
            Some(_) => continue,
        };
        causes.push(cause(
            &format!("{here}.except[{i}]"),
            "FieldValueInvalid",
            &format!("Invalid value: {text:?}: {message}"),
        ));
    }
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = text.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u32 = bits.parse().ok()?;
    (bits <= if ip.is_ipv4() { 32 } else { 128 }).then_some((ip, bits))
}

fn contains((network, bits): (IpAddr, u32), ip: IpAddr) -> bool {
    let (shift, a, b) = match (network, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (32 - bits, u128::from(u32::from(n)), u128::from(u32::from(i))),
        (IpAddr::V6(n), IpAddr::V6(i)) => (128 - bits, u128::from(n), u128::from(i)),
        _ => return false,
    };
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// One requirement of a label selector.
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::In(key, values) => label(key).is_some_and(|l| values.iter().any(|v| v == l)),
            Requirement::NotIn(key, values) => label(key).is_none_or(|l| values.iter().all(|v| v != l)),
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::NotExists(key) => label(key).is_none(),
        }
    }
}

/// `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, joined by commas.
fn parse_label_selector(text: &str) -> Result<Vec<Requirement>, Failure> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().map(str::trim).filter(|t| !t.is_empty()).map(requirement).collect()
}

fn requirement(term: &str) -> Result<Requirement, Failure> {
    let bad = || bad_request(&format!("unable to parse requirement: {term:?}"));
    let values = |list: &str| list.split(',').map(|v| v.trim().to_string()).collect::<Vec<_>>();
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key.trim().into()));
    }
    if let Some(inner) = term.strip_suffix(')') {
        let (head, list) = inner.split_once('(').ok_or_else(bad)?;
        return match head.split_whitespace().collect::<Vec<_>>().as_slice() {
            [key, "in"] => Ok(Requirement::In(key.to_string(), values(list))),
            [key, "notin"] => Ok(Requirement::NotIn(key.to_string(), values(list))),
            _ => Err(bad()),
        };
    }
    for (operator, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let (key, value) = (key.trim().to_string(), values(value));
            return Ok(if negate { Requirement::NotIn(key, value) } else { Requirement::In(key, value) });
        }
    }
    if term.contains(|c: char| c.is_whitespace() || "()".contains(c)) {
        return Err(bad());
    }
    Ok(Requirement::Exists(term.into()))
}

/// `metadata.name=X` / `==` / `!=` and the same for `metadata.namespace`:
/// (metadata field, negated, value).
fn parse_field_selector(text: &str) -> Result<Vec<(String, bool, String)>, Failure> {
    let mut terms = Vec::new();
    for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, negate, value) = match term.split_once("!=") {
            Some((field, value)) => (field, true, value),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((field, value)) => (field, false, value),
                None => return Err(bad_request(&format!("invalid selector: '{text}'; can't understand '{term}'"))),
            },
        };
        let Some(field) = field.trim().strip_prefix("metadata.").filter(|f| matches!(*f, "name" | "namespace")) else {
            return Err(bad_request(&format!("field label not supported: {}", field.trim())));
        };
        terms.push((field.to_string(), negate, value.trim().to_string()));
    }
    Ok(terms)
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(entries) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().unwrap();
    for (key, value) in entries {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key).or_insert(Value::Null), value);
        }
    }
}

/// A field, at the granularity ownership is tracked: `metadata.labels.K`,
/// `metadata.annotations.K`, `spec.K`, `data.K`, or another top-level key.
type Field = Vec<String>;

/// One `metadata.managedFields` entry.
struct Manager {
    name: String,
    operation: String,
    api_version: String,
    time: String,
    fields: BTreeSet<Field>,
}

fn fields_of(object: &Value) -> BTreeSet<Field> {
    let mut fields = BTreeSet::new();
    for (key, value) in object.as_object().into_iter().flatten() {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for map in ["labels", "annotations"] {
                    for entry in value[map].as_object().into_iter().flatten().map(|(k, _)| k) {
                        fields.insert(vec!["metadata".into(), map.into(), entry.clone()]);
                    }
                }
            }
            "spec" | "data" if value.as_object().is_some_and(|m| !m.is_empty()) => {
                fields.extend(value.as_object().unwrap().keys().map(|k| vec![key.clone(), k.clone()]));
            }
            _ => {
                fields.insert(vec![key.clone()]);
            }
        }
    }
    fields
}

fn value_at<'v>(object: &'v Value, field: &Field) -> Option<&'v Value> {
    field.iter().try_fold(object, |value, step| value.get(step))
}

fn set_at(object: &mut Value, field: &Field, value: Value) {
    let (last, parents) = field.split_last().unwrap();
    let parent = parents.iter().fold(object, |node, step| &mut node[step.as_str()]);
    parent[last.as_str()] = value;
}

fn remove_at(object: &mut Value, field: &Field) {
    let (last, parents) = field.split_last().unwrap();
    if let Some(Value::Object(parent)) = parents.iter().try_fold(&mut *object, |node, step| node.get_mut(step)) {
        parent.remove(last);
        if parent.is_empty() && parents.len() == 2 {
            object["metadata"].as_object_mut().unwrap().remove(&parents[1]);
        }
    }
}

fn decode_fields(node: &Value, prefix: &mut Field, out: &mut BTreeSet<Field>) {
    let children: Vec<_> = node.as_object().into_iter().flatten().filter(|(k, _)| k.starts_with("f:")).collect();
    if children.is_empty() {
        let depth = match prefix.first().map(String::as_str) {
            None => return,
            Some("metadata") if prefix.len() >= 3 && matches!(prefix[1].as_str(), "labels" | "annotations") => 3,
            Some("metadata") => return,
            Some("spec" | "data") if prefix.len() >= 2 => 2,
            Some(_) => 1,
        };
        out.insert(prefix[..depth].to_vec());
        return;
    }
    for (key, child) in children {
        prefix.push(key[2..].to_string());
        decode_fields(child, prefix, out);
        prefix.pop();
    }
}

fn managers(object: &Value) -> Vec<Manager> {
    let entries = object["metadata"]["managedFields"].as_array().into_iter().flatten();
    let text = |entry: &Value, field: &str| entry[field].as_str().unwrap_or_default().to_string();
    entries
        .map(|entry| {
            let mut fields = BTreeSet::new();
            decode_fields(&entry["fieldsV1"], &mut Vec::new(), &mut fields);
            Manager {
                name: text(entry, "manager"),
                operation: text(entry, "operation"),
                api_version: text(entry, "apiVersion"),
                time: text(entry, "time"),
                fields,
            }
        })
        .collect()
}

fn write_managers(object: &mut Value, managers: Vec<Manager>) {
    let entries: Vec<Value> = managers
        .into_iter()
        .filter(|m| !m.fields.is_empty())
        .map(|m| {
            let mut fields_v1 = json!({});
            for field in &m.fields {
                let leaf = field.iter().fold(&mut fields_v1, |node, step| &mut node[format!("f:{step}")]);
                if leaf.is_null() {
                    *leaf = json!({});
                }
            }
            json!({"manager": m.name, "operation": m.operation, "apiVersion": m.api_version, "time": m.time,
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1})
        })
        .collect();
    let metadata = object["metadata"].as_object_mut().unwrap();
    if entries.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), json!(entries));
    }
}

/// Records an `Update` by `manager` that turned `old` into `new`: it owns
/// what it changed, and nobody owns what it removed.
fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str) {
    let before = old.cloned().unwrap_or_default();
    let mut managers = managers(&before);
    let after = fields_of(new);
    let changed: BTreeSet<Field> = after.iter().filter(|f| value_at(&before, f) != value_at(new, f)).cloned().collect();
    for m in &mut managers {
        m.fields.retain(|f| after.contains(f) && !changed.contains(f));
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|m| m.name == manager && m.operation == "Update") {
            Some(mine) => {
                mine.fields.extend(changed);
                mine.time = now();
            }
            None => managers.push(Manager {
                name: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now(),
                fields: changed,
            }),
        }
    }
    write_managers(new, managers);
}

/// Server-side apply of `applied` by `manager` onto `live`: the manager's
/// fields take the applied values, fields it applied before and no longer
/// sends go unless someone else owns them, and another manager's field with
/// a different value is a conflict unless `force` takes it over.
fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<Value, Failure> {
    let mut object = live.cloned().unwrap_or_else(|| {
        json!({"apiVersion": applied["apiVersion"], "kind": applied["kind"], "metadata": {"name": applied["metadata"]["name"]}})
    });
    let mut managers = managers(&object);
    if let Some(live) = live
        && managers.is_empty()
    {
        // What nobody has claimed yet belongs to whoever made it, as on a real server.
        let fields = fields_of(live);
        let (operation, time) = ("Update".into(), now());
        managers.push(Manager {
            name: "before-first-apply".into(),
            operation,
            api_version: api_version.into(),
            time,
            fields,
        });
    }
    let mine = fields_of(applied);
    let is_mine = |m: &Manager| m.name == manager && m.operation == "Apply";
    let differs = |f: &Field| value_at(&object, f) != value_at(applied, f);
    let mut conflicts = Vec::new();
    for other in managers.iter_mut().filter(|m| !is_mine(m)) {
        for field in other.fields.iter().filter(|f| mine.contains(*f) && differs(f)) {
            conflicts.push((other.name.clone(), other.api_version.clone(), format!(".{}", field.join("."))));
        }
        if force {
            other.fields.retain(|f| !(mine.contains(f) && differs(f)));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(apply_conflict(&conflicts));
    }
    let previous = managers.iter().find(|m| is_mine(m)).map(|m| m.fields.clone()).unwrap_or_default();
    for field in previous.difference(&mine) {
        if !managers.iter().any(|m| !is_mine(m) && m.fields.contains(field)) {
            remove_at(&mut object, field);
        }
    }
    for field in &mine {
        set_at(&mut object, field, value_at(applied, field).unwrap().clone());
    }
    managers.retain(|m| !is_mine(m));
    let entry = Manager {
        name: manager.into(),
        operation: "Apply".into(),
        api_version: api_version.into(),
        time: now(),
        fields: mine,
    };
    managers.push(entry);
    write_managers(&mut object, managers);
    Ok(object)
}

fn apply_conflict(conflicts: &[(String, String, String)]) -> Failure {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(manager, version, field)| {
            cause(field, "FieldManagerConflict", &format!("conflict with {manager:?} using {version}"))
        })
        .collect();
    let message = match conflicts {
        [(manager, version, field)] => {
            format!("Apply failed with 1 conflict: conflict with {manager:?} using {version}: {field}")
        }
        _ => {
            let lines: Vec<String> =
                conflicts.iter().map(|(m, v, f)| format!("- conflict with {m:?} using {v}: {f}")).collect();
            format!("Apply failed with {} conflicts:\n{}", conflicts.len(), lines.join("\n"))
        }
    };
    status(StatusCode::CONFLICT, "Conflict", &message, json!({"causes": causes}))
}
