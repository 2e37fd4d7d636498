//! `serve` end to end over real HTTP on loopback: what it refuses (and
//! that a refusal changes nothing), secret rotation, the manual API and its
//! guardrails, findings becoming policies in the Kubernetes fake, bursts,
//! two replicas, reputation against a fake AbuseIPDB and a feed file, TLS
//! and mTLS, metrics checked by promtool, and SIGTERM during a burst.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{annotation, cluster, policies};
use crate::fake_abuseipdb::{FakeAbuseIpDb, Mode as AbuseMode};
use crate::fake_kube::{FakeKube, Options};
use crate::server::{
    OTHER_SECRET, SECRET, Server, Setup, TOKEN, eventually, eventually_on, now, runtime, signed, unique_id,
};
use crate::support::bin;

fn named<'a>(objects: &'a [Value], name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["metadata"]["name"] == name)
}

fn sample() -> Value {
    serde_json::from_str(&std::fs::read_to_string(crate::support::root().join("samples/findings.json")).unwrap())
        .unwrap()
}

/// A finding of `category` in `namespace`.
fn finding(id: &str, category: &str, namespace: &str) -> Value {
    json!({"uuid": id, "threatCategory": category, "namespace": namespace, "timestamp": chrono::Utc::now().to_rfc3339()})
}

/// Writes (PATCH, POST, PUT, DELETE) the fake saw for objects named `name`.
fn writes_of(fake: &FakeKube, name: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| {
            !r.starts_with("GET ")
                && !r.contains("dryRun")
                && r.split('?').next().unwrap_or_default().ends_with(&format!("/{name}"))
        })
        .count()
}

