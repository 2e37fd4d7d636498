//! `serve` under load on loopback: wrk against `/health` (the ceiling) and
//! against `/webhook/cdr` with pre-signed, distinct findings while the
//! server applies them to the fake Kubernetes API; then the server's own
//! request-to-applied histogram and its peak RSS. Run with
//! `cargo bench --bench serve` (needs `wrk`, Debian's package).

#[path = "../tests/it/fake_kube/mod.rs"]
#[allow(dead_code)]
mod fake_kube;
#[path = "../tests/it/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use qualys_respond::signature::{Secret, sign};
use serde_json::json;

const SECRET: &str = "whsec_dGhlIHRlc3Qgc2VjcmV0IG9mIHRoZSB3ZWJob29rIHNlcnZlcg==";
const REQUESTS: usize = 600_000;
const SECONDS: u64 = 10;
const CONNECTIONS: usize = 64;

/// wrk's script: each thread takes every n-th pre-signed request of the file.
const SCRIPT: &str = r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
  thread:set("nthreads", 2)
end
local requests = {}
local i = 0
function init(args)
  local n = 0
  for line in io.lines(args[1]) do
    if n % nthreads == tid then
      local id, ts, sig, body = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)")
      requests[#requests + 1] = wrk.format("POST", "/webhook/cdr", {
        ["Content-Type"] = "application/json", ["webhook-id"] = id,
        ["webhook-timestamp"] = ts, ["webhook-signature"] = sig }, body)
    end
    n = n + 1
  end
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"#;

fn wrk(url: &str, script: Option<(&std::path::Path, &std::path::Path)>) -> String {
    let mut command = Command::new("wrk");
    command.args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{SECONDS}s"), "--latency"]);
    if let Some((script, data)) = script {
        command.arg("-s").arg(script).arg(url).arg("--").arg(data);
    } else {
        command.arg(url);
    }
    let output = command.output().expect("wrk is installed (apt-get install wrk)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn field<'a>(report: &'a str, prefix: &str) -> &'a str {
    report.lines().find_map(|l| l.trim().strip_prefix(prefix)).map(str::trim).unwrap_or("?")
}

/// A server on the fake API, and its address.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(fake: &fake_kube::FakeKube, secret: &std::path::Path, coalesce: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-qualys_respond"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--no-config",
                "--apply",
                "--rate-limit",
                "0",
                "--coalesce",
                coalesce,
            ])
            .arg("--kubeconfig")
            .arg(fake.kubeconfig())
            .arg("--webhook-secret-file")
            .arg(secret)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines().map_while(Result::ok);
        let address = lines
            .by_ref()
            .find_map(|l| l.split("serving address=").nth(1).map(|r| r.split_whitespace().next().unwrap().to_string()))
            .expect("the server starts");
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, base: format!("http://{address}") }
    }

    fn rss(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().replace(' ', "")))
            .unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Pre-signed requests: (webhook-id, timestamp, signature, body).
fn signed_requests(first: usize, count: usize) -> Vec<(String, i64, String, String)> {
    let secrets = vec![Secret::parse(SECRET).unwrap()];
    let now = chrono::Utc::now();
    let categories = ["Crypto_Mining", "Privilege_Escalation", "Container_Escape", "Network_Scanning_Utility"];
    (first..first + count)
        .map(|i| {
            let namespace = ["default", "payments"][i % 2];
            let body = json!({"uuid": format!("load-{i:07}"), "threatCategory": categories[i % 4],
                "namespace": namespace, "timestamp": now.to_rfc3339(),
                "processName": "/usr/bin/xmrig", "destinationPort": 3333})
            .to_string();
            let (id, ts) = (format!("msg_load_{i}"), now.timestamp());
            let signature = sign(&secrets, &id, ts, body.as_bytes());
            (id, ts, signature, body)
        })
        .collect()
}

