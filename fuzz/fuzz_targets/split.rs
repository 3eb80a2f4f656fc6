//! The webhook split (`wacapi_shared::channels::split`): any signed body Meta, a relay or an attacker with the app secret could send.
//! The checks live in `wacapi_shared::fuzzing`, which the test suite runs over every input
//! kept in `tests/fixtures/fuzz/split/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = wacapi_shared::fuzzing::split_target(data) {
        // How libFuzzer learns of a broken invariant: it saves the input as a crash.
        panic!("{broken}");
    }
});
