//! The HTTP answer head of `usher probe`, `--ready-when http://` and `--live-when http://`
//! (http_check::Answer::feed), over any bytes in any reads. Properties: it never panics; the
//! outcome does not depend on how the bytes were cut into reads; a well-formed answer (any
//! status, reason, headers, after any interim 1xx answers) gives its final status, and any
//! part of it before its end gives "more needed", neither success nor error; what is kept
//! between reads stays under MAX_HEAD plus one read; a quote of a non-HTTP answer is short
//! and one line.
//! Input: a flags byte (bit 0: a generated well-formed answer), read sizes, then the bytes (or
//! what the answer is generated from).
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{Answer, HeadError, MAX_HEAD, MAX_QUOTE};
use usher_fuzz::{Input, cut};

type Outcome = Result<Option<u16>, HeadError>;

/// Feeds the reads in turn up to the first outcome that is not "more needed".
fn feed(reads: &[&[u8]]) -> Outcome {
    let mut answer = Answer::default();
    for read in reads {
        let outcome = answer.feed(read);
        assert!(
            answer.buffered() <= MAX_HEAD + read.len(),
            "{} bytes kept",
            answer.buffered()
        );
        if !matches!(outcome, Ok(None)) {
            return outcome;
        }
    }
    Ok(None)
}

/// A well-formed answer head from the input: interim answers, then the final one.
fn well_formed(input: &mut Input<'_>) -> (Vec<u8>, u16) {
    let mut head = Vec::new();
    let interim = input.byte() % 3;
    let mut answers: Vec<u16> = (0..interim)
        .map(|_| 100 + u16::from(input.byte() % 4))
        .filter(|s| *s != 101)
        .collect();
    let last = 100 + input.u16() % 500;
    answers.push(last);
    for status in &answers {
        let version = if input.byte() & 1 == 0 { "1.1" } else { "1.0" };
        head.extend_from_slice(format!("HTTP/{version} {status} ").as_bytes());
        // A reason: visible ASCII and spaces.
        let length = usize::from(input.byte() % 24);
        let reason = input.take(length);
        head.extend(
            reason
                .iter()
                .map(|b| if (0x20..0x7f).contains(b) { *b } else { b'x' }),
        );
        head.extend_from_slice(b"\r\n");
        for n in 0..input.byte() % 6 {
            let value = input.take(16);
            head.extend_from_slice(format!("X-H{n}: ").as_bytes());
            head.extend(
                value
                    .iter()
                    .map(|b| if (0x21..0x7f).contains(b) { *b } else { b'v' }),
            );
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
    }
    let last = *answers.last().unwrap_or(&last);
    // A 1xx status other than 101 as the last answer is interim too: more is needed.
    (head, last)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let reads: Vec<usize> = (0..input.byte() % 8)
        .map(|_| 1 + usize::from(input.u16() % 2048))
        .collect();
    if flags & 1 == 1 {
        let (head, status) = well_formed(&mut input);
        let body = input.rest();
        let answer = [head.as_slice(), body].concat();
        let outcome = feed(&cut(&answer, &reads));
        if (100..200).contains(&status) && status != 101 {
            // Only interim answers so far: the body's bytes may be anything that follows.
            return;
        }
        assert_eq!(
            outcome,
            Ok(Some(status)),
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        for end in 0..head.len() {
            assert_eq!(
                feed(&[&head[..end]]),
                Ok(None),
                "part of the head ({end} bytes) decided"
            );
        }
        return;
    }
    let bytes = input.rest();
    let whole = feed(&[bytes]);
    let pieces = feed(&cut(bytes, &reads));
    // The same outcome; a non-HTTP answer's quote may be shorter when less had arrived.
    match (&whole, &pieces) {
        (Err(HeadError::NotHttp(all)), Err(HeadError::NotHttp(part))) => {
            for quote in [all, part] {
                assert!(
                    quote.len() <= MAX_QUOTE + 3,
                    "quote of {} bytes",
                    quote.len()
                );
                assert!(
                    !quote.contains('\n'),
                    "quote of more than one line: {quote:?}"
                );
            }
        }
        _ => assert_eq!(whole, pieces, "the outcome depends on the reads"),
    }
});
