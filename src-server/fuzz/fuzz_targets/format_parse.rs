//! Fuzz target for the data-format parser: it must never panic, and whatever it reads must
//! survive a write and a second read unchanged.
#![no_main]

use gatehouse::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = format::parse(data) {
        assert_eq!(format::parse(&format::to_bytes(&value)), Ok(value.clone()));
        assert_eq!(format::parse(&format::to_pretty(&value)), Ok(value));
    }
    let _ = format::parse_sequence(data);
});
