//! The process-wide wasmtime engine, its epoch ticker, and the sandbox limits.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances; deadlines are counted in these ticks.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// Wasm stack available to a component, so that runaway recursion traps
/// early instead of growing the host's stack.
const MAX_WASM_STACK: usize = 512 * 1024;

/// What one component may use, per call and per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget of one call (counted in epoch ticks).
    pub deadline: Duration,
    /// Instructions (wasmtime fuel units) one call may execute: a bound that
    /// does not depend on the machine's speed, behind the deadline.
    pub fuel: u64,
    /// Linear memory an instance may grow to.
    pub memory_bytes: usize,
    /// Policies one call may return.
    pub max_policies: usize,
    /// Bytes of one returned spec.
    pub max_spec_bytes: usize,
    /// Bytes of everything one call returns.
    pub max_output_bytes: usize,
    /// Indicators one policy may list.
    pub max_indicators: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(200),
            fuel: 5_000_000_000,
            memory_bytes: 64 << 20,
            max_policies: 64,
            max_spec_bytes: 64 << 10,
            max_output_bytes: 1 << 20,
            max_indicators: 256,
        }
    }
}

impl Limits {
    /// The deadline in epoch ticks (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
    }
}

/// The one engine of this process, with its epoch ticker running.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true).consume_fuel(true).max_wasm_stack(MAX_WASM_STACK);
        let engine = Engine::new(&config).expect("the fixed engine configuration is valid");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .expect("a thread can be spawned at start-up");
        engine
    })
}
