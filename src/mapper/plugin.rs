//! One loaded mapper component: compiled once, instantiated lazily, reused
//! across findings, and replaced after any trap. Every call runs under an
//! epoch deadline and a memory limit, with WASI linked to an empty context:
//! no files, no network, no environment, output discarded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::qualys::respond::types as wit;
use super::bindings::{Mapper, MapperPre};
use super::engine::{Limits, engine};
use super::error::{CallError, LoadError};
use crate::finding::{Finding, Severity};

/// Where a component came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into this binary.
    Embedded,
    /// Loaded from a file.
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Embedded => f.write_str("embedded"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a component says it is, plus what the host knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The component's name.
    pub name: String,
    /// The component's version.
    pub version: String,
    /// The categories it claims, as it spells them.
    pub categories: Vec<String>,
    /// Where it came from.
    pub source: Source,
    /// SHA-256 of its bytes, hex.
    pub digest: String,
    /// The `qualys:respond` WIT version it was built against, when it says.
    pub wit_version: Option<String>,
}

impl PluginInfo {
    /// `name@version (source)`, for messages.
    pub fn describe(&self) -> String {
        format!("{}@{} ({})", self.name, self.version, self.source)
    }
}

/// Where a mapped policy applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every container of the cluster.
    Cluster,
    /// The pods of one namespace.
    Namespace(String),
}

/// One policy as a component returned it, with the host's first checks done:
/// the fields are well-formed and the spec is a JSON object. Not yet merged,
/// named, scoped or validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedPolicy {
    /// Template slug.
    pub template: String,
    /// MITRE ATT&CK technique id.
    pub technique: String,
    /// Where it applies.
    pub scope: Scope,
    /// What it blocks.
    pub indicators: Vec<String>,
    /// The TracingPolicy spec. Identical texts from one component share one
    /// parsed value, which the policy stage uses to skip repeated merging.
    pub spec: Arc<Value>,
}

/// A loaded component.
pub struct Plugin {
    info: PluginInfo,
    pre: MapperPre<State>,
    limits: Limits,
    live: Option<Live>,
    /// Spec texts already parsed, so repeated answers are parsed once.
    specs: HashMap<String, Arc<Value>>,
    /// Passed to `configure` on every new instance.
    settings: Vec<(String, String)>,
}

/// Parsed spec texts kept per component before the cache starts over.
const SPEC_CACHE_ENTRIES: usize = 256;

struct Live {
    store: Store<State>,
    mapper: Mapper,
}

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryLimiter,
    output: Output,
}

/// The component's stdout and stderr, captured and bounded: a component
/// that writes more than [`OUTPUT_CAPACITY`] per instance traps.
struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of each already sent to our log.
    logged: [usize; 2],
}

/// `panicked at src/lib.rs:3:5: the message`, from Rust's panic output
/// (`thread '…' panicked at src/lib.rs:3:5:` then the message).
fn panic_message(lines: &[String]) -> Option<String> {
    let at = lines.iter().position(|l| l.contains("panicked at"))?;
    let head = &lines[at][lines[at].find("panicked at")?..];
    let message = lines.get(at + 1).filter(|l| !l.starts_with("note:")).map(String::as_str).unwrap_or_default();
    let head = head.trim_end_matches(':');
    Some(clip(&if message.is_empty() { head.to_string() } else { format!("{head}: {message}") }))
}

/// Bytes of stdout and of stderr one instance may write.
const OUTPUT_CAPACITY: usize = 64 << 10;

impl Output {
    fn new() -> Output {
        Output {
            stdout: MemoryOutputPipe::new(OUTPUT_CAPACITY),
            stderr: MemoryOutputPipe::new(OUTPUT_CAPACITY),
            logged: [0, 0],
        }
    }