#[test]
fn refused_requests_get_their_code_and_change_nothing() {
    let fake = cluster();
    let args = vec!["--max-body".into(), "4KiB".into(), "-vvv".into()];
    let server = Server::start(Setup { kube: Some(&fake), args, ..Setup::default() });
    let body = serde_json::to_vec(&json!([finding("r-1", "Privilege_Escalation", "payments")])).unwrap();
    let post =
        |headers: Vec<(&'static str, String)>, body: Vec<u8>| server.request("POST", "/webhook/cdr", &headers, body);
    let with = |mut headers: Vec<(&'static str, String)>, name: &'static str, value: String| {
        headers.retain(|(k, _)| *k != name);
        headers.push((name, value));
        headers
    };
    let good = || signed(&[SECRET], &unique_id(), now(), &body);

    let forged = signed(&[OTHER_SECRET], &unique_id(), now(), &body);
    assert_eq!(post(forged, body.clone()).0, 401, "a signature made with another secret");
    let truncated = with(good(), "webhook-signature", "v1,".into());
    let (code, answer) = post(truncated, body.clone());
    assert_eq!(code, 401, "an empty v1 signature");
    assert!(answer["error"].as_str().unwrap().contains("no well-formed v1 signature"), "{answer}");
    let stale = signed(&[SECRET], &unique_id(), now() - 600, &body);
    assert!(post(stale, body.clone()).1["error"].as_str().unwrap().contains("old, outside the tolerance"));
    let future = signed(&[SECRET], &unique_id(), now() + 600, &body);
    assert!(post(future, body.clone()).1["error"].as_str().unwrap().contains("in the future"));
    let missing: Vec<_> = good().into_iter().filter(|(k, _)| *k != "webhook-id").collect();
    assert_eq!(post(missing, body.clone()).0, 401);
    let tampered = good();
    let mut other = body.clone();
    other.extend_from_slice(b" ");
    assert_eq!(post(tampered, other).0, 401, "a body changed after signing");

    // A replay of the exact message; the original names a category no mapper has.
    let harmless = serde_json::to_vec(&json!({"uuid": "r-replay", "threatCategory": "Nothing_We_Map"})).unwrap();
    let original = signed(&[SECRET], &unique_id(), now(), &harmless);
    assert_eq!(post(original.clone(), harmless.clone()).0, 202);
    let (code, answer) = post(original, harmless.clone());
    assert_eq!(code, 409, "{answer}");

    let big = serde_json::to_vec(&json!({"uuid": "big", "threatCategory": "X", "pad": "x".repeat(5000)})).unwrap();
    let headers = signed(&[SECRET], &unique_id(), now(), &big);
    assert_eq!(post(headers, big).0, 413, "a body over --max-body");
    let broken = b"{\"uuid\": ".to_vec();
    let (code, answer) = post(signed(&[SECRET], &unique_id(), now(), &broken), broken);
    assert_eq!(code, 400, "{answer}");
    let shapeless = serde_json::to_vec(&json!([{"threatCategory": "Crypto_Mining"}])).unwrap();
    let (code, answer) = post(signed(&[SECRET], &unique_id(), now(), &shapeless), shapeless);
    assert_eq!(code, 422, "{answer}");
    assert!(answer["problems"][0].as_str().unwrap().contains("missing `uuid`"), "{answer}");
    let plain = with(good(), "content-type", "text/plain".into());
    assert_eq!(post(plain, body.clone()).0, 415);

    let block = serde_json::to_vec(&json!({"type": "ip", "values": ["203.0.113.7"]})).unwrap();
    let json_type = ("content-type", "application/json".to_string());
    let (code, answer) = server.request("POST", "/api/block", std::slice::from_ref(&json_type), block.clone());
    assert_eq!(code, 401, "no token: {answer}");
    let wrong = ("authorization", "Bearer not-the-token-0123456789".to_string());
    assert_eq!(server.request("POST", "/api/block", &[json_type.clone(), wrong.clone()], block.clone()).0, 401);
    assert_eq!(server.get("/status", &[wrong]).0, 401);
    assert_eq!(server.get("/status", &[]).0, 401);
    assert_eq!(server.request("GET", "/webhook/cdr", &[], Vec::new()).0, 405);
    assert_eq!(server.get("/nowhere", &[]).0, 404);

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.writes(), 0, "a refused request changed the cluster");
    assert!(policies(&fake).is_empty());
    let (_, metrics) = server.get("/metrics", &[]);
    for reason in ["no_match", "malformed", "stale", "future", "missing_header", "replay"] {
        assert!(
            metrics.contains(&format!("qualys_respond_webhook_signature_failures_total{{reason=\"{reason}\"}}")),
            "{reason}:\n{metrics}"
        );
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(TOKEN), "a secret reached the log:\n{log}");
}

#[test]
fn a_client_over_its_rate_is_told_to_wait() {
    let server = Server::start(Setup {
        args: ["--rate-limit", "1", "--rate-burst", "2"].map(String::from).to_vec(),
        ..Setup::default()
    });
    let codes: Vec<u16> =
        (0..4).map(|_| server.webhook(&json!({"uuid": unique_id(), "threatCategory": "X"})).0).collect();
    assert_eq!(codes[..2], [202, 202]);
    assert!(codes[2..].contains(&429), "{codes:?}");
    assert_eq!(server.get("/health", &[]).0, 200, "probes are not rate limited");
}

#[test]
fn secrets_and_tokens_rotate_without_a_restart() {
    let server = Server::start(Setup::default());
    let message = |secrets: &[&str]| {
        let body = serde_json::to_vec(&json!({"uuid": unique_id(), "threatCategory": "Nothing_We_Map"})).unwrap();
        server.request("POST", "/webhook/cdr", &signed(secrets, &unique_id(), now(), &body), body).0
    };
    assert_eq!(message(&[SECRET]), 202);
    assert_eq!(message(&[OTHER_SECRET]), 401);
    std::fs::write(server.path("secret"), format!("{SECRET}\n{OTHER_SECRET}\n")).unwrap();
    eventually("the new secret to be accepted", || message(&[OTHER_SECRET]) == 202);
    assert_eq!(message(&[SECRET]), 202, "both secrets work while both are listed");
    std::fs::write(server.path("secret"), format!("{OTHER_SECRET}\n")).unwrap();
    eventually("the old secret to be refused", || message(&[SECRET]) == 401);
    assert_eq!(message(&[OTHER_SECRET]), 202);
    assert_eq!(message(&[SECRET, OTHER_SECRET]), 202, "a sender signing with both is accepted");

    let new_token = "rotated-token-0123456789abcdef";
    let status = |token: &str| server.get("/status", &[("authorization", format!("Bearer {token}"))]).0;
    std::fs::write(server.path("tokens"), format!("{new_token}\n")).unwrap();
    eventually("the new token to be accepted", || status(new_token) == 200);
    assert_eq!(status(TOKEN), 401);
}

#[test]
fn without_a_secret_the_server_refuses_to_start_unless_told_to_skip_signatures() {
    let output = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--output-dir", "/tmp/unused", "--no-config"])
        .env_remove("QUALYS_RESPOND_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no webhook secret"), "{output:?}");
    let server = Server::start(Setup {
        no_auth: true,
        args: vec!["--insecure-skip-signature".into(), "-v".into()],
        ..Setup::default()
    });
    let (code, _) = server.request(
        "POST",
        "/webhook/cdr",
        &[("content-type", "application/json".into())],
        br#"{"uuid":"u","threatCategory":"X"}"#.to_vec(),
    );
    assert_eq!(code, 202);
    assert_eq!(server.get("/status", &[]).0, 403, "no token configured: the API is off");
    let (_, log) = server.stop();
    let request_lines: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    assert!(!request_lines.is_empty());
    assert!(request_lines.iter().all(|l| l.contains("NOT verified")), "{log}");
}

