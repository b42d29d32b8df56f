//! sd_notify datagrams (health::notify::Notification::parse), as the app sends them on
//! NOTIFY_SOCKET. Properties: it never panics; READY=1, STOPPING=1, RELOADING=1, WATCHDOG=1,
//! WATCHDOG=trigger and STATUS= count exactly when one is a whole line of the datagram (lines
//! cut at '\n', a CR just before it dropped, as `str::lines` does; invalid UTF-8 as U+FFFD), the
//! last one of a kind winning; STATUS is cut to MAX_STATUS bytes on a character boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use usher::fuzzing::{MAX_STATUS, Notification, Ping};

fuzz_target!(|datagram: &[u8]| {
    let parsed = Notification::parse(datagram);
    let text = String::from_utf8_lossy(datagram);
    let mut ready = None;
    let mut status = None;
    let mut watchdog = None;
    let mut rest = text.as_ref();
    while !rest.is_empty() {
        let (line, after) = match rest.split_once('\n') {
            Some((line, after)) => (line.strip_suffix('\r').unwrap_or(line), after),
            // The last line, without '\n': a CR there is not a line ending, and stays.
            None => (rest, ""),
        };
        rest = after;
        match line {
            "READY=1" => ready = Some((true, "READY=1")),
            "STOPPING=1" => ready = Some((false, "STOPPING=1")),
            "RELOADING=1" => ready = Some((false, "RELOADING=1")),
            "WATCHDOG=1" => watchdog = Some(Ping::Alive),
            "WATCHDOG=trigger" => watchdog = Some(Ping::Trigger),
            _ => {
                if let Some(value) = line.strip_prefix("STATUS=") {
                    status = Some(value);
                }
            }
        }
    }
    assert_eq!(parsed.ready, ready, "{text:?}");
    assert_eq!(parsed.watchdog, watchdog, "{text:?}");
    match (&parsed.status, status) {
        (None, None) => {}
        (Some(got), Some(sent)) => {
            assert!(got.len() <= MAX_STATUS, "status of {} bytes", got.len());
            assert!(
                sent.starts_with(got.as_str()),
                "status not a prefix of {sent:?}"
            );
            // Cut only when too long, and then as late as a character boundary allows.
            let cut_early = got.len() < sent.len()
                && got.len() + sent[got.len()..].chars().next().map_or(0, char::len_utf8)
                    <= MAX_STATUS;
            assert!(!cut_early, "status {got:?} cut short of {sent:?}");
        }
        (got, sent) => panic!("status {got:?}, sent {sent:?}: {text:?}"),
    }
});