    /// Sends what the component wrote since the last call to our log, line
    /// by line, and returns the panic message among it, if any.
    fn forward(&mut self, info: &PluginInfo) -> Option<String> {
        let mut errors = Vec::new();
        for (i, (stream, pipe)) in [("stdout", &self.stdout), ("stderr", &self.stderr)].into_iter().enumerate() {
            let contents = pipe.contents();
            let fresh = contents.get(self.logged[i]..).unwrap_or_default();
            if fresh.is_empty() {
                continue;
            }
            // Named only when the component wrote something: this runs after every call.
            let mapper = if info.name.is_empty() { info.source.to_string() } else { info.name.clone() };
            let mapper = mapper.as_str();
            for line in String::from_utf8_lossy(fresh).lines().filter(|l| !l.trim().is_empty()) {
                tracing::info!(mapper, stream, "{}", clip(line));
                if stream == "stderr" {
                    errors.push(line.trim().to_string());
                }
            }
            self.logged[i] = contents.len();
        }
        panic_message(&errors)
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Caps linear memory and tables, and remembers that the cap was hit so a
/// trap that follows can be reported as what it is.
struct MemoryLimiter {
    max_bytes: usize,
    hit: bool,
}

const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Instances, tables and memories one store may hold (a component needs a handful).
const MAX_INSTANCES: usize = 64;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_bytes;
        self.hit |= !allowed;
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

impl Plugin {
    /// Compiles `bytes` and starts one instance to read its [`PluginInfo`].
    pub fn load(bytes: &[u8], source: Source, limits: Limits) -> Result<Plugin, LoadError> {
        Plugin::load_with_settings(bytes, source, limits, Vec::new())
    }

    /// Like [`Plugin::load`], with settings for the component's `configure`.
    pub fn load_with_settings(
        bytes: &[u8],
        source: Source,
        limits: Limits,
        settings: Vec<(String, String)>,
    ) -> Result<Plugin, LoadError> {
        let digest = hex_sha256(bytes);
        let component = super::cache::compile(bytes, &digest, &source.to_string())
            .map_err(|e| LoadError::Compile { source_name: source.to_string(), reason: format!("{e:#}") })?;
        Plugin::from_component(&component, digest, source, limits, settings)
    }

    /// Links an already compiled component and starts one instance.
    pub(crate) fn from_component(
        component: &Component,
        digest: String,
        source: Source,
        limits: Limits,
        settings: Vec<(String, String)>,
    ) -> Result<Plugin, LoadError> {
        let wit_version = check_version(component, &source)?;
        let link_error =
            |e: wasmtime::Error| LoadError::Link { source_name: source.to_string(), reason: format!("{e:#}") };
        let mut linker = Linker::<State>::new(engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(link_error)?;
        let pre = MapperPre::new(linker.instantiate_pre(component).map_err(link_error)?).map_err(link_error)?;
        let mut plugin = Plugin {
            info: PluginInfo {
                name: String::new(),
                version: String::new(),
                categories: Vec::new(),
                source,
                digest,
                wit_version,
            },
            pre,
            limits,
            live: None,
            specs: HashMap::new(),
            settings,
        };
        let start_error = |reason: String| LoadError::Start { source_name: plugin.info.source.to_string(), reason };
        let mut live = plugin.start().map_err(start_error)?;
        let limits = plugin.limits;
        live.store.set_epoch_deadline(limits.deadline_ticks());
        let info = live
            .mapper
            .call_info(&mut live.store)
            .map_err(|e| start_error(describe_trap(e, &live.store, &limits).to_string()))?;
        check_info(&info).map_err(|reason| LoadError::Info { source_name: plugin.info.source.to_string(), reason })?;
        plugin.info.name = info.name;
        plugin.info.version = info.version;
        plugin.info.categories = info.categories;
        plugin.live = Some(live);
        Ok(plugin)
    }

    /// What the component is.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// A fresh, configured instance.
    fn start(&self) -> Result<Live, String> {
        let output = Output::new();
        let mut wasi = WasiCtx::builder();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(output.stdout.clone())
            .stderr(output.stderr.clone());
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryLimiter { max_bytes: self.limits.memory_bytes, hit: false },
            output,
        };
        let mut store = Store::new(engine(), state);
        store.limiter(|state| &mut state.memory);
        self.arm(&mut store);
        let instantiated = self.pre.instantiate(&mut store);
        store.data_mut().output.forward(&self.info);
        let mapper = instantiated.map_err(|e| describe_trap(e, &store, &self.limits).to_string())?;
        self.arm(&mut store);
        let configured = mapper.call_configure(&mut store, &self.settings);
        store.data_mut().output.forward(&self.info);
        match configured {
            Ok(Ok(())) => Ok(Live { store, mapper }),
            Ok(Err(refusal)) => Err(format!("configure refused: {}", clip(&refusal))),
            Err(e) => Err(describe_trap(e, &store, &self.limits).to_string()),
        }
    }

    /// Sets the deadline and the fuel of the next call.
    fn arm(&self, store: &mut Store<State>) {
        store.set_epoch_deadline(self.limits.deadline_ticks());
        // Fuel is enabled on the one engine; this cannot fail there.
        let _ = store.set_fuel(self.limits.fuel);
    }

    /// Maps one finding. A failure of any kind poisons nothing: the instance
    /// is dropped and the next call starts a fresh one.
    pub fn map(&mut self, finding: &Finding) -> Result<Vec<MappedPolicy>, CallError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.start().map_err(CallError::Restart)?,
        };
        live.store.data_mut().memory.hit = false;
        self.arm(&mut live.store);
        let called = live.mapper.call_map_finding(&mut live.store, &to_wit(finding));
        let panic = live.store.data_mut().output.forward(&self.info);
        let returned = match called {
            Ok(returned) => returned,
            Err(trap) => {
                return Err(match (describe_trap(trap, &live.store, &self.limits), panic) {
                    (CallError::Trap(_), Some(message)) => CallError::Panic(message),
                    (error, _) => error,
                });
            }
        };
        self.live = Some(live);
        let policies = returned.map_err(|refusal| CallError::Refused(clip(&refusal)))?;
        check_output(policies, &self.limits, &mut self.specs).map_err(CallError::Invalid)
    }
}

