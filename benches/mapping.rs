//! Mapping benchmark: what it costs to turn Qualys CDR findings into policies.
//!
//! Measures, with `std::time::Instant` on one thread:
//! 1. the one-time costs: the first `Registry::with_defaults` of the process
//!    (engine set-up and Cranelift compilation of the embedded component) and
//!    a second one (instantiation only: the compiled component is cached);
//! 2. 100,000 synthetic findings mapped through the embedded WASM component,
//!    one warm instance;
//! 3. the same findings through the native `map_finding` of the default
//!    mapper crate, each returned spec parsed with `serde_json` as the host
//!    does after a WASM call;
//! 4. the whole offline pipeline (`pipeline::run`) on the same findings as
//!    Qualys JSON records: normalising, mapping, merging and validating.
//!
//! Run it pinned to one core: `taskset -c 0 cargo bench --bench mapping`.

use std::error::Error;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qualys_respond::finding::{Finding, Process, Severity};
use qualys_respond::mapper::{Limits, Registry, SPEC_CACHE_ENTRIES};
use qualys_respond::pipeline::{self, Options};
use qualys_respond::qualys::records::Record;
use qualys_respond::recent::Recent;
use qualys_respond_default_mapper as native;
use serde_json::{Value, json};

/// The binary's allocator (`src/main.rs`), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Findings per measured stage (`MAPPING_BENCH_FINDINGS` overrides it, for
/// profiling a shorter run under callgrind).
const FINDINGS: usize = 100_000;
/// Findings mapped before the clock starts, to warm the instance and caches:
/// others than the timed ones, so no timed finding is already remembered.
const WARM_UP: usize = 1_000;

/// The six categories of the default mapper.
const CATEGORIES: [&str; 6] = [
    "Cloud_Credentials_Accessed_By_Network_Utility",
    "Network_Scanning_Utility",
    "Container_Escape",
    "Privilege_Escalation",
    "Crypto_Mining",
    "Reverse_Shell",
];

/// Binaries that plausibly trigger each category (same order as `CATEGORIES`).
const BINARIES: [&[&str]; 6] = [
    &["curl", "/usr/bin/wget", "/usr/local/bin/aws", "python3"],
    &["nmap", "/usr/local/bin/masscan", "/opt/tools/zgrab2", "/usr/bin/naabu"],
    &["/usr/bin/nsenter", "/usr/bin/unshare", "runc"],
    &["/usr/bin/sudo", "/bin/su", "/tmp/.x/pwnkit"],
    &["xmrig", "/tmp/kworkerds", "/usr/local/bin/minerd", "/var/tmp/.cache/xmr"],
    &["/bin/bash", "/bin/sh", "nc", "/usr/bin/socat"],
];

/// Remote ports, a mix of pool ports, service ports and arbitrary high ones.
const PORTS: [u16; 8] = [3333, 4444, 14444, 45700, 8080, 443, 6666, 31337];

/// Detection time of every synthetic finding, RFC 3339.
const DETECTED_AT: &str = "2025-01-01T00:00:00Z";

/// Field values of synthetic finding `i`, shared by the typed and JSON forms.
struct Synthetic {
    id: String,
    category: &'static str,
    namespace: Option<String>,
    binary: &'static str,
    ip: IpAddr,
    port: u16,
}

fn synthetic_of(i: usize) -> Synthetic {
    let c = i % CATEGORIES.len();
    let n = i / CATEGORIES.len();
    // One finding in 50 has no namespace, which makes a cluster-wide policy.
    let namespace = (n % 50 != 7).then(|| format!("team-{:02}", n % 25));
    let ip: IpAddr = if c == 0 {
        // Credential theft talks to the metadata endpoint.
        [169, 254, 169, 254].into()
    } else if n.is_multiple_of(2) {
        [198, 51, 100, (n / 2 % 254 + 1) as u8].into()
    } else {
        [203, 0, 113, (n / 2 % 254 + 1) as u8].into()
    };
    let port = if c == 0 { 80 } else { PORTS[n % PORTS.len()] + if n.is_multiple_of(3) { 0 } else { (n % 17) as u16 } };
    Synthetic {
        id: format!("00000000-0000-4000-8000-{i:012}"),
        category: CATEGORIES[c],
        namespace,
        binary: BINARIES[c][n % BINARIES[c].len()],
        ip,
        port,
    }
}

