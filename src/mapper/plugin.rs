//! One loaded mapper component: compiled once, instantiated lazily, reused
//! across findings, and replaced after any trap. Every call runs in the
//! sandbox of `sandbox.rs`; what crosses the boundary is shaped and checked
//! in `boundary.rs`. A selective mapper's answers are remembered per
//! distinct input, so a run maps each combination of the fields it reads
//! once.

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{Component, Instance, Linker};

use super::bindings::{Mapper, MapperPre};
use super::boundary::{self, CategoryReads, MappedPolicy, RawCategoryReads, Reads, Sent, Specs, clip};
use super::engine::{Limits, engine};
use super::error::{CallError, LoadError};
use super::sandbox::{self, State, describe_trap};
use super::version::{self, WIT_VERSION, accepted_range, accepts};
use crate::finding::Finding;
use crate::recent::Recent;

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
    /// The fields of a finding it reads: all of them unless it is a
    /// `selective-mapper` (WIT 0.1.1).
    pub reads: Reads,
    /// What it reads of the categories it named, when it is a
    /// `category-selective-mapper` (WIT 0.1.2); other categories get `reads`.
    pub reads_by_category: CategoryReads,
}

impl PluginInfo {
    /// `name@version (source)`, for messages.
    pub fn describe(&self) -> String {
        format!("{}@{} ({})", self.name, self.version, self.source)
    }

    /// The fields a finding of `category` is read for.
    pub fn reads_of(&self, category: &str) -> Reads {
        self.reads_by_category.of(category).unwrap_or(self.reads)
    }

    /// How the component is named in its log lines.
    fn log_name(&self) -> String {
        if self.name.is_empty() { self.source.to_string() } else { self.name.clone() }
    }
}

/// A loaded component.
pub struct Plugin {
    info: PluginInfo,
    label: Arc<str>,
    pre: MapperPre<State>,
    limits: Limits,
    live: Option<Live>,
    specs: Specs,
    /// A selective mapper's answers, by the key of what it was sent.
    answers: Recent<Vec<u8>, Vec<Arc<MappedPolicy>>>,
    /// Passed to `configure` on every new instance.
    settings: Vec<(String, String)>,
}

/// Answers remembered per selective component, per generation of
/// [`Recent`]: enough for the distinct combinations of a large burst
/// (BENCHMARKS.md: the 15,000 of its 100,000-finding file fit); at most
/// twice this many are kept.
const ANSWER_ENTRIES: usize = 16_384;