/// The `qualys:respond` version a component imports its types from, checked
/// against [`super::WIT_VERSION`]: same major (and minor, within 0.x), and
/// no newer than the host's.
fn check_version(component: &Component, source: &Source) -> Result<Option<String>, LoadError> {
    let found = component
        .component_type()
        .imports(engine())
        .filter_map(|(name, _)| name.strip_prefix("qualys:respond/").and_then(|rest| rest.split_once('@')))
        .map(|(_, version)| version.to_string())
        .next();
    let Some(found) = found else { return Ok(None) };
    if accepts(super::WIT_VERSION, &found) {
        return Ok(Some(found));
    }
    Err(LoadError::Version {
        source_name: source.to_string(),
        found,
        host: super::WIT_VERSION,
        accepts: accepted_range(super::WIT_VERSION),
    })
}

fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// True when a host of version `host` runs a component built against `component`.
pub(crate) fn accepts(host: &str, component: &str) -> bool {
    match (semver(host), semver(component)) {
        (Some((h0, h1, h2)), Some((c0, c1, c2))) => {
            let same_series = h0 == c0 && (h0 != 0 || h1 == c1);
            same_series && (c1, c2) <= (h1, h2)
        }
        _ => false,
    }
}

fn accepted_range(host: &str) -> String {
    match semver(host) {
        Some((0, minor, _)) => format!("0.{minor}.0 up to {host}"),
        Some((major, _, _)) => format!("{major}.0.0 up to {host}"),
        None => host.to_string(),
    }
}

/// SHA-256 of `bytes`, hex.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_trap(error: wasmtime::Error, store: &Store<State>, limits: &Limits) -> CallError {
    if store.data().memory.hit {
        return CallError::Memory(limits.memory_bytes >> 20);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout(limits.deadline),
        Some(Trap::OutOfFuel) => CallError::Fuel(limits.fuel),
        Some(Trap::StackOverflow) => CallError::Trap("stack overflow (call stack exhausted)".into()),
        Some(trap) => CallError::Trap(trap.to_string()),
        None => CallError::Trap(clip(&format!("{error:#}"))),
    }
}

