//! The signature headers: `X-Wacapi-Timestamp`/`X-Wacapi-Signature` (`business::verify`) and `X-Hub-Signature-256` (`signature::verify`). Input: `<timestamp>\\n<signature>\\n<body>`.
//! The checks live in `wacapi_shared::fuzzing`, which the test suite runs over every input
//! kept in `tests/fixtures/fuzz/signature/`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = wacapi_shared::fuzzing::signature_target(data) {
        // How libFuzzer learns of a broken invariant: it saves the input as a crash.
        panic!("{broken}");
    }
});