fn to_finding(s: &Synthetic) -> Finding {
    let record = to_record_value(s);
    Finding {
        id: s.id.clone(),
        category: s.category.to_string(),
        severity: Severity::High,
        // Parsed so that it fits whatever time type the field holds.
        detected_at: DETECTED_AT.parse().ok(),
        cluster: Some("bench".into()),
        namespace: s.namespace.clone(),
        pod: Some("app-0".into()),
        container: Some("app".into()),
        image: Some("registry.example/app:1".into()),
        process: Some(Process { binary: s.binary.to_string(), arguments: Vec::new() }),
        destination_ip: Some(s.ip),
        destination_port: Some(s.port),
        mitre_techniques: Vec::new(),
        labels: Default::default(),
        raw: record.into(),
    }
}

fn to_record_value(s: &Synthetic) -> Value {
    json!({
        "uuid": s.id,
        "threatCategory": s.category,
        "severity": 3,
        "timestamp": DETECTED_AT,
        "clusterName": "bench",
        "namespace": s.namespace,
        "podName": "app-0",
        "containerName": "app",
        "processName": s.binary,
        "destinationIp": s.ip.to_string(),
        "destinationPort": s.port,
    })
}

/// What the native mapper reads of a finding (built inside the timed loop, as
/// the host converts each finding to its WIT record inside `Plugin::map`).
fn to_native(finding: &Finding) -> native::Finding {
    native::Finding {
        category: finding.category.clone(),
        namespace: finding.namespace.clone(),
        binary: finding.process.as_ref().map(|p| p.binary.clone()),
        destination_ip: finding.destination_ip.map(|ip| ip.to_string()),
        destination_port: finding.destination_port,
    }
}

/// Maps every finding through the registry's component; returns the policy count.
fn map_wasm(registry: &mut Registry, findings: &[Finding]) -> usize {
    let mut policies = 0;
    for finding in findings {
        let plugin = registry.route(&finding.category_key()).expect("every synthetic category has a mapper");
        let mapped = plugin.map(finding).unwrap_or_else(|e| panic!("mapping finding {} failed: {e}", finding.id));
        policies += mapped.len();
        black_box(mapped);
    }
    policies
}