/// Keeps a component-supplied message to one bounded line.
fn clip(message: &str) -> String {
    const MAX: usize = 300;
    let line: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX).collect();
    if message.chars().count() > MAX { format!("{line}…") } else { line }
}

fn to_wit(finding: &Finding) -> wit::Finding {
    wit::Finding {
        id: finding.id.clone(),
        category: finding.category.clone(),
        severity: match finding.severity {
            Severity::Unknown => wit::Severity::Unknown,
            Severity::Low => wit::Severity::Low,
            Severity::Medium => wit::Severity::Medium,
            Severity::High => wit::Severity::High,
            Severity::Critical => wit::Severity::Critical,
        },
        detected_at: finding.detected_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        cluster: finding.cluster.clone(),
        namespace: finding.namespace.clone(),
        pod: finding.pod.clone(),
        container: finding.container.clone(),
        image: finding.image.clone(),
        process: finding
            .process
            .as_ref()
            .map(|p| wit::Process { binary: p.binary.clone(), arguments: p.arguments.clone() }),
        destination_ip: finding.destination_ip.map(|ip| ip.to_string()),
        destination_port: finding.destination_port,
        mitre_techniques: finding.mitre_techniques.clone(),
        labels: finding.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        raw: finding.raw.clone(),
    }
}

