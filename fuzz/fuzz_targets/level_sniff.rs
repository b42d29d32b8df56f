//! Level sniffing (`logs::level::sniff`) on any line. Properties: it reads only its window
//! (the result for a line is the result for its first SNIFF_WINDOW bytes, whatever follows
//! them), and a level found is one of usher's names, read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{Level, SNIFF_WINDOW, sniff};

fuzz_target!(|line: &[u8]| {
    let level = sniff(line);
    let window = &line[..line.len().min(SNIFF_WINDOW)];
    // A copy of exactly the window's length: reading past it is an overflow AddressSanitizer
    // sees.
    let alone = window.to_vec().into_boxed_slice();
    assert_eq!(sniff(&alone), level, "sniff reads past its window");
    if window.len() == SNIFF_WINDOW {
        for tail in [&b"\n"[..], b" ERROR", b"level=fatal x", b"\"}", b"\xff\xfe"] {
            let longer = [window, tail].concat();
            assert_eq!(
                sniff(&longer),
                level,
                "bytes past the window changed the level"
            );
        }
    }
    if let Some(level) = level {
        assert_eq!(Level::parse(level.as_str()), Some(level));
    }
});
