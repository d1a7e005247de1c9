//! Pipefy's answers: any body is decoded, merged and rendered, or rejected, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pipefy_exporter::fuzzing::graphql_response(data);
});
