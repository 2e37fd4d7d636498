//! The checkpoint reader, and the arithmetic a parsed checkpoint drives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qualys_respond::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(checkpoint) = Checkpoint::parse(text, std::path::Path::new("fuzz")) {
        let start = checkpoint.window_start();
        let _ = checkpoint.seen("id", Some(start));
        let overlap = std::time::Duration::from_secs(checkpoint.overlap_seconds);
        let _ = Checkpoint::advance(Some(&checkpoint), [("id", checkpoint.mark)], overlap);
    }
});
