//! A real Kubernetes API server for the cluster tests: `etcd` and
//! `kube-apiserver` built from their Go modules (`tests/k8s`), started on
//! free loopback ports, as controller-runtime's envtest does.
//!
//! - The binaries are built once per machine into `target/k8s/` (`etcd`,
//!   `kube-apiserver`; the Go build cache, 2.8 GB, is removed afterwards),
//!   again only when `tests/k8s/go.mod` or `go.sum` change; other tools can
//!   start the same server from there.
//! - One etcd per test binary run. Each API server keeps its objects under
//!   an etcd prefix of its own, so a test that needs a cluster of its own
//!   (no CRDs, the other CRD version) starts one in a few seconds; the
//!   others share [`ApiServer::shared`] and take a namespace each.
//! - Every server has a generated certificate, service-account signing keys,
//!   `--authorization-mode=RBAC` and a static token file with the
//!   [`Identity`]s below; `deploy/rbac.yaml` is applied at start, so
//!   [`Identity::Responder`] has exactly the rights the project documents.
//! - The processes run under a small shell guard that holds a pipe from the
//!   test process: when the test binary exits, however it exits, the pipe
//!   closes and the guard stops the server and removes its files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::root;

/// The release the binaries are built from (tests/k8s/go.mod pins it).
pub const KUBERNETES_VERSION: &str = "v1.37.2";

/// The address every server advertises in the `kubernetes` endpoints (a
/// documentation address: nothing connects to it, clients use the URL).
pub const ADVERTISED: &str = "192.0.2.1";

/// The Service ClusterIP range of every server.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// Who a kubeconfig speaks as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// `system:masters`: everything.
    Admin,
    /// The service account `qualys-respond/qualys-respond`, bound to
    /// `deploy/rbac.yaml`.
    Responder,
    /// The service account `qualys-respond-trimmed/qualys-respond`, bound to
    /// nothing until a test binds it.
    Trimmed,
}

impl Identity {
    const ALL: [Identity; 3] = [Identity::Admin, Identity::Responder, Identity::Trimmed];

    fn token(self) -> &'static str {
        match self {
            Identity::Admin => "admin-token",
            Identity::Responder => "responder-token",
            Identity::Trimmed => "trimmed-token",
        }
    }

    /// The user name the API server knows it by.
    pub fn user(self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::Responder => "system:serviceaccount:qualys-respond:qualys-respond",
            Identity::Trimmed => "system:serviceaccount:qualys-respond-trimmed:qualys-respond",
        }
    }

    fn token_line(self) -> String {
        let groups = match self {
            Identity::Admin => "system:masters".to_string(),
            Identity::Responder | Identity::Trimmed => {
                let namespace = self.user().split(':').nth(2).unwrap();
                format!("system:serviceaccounts,system:serviceaccounts:{namespace}")
            }
        };
        format!("{},{},{},\"{groups}\"\n", self.token(), self.user(), self.user())
    }

    fn file(self) -> &'static str {
        match self {
            Identity::Admin => "admin.kubeconfig",
            Identity::Responder => "responder.kubeconfig",
            Identity::Trimmed => "trimmed.kubeconfig",
        }
    }
}

/// Which Tetragon CRDs a server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crds {
    /// None: a cluster without Tetragon.
    None,
    /// `crds/tetragon/<version>`.
    Tetragon(&'static str),
}

/// A running API server (and, for the shared one, its etcd).
pub struct ApiServer {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    dir: PathBuf,
    ca: String,
    /// A client that trusts the server's certificate.
    http: reqwest::Client,
    process: Option<Child>,
}

/// The built binaries.
struct Binaries {
    etcd: PathBuf,
    apiserver: PathBuf,
}

/// A running etcd.
struct Etcd {
    url: String,
    _process: Child,
}

static NAMESPACES: AtomicUsize = AtomicUsize::new(0);
static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// Stops a process and removes its directory when this test binary exits
/// (its stdin closes): `$1` is the directory, the rest the command. A
/// process still running 5 s after SIGTERM gets SIGKILL (kube-apiserver
/// waits for ever to shut down gracefully once its etcd is gone). The guard
/// itself ends with the process, so an early exit can be seen and its log
/// read.
/// (An asynchronous list reads /dev/null unless told otherwise: hence fd 3.)
const GUARD: &str = r#"dir=$1; shift
exec 3<&0
"$@" </dev/null &
child=$!
(cat <&3 >/dev/null; kill "$child" 2>/dev/null; waited=0
 while kill -0 "$child" 2>/dev/null; do
   waited=$((waited + 1)); [ "$waited" -eq 50 ] && kill -9 "$child" 2>/dev/null; sleep 0.1
 done; rm -rf "$dir") &
