//! Host bindings generated from `wit/` (world `mapper`).

wasmtime::component::bindgen!({ path: "wit", world: "mapper" });