struct Live {
    store: Store<State>,
    mapper: Mapper,
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
        Plugin::load_digested(bytes, super::digest::hex_sha256(bytes), source, limits, settings)
    }

    /// Like [`Plugin::load_with_settings`], for bytes whose digest the caller
    /// has already computed (to check a pin).
    pub(crate) fn load_digested(
        bytes: &[u8],
        digest: String,
        source: Source,
        limits: Limits,
        settings: Vec<(String, String)>,
    ) -> Result<Plugin, LoadError> {
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
        let wit_version = wit_version(component, &source)?;
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
                reads: Reads::ALL,
                reads_by_category: CategoryReads::default(),
            },
            label: Arc::from(""),
            pre,
            limits,
            live: None,
            specs: Specs::default(),
            answers: Recent::new(ANSWER_ENTRIES),
            settings,
        };
        let source_name = plugin.info.source.to_string();
        let start_error = |reason: String| LoadError::Start { source_name: source_name.clone(), reason };
        let (mut live, instance) = plugin.start().map_err(start_error)?;
        let reads = plugin.call_reads(&mut live, &instance).map_err(start_error)?;
        let by_category = match reads {
            Some(_) => plugin.call_reads_by_category(&mut live, &instance).map_err(start_error)?,
            None => None,
        };
        let limits = plugin.limits;
        sandbox::arm(&mut live.store, &limits);
        let info = live
            .mapper
            .call_info(&mut live.store)
            .map_err(|e| start_error(describe_trap(e, &live.store, &limits).to_string()))?;
        let invalid = |reason: boundary::InvalidInfo| LoadError::Info { source_name: source_name.clone(), reason };
        boundary::check_info(&info).map_err(invalid)?;
        if let Some(names) = reads {
            plugin.info.reads = Reads::parse(&names).map_err(invalid)?;
        }
        if let Some(by_category) = by_category {
            plugin.info.reads_by_category =
                CategoryReads::parse(&by_category, &info.categories, plugin.info.reads).map_err(invalid)?;
        }
        plugin.label = Arc::from(format!("{}@{}", info.name, info.version));
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

    /// `name@version`, as the objects it maps name their mapper.
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// A fresh, configured instance.
    fn start(&self) -> Result<(Live, Instance), String> {
        let mut store = sandbox::store(&self.limits);
        sandbox::arm(&mut store, &self.limits);
        let instantiated = self.pre.instance_pre().instantiate(&mut store);
        store.data_mut().output.forward(|| self.info.log_name());
        let instance = instantiated.map_err(|e| self.trapped(e, &store))?;
        let mapper = Mapper::new(&mut store, &instance).map_err(|e| self.trapped(e, &store))?;
        sandbox::arm(&mut store, &self.limits);
        let settings: Vec<(&str, &str)> = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let configured = mapper.call_configure(&mut store, &settings);
        store.data_mut().output.forward(|| self.info.log_name());
        match configured {
            Ok(Ok(())) => Ok((Live { store, mapper }, instance)),
            Ok(Err(refusal)) => Err(format!("configure refused: {}", clip(&refusal))),
            Err(e) => Err(self.trapped(e, &store)),
        }
    }

    /// What a failed call into `store` ran into, in words.
    fn trapped(&self, error: wasmtime::Error, store: &Store<State>) -> String {
        describe_trap(error, store, &self.limits).to_string()
    }

    /// What the `reads` export of a selective mapper (WIT 0.1.1 or later, or
    /// a component that does not say which version it was built against)
    /// returns; `None` for a plain mapper. Asked once, at load.
    fn call_reads(&self, live: &mut Live, instance: &Instance) -> Result<Option<Vec<String>>, String> {
        self.call_optional(live, instance, "reads", &version::SELECTIVE_SINCE)
    }

    /// What the `reads-by-category` export of a category-selective mapper
    /// (WIT 0.1.2 or later, or unversioned) returns; `None` when it has none.
    /// Asked once, at load, of a selective mapper.
    fn call_reads_by_category(&self, live: &mut Live, instance: &Instance) -> Result<Option<RawCategoryReads>, String> {
        self.call_optional(live, instance, "reads-by-category", &version::BY_CATEGORY_SINCE)
    }

    /// Calls the export `name`, which takes nothing and returns a `T`, when
    /// the component has it with that type and is built against `since` or
    /// later (or does not say); `None` otherwise.
    fn call_optional<T>(
        &self,
        live: &mut Live,
        instance: &Instance,
        name: &str,
        since: &semver::Version,
    ) -> Result<Option<T>, String>
    where
        (T,): wasmtime::component::ComponentNamedList + wasmtime::component::Lift + Send + Sync + 'static,
    {
        let recent_enough =
            self.info.wit_version.as_deref().is_none_or(|v| version::core(v).is_some_and(|v| v >= *since));
        let store = &mut live.store;
        let Some(index) = instance.get_export_index(&mut *store, None, name).filter(|_| recent_enough) else {
            return Ok(None);
        };
        let Ok(func) = instance.get_typed_func::<(), (T,)>(&mut *store, index) else { return Ok(None) };
        sandbox::arm(store, &self.limits);
        let called = func.call(&mut *store, ()).map(|(value,)| value);
        store.data_mut().output.forward(|| self.info.log_name());
        called.map(Some).map_err(|e| format!("{name}: {}", self.trapped(e, store)))
    }

    /// Maps one finding (a selective mapper's answer given before is shared,
    /// not copied). A failure of any kind poisons nothing: the instance is
    /// dropped and the next call starts a fresh one.
    pub fn map(&mut self, finding: &Finding) -> Result<Vec<Arc<MappedPolicy>>, CallError> {
        let reads = self.info.reads_of(&finding.category);
        let sent = Sent::new(finding, reads);
        let key = (!reads.is_all()).then(|| sent.key());
        if let Some(answer) = key.as_ref().and_then(|key| self.answers.get(key)) {
            return Ok(answer.clone());
        }
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.start().map_err(CallError::Restart)?.0,
        };
        live.store.data_mut().memory.hit = false;
        sandbox::arm(&mut live.store, &self.limits);
        let called = live.mapper.call_map_finding(&mut live.store, sent.record());
        let panic = live.store.data_mut().output.forward(|| self.info.log_name());
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
        let mapped = boundary::check_output(policies, &self.limits, &mut self.specs).map_err(CallError::Invalid)?;
        let mapped: Vec<Arc<MappedPolicy>> = mapped.into_iter().map(Arc::new).collect();
        if let Some(key) = key {
            self.answers.insert(key, mapped.clone());
        }
        Ok(mapped)
    }
}
/// The `qualys:respond` version a component imports its types from, when it
/// imports them, checked against [`WIT_VERSION`].
fn wit_version(component: &Component, source: &Source) -> Result<Option<String>, LoadError> {
    let found = component
        .component_type()
        .imports(engine())
        .filter_map(|(name, _)| name.strip_prefix("qualys:respond/").and_then(|rest| rest.split_once('@')))
        .map(|(_, version)| version.to_string())
        .next();
    let Some(found) = found else { return Ok(None) };
    if accepts(WIT_VERSION, &found) {
        return Ok(Some(found));
    }
    Err(LoadError::Version {
        source_name: source.to_string(),
        found,
        host: WIT_VERSION,
        accepts: accepted_range(WIT_VERSION),
    })
}