#[test]
fn the_block_api_has_the_guardrails_audit_default_and_objects_of_the_cli() {
    let fake = cluster();
    let server = Server::start(Setup { kube: Some(&fake), ..Setup::default() });
    for (value, expected) in [
        ("0.0.0.0/0", "every address"),
        ("127.0.0.1", "loopback"),
        ("192.168.49.2", "node node-1"),
        ("10.96.0.10", "the cluster DNS service"),
    ] {
        let (code, answer) = server.api("/api/block", &json!({"type": "ip", "values": [value], "reason": "test"}));
        assert_eq!(code, 422, "{value}: {answer}");
        let refusal = answer["refusals"][0].as_str().unwrap();
        assert!(refusal.contains(expected), "{value}: {refusal}");
        let cli = bin().arg("block").arg("--kubeconfig").arg(fake.kubeconfig()).args(["--ip", value]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&cli.stderr).contains(refusal),
            "the CLI refuses {value} the same way: {cli:?}"
        );
    }
    let (code, answer) = server.api("/api/block", &json!({"type": "port", "values": [53]}));
    assert_eq!(code, 422, "{answer}");
    assert_eq!(fake.writes(), 0);

    let (code, answer) = server.api(
        "/api/block",
        &json!({"type": "ip", "values": ["1.2.3.4", "5.6.7.8"],
        "reason": "C2 communication detected", "action": "Sigkill", "ttl": "24h"}),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["changes"][0]["outcome"], "created");
    let (code, answer) =
        server.api("/api/block", &json!({"type": "port", "values": ["4444", "6666"], "reason": "Reverse shell ports"}));
    assert_eq!(code, 200, "{answer}");
    let block = named(&fake.list("tracingpolicies"), "cdr-manual-block-port").cloned().unwrap();
    assert_eq!(block["metadata"]["labels"]["qualys-respond.io/mode"], "audit", "audit unless asked");
    let ip_block = named(&fake.list("tracingpolicies"), "cdr-manual-block-ip").cloned().unwrap();
    assert_eq!(ip_block["metadata"]["labels"]["qualys-respond.io/mode"], "enforce");
    let status = server.status();
    let blocks = status["blocks"].as_array().unwrap();
    let ip = blocks.iter().find(|b| b["value"] == "1.2.3.4/32").unwrap();
    assert_eq!(ip["reason"], "C2 communication detected");
    assert!(ip["by"].as_str().unwrap().contains("via /api/block from 127.0.0.1"), "{ip}");
    assert!(ip["until"].is_string() && ip["since"].is_string() && ip["type"] == "ip");
    assert!(blocks.iter().any(|b| b["value"] == "6666" && b["type"] == "port"));

    let (code, answer) = server.api("/api/unblock", &json!({"type": "ip", "values": ["1.2.3.4"]}));
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = server.api("/api/unblock", &json!({"type": "ip", "values": ["9.9.9.9"]}));
    assert_eq!(code, 422, "{answer}");
    let (code, _) = server.api("/api/unblock", &json!({"all": true}));
    assert_eq!(code, 200);
    assert!(fake.list("tracingpolicies").is_empty(), "unblocking everything deletes the block policies");
    let (code, answer) = server.api("/api/block", &json!({"type": "ip", "values": ["1.2.3.4"], "force": true}));
    assert_eq!(code, 422, "unknown fields are refused: {answer}");
}

