//! The `serve` binary under test: started on a free loopback port with
//! files of secrets and tokens, reached over real HTTP(S) with reqwest,
//! stopped with SIGTERM. Webhooks are signed with the library's Standard
//! Webhooks signer, the same code `send` uses.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use qualys_respond::signature::{self, Secret};
use serde_json::Value;

use crate::fake_kube::FakeKube;
use crate::support::root;

/// A webhook secret of the tests.
pub const SECRET: &str = "whsec_dGhlIHRlc3Qgc2VjcmV0IG9mIHRoZSB3ZWJob29rIHNlcnZlcg==";
/// A second secret, for rotation.
pub const OTHER_SECRET: &str = "whsec_YW5vdGhlciBzZWNyZXQsIGZvciByb3RhdGlvbiB0ZXN0cw==";
/// An API token of the tests.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The runtime the tests' HTTP clients run on.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// An HTTP client (trusting `ca` for HTTPS).
pub fn client(ca: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap());
    }
    builder.build().unwrap()
}

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<String>>,
    /// Holds the secret and token files (and whatever a test puts there).
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// Extra settings for [`Server::start`].
#[derive(Default)]
pub struct Setup<'a> {
    /// Apply to this cluster.
    pub kube: Option<&'a FakeKube>,
    /// Or apply to the cluster of this kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// More arguments.
    pub args: Vec<String>,
    /// No secret file and no token file.
    pub no_auth: bool,
}

impl Server {
    /// Starts `serve` with a secret file ([`SECRET`]), a token file
    /// ([`TOKEN`]), a 100 ms window and `setup`.
    pub fn start(setup: Setup<'_>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubectl-qualys_respond"));
        command.current_dir(root()).args(["serve", "--listen", "127.0.0.1:0", "--no-config"]);
        if !setup.args.iter().any(|a| a == "--coalesce") {
            command.args(["--coalesce", "100ms"]);
        }
        if !setup.no_auth {
            std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
            std::fs::write(dir.path().join("tokens"), format!("{TOKEN}\n")).unwrap();
            command.arg("--webhook-secret-file").arg(dir.path().join("secret"));
            command.arg("--api-token-file").arg(dir.path().join("tokens"));
        }
        match setup.kube.map(|kube| kube.kubeconfig().to_path_buf()).or(setup.kubeconfig.clone()) {
            Some(kubeconfig) => {
                command.arg("--apply").arg("--kubeconfig").arg(kubeconfig);
            }
            None if !setup.args.iter().any(|a| a == "--output-dir") => {
                command.arg("--output-dir").arg(dir.path().join("policies"));
            }
            None => {}
        }
        command.args(&setup.args);
        command.env_remove("QUALYS_RESPOND_WEBHOOK_SECRET").env_remove("QUALYS_RESPOND_API_TOKEN");
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("the binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let (address, lines) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving address=").nth(1) {
                    let _ = address.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!("serve did not start ({status}):\n{}", log.lock().unwrap());
            }
        };
        let https = setup.args.iter().any(|a| a == "--tls-cert");
        let url = format!("{}://{address}", if https { "https" } else { "http" });
        Server { child: Some(child), url, log, dir, http: client(None) }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A file in the server's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends a request; the status and the body as JSON (`Null` if it is not).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
        let request = self.http.request(method.parse().unwrap(), format!("{}{path}", self.url));
        let request = headers.iter().fold(request, |r, (k, v)| r.header(*k, v)).body(body);
        runtime().block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }

    /// `GET path` as text, with the status.
    pub fn get(&self, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        let request = self.http.get(format!("{}{path}", self.url));
        let request = headers.iter().fold(request, |r, (k, v)| r.header(*k, v));
        runtime().block_on(async {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    }

    /// Posts `body` to `/webhook/cdr`, signed with [`SECRET`].
    pub fn webhook(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let headers = signed(&[SECRET], &unique_id(), now(), &bytes);
        self.request("POST", "/webhook/cdr", &headers, bytes)
    }

    /// Posts `body` to an `/api/…` route with [`TOKEN`].
    pub fn api(&self, path: &str, body: &Value) -> (u16, Value) {
        let headers = [("content-type", "application/json".to_string()), ("authorization", format!("Bearer {TOKEN}"))];
        self.request("POST", path, &headers, serde_json::to_vec(body).unwrap())
    }

    /// `GET /status` with [`TOKEN`].
    pub fn status(&self) -> Value {
        let (code, text) = self.get("/status", &[("authorization", format!("Bearer {TOKEN}"))]);
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the exit; the exit status and the log.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        terminate(child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running 60 s after SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(200));
        (status, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// Unix time now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A message id no other test uses.
pub fn unique_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("msg_test_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// The headers of a signed JSON message.
pub fn signed(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::parse(s).unwrap()).collect();
    vec![
        ("content-type", "application/json".to_string()),
        (signature::ID_HEADER, id.to_string()),
        (signature::TIMESTAMP_HEADER, timestamp.to_string()),
        (signature::SIGNATURE_HEADER, signature::sign(&secrets, id, timestamp, body)),
    ]
}

/// Waits up to 30 s for `check` to hold.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_on(what, &[], check);
}

/// Waits up to 30 s for `check` to hold; a timeout shows what `servers` logged.
pub fn eventually_on(what: &str, servers: &[&Server], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
            panic!("timed out waiting for {what}; the servers logged:\n{}", logs.join("\n----\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
