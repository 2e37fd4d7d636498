//! The findings reader: any bytes as a findings document (the envelope, an
//! array, JSON lines), each record normalised and its indicators extracted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qualys_respond::qualys::{records, wire};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(records) = records::split(text) else { return };
    for record in records {
        if let Ok(value) = record.value
            && let Ok(finding) = wire::to_finding(&value)
        {
            let _ = qualys_respond::ioc::extract(&finding);
        }
    }
});
