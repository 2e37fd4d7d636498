//! `sync` against the fake Qualys gateway: paging, token expiry, retries,
//! checkpoints, interrupted runs, and no secret in any output.

use std::time::{Duration, Instant};

use assert_cmd::Command;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use super::fake_qualys::{FakeQualys, Trouble};
use super::proxy::Proxy;
use super::support::bin;

const USER: &str = "api-user";
const PASSWORD: &str = "S3cr3t-Pa55w0rd!";

/// `count` findings of every default category, detected over the last hour.
fn findings(count: usize, prefix: &str) -> Vec<Value> {
    let categories =
        ["Crypto_Mining", "Reverse_Shell", "Container_Escape", "Cloud_Credentials_Accessed_By_Network_Utility"];
    (0..count)
        .map(|i| {
            let at = Utc::now() - chrono::Duration::seconds(3600 - i as i64);
            json!({
                "uuid": format!("{prefix}-{i:04}"),
                "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "threatCategory": categories[i % categories.len()],
                "namespace": format!("ns-{}", i % 3),
                "destinationIp": format!("203.0.113.{}", i % 200 + 1),
                "destinationPort": 20_000 + (i % 50) as u64,
            })
        })
        .collect()
}

/// The binary, pointed at the fake with credentials in the environment.
fn api(fake: &FakeQualys, password: &str) -> Command {
    api_at(&fake.url, password)
}

/// The binary, pointed at a gateway URL with credentials in the environment.
fn api_at(url: &str, password: &str) -> Command {
    let mut command = bin();
    command
        .args(["sync", "--gateway", url, "--retry-delay", "10ms", "-o", "json"])
        .env("QUALYS_USERNAME", USER)
        .env("QUALYS_PASSWORD", password)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("QUALYS_ACCESS_TOKEN")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY");
    command
}

/// The binary as a background process against the fake, output discarded.
fn spawn_api(
    fake: &FakeQualys,
    args: impl FnOnce(&mut std::process::Command) -> &mut std::process::Command,
) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-qualys_respond"));
    command
        .args(["sync", "--gateway", &fake.url])
        .env("QUALYS_USERNAME", USER)
        .env("QUALYS_PASSWORD", PASSWORD)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    args(&mut command).spawn().unwrap()
}

fn from_file(findings: &[Value]) -> Vec<u8> {
    let out = bin()
        .args(["sync", "-o", "json", "--from-file", "-"])
        .write_stdin(Value::Array(findings.to_vec()).to_string())
        .assert()
        .success();
    out.get_output().stdout.clone()
}

#[test]
fn pages_expiry_rate_limits_and_errors_give_the_same_policies_as_a_file() {
    let fake = FakeQualys::start(USER, PASSWORD);
    let all = findings(250, "e2e");
    fake.set_findings(all.clone());
    fake.expire_tokens_after(2);
    fake.trouble([Trouble::RateLimited, Trouble::ServerError]);
    let out = api(&fake, PASSWORD).args(["--page-size", "100"]).assert().success();
    let output = out.get_output();
    assert_eq!(output.stdout, from_file(&all), "API and file disagree");
    assert_eq!(fake.pages(), [0, 100, 200], "three pages");
    assert!(fake.logins() >= 2, "the token expired mid-run and was renewed ({} logins)", fake.logins());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("findings read: 250"), "{stderr}");
    assert!(stderr.contains("window: "), "{stderr}");
}

#[test]
fn overlapping_runs_process_each_finding_once() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(30, "first"));
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let run = || {
        let out = api(&fake, PASSWORD).args(["--once", "--hours=24", "--state-file"]).arg(&state).assert().success();
        let output = out.get_output();
        (serde_json::from_slice::<Value>(&output.stdout).unwrap(), String::from_utf8_lossy(&output.stderr).to_string())
    };
    let (first, _) = run();
    assert!(!first["items"].as_array().unwrap().is_empty());
    let (second, stderr) = run();
    assert_eq!(second["items"], json!([]), "nothing new: {stderr}");
    assert!(stderr.contains("already handled by an earlier run: 30"), "{stderr}");
    let mut more = findings(30, "first");
    more.push(
        json!({"uuid": "late-1", "timestamp": Utc::now().to_rfc3339(), "threatCategory": "Privilege_Escalation"}),
    );
    fake.set_findings(more);
    let (third, stderr) = run();
    let names: Vec<&str> =
        third["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cdr-privilege-escalation-setuid-root"], "{stderr}");
}

#[test]
fn a_run_killed_before_writing_leaves_its_findings_to_the_next_run() {
    let fake = FakeQualys::start(USER, PASSWORD);
    let all = findings(150, "killed");
    fake.set_findings(all.clone());
    fake.trouble([Trouble::Slow(Duration::ZERO), Trouble::Slow(Duration::from_secs(10))]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut child = spawn_api(&fake, |c| c.args(["-o", "json", "--page-size", "100", "--state-file"]).arg(&state));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fake.pages().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.pages(), [0], "the first page was served, the second is hanging");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!state.exists(), "no checkpoint after a killed run");
    let out = api(&fake, PASSWORD).args(["--page-size", "100", "--state-file"]).arg(&state).assert().success();
    assert_eq!(out.get_output().stdout, from_file(&all));
    assert!(state.exists());
}

