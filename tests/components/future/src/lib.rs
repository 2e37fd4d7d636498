//! A mapper built against `qualys:respond@0.2.0`, which this host does not
//! accept: loading it must fail with a message naming both versions.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "wit", world: "mapper" });

    struct Future;

    impl Guest for Future {
        fn info() -> String {
            "future".into()
        }

        fn map_finding(_: Finding) -> Vec<String> {
            Vec::new()
        }
    }

    export!(Future);
}
