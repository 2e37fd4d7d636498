//! Host bindings generated from `wit/` (world `mapper`; the `reads` export
//! of `selective-mapper` is looked up by name in `plugin.rs`). Arguments are
//! borrowed, so a finding is lowered into the guest straight from the host's
//! strings.

wasmtime::component::bindgen!({
    path: "wit",
    world: "mapper",
    ownership: Borrowing { duplicate_if_necessary: false },
});