fn is_slug(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

fn check_info(info: &wit::MapperInfo) -> Result<(), String> {
    if !is_slug(&info.name, 40) {
        return Err(format!(
            "name {:?} is not a slug of lowercase letters, digits and '-' (at most 40)",
            clip(&info.name)
        ));
    }
    if info.version.is_empty() || info.version.len() > 64 {
        return Err("version must be 1 to 64 characters".into());
    }
    if info.categories.is_empty() || info.categories.len() > 256 {
        return Err(format!("it must claim 1 to 256 categories, not {}", info.categories.len()));
    }
    match info.categories.iter().find(|c| c.trim().is_empty() || c.len() > 128 || c.chars().any(char::is_control)) {
        Some(bad) => Err(format!("category {:?} is empty, too long or has control characters", clip(bad))),
        None => Ok(()),
    }
}

/// True for a MITRE ATT&CK technique id: `T1234` or `T1234.567`.
pub(crate) fn is_technique(id: &str) -> bool {
    let bytes = id.as_bytes();
    let base = bytes.len() >= 5 && bytes[0] == b'T' && bytes[1..5].iter().all(u8::is_ascii_digit);
    base && (bytes.len() == 5 || (bytes.len() == 9 && bytes[5] == b'.' && bytes[6..].iter().all(u8::is_ascii_digit)))
}

use crate::names::is_dns_label;

fn check_output(
    policies: Vec<wit::Policy>,
    limits: &Limits,
    specs: &mut HashMap<String, Arc<Value>>,
) -> Result<Vec<MappedPolicy>, String> {
    if policies.len() > limits.max_policies {
        return Err(format!("{} policies, more than the limit of {}", policies.len(), limits.max_policies));
    }
    let bytes: usize = policies
        .iter()
        .map(|p| {
            p.spec.len() + p.template.len() + p.technique.len() + p.indicators.iter().map(String::len).sum::<usize>()
        })
        .sum();
    if bytes > limits.max_output_bytes {
        return Err(format!("{bytes} bytes of policies, more than the limit of {}", limits.max_output_bytes));
    }
    policies
        .into_iter()
        .enumerate()
        .map(|(i, policy)| check_policy(policy, limits, specs).map_err(|reason| format!("policy {}: {reason}", i + 1)))
        .collect()
}

fn check_policy(
    policy: wit::Policy,
    limits: &Limits,
    specs: &mut HashMap<String, Arc<Value>>,
) -> Result<MappedPolicy, String> {
    if !is_slug(&policy.template, 40) {
        return Err(format!(
            "template {:?} is not a slug of lowercase letters, digits and '-' (at most 40)",
            clip(&policy.template)
        ));
    }
    if !is_technique(&policy.technique) {
        return Err(format!("technique {:?} is not a MITRE ATT&CK id like T1552.005", clip(&policy.technique)));
    }
    let scope = match policy.scope {
        wit::Scope::Cluster => Scope::Cluster,
        wit::Scope::Namespace(ns) if is_dns_label(&ns) => Scope::Namespace(ns),
        wit::Scope::Namespace(ns) => return Err(format!("namespace {:?} is not a valid namespace name", clip(&ns))),
    };
    if policy.indicators.len() > limits.max_indicators {
        return Err(format!(
            "{} indicators, more than the limit of {}",
            policy.indicators.len(),
            limits.max_indicators
        ));
    }
    if let Some(bad) = policy
        .indicators
        .iter()
        .find(|i| i.is_empty() || i.len() > 256 || i.chars().any(|c| c.is_control() || c == ','))
    {
        return Err(format!(
            "indicator {:?} is empty, longer than 256 bytes, or has a comma or control character",
            clip(bad)
        ));
    }
    if policy.spec.len() > limits.max_spec_bytes {
        return Err(format!("spec of {} bytes, more than the limit of {}", policy.spec.len(), limits.max_spec_bytes));
    }
    let spec = match specs.get(&policy.spec) {
        Some(parsed) => Arc::clone(parsed),
        None => {
            let parsed: Value =
                serde_json::from_str(&policy.spec).map_err(|e| format!("spec is not valid JSON: {e}"))?;
            if !parsed.is_object() {
                return Err("spec is not a JSON object".into());
            }
            if specs.len() >= SPEC_CACHE_ENTRIES {
                specs.clear();
            }
            let parsed = Arc::new(parsed);
            specs.insert(policy.spec, Arc::clone(&parsed));
            parsed
        }
    };
    Ok(MappedPolicy {
        template: policy.template,
        technique: policy.technique,
        scope,
        indicators: policy.indicators,
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::{accepted_range, accepts, is_dns_label, is_technique, panic_message};

    #[test]
    fn panic_messages_are_read_from_rust_panic_output() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found =
            panic_message(&lines(&["thread '<unnamed>' panicked at src/lib.rs:31:29:", "boom", "note: run with"]));
        assert_eq!(found.as_deref(), Some("panicked at src/lib.rs:31:29: boom"));
        assert_eq!(panic_message(&lines(&["just logging"])), None);
    }

    #[test]
    fn older_compatible_versions_are_accepted_and_others_refused() {
        assert!(accepts("0.1.0", "0.1.0"));
        assert!(accepts("0.1.3", "0.1.0"), "older patch of the same minor");
        assert!(!accepts("0.1.0", "0.1.1"), "newer than the host");
        assert!(!accepts("0.1.0", "0.2.0"));
        assert!(!accepts("0.2.0", "0.1.0"), "a 0.x minor is a breaking change");
        assert!(accepts("1.4.0", "1.2.7"));
        assert!(!accepts("1.4.0", "2.0.0") && !accepts("2.0.0", "1.4.0"));
        assert!(!accepts("0.1.0", "bogus"));
        assert_eq!(accepted_range("0.1.0"), "0.1.0 up to 0.1.0");
    }

    #[test]
    fn technique_ids() {
        for good in ["T1046", "T1552.005", "T1059.004"] {
            assert!(is_technique(good), "{good}");
        }
        for bad in ["", "T104", "t1046", "T1552.5", "T1552.0051", "T1552-005", "1046"] {
            assert!(!is_technique(bad), "{bad}");
        }
    }

    #[test]
    fn namespace_names() {
        assert!(is_dns_label("payments-2"));
        for bad in ["", "-a", "a-", "Payments", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
