//! RFC 3339 UTC timestamps with microseconds, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z: the last second four year digits can write.
const LAST_SECOND: u64 = 253_402_300_799;

/// `2026-11-26T14:34:17.123456Z` for `time`: UTC, microseconds, always 27 bytes. Times before
/// 1970 clamp to the epoch and times after year 9999 to its last microsecond, so the width
/// never changes.
pub fn rfc3339_micros(time: SystemTime) -> [u8; 27] {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (secs, micros) = match since.as_secs() {
        secs if secs > LAST_SECOND => (LAST_SECOND, 999_999),
        secs => (secs, u64::from(since.subsec_micros())),
    };
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    // Built whole rather than by index: nothing here can go out of bounds.
    let digit = |value: u64, unit: u64| b'0' + (value / unit % 10) as u8;
    [
        digit(year, 1000),
        digit(year, 100),
        digit(year, 10),
        digit(year, 1),
        b'-',
        digit(month, 10),
        digit(month, 1),
        b'-',
        digit(day, 10),
        digit(day, 1),
        b'T',
        digit(hour, 10),
        digit(hour, 1),
        b':',
        digit(minute, 10),
        digit(minute, 1),
        b':',
        digit(second, 10),
        digit(second, 1),
        b'.',
        digit(micros, 100_000),
        digit(micros, 10_000),
        digit(micros, 1000),
        digit(micros, 100),
        digit(micros, 10),
        digit(micros, 1),
        b'Z',
    ]
}

/// (year, month, day) of the day `days` after 1970-01-01, in the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days`, for non-negative days only (so all in u64): eras of
/// 400 years, each year counted from March so the leap day is the last of its year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March ... 11 = February
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        let time = UNIX_EPOCH + Duration::new(secs, micros * 1000 + 999);
        String::from_utf8(rfc3339_micros(time).to_vec()).unwrap()
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_795_703_657, 123_456), "2026-11-26T14:34:17.123456Z");
        assert_eq!(at(1_709_251_199, 999_999), "2024-02-29T23:59:59.999999Z");
        assert_eq!(at(1_709_251_200, 1), "2024-03-01T00:00:00.000001Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(4_107_542_400 - 1, 0), "2100-02-28T23:59:59.000000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(at(946_684_799, 500_000), "1999-12-31T23:59:59.500000Z");
        assert_eq!(at(946_684_800, 0), "2000-01-01T00:00:00.000000Z");
        assert_eq!(at(LAST_SECOND, 7), "9999-12-31T23:59:59.000007Z");
    }

    #[test]
    fn out_of_range_times_clamp() {
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(&rfc3339_micros(before), b"1970-01-01T00:00:00.000000Z");
        assert_eq!(at(LAST_SECOND + 1, 0), "9999-12-31T23:59:59.999999Z");
        assert_eq!(at(u64::MAX / 2, 0), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn agrees_with_a_day_by_day_count() {
        // Walk every day from 1970 to 2400 with a naive calendar and compare.
        let mut date = (1970u64, 1u64, 1u64);
        for days in 0..(430 * 366) {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (year, month, day) = date;
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = match (day == length, month == 12) {
                (false, _) => (year, month, day + 1),
                (true, false) => (year, month + 1, 1),
                (true, true) => (year + 1, 1, 1),
            };
        }
    }

    #[test]
    fn now_is_well_formed() {
        let text = rfc3339_micros(SystemTime::now());
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.starts_with("20") && text.ends_with('Z'), "{text}");
        assert_eq!(text.len(), 27);
    }
}
