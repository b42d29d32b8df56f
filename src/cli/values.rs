//! Parsers for option values: each takes the text as given and returns the value, or why the
//! text is not one (the caller prefixes the flag or variable the user wrote).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{LiveCheck, LogMode, Multiline};
use crate::logs::{self, Level, LogSchema};

/// Docker and containerd split lines at 16 KiB; no record may be shorter than this much.
pub const MIN_LOG_RECORD: usize = 1024;
/// An unfinished line is held up to this size: the bound on the relay's memory.
pub const MAX_LOG_RECORD: usize = 1 << 20;

const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `250ms`, `10s`, `2m`, `1h`; a bare number means seconds. At most 24 h.
pub fn duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let invalid = || {
        format!(
            "invalid duration \"{text}\" (a whole number with ms, s, m or h, e.g. 250ms, 10s, \
             2m; a bare number means seconds)"
        )
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("duration \"{text}\" out of range (at most 24h)"))
}

pub fn exit_code(text: &str) -> Result<u8, String> {
    text.parse::<u8>()
        .map_err(|_| format!("exit code \"{text}\" is not a number from 0 to 255"))
}

/// A switch given as a variable: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`/empty.
pub fn boolean(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("\"{text}\" is not a boolean (use 1/0, true/false)")),
    }
}

pub fn verbosity(text: &str) -> Result<u8, String> {
    text.parse::<u8>()
        .map_err(|_| format!("\"{text}\" is not a verbosity level (0, 1, 2...)"))
}

/// `--health-addr` / `USHER_HEALTH_ADDR`: `IP:PORT`, or `off` (None).
pub fn health_addr(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("\"{value}\" is not IP:PORT (e.g. 0.0.0.0:8558) or off"))
}

/// `--live-when`: [`LiveCheck::parse`] with this module's durations.
pub fn live_when(spec: &str) -> Result<LiveCheck, String> {
    LiveCheck::parse(spec, duration)
}

/// The most `--live-threshold` takes: at the 1 s between failed checks, over a minute and a half.
pub const MAX_LIVE_THRESHOLD: u32 = 100;

/// `--live-threshold`: a count from 1 to [`MAX_LIVE_THRESHOLD`].
pub fn live_threshold(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n @ 1..=MAX_LIVE_THRESHOLD) => Ok(n),
        _ => Err(format!(
            "\"{text}\" is not a number of failed checks from 1 to {MAX_LIVE_THRESHOLD}"
        )),
    }
}

pub fn log_format(value: &str) -> Result<LogMode, String> {
    match value {
        "json" => Ok(LogMode::Json),
        "raw" => Ok(LogMode::Raw),
        "auto" => Ok(LogMode::Auto),
        other => Err(format!(
            "unknown log format \"{other}\" (json, raw or auto)"
        )),
    }
}

/// `--log-multiline`: `auto` or `off`.
pub fn log_multiline(value: &str) -> Result<Multiline, String> {
    match value {
        "auto" => Ok(Multiline::Auto),
        "off" => Ok(Multiline::Off),
        other => Err(format!("unknown multi-line mode \"{other}\" (auto or off)")),
    }
}

/// `--log-max-record`: bytes, from [`MIN_LOG_RECORD`] to [`MAX_LOG_RECORD`].
pub fn log_max_record(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(bytes) if bytes > MAX_LOG_RECORD => Err(format!(
            "{bytes} bytes is above the maximum of {MAX_LOG_RECORD}"
        )),
        Ok(bytes) if bytes >= MIN_LOG_RECORD => Ok(bytes),
        Ok(bytes) => Err(format!(
            "{bytes} bytes is below the minimum of {MIN_LOG_RECORD}"
        )),
        Err(_) => Err(format!("\"{value}\" is not a number of bytes")),
    }
}

pub fn level(value: &str) -> Result<Level, String> {
    Level::parse(value).ok_or_else(|| {
        format!("unknown level \"{value}\" (trace, debug, info, warn, error, fatal)")
    })
}

/// `--log-schema`: `usher`, `gcp`, `ecs` or `otel`.
pub fn log_schema(value: &str) -> Result<LogSchema, String> {
    LogSchema::parse(value)
        .ok_or_else(|| format!("unknown log schema \"{value}\" (usher, gcp, ecs or otel)"))
}

/// `K=V` for `--log-field`: a valid key that `schema` does not reserve for usher's own fields.
pub fn log_field(text: &str, schema: LogSchema) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("\"{text}\" is not KEY=VALUE (e.g. service=api)"))?;
    if !logs::valid_field_key(key) {
        return Err(format!(
            "\"{key}\" is not a valid field name ([A-Za-z_][A-Za-z0-9_.-]*)"
        ));
    }
    let reserved = schema.reserved_keys();
    if reserved.contains(&key) {
        let mut why = format!(
            "\"{key}\" is one of the keys usher writes itself in the {} log schema (",
            schema.name()
        );
        for (n, reserved) in reserved.iter().enumerate() {
            why.push_str(if n == 0 { "" } else { ", " });
            why.push_str(reserved);
        }
        why.push(')');
        return Err(why);
    }
    Ok((key.to_string(), value.to_string()))
}

/// The length of `text` as a JSON string, quotes included.
pub fn json_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() * 6 + 2, |quoted| quoted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "-1s",
            "1.5s",
            "10 s",
            "10sec",
            "1d",
            "99999999999999999999",
        ] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
        assert!(duration("25h").unwrap_err().contains("out of range"));
    }

    #[test]
    fn live_thresholds() {
        assert_eq!(live_threshold("1"), Ok(1));
        assert_eq!(live_threshold("3"), Ok(3));
        assert_eq!(live_threshold("100"), Ok(MAX_LIVE_THRESHOLD));
        for bad in ["0", "101", "-1", "", "three", "2.5"] {
            assert!(live_threshold(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            live_when("watchdog:2m"),
            Ok(LiveCheck::Watchdog(Duration::from_secs(120)))
        );
        assert!(
            live_when("watchdog:25h")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
