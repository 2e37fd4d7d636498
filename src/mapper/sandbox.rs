//! What a component instance lives in: its store state (WASI linked to an
//! empty context, its captured stdout and stderr, the memory limiter) and
//! how a failed call is told apart (deadline, fuel, memory, panic, trap).

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::boundary::clip;
use super::engine::{Limits, engine};
use super::error::CallError;

/// The store data of one instance.
pub(super) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) memory: MemoryLimiter,
    pub(super) output: Output,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A store for a fresh instance: no files, no network, no environment,
/// stdout and stderr captured, memory capped at `limits`.
pub(super) fn store(limits: &Limits) -> Store<State> {
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
        memory: MemoryLimiter { max_bytes: limits.memory_bytes, hit: false },
        output,
    };
    let mut store = Store::new(engine(), state);
    store.limiter(|state| &mut state.memory);
    store
}

/// Sets the deadline and the fuel of the next call.
pub(super) fn arm(store: &mut Store<State>, limits: &Limits) {
    store.set_epoch_deadline(limits.deadline_ticks());
    // Fuel is enabled on the one engine; this cannot fail there.
    let _ = store.set_fuel(limits.fuel);
}

/// The component's stdout and stderr, captured and bounded: a component
/// that writes more than [`OUTPUT_CAPACITY`] per instance traps.
pub(super) struct Output {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    /// Bytes of each already sent to our log.
    logged: [usize; 2],
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
    /// by line, and returns the panic message among it, if any. `mapper`
    /// names the component, and is only asked for when it wrote something.
    pub(super) fn forward(&mut self, mapper: impl Fn() -> String) -> Option<String> {
        let mut errors = Vec::new();
        for (i, (stream, pipe)) in [("stdout", &self.stdout), ("stderr", &self.stderr)].into_iter().enumerate() {
            let contents = pipe.contents();
            let fresh = contents.get(self.logged[i]..).unwrap_or_default();
            if fresh.is_empty() {
                continue;
            }
            let mapper = mapper();
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

/// `panicked at src/lib.rs:3:5: the message`, from Rust's panic output
/// (`thread '…' panicked at src/lib.rs:3:5:` then the message).
fn panic_message(lines: &[String]) -> Option<String> {
    let at = lines.iter().position(|l| l.contains("panicked at"))?;
    let head = &lines[at][lines[at].find("panicked at")?..];
    let message = lines.get(at + 1).filter(|l| !l.starts_with("note:")).map(String::as_str).unwrap_or_default();
    let head = head.trim_end_matches(':');
    Some(clip(&if message.is_empty() { head.to_string() } else { format!("{head}: {message}") }))
}

/// Caps linear memory and tables, and remembers that the cap was hit so a
/// trap that follows can be reported as what it is.
pub(super) struct MemoryLimiter {
    max_bytes: usize,
    pub(super) hit: bool,
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

/// What a failed call ran into.
pub(super) fn describe_trap(error: wasmtime::Error, store: &Store<State>, limits: &Limits) -> CallError {
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

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_messages_are_read_from_rust_panic_output() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found =
            panic_message(&lines(&["thread '<unnamed>' panicked at src/lib.rs:31:29:", "boom", "note: run with"]));
        assert_eq!(found.as_deref(), Some("panicked at src/lib.rs:31:29: boom"));
        assert_eq!(panic_message(&lines(&["just logging"])), None);
    }
}
