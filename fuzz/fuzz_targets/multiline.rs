//! Multi-line joining (`--log-multiline auto`) through the log encoder, on input steered
//! towards stack traces (fuzz/dicts/multiline.dict, seeds from examples/support/traces.rs), with
//! the relay's hold running out between reads where the input says. Property: every line
//! written is in the records, in order, none lost or repeated (a joined record holds its lines
//! joined with '\n'), and what is held stays under the record limit; see
//! `usher_fuzz::check_encoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_fuzz::{EncoderCase, Input, check_encoder};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let case = EncoderCase::read(&mut input, Some(true));
    check_encoder(&case, input.rest());
});