#[test]
fn a_signed_finding_becomes_a_policy_and_status_and_metrics_show_it() {
    let fake = cluster();
    let server = Server::start(Setup { kube: Some(&fake), ..Setup::default() });
    eventually("readiness", || server.get("/readyz", &[]).0 == 200);
    let (code, answer) = server.webhook(&sample());
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["accepted"].as_array().unwrap().len(), 8);
    eventually("the policies in the cluster", || policies(&fake).len() == 9);
    let imds =
        named(&policies(&fake), "cdr-cloud-credentials-accessed-by-network-utility-imds-egress").cloned().unwrap();
    assert_eq!(imds["metadata"]["namespace"], "payments");
    assert_eq!(imds["metadata"]["labels"]["mitre.attack/technique"], "T1552.005");
    assert_eq!(imds["metadata"]["labels"]["qualys-respond.io/mode"], "audit");
    let status = server.status();
    let names: BTreeSet<&str> =
        status["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains("cdr-crypto-mining-pool-ports"), "{names:?}");
    assert!(status["policies"].as_array().unwrap().iter().all(|p| p["mode"] == "audit"));

    let writes = fake.writes();
    let (code, answer) = server.webhook(&sample());
    assert_eq!(code, 200, "every finding was handled before: {answer}");
    assert_eq!(answer["duplicates"].as_array().unwrap().len(), 8);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(fake.writes(), writes);

    let (_, metrics) = server.get("/metrics", &[]);
    assert!(metrics.contains("qualys_respond_webhook_events_total{outcome=\"applied\"} 7"), "{metrics}");
    assert!(metrics.contains("qualys_respond_webhook_events_total{outcome=\"unknown_category\"} 1"));
    assert!(metrics.contains("qualys_respond_webhook_events_total{outcome=\"duplicate\"} 8"));
    assert!(metrics.contains("qualys_respond_policies_total{outcome=\"created\"} 9"), "{metrics}");
    let timed = sample()["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !f["timestamp"].is_null() && f["threatCategory"] != "Suspicious_Kernel_Module_Load")
        .count();
    assert!(metrics.contains(&format!("qualys_respond_detection_to_applied_seconds_count {timed}")), "{metrics}");
    assert!(metrics.contains("qualys_respond_request_to_applied_seconds_count 7"), "{metrics}");
    promtool(&metrics);
    let (_, openmetrics) = server.get("/metrics", &[("accept", "application/openmetrics-text; version=1.0.0".into())]);
    assert!(openmetrics.ends_with("# EOF\n"));

    // A restarted server knows the findings from the cluster's objects.
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let restarted = Server::start(Setup { kube: Some(&fake), ..Setup::default() });
    let (_, answer) = restarted.webhook(&sample());
    assert_eq!(answer["duplicates"].as_array().unwrap().len(), 7, "{answer}");
    assert_eq!(
        answer["accepted"],
        json!(["3f1c9a52-0008-4c1e-9b1a-unkn00000008"]),
        "the unknown category left no trace"
    );
}

/// `promtool check metrics` on an exposition (Debian's `prometheus` package).
fn promtool(metrics: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian's prometheus package; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Posts `bodies` concurrently, signed; the answers in order.
fn burst(server: &Server, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    let http = crate::server::client(None);
    let url = format!("{}/webhook/cdr", server.url);
    runtime().block_on(async {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move {
                    let bytes = serde_json::to_vec(&body).unwrap();
                    let request = signed(&[SECRET], &unique_id(), now(), &bytes)
                        .into_iter()
                        .fold(http.post(&url), |r, (k, v)| r.header(k, v));
                    match request.body(bytes).send().await {
                        Ok(response) => {
                            let code = response.status().as_u16();
                            (code, response.json().await.unwrap_or(Value::Null))
                        }
                        Err(_) => (0, Value::Null),
                    }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    })
}

#[test]
fn bursts_coalesce_into_one_apply_per_policy() {
    let fake = cluster();
    let server =
        Server::start(Setup { kube: Some(&fake), args: vec!["--coalesce".into(), "5s".into()], ..Setup::default() });
    let copies = vec![finding("same-finding", "Container_Escape", "payments"); 1000];
    let answers = burst(&server, copies);
    assert_eq!(answers.iter().filter(|(c, _)| *c == 202).count(), 1, "one copy is accepted");
    assert_eq!(answers.iter().filter(|(c, _)| *c == 200).count(), 999, "the others are duplicates");
    let escape = "cdr-container-escape-namespace-escape";
    eventually("the escape policy", || named(&policies(&fake), escape).is_some());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(writes_of(&fake, escape), 1, "{:#?}", fake.requests());

    let distinct: Vec<Value> =
        (0..1000).map(|i| finding(&format!("setuid-{i:04}"), "Privilege_Escalation", "payments")).collect();
    let answers = burst(&server, distinct);
    assert!(answers.iter().all(|(c, _)| *c == 202), "{:?}", answers.iter().find(|(c, _)| *c != 202));
    let setuid = "cdr-privilege-escalation-setuid-root";
    eventually("the setuid policy with every finding", || {
        named(&policies(&fake), setuid).is_some_and(|p| annotation(p, "qualys-respond.io/finding-count") == "1000")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        writes_of(&fake, setuid),
        1,
        "{:#?}",
        fake.requests().iter().filter(|r| r.contains(setuid)).collect::<Vec<_>>()
    );
}

#[test]
fn two_servers_behind_one_service_converge_on_the_same_objects() {
    let fake = cluster();
    let setup = || Setup { kube: Some(&fake), args: vec!["--coalesce".into(), "300ms".into()], ..Setup::default() };
    let (a, b) = (Server::start(setup()), Server::start(setup()));
    let mut all = BTreeSet::new();
    let mut sent = Vec::new();
    for round in 0..5 {
        let mut mine = |server: &str| {
            let id = format!("{server}-{round}");
            all.insert(id.clone());
            let mut f = finding(&id, "Crypto_Mining", "payments");
            f["destinationPort"] = json!(31000 + round * 2 + usize::from(server == "b"));
            f
        };
        let (fa, fb) = (mine("a"), mine("b"));
        sent.push(fa.clone());
        let (ra, rb) = std::thread::scope(|scope| {
            let ta = scope.spawn(|| a.webhook(&fa));
            let tb = scope.spawn(|| b.webhook(&fb));
            (ta.join().unwrap(), tb.join().unwrap())
        });
        assert_eq!((ra.0, rb.0), (202, 202), "{ra:?} {rb:?}");
    }
    let ports = |p: &Value| -> BTreeSet<String> {
        p["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    eventually_on("both servers' findings in one object", &[&a, &b], || {
        named(&policies(&fake), "cdr-crypto-mining-pool-ports").is_some_and(|p| {
            let ids: BTreeSet<String> =
                annotation(p, "qualys-respond.io/finding-ids").split(',').map(str::to_string).collect();
            ids == all
        })
    });
    let pool = named(&policies(&fake), "cdr-crypto-mining-pool-ports").cloned().unwrap();
    for round in 0..5 {
        assert!(
            ports(&pool).contains(&(31000 + round * 2).to_string())
                && ports(&pool).contains(&(31001 + round * 2).to_string())
        );
    }
    let objects = |fake: &FakeKube| -> BTreeMap<String, Value> {
        policies(fake)
            .into_iter()
            .map(|p| (p["metadata"]["name"].as_str().unwrap().to_string(), p["spec"].clone()))
            .collect()
    };
    std::thread::sleep(Duration::from_millis(500));
    let (before, writes) = (objects(&fake), fake.writes());
    assert!([200, 202].contains(&b.webhook(&sent[0]).0), "the very finding A applied first");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(objects(&fake), before, "neither server undoes the other");
    assert_eq!(fake.writes(), writes, "A's finding, sent to B, changes nothing");
}

#[test]
fn reputation_decides_which_peers_become_blocks() {
    let abuse = FakeAbuseIpDb::start("abuse-key");
    abuse.score("198.51.100.66", 97, false);
    abuse.score("198.51.100.10", 10, false);
    abuse.score("198.51.100.99", 100, true);
    let dir = tempfile::tempdir().unwrap();
    let (key, feed) = (dir.path().join("key"), dir.path().join("drop.txt"));
    std::fs::write(&key, "abuse-key\n").unwrap();
    std::fs::write(&feed, "# nothing yet\n10.0.0.0/8\n").unwrap();
    let output = dir.path().join("policies");
    let args: Vec<String> = vec![
        "--abuseipdb-key-file".into(),
        key.display().to_string(),
        "--abuseipdb-url".into(),
        abuse.url.clone(),
        "--feed".into(),
        feed.display().to_string(),
        "--allow".into(),
        "198.51.100.200".into(),
        "--abuseipdb-timeout".into(),
        "500ms".into(),
        "--output-dir".into(),
        output.display().to_string(),
    ];
    let server = Server::start(Setup { args, ..Setup::default() });
    let shell = |id: &str, peer: &str| json!({"uuid": id, "threatCategory": "Reverse_Shell", "namespace": "payments", "destinationIp": peer});
    let peers = |output: &std::path::Path| -> (BTreeSet<String>, Value) {
        let text =
            std::fs::read_to_string(output.join("payments/cdr-reverse-shell-peer-addresses.yaml")).unwrap_or_default();
        let object: Value = serde_yaml::from_str(&text).unwrap_or(Value::Null);
        let values = object["spec"]["kprobes"][0]["selectors"][0]["matchArgs"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let reputation =
            serde_json::from_str(annotation(&object, "qualys-respond.io/reputation")).unwrap_or(Value::Null);
        (values.iter().map(|v| v.as_str().unwrap().to_string()).collect(), reputation)
    };
    for (id, peer) in [
        ("bad", "198.51.100.66"),
        ("clean", "198.51.100.10"),
        ("whitelisted", "198.51.100.99"),
        ("allowed", "198.51.100.200"),
    ] {
        assert_eq!(server.webhook(&shell(id, peer)).0, 202);
    }
    eventually("the malicious peer blocked", || peers(&output).0.contains("198.51.100.66/32"));
    std::thread::sleep(Duration::from_millis(400));
    let (blocked, _) = peers(&output);
    assert_eq!(blocked, BTreeSet::from(["198.51.100.66/32".to_string()]), "only what a source calls malicious");
    let egress: Value = serde_yaml::from_str(
        &std::fs::read_to_string(output.join("payments/cdr-reverse-shell-shell-egress.yaml")).unwrap(),
    )
    .unwrap();
    let decisions: Value = serde_json::from_str(annotation(&egress, "qualys-respond.io/reputation")).unwrap();
    assert_eq!(decisions["198.51.100.66"], json!({"verdict": "malicious", "source": "abuseipdb", "score": 97}));
    assert_eq!(decisions["198.51.100.10"], json!({"verdict": "clean", "source": "abuseipdb", "score": 10}));
    assert_eq!(decisions["198.51.100.99"]["verdict"], "clean", "whitelisted by AbuseIPDB");
    assert_eq!(decisions["198.51.100.200"], json!({"verdict": "allowed", "source": "allowlist"}));
    assert!(!abuse.checks().contains(&"198.51.100.200".to_string()), "the allowlist is not even looked up");

    // A 429 opens the circuit until its reset: unknown at once, no more calls.
    abuse.set_mode(AbuseMode::RateLimited(3600));
    assert_eq!(server.webhook(&shell("limited-1", "203.0.113.50")).0, 202);
    let calls = abuse.checks().len();
    assert_eq!(server.webhook(&shell("limited-2", "203.0.113.51")).0, 202);
    eventually("the rate-limited decision", || {
        std::fs::read_to_string(output.join("payments/cdr-reverse-shell-shell-egress.yaml"))
            .unwrap_or_default()
            .contains("203.0.113.51")
    });
    assert_eq!(abuse.checks().len(), calls, "no call while the circuit is open");
    let egress = std::fs::read_to_string(output.join("payments/cdr-reverse-shell-shell-egress.yaml")).unwrap();
    assert!(egress.contains("rate limited until"), "{egress}");
    assert!(!peers(&output).0.contains("203.0.113.50/32"), "unknown is not malicious");

    // The feed is read again when it changes.
    std::fs::write(&feed, "203.0.113.0/28\n").unwrap();
    eventually("the feed's address blocked", || {
        let id = unique_id();
        server.webhook(&shell(&id, "203.0.113.5"));
        std::thread::sleep(Duration::from_millis(300));
        peers(&output).0.contains("203.0.113.5/32")
    });
    assert_eq!(peers(&output).1["203.0.113.5"], json!({"verdict": "malicious", "source": "feed:drop.txt"}));
}

#[test]
fn an_abuseipdb_that_does_not_answer_in_time_makes_the_peer_unknown() {
    let abuse = FakeAbuseIpDb::start("k");
    abuse.score("198.51.100.66", 97, false);
    abuse.set_mode(AbuseMode::Slow(Duration::from_secs(3)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "k").unwrap();
    let args: Vec<String> = vec![
        "--abuseipdb-key-file".into(),
        dir.path().join("key").display().to_string(),
        "--abuseipdb-url".into(),
        abuse.url.clone(),
        "--abuseipdb-timeout".into(),
        "300ms".into(),
    ];
    let server = Server::start(Setup { args, ..Setup::default() });
    let (code, _) = server.webhook(&json!({"uuid": "slow", "threatCategory": "Reverse_Shell", "namespace": "payments", "destinationIp": "198.51.100.66"}));
    assert_eq!(code, 202);
    let egress = server.path("policies/payments/cdr-reverse-shell-shell-egress.yaml");
    eventually("the policy", || egress.exists());
    let object: Value = serde_yaml::from_str(&std::fs::read_to_string(&egress).unwrap()).unwrap();
    let decisions: Value = serde_json::from_str(annotation(&object, "qualys-respond.io/reputation")).unwrap();
    assert_eq!(decisions["198.51.100.66"], json!({"verdict": "unknown", "source": "abuseipdb", "note": "timeout"}));
    assert!(!server.path("policies/payments/cdr-reverse-shell-peer-addresses.yaml").exists());
}

#[test]
fn sigterm_during_a_burst_applies_or_reports_every_accepted_finding() {
    let fake = cluster();
    let server =
        Server::start(Setup { kube: Some(&fake), args: vec!["--coalesce".into(), "2s".into()], ..Setup::default() });
    let categories = ["Privilege_Escalation", "Container_Escape", "Network_Scanning_Utility"];
    let bodies: Vec<Value> = (0..90)
        .map(|i| finding(&format!("term-{i:03}"), categories[i % 3], ["payments", "web", "ci"][i % 3]))
        .collect();
    // A first part is answered before the signal, so some findings are
    // surely accepted and waiting in the coalescing window when it comes;
    // the rest arrive while the server stops.
    let mut answers = burst(&server, bodies[..15].to_vec());
    let pid = server.pid();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        crate::server::terminate(pid);
    });
    answers.extend(burst(&server, bodies[15..55].to_vec()));
    stopper.join().unwrap();
    answers.extend(burst(&server, bodies[55..].to_vec()));
    let accepted: BTreeSet<String> = answers
        .iter()
        .filter(|(code, _)| *code == 202)
        .flat_map(|(_, a)| a["accepted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()))
        .collect();
    assert!(!accepted.is_empty());
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let applied: BTreeSet<String> = policies(&fake)
        .iter()
        .flat_map(|p| annotation(p, "qualys-respond.io/finding-ids").split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    for id in &accepted {
        assert!(
            applied.contains(id) || log.contains(id),
            "{id} was accepted, then neither applied nor reported:\n{log}"
        );
    }
    for policy in policies(&fake) {
        let ids = annotation(&policy, "qualys-respond.io/finding-ids").split(',').count();
        assert_eq!(annotation(&policy, "qualys-respond.io/finding-count"), ids.to_string(), "no half-applied object");
    }
}

#[test]
fn readiness_needs_the_api_server_and_the_tracingpolicy_crds() {
    let fake = FakeKube::start_with(Options { tetragon: false, ..Options::default() });
    let server = Server::start(Setup { kube: Some(&fake), ..Setup::default() });
    assert_eq!(server.get("/health", &[]).0, 200);
    let (code, text) = server.get("/readyz", &[]);
    assert_eq!(code, 503);
    assert!(text.contains("install Tetragon or Qualys CRS"), "{text}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let sign = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        (params.signed_by(&key, &ca).unwrap(), key)
    };
    let (server, server_key) = sign(vec!["127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth);
    let (client, client_key) = sign(vec!["relay".into()], ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client.crt"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
}

#[test]
fn tls_with_client_certificates_and_send() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let args = vec![
        "--tls-cert".into(),
        file("tls.crt"),
        "--tls-key".into(),
        file("tls.key"),
        "--client-ca".into(),
        file("ca.crt"),
    ];
    let server = Server::start(Setup { args, ..Setup::default() });
    let url = format!("{}/webhook/cdr", server.url);
    let send = |extra: &[String]| {
        bin()
            .args(["send", "--url", &url, "--secret-file"])
            .arg(server.path("secret"))
            .args(["--ca-file", &file("ca.crt"), "--retries", "0"])
            .args(extra)
            .arg("samples/findings.json")
            .output()
            .unwrap()
    };
    let refused = send(&[]);
    assert_eq!(refused.status.code(), Some(1), "no client certificate: {refused:?}");
    let client = ["--client-cert".to_string(), file("client.crt"), "--client-key".into(), file("client.key")];
    let sent = send(&client);
    assert!(sent.status.success(), "{sent:?}");
    assert_eq!(String::from_utf8_lossy(&sent.stdout).trim(), "batch 1/1: 202 accepted 8, duplicates 0");
    let again = send(&client);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "batch 1/1: already delivered");
    eventually("the policies on disk", || server.path("policies/batch/cdr-crypto-mining-pool-ports.yaml").exists());

    // A renewed certificate is served without a restart.
    let renewed = tempfile::tempdir().unwrap();
    certificates(renewed.path());
    for name in ["ca.crt", "tls.crt", "tls.key", "client.crt", "client.key"] {
        std::fs::copy(renewed.path().join(name), dir.path().join(name)).unwrap();
    }
    eventually("the renewed certificate", || send(&client).status.success());
}

#[test]
fn expired_blocks_are_removed_while_serving() {
    let fake = cluster();
    let args = vec!["--expire-interval".into(), "200ms".into()];
    let server = Server::start(Setup { kube: Some(&fake), args, ..Setup::default() });
    let (code, answer) = server.api("/api/block", &json!({"type": "ip", "values": ["203.0.113.7"], "ttl": "1s"}));
    assert_eq!(code, 200, "{answer}");
    let (code, answer) = server.api("/api/block", &json!({"type": "ip", "values": ["203.0.113.8"], "reason": "kept"}));
    assert_eq!(code, 200, "{answer}");
    eventually("the expired entry to go", || {
        named(&fake.list("tracingpolicies"), "cdr-manual-block-ip")
            .is_some_and(|p| !annotation(p, "qualys-respond.io/blocks").contains("203.0.113.7/32"))
    });
    let blocks = server.status()["blocks"].clone();
    assert_eq!(blocks.as_array().unwrap().len(), 1, "{blocks}");
    assert_eq!(blocks[0]["value"], "203.0.113.8/32");
    eventually("the gauge to follow", || server.get("/metrics", &[]).1.contains("qualys_respond_blocked_ips 1"));
}

#[test]
fn a_request_slower_than_the_timeout_gets_408() {
    use std::io::{Read, Write};
    let server = Server::start(Setup { args: vec!["--http-timeout".into(), "300ms".into()], ..Setup::default() });
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"POST /webhook/cdr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"uuid\"")
        .unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
}