wait "$child""#;

fn guarded(dir: &Path, program: &Path, args: &[String], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new("sh")
        .arg("-c")
        .arg(GUARD)
        .arg("guard")
        .arg(dir)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("sh runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Builds etcd and kube-apiserver from `tests/k8s` unless `target/k8s`
/// already holds the binaries of the same go.mod and go.sum.
fn binaries() -> &'static Binaries {
    static BUILT: OnceLock<Binaries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let module = root().join("tests/k8s");
        let out = root().join("target/k8s");
        let binaries = Binaries { etcd: out.join("etcd"), apiserver: out.join("kube-apiserver") };
        let mut digest = Sha256::new();
        for file in ["go.mod", "go.sum"] {
            digest.update(std::fs::read(module.join(file)).unwrap());
        }
        let ldflags = version_ldflags();
        digest.update(&ldflags);
        let stamp = format!("{:x}\n", digest.finalize());
        let stamp_file = out.join("stamp");
        let current = std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str());
        if current && binaries.etcd.exists() && binaries.apiserver.exists() {
            return binaries;
        }
        std::fs::create_dir_all(&out).unwrap();
        for (binary, package) in [
            (&binaries.etcd, "go.etcd.io/etcd/server/v3"),
            (&binaries.apiserver, "k8s.io/kubernetes/cmd/kube-apiserver"),
        ] {
            let started = Instant::now();
            let status = Command::new("go")
                .current_dir(&module)
                .args(["build", "-trimpath", "-ldflags", &ldflags, "-o"])
                .arg(binary)
                .arg(package)
                .env("GOCACHE", out.join("go-build"))
                .env("GOFLAGS", "-mod=readonly")
                .env("CGO_ENABLED", "0")
                .status()
                .expect("Go ≥ 1.26 builds the test API server (README: prerequisites)");
            assert!(status.success(), "building {package} in tests/k8s failed");
            eprintln!("built {} in {:.0?}", binary.display(), started.elapsed());
        }
        std::fs::write(&stamp_file, stamp).unwrap();
        // 2.8 GB of Go build cache for 144 MB of binaries: not worth keeping.
        let _ = std::fs::remove_dir_all(out.join("go-build"));
        binaries
    })
}