#[test]
fn outages_and_bad_answers_fail_the_run_and_write_nothing() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(5, "outage"));
    fake.trouble([Trouble::ServerError, Trouble::ServerError, Trouble::ServerError]);
    let dir = tempfile::tempdir().unwrap();
    let out = api(&fake, PASSWORD).args(["--retries", "2", "--output-dir"]).arg(dir.path()).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("gave up after 3 attempts") && stderr.contains("CDR is unavailable"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    fake.trouble([Trouble::Truncated]);
    let out = api(&fake, PASSWORD).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("the answer is not a findings page"), "{stderr}");
}

#[test]
fn wrong_credentials_are_a_clear_error() {
    let fake = FakeQualys::start(USER, PASSWORD);
    api(&fake, "wrong")
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains("Qualys rejected the credentials"));
}

#[test]
fn the_password_never_appears_in_any_output() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(20, "leak"));
    fake.expire_tokens_after(1);
    fake.trouble([Trouble::ServerError, Trouble::RateLimited]);
    let mut outputs = Vec::new();
    for (password, extra) in [(PASSWORD, vec!["--page-size", "5"]), ("wrong-but-secret", vec![])] {
        for format in ["text", "json"] {
            let out = api(&fake, password).args(["-vvv", "--log-format", format]).args(&extra).output().unwrap();
            outputs.push((password, out));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, PASSWORD).unwrap();
    let out = bin()
        .args(["sync", "--gateway", "http://127.0.0.1:9", "-vvv", "--retries", "1", "--retry-delay", "1ms"])
        .args(["--username-file", "/dev/null", "--password-file"])
        .arg(&file)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
    outputs.push((PASSWORD, out));
    outputs.push((PASSWORD, bin().args(["sync", "--help"]).env("QUALYS_PASSWORD", PASSWORD).output().unwrap()));
    for (password, out) in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(password), "the password leaked:\n{text}");
        }
    }
    assert!(outputs.iter().any(|(_, out)| out.status.success()), "at least one run got through");
}

#[test]
fn watch_mode_syncs_and_stops_cleanly_on_sigterm() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(10, "watch"));
    let dir = tempfile::tempdir().unwrap();
    let (state, output) = (dir.path().join("state.json"), dir.path().join("policies"));
    let mut child = spawn_api(&fake, |c| {
        c.args(["--watch", "--interval", "1h", "--state-file"]).arg(&state).arg("--output-dir").arg(&output)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(state.exists(), "the first sync wrote its checkpoint");
    let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(output.read_dir().unwrap().count() > 0, "policies were written");
    assert!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&state).unwrap()).is_ok(),
        "the checkpoint is intact"
    );
}

#[test]
fn a_private_gateway_is_trusted_only_with_its_ca_file() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(5, "tls"));
    let (url, ca) = fake.start_tls();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let https = |extra: &[&std::ffi::OsStr]| {
        let mut command = api_at(&url, PASSWORD);
        command.args(["--retries", "0"]).args(extra);
        command
    };
    let untrusted = https(&[]).assert().code(1);
    let stderr = String::from_utf8_lossy(&untrusted.get_output().stderr).to_string();
    assert!(stderr.contains("certificate") || stderr.contains("UnknownIssuer"), "{stderr}");
    let trusted = https(&["--ca-file".as_ref(), ca_file.as_os_str()]).assert().success();
    assert_eq!(trusted.get_output().stdout, from_file(&findings(5, "tls")));
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    https(&["--ca-file".as_ref(), bad.as_os_str()])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("is not a PEM certificate bundle"));
}

#[test]
fn the_gateway_is_reached_through_the_proxy_the_environment_names() {
    let fake = FakeQualys::start(USER, PASSWORD);
    fake.set_findings(findings(5, "proxied"));
    let proxy = Proxy::start();
    api(&fake, PASSWORD).env("HTTP_PROXY", &proxy.url).env_remove("NO_PROXY").assert().success();
    // One kept-alive connection carries the login and then the findings calls.
    let requests = proxy.requests();
    assert!(requests.iter().any(|r| r.starts_with(&format!("POST {}/auth", fake.url))), "{requests:?}");
}

#[test]
fn the_fake_refuses_a_findings_call_without_its_window() {
    let fake = FakeQualys::start(USER, PASSWORD);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let token = client
            .post(format!("{}/auth", fake.url))
            .form(&[("username", USER), ("password", PASSWORD), ("token", "true")])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        client.get(format!("{}/cdr-api/rest/v1/findings", fake.url)).bearer_auth(token).send().await.unwrap().status()
    });
    assert_eq!(status, 400);
}
