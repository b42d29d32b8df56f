//! The log encoder (framing, JSON pass-through, escaping, partial records, levels; multi-line
//! joining when the case says): any bytes, cut into reads where the input says. Property: see
//! `usher_fuzz::check_encoder` (every record one JSON object within the record limit, every
//! line rebuilt from the records in order, memory bounded, the same records however the
//! bytes were cut). Input: 3 bytes of settings, read sizes, then the stream's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher_fuzz::{EncoderCase, Input, check_encoder};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let case = EncoderCase::read(&mut input, None);
    check_encoder(&case, input.rest());
});