/// What `kube-apiserver --version` and `/version` report: the release it
/// was built from (a plain `go build` says v0.0.0).
fn version_ldflags() -> String {
    let minor = KUBERNETES_VERSION.split('.').nth(1).unwrap();
    ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
        .iter()
        .map(|package| {
            format!(
                "-X {package}.gitVersion={KUBERNETES_VERSION} -X {package}.gitMajor=1 -X {package}.gitMinor={minor} \
                 -X {package}.gitTreeState=clean"
            )
        })
        .chain(["-s -w".to_string()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn etcd() -> &'static Etcd {
    static ETCD: OnceLock<Etcd> = OnceLock::new();
    ETCD.get_or_init(|| {
        let binaries = binaries();
        let dir = tempfile::Builder::new().prefix("qualys-respond-etcd-").tempdir().unwrap().keep();
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args = [
            "--name=test".to_string(),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=test={peer_url}"),
            "--unsafe-no-fsync".to_string(),
            "--log-level=warn".to_string(),
        ];
        let log = dir.join("etcd.log");
        let mut process = guarded(&dir, &binaries.etcd, &args, &log);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = process.try_wait() {
                panic!("etcd exited ({status}):\n{}", tail(&log));
            }
            let healthy = runtime().block_on(async {
                let answer = reqwest::get(format!("{url}/health")).await.ok()?;
                answer.json::<Value>().await.ok()
            });
            if healthy.is_some_and(|h| h["health"] == "true") {
                break;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy:\n{}", tail(&log));
            std::thread::sleep(Duration::from_millis(100));
        }
        Etcd { url, _process: process }
    })
}

/// The runtime the harness's own requests run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap())
}

/// The path of the collection of `resource` (a plural, as in RBAC rules).
pub fn collection(resource: &str, namespace: Option<&str>) -> String {
    let group = match resource {
        "tracingpolicies" | "tracingpoliciesnamespaced" => "/apis/cilium.io/v1alpha1",
        "networkpolicies" | "servicecidrs" => "/apis/networking.k8s.io/v1",
        "cronjobs" => "/apis/batch/v1",
        "deployments" => "/apis/apps/v1",
        "poddisruptionbudgets" => "/apis/policy/v1",
        "customresourcedefinitions" => "/apis/apiextensions.k8s.io/v1",
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => "/apis/rbac.authorization.k8s.io/v1",
        "leases" => "/apis/coordination.k8s.io/v1",
        _ => "/api/v1",
    };
    match namespace {
        Some(namespace) => format!("{group}/namespaces/{namespace}/{resource}"),
        None => format!("{group}/{resource}"),
    }
}

/// The plural of an object's kind, for [`collection`].
pub fn resource_of(object: &Value) -> String {
    match object["kind"].as_str().unwrap() {
        "TracingPolicyNamespaced" => "tracingpoliciesnamespaced".to_string(),
        "TracingPolicy" => "tracingpolicies".to_string(),
        "NetworkPolicy" => "networkpolicies".to_string(),
        kind => format!("{}s", kind.to_lowercase()),
    }
}

impl ApiServer {
    /// The server most tests share, with Tetragon v1.7.0's CRDs (the
    /// release users run).
    pub fn shared() -> &'static ApiServer {
        static SHARED: OnceLock<ApiServer> = OnceLock::new();
        SHARED.get_or_init(|| ApiServer::start(Crds::Tetragon("v1.7.0")))
    }

    /// A cluster of its own (stopped when dropped), serving `crds`.
    pub fn start(crds: Crds) -> ApiServer {
        let binaries = binaries();
        let etcd = etcd();
        let dir = tempfile::Builder::new().prefix("qualys-respond-apiserver-").tempdir().unwrap().keep();
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        std::fs::write(dir.join("serving.crt"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("serving.key"), certified.signing_key.serialize_pem()).unwrap();
        let signing = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.join("sa.key"), signing.serialize_pem()).unwrap();
        std::fs::write(dir.join("sa.pub"), signing.public_key_pem()).unwrap();
        let tokens: String = Identity::ALL.iter().map(|i| i.token_line()).collect();
        std::fs::write(dir.join("tokens.csv"), tokens).unwrap();

        let port = free_port();
        let prefix = format!("/registry-{}-{}", std::process::id(), PREFIXES.fetch_add(1, Ordering::Relaxed));
        let file = |name: &str| dir.join(name).display().to_string();
        let args = [
            format!("--etcd-servers={}", etcd.url),
            format!("--etcd-prefix={prefix}"),
            "--bind-address=127.0.0.1".to_string(),
            // What the `kubernetes` Service's endpoints say (loopback is refused).
            format!("--advertise-address={ADVERTISED}"),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", file("certs")),
            format!("--tls-cert-file={}", file("serving.crt")),
            format!("--tls-private-key-file={}", file("serving.key")),
            format!("--token-auth-file={}", file("tokens.csv")),
            "--authorization-mode=RBAC".to_string(),
            "--anonymous-auth=false".to_string(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
            format!("--service-account-key-file={}", file("sa.pub")),
            format!("--service-account-signing-key-file={}", file("sa.key")),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            "--profiling=false".to_string(),
        ];
        let log = dir.join("kube-apiserver.log");
        let process = guarded(&dir, &binaries.apiserver, &args, &log);
        let certificate = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
        let mut server = ApiServer {
            url: format!("https://127.0.0.1:{port}"),
            ca: certified.cert.pem(),
            http: reqwest::Client::builder().add_root_certificate(certificate).build().unwrap(),
            dir: dir.clone(),
            process: Some(process),
        };
        for identity in Identity::ALL {
            server.write_kubeconfig(identity);
        }
        server.wait_ready(&log);
        server.bootstrap(crds);
        server
    }

    fn wait_ready(&mut self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(Ok(Some(status))) = self.process.as_mut().map(Child::try_wait) {
                panic!("kube-apiserver exited ({status}):\n{}", tail(log));
            }
            if self.request(Identity::Admin, "GET", "/readyz", None).0 == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "kube-apiserver did not become ready:\n{}", tail(log));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What every cluster has before a test starts: the project's namespace
    /// and RBAC (`deploy/rbac.yaml`), the trimmed identity's namespace,
    /// two Nodes with addresses and pod ranges, CoreDNS's Service, and the
    /// CRDs asked for.
    fn bootstrap(&self, crds: Crds) {
        for namespace in ["qualys-respond", "qualys-respond-trimmed"] {
            self.create_namespace(namespace);
        }
        for object in documents(&std::fs::read_to_string(root().join("deploy/rbac.yaml")).unwrap()) {
            self.apply(&object, "test-admin").expect("deploy/rbac.yaml applies");
        }
        for (name, address, pods) in
            [("node-a", "192.168.10.11", "10.244.0.0/24"), ("node-b", "192.168.10.12", "10.244.1.0/24")]
        {
            let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "spec": {"podCIDR": pods, "podCIDRs": [pods]}});
            self.apply(&node, "test-admin").unwrap();
            let status = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": address}]}});
            self.apply_to(&format!("/api/v1/nodes/{name}/status"), &status, "test-admin").unwrap();
        }
        let dns = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}});
        self.apply(&dns, "test-admin").unwrap();
        if let Crds::Tetragon(version) = crds {
            self.install_crds(version);
        }
    }

    /// Installs (or replaces) Tetragon's two CRDs of `version` and waits
    /// until both are established.
    pub fn install_crds(&self, version: &str) {
        let dir = root().join("crds/tetragon").join(version);
        for file in ["cilium.io_tracingpolicies.yaml", "cilium.io_tracingpoliciesnamespaced.yaml"] {
            for crd in documents(&std::fs::read_to_string(dir.join(file)).unwrap()) {
                self.apply(&crd, "test-admin").unwrap_or_else(|e| panic!("installing {file}: {e:?}"));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in ["tracingpolicies.cilium.io", "tracingpoliciesnamespaced.cilium.io"] {
            loop {
                let crd = self.get(&format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"));
                let established = crd
                    .as_ref()
                    .and_then(|c| c["status"]["conditions"].as_array())
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
                // Established, discovered, and its storage ready (a 429 "storage is
                // (re)initializing" comes before that).
                let plural = name.split('.').next().unwrap();
                let served = self.request(Identity::Admin, "GET", "/apis/cilium.io/v1alpha1", None).0 == 200
                    && self.request(Identity::Admin, "GET", &collection(plural, None), None).0 == 200;
                if established && served {
                    break;
                }
                assert!(Instant::now() < deadline, "the CRD {name} was not established");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn write_kubeconfig(&self, identity: Identity) {
        let ca = base64_encode(self.ca.as_bytes());
        let namespace = match identity {
            Identity::Admin => "default",
            Identity::Responder => "qualys-respond",
            Identity::Trimmed => "qualys-respond-trimmed",
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    \
             certificate-authority-data: {ca}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    \
             user: {user}\n    namespace: {namespace}\ncurrent-context: test\nusers:\n- name: {user}\n  user:\n    \
             token: {token}\n",
            self.url,
            user = identity.user(),
            token = identity.token(),
        );
        std::fs::write(self.dir.join(identity.file()), text).unwrap();
    }

    /// A kubeconfig whose credential comes from an exec plugin (a script
    /// printing `identity`'s token as an ExecCredential).
    pub fn exec_kubeconfig(&self, identity: Identity) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = self.dir.join(format!("credential-{}.sh", identity.token()));
        let credential = json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
            "status": {"token": identity.token()}});
        std::fs::write(&script, format!("#!/bin/sh\necho '{credential}'\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let text = std::fs::read_to_string(self.kubeconfig(identity)).unwrap();
        let exec = format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
            script.display()
        );
        let text = text.replace(&format!("    token: {}\n", identity.token()), &exec);
        let path = self.dir.join(format!("exec-{}", identity.file()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A kubeconfig for the service account `namespace/name`, with a token
    /// the API server issues for it (TokenRequest, one hour).
    pub fn service_account_kubeconfig(&self, namespace: &str, name: &str) -> PathBuf {
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token");
        let request = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600}});
        let (code, answer) = self.request(Identity::Admin, "POST", &path, Some(&request));
        assert_eq!(code, 201, "a token for {namespace}/{name}: {answer}");
        let token = answer["status"]["token"].as_str().unwrap();
        let text = std::fs::read_to_string(self.kubeconfig(Identity::Admin)).unwrap();
        let text = text
            .replace(&format!("token: {}", Identity::Admin.token()), &format!("token: {token}"))
            .replace("namespace: default", &format!("namespace: {namespace}"));
        let file = self.dir.join(format!("sa-{namespace}-{name}.kubeconfig"));
        std::fs::write(&file, text).unwrap();
        file
    }

    /// The kubeconfig of `identity` (its context's namespace is `default`
    /// for the admin, its own namespace for a service account).
    pub fn kubeconfig(&self, identity: Identity) -> PathBuf {
        self.dir.join(identity.file())
    }

    /// A new namespace for one test.
    pub fn namespace(&self, hint: &str) -> String {
        let name = format!("{hint}-{}", NAMESPACES.fetch_add(1, Ordering::Relaxed));
        self.create_namespace(&name);
        name
    }

    fn create_namespace(&self, name: &str) {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        self.apply(&namespace, "test-admin").unwrap();
    }

    /// One request as `identity`: the status code and the body (JSON, or
    /// the text as a JSON string). `body` is JSON, sent as
    /// `application/json`, or for a PATCH as an apply patch.
    pub fn request(&self, identity: Identity, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        runtime().block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let content_type =
                if method == reqwest::Method::PATCH { "application/apply-patch+yaml" } else { "application/json" };
            let mut request = self.http.request(method, url).bearer_auth(identity.token());
            if let Some(body) = body {
                request = request.header("content-type", content_type).body(body.to_string());
            }
            match request.send().await {
                Ok(answer) => {
                    let code = answer.status().as_u16();
                    let text = answer.text().await.unwrap_or_default();
                    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
                }
                Err(error) => (0, Value::String(error.to_string())),
            }
        })
    }

    /// The object at `path`, if it exists (as the admin).
    pub fn get(&self, path: &str) -> Option<Value> {
        match self.request(Identity::Admin, "GET", path, None) {
            (200, object) => Some(object),
            (404, _) => None,
            (code, body) => panic!("GET {path}: {code} {body}"),
        }
    }

    /// The items of `resource` in `namespace` (or cluster-wide), as the admin.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let list = self.get(&collection(resource, namespace)).unwrap_or_else(|| json!({"items": []}));
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Server-side applies `object` as the admin with field manager
    /// `manager`, forcing ownership. The object as stored, or the refusal.
    pub fn apply(&self, object: &Value, manager: &str) -> Result<Value, (u16, Value)> {
        let namespace = object["metadata"]["namespace"].as_str();
        let name = object["metadata"]["name"].as_str().unwrap();
        let path = format!("{}/{name}", collection(&resource_of(object), namespace));
        self.apply_to(&path, object, manager)
    }

    /// Server-side applies `object` at `path` (a subresource, say).
    pub fn apply_to(&self, path: &str, object: &Value, manager: &str) -> Result<Value, (u16, Value)> {
        let path = format!("{path}?fieldManager={manager}&force=true");
        match self.request(Identity::Admin, "PATCH", &path, Some(object)) {
            (code, object) if (200..300).contains(&code) => Ok(object),
            refused => Err(refused),
        }
    }

    /// Asks the server whether it would store `object` (a server-side dry
    /// run of a create, as the admin): `Ok` or the refusal.
    pub fn admits(&self, object: &Value) -> Result<(), (u16, Value)> {
        let namespace = object["metadata"]["namespace"].as_str();
        let path = format!("{}?dryRun=All&fieldValidation=Strict", collection(&resource_of(object), namespace));
        match self.request(Identity::Admin, "POST", &path, Some(object)) {
            (201 | 200, _) => Ok(()),
            refused => Err(refused),
        }
    }

    /// Deletes the object at `path` as the admin (gone already is fine).
    pub fn delete(&self, path: &str) {
        let (code, body) = self.request(Identity::Admin, "DELETE", path, None);
        assert!(code == 200 || code == 202 || code == 404, "DELETE {path}: {code} {body}");
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            drop(process.stdin.take());
            let _ = process.wait();
        }
    }
}

/// The YAML documents of `text`, as JSON (empty documents skipped).
pub fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes `text` to a new file in a directory of its own.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::File::create(&path).unwrap().write_all(text.as_bytes()).unwrap();
    (dir, path)
}