/// Maps every finding natively and parses each distinct spec text once, as
/// the host does with what a component returns (the same bounded cache, of
/// the host's capacity); returns the policy count.
fn map_native(findings: &[Finding], specs: &mut Recent<String, Arc<Value>>) -> usize {
    let mut policies = 0;
    for finding in findings {
        let mapped = native::map_finding(&to_native(finding))
            .unwrap_or_else(|e| panic!("native mapping of finding {} failed: {e}", finding.id));
        for policy in &mapped {
            let spec = match specs.get(policy.spec.as_str()) {
                Some(spec) => Arc::clone(spec),
                None => {
                    let spec: Arc<Value> =
                        Arc::new(serde_json::from_str(&policy.spec).expect("the native mapper writes JSON specs"));
                    specs.insert(policy.spec.clone(), Arc::clone(&spec));
                    spec
                }
            };
            black_box(spec);
        }
        policies += mapped.len();
        black_box(mapped);
    }
    policies
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn per_item(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn rate(d: Duration, n: usize) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

/// Peak resident set size of this process, from `/proc/self/status`.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(format!("{:.1} MiB", kib / 1024.0))
}

fn main() -> Result<(), Box<dyn Error>> {
    // 1. One-time costs.
    let (registry, first_load) = timed(|| Registry::with_defaults(Limits::default()));
    let mut registry = registry?;
    let (second, second_load) = timed(|| Registry::with_defaults(Limits::default()));
    drop(second?);

    // Inputs, built before any clock starts.
    let n: usize = std::env::var("MAPPING_BENCH_FINDINGS").ok().and_then(|n| n.parse().ok()).unwrap_or(FINDINGS);
    let synthetic: Vec<Synthetic> = (0..n).map(synthetic_of).collect();
    let findings: Vec<Finding> = synthetic.iter().map(to_finding).collect();
    let warm_up: Vec<Finding> = (n..n + WARM_UP).map(|i| to_finding(&synthetic_of(i))).collect();
    let records: Vec<Record> = synthetic
        .iter()
        .enumerate()
        .map(|(i, s)| Record::from_value(format!("record {}", i + 1), to_record_value(s)))
        .collect();
    drop(synthetic);

    // 2. WASM, one warm instance.
    map_wasm(&mut registry, &warm_up);
    let (wasm_policies, wasm_time) = timed(|| map_wasm(&mut registry, &findings));

    // 3. Native reference.
    let mut specs = Recent::new(SPEC_CACHE_ENTRIES);
    map_native(&warm_up, &mut specs);
    let (native_policies, native_time) = timed(|| map_native(&findings, &mut specs));
    assert_eq!(wasm_policies, native_policies, "WASM and native mappers must return the same number of policies");

    // 4. The whole offline pipeline.
    let (outcome, pipeline_time) = timed(|| pipeline::run(records, &mut registry, &Options::default()));
    let mapped_findings: usize = outcome.report.findings.values().sum();

    println!("qualys-respond mapping benchmark: {n} synthetic findings, {} categories, one thread", CATEGORIES.len());
    println!();
    println!("{:<44} {:>11} {:>11} {:>13} {:>9}", "stage", "total", "per item", "findings/s", "policies");
    println!("{:<44} {:>11}", "first Registry::with_defaults (compile)", ms(first_load));
    println!("{:<44} {:>11}", "second Registry::with_defaults (cached)", ms(second_load));
    println!(
        "{:<44} {:>11} {:>11} {:>13} {:>9}",
        "WASM component, one warm instance",
        ms(wasm_time),
        per_item(wasm_time, n),
        rate(wasm_time, n),
        wasm_policies
    );
    println!(
        "{:<44} {:>11} {:>11} {:>13} {:>9}",
        "native map_finding + spec parse (cached)",
        ms(native_time),
        per_item(native_time, n),
        rate(native_time, n),
        native_policies
    );
    println!(
        "{:<44} {:>11} {:>11} {:>13} {:>9}",
        "pipeline::run (records to valid objects)",
        ms(pipeline_time),
        per_item(pipeline_time, n),
        rate(pipeline_time, n),
        outcome.policies.len()
    );
    println!();
    println!("WASM/native ratio: {:.2}x", wasm_time.as_secs_f64() / native_time.as_secs_f64());
    println!(
        "native side: builds the mapper's finding from ours and parses each distinct returned spec once, \
         as the host does after a WASM call; {WARM_UP} other findings mapped untimed first on both sides"
    );
    println!(
        "pipeline: {} findings mapped, {} merged objects (per category, template and scope), {} skipped",
        mapped_findings,
        outcome.policies.len(),
        outcome.report.skipped.len()
    );
    println!("peak RSS (VmHWM): {}", peak_rss().unwrap_or_else(|| "n/a".into()));
    let per_s = |d: Duration| (n as f64 / d.as_secs_f64()).round() as u64;
    println!(
        "RESULT wasm_per_s={} native_per_s={} pipeline_per_s={}",
        per_s(wasm_time),
        per_s(native_time),
        per_s(pipeline_time)
    );
    Ok(())
}
