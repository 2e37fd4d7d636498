//! A 100,000-finding sync against the fake Qualys gateway on loopback: wall
//! time and the peak RSS of the `kubectl-qualys_respond` process (measured by
//! GNU time's `%M`). Run with `cargo bench --bench sync`.

#[path = "../tests/it/fake_qualys.rs"]
#[allow(dead_code)]
mod fake_qualys;
#[path = "../tests/it/loopback.rs"]
mod loopback;
#[path = "../tests/it/tls.rs"]
mod tls;

use std::process::Command;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use qualys_respond_default_mapper::CATEGORIES;
use serde_json::json;

const FINDINGS: usize = 100_000;

fn main() {
    let fake = fake_qualys::FakeQualys::start("bench", "bench-password");
    let now = Utc::now();
    let findings = (0..FINDINGS)
        .map(|i| {
            let at = now - chrono::Duration::milliseconds((FINDINGS - i) as i64 * 100);
            json!({
                "uuid": format!("bench-{i:06}"),
                "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
                "threatCategory": CATEGORIES[i % CATEGORIES.len()].name,
                "severity": 3,
                "namespace": format!("ns-{}", i % 25),
                "pod": format!("pod-{i}"),
                "processName": "/usr/bin/curl",
                "destinationIp": format!("203.0.113.{}", i % 250 + 1),
                "destinationPort": 3000 + (i % 5000) as u64,
                "eventMessage": "x".repeat(200),
            })
        })
        .collect();
    fake.set_findings(findings);
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "peak-rss-kib=%M"])
        .arg(env!("CARGO_BIN_EXE_kubectl-qualys_respond"))
        .args(["sync", "--gateway", &fake.url, "--since", "24h", "--page-size", "100", "-q", "-o", "json"])
        .env("QUALYS_USERNAME", "bench")
        .env("QUALYS_PASSWORD", "bench-password")
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("GNU time (/usr/bin/time, Debian package `time`) runs the binary");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sync failed: {stderr}");
    let rss = stderr.lines().find_map(|l| l.strip_prefix("peak-rss-kib=")).unwrap_or("?");
    let read = stderr.lines().find(|l| l.starts_with("findings read:")).unwrap_or("?");
    println!("sync of {FINDINGS} findings over {} pages from the fake gateway", FINDINGS / 100);
    println!("wall time: {:.2} s", elapsed.as_secs_f64());
    println!("peak RSS of kubectl-qualys_respond: {rss} KiB");
    println!("{read}");
    println!("policies: {} bytes of JSON on stdout", output.stdout.len());
}
