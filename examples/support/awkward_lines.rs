//! Awkward log lines, shared by the `awkward_logs` fixture (which writes them) and the log
//! tests (which check what usher made of them).

/// (stream, raw bytes of the line without its newline)
pub fn lines() -> Vec<(&'static str, Vec<u8>)> {
    let mut lines: Vec<(&'static str, Vec<u8>)> = vec![
        ("stdout", b"plain words".to_vec()),
        ("stdout", b"".to_vec()),
        ("stdout", b"she said \"hi\" and left".to_vec()),
        ("stdout", b"C:\\path\\to\\file \\n not a newline".to_vec()),
        ("stdout", b"tab\there\tand\tthere".to_vec()),
        (
            "stdout",
            (0u8..32).filter(|b| *b != b'\n').chain([0x7f]).collect(),
        ),
        (
            "stdout",
            "non-BMP: \u{1F600} \u{10348} and BMP: \u{e9}\u{4e2d}"
                .as_bytes()
                .to_vec(),
        ),
        (
            "stdout",
            b"invalid \xff\xfe utf-8 \xc3 here \xe2\x82".to_vec(),
        ),
        (
            "stdout",
            b"{\"level\":\"warn\",\"msg\":\"from json\",\"n\":1,\"nested\":{\"a\":[1,2]}}".to_vec(),
        ),
        (
            "stdout",
            b"  {\"severity\":\"CRITICAL\",\"msg\":\"sev\"}  ".to_vec(),
        ),
        ("stdout", b"[1, 2, 3]".to_vec()),
        ("stdout", b"\"just a json string\"".to_vec()),
        ("stdout", b"{not json at all".to_vec()),
        ("stdout", b"ERROR something broke".to_vec()),
        ("stdout", b"[warn] careful".to_vec()),
        ("stdout", b"level=debug detail".to_vec()),
        ("stdout", b"Warning: mind the gap".to_vec()),
        ("stdout", b"critical: down".to_vec()),
        ("stdout", b"INFORMATION is not a level".to_vec()),
        ("stderr", b"a stderr line without a level".to_vec()),
        ("stderr", b"INFO stderr line with a level".to_vec()),
        ("stdout", b"windows line\r".to_vec()),
    ];
    // A 1 MB line, much longer than any record may be.
    let long: Vec<u8> = (0..1_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    lines.push(("stdout", long));
    lines
}

/// Written last, with no newline after it.
pub const LAST_WITHOUT_NEWLINE: &[u8] = b"the end, no newline";
