//! The events parser (`wacapi_shared::business::parse`, at a fixed now): any `POST /events` body a CRM could send.
//! The checks live in `wacapi_shared::fuzzing`, which the test suite runs over every input
//! kept in `tests/fixtures/fuzz/events/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = wacapi_shared::fuzzing::events_target(data) {
        // How libFuzzer learns of a broken invariant: it saves the input as a crash.
        panic!("{broken}");
    }
});