/// Sends `requests` at `rate` a second over 32 connections; the answers' codes.
fn paced(url: &str, requests: Vec<(String, i64, String, String)>, rate: u64) -> BTreeMap<u16, usize> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
        let workers = 32;
        let mut chunks: Vec<Vec<_>> = (0..workers).map(|_| Vec::new()).collect();
        for (i, request) in requests.into_iter().enumerate() {
            chunks[i % workers].push(request);
        }
        let tasks: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (http, url) = (http.clone(), url.to_string());
                tokio::spawn(async move {
                    let mut codes = BTreeMap::new();
                    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 * workers as u64 / rate));
                    for (id, ts, signature, body) in chunk {
                        tick.tick().await;
                        let sent = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("webhook-id", id)
                            .header("webhook-timestamp", ts.to_string())
                            .header("webhook-signature", signature)
                            .body(body)
                            .send()
                            .await;
                        *codes.entry(sent.map_or(0, |r| r.status().as_u16())).or_insert(0) += 1;
                    }
                    codes
                })
            })
            .collect();
        let mut all = BTreeMap::new();
        for task in tasks {
            for (code, n) in task.await.unwrap() {
                *all.entry(code).or_insert(0) += n;
            }
        }
        all
    })
}

/// p50 and p99 upper bounds of a histogram in an exposition.
fn quantiles(metrics: &str, name: &str) -> (String, String, u64) {
    let buckets: Vec<(f64, u64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{name}_bucket{{le=\"")))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.parse().unwrap_or(f64::INFINITY), count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0, |b| b.1);
    let at = |q: f64| {
        buckets
            .iter()
            .find(|(_, count)| *count as f64 >= q * total as f64)
            .map_or("?".to_string(), |(le, _)| format!("{:.0}ms", le * 1000.0))
    };
    (at(0.5), at(0.99), total)
}

fn main() {
    let fake = fake_kube::FakeKube::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();

    // 1. Throughput: wrk as fast as it can, the default 200 ms window.
    let server = Server::start(&fake, &secret, "200ms");
    let data = dir.path().join("requests.tsv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
    for (id, ts, signature, body) in signed_requests(0, REQUESTS) {
        writeln!(file, "{id}\t{ts}\t{signature}\t{body}").unwrap();
    }
    file.flush().unwrap();
    let script = dir.path().join("signed.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    let health = wrk(&format!("{}/health", server.base), None);
    std::thread::sleep(Duration::from_secs(1));
    let webhook = wrk(&format!("{}/webhook/cdr", server.base), Some((&script, &data)));
    std::thread::sleep(Duration::from_secs(3));
    let metrics = get(&format!("{}/metrics", server.base));
    let rss = server.rss();
    server.stop();
    println!(
        "== /health ==\n{health}\n== /webhook/cdr (signed, distinct findings, applied to the fake API) ==\n{webhook}"
    );
    for line in metrics.lines().filter(|l| {
        l.starts_with("qualys_respond_webhook_events_total") || l.starts_with("qualys_respond_http_requests_total")
    }) {
        println!("{line}");
    }
    let (p50, p99, applied) = quantiles(&metrics, "qualys_respond_request_to_applied_seconds");
    println!("request-to-applied under wrk: p50 <= {p50}, p99 <= {p99} ({applied} findings); peak RSS {rss}");
    println!(
        "RESULT health_rps={} health_p99={} webhook_rps={} webhook_p50={} webhook_p99={} rss={rss}",
        field(&health, "Requests/sec:"),
        field(&health, "99%"),
        field(&webhook, "Requests/sec:"),
        field(&webhook, "50%"),
        field(&webhook, "99%"),
    );

    // 2. Detection to applied at a steady 5,000 findings a second, for two windows.
    for (n, window) in ["200ms", "50ms"].into_iter().enumerate() {
        let server = Server::start(&fake, &secret, window);
        let requests = signed_requests(REQUESTS * (n + 1), PACED_RATE as usize * SECONDS as usize);
        let codes = paced(&format!("{}/webhook/cdr", server.base), requests, PACED_RATE);
        std::thread::sleep(Duration::from_secs(2));
        let metrics = get(&format!("{}/metrics", server.base));
        let (p50, p99, applied) = quantiles(&metrics, "qualys_respond_request_to_applied_seconds");
        let rss = server.rss();
        server.stop();
        println!(
            "RESULT paced_rate={PACED_RATE} coalesce={window} codes={codes:?} applied={applied} request_to_applied_p50<={p50} p99<={p99} rss={rss}"
        );
    }
}

/// Findings a second of the paced phase.
const PACED_RATE: u64 = 5_000;

fn get(url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().text().await.unwrap() })
}
