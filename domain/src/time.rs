//! Timestamps are Unix milliseconds everywhere (store, model, audit): one integer type
//! that both SQLite and PostgreSQL index and compare the same way.

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// `2026-11-23 10:14 UTC`. Written by hand because it must run in the browser too,
/// where pulling a calendar crate into the wasm bundle is not worth one format.
pub fn format_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", rem / 3600, (rem % 3600) / 60)
}

/// `2026-11-23`.
pub fn format_date(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(1000).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a UTC instant written `2026-11-23`, `2026-11-23T10:00`, `2026-11-23T10:00:05`
/// (a space instead of `T` and a trailing `Z` are accepted) into Unix milliseconds.
pub fn parse_utc(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || day == 0 || day > days_in_month(y, m) || !(1970..=9999).contains(&y) {
        return None;
    }
    let (mut hh, mut mm, mut ss) = (0i64, 0i64, 0i64);
    if let Some(t) = time {
        let mut parts = t.splitn(3, ':');
        hh = parts.next()?.parse().ok()?;
        mm = parts.next()?.parse().ok()?;
        ss = parts.next().map(|s| s.split('.').next().unwrap_or(s).parse()).transpose().ok()?.unwrap_or(0);
        if hh > 23 || mm > 59 || ss > 59 || hh < 0 || mm < 0 || ss < 0 {
            return None;
        }
    }
    Some((days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

/// `2026-11-23T10:14:36.250Z` (RFC 3339), for exports that other tools read.
pub fn format_iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// `2026-11-23T10:14`, the form `<input type="datetime-local">` and [`parse_utc`] use.
pub fn format_input(ms: i64) -> String {
    format_utc(ms).trim_end_matches(" UTC").replacen(' ', "T", 1)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The inverse of `civil_from_days` (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        // 2026-11-23T10:14:36Z
        assert_eq!(format_utc(1_795_428_876_000), "2026-11-23 10:14 UTC");
        assert_eq!(format_date(951_782_400_000), "2000-02-29");
    }

    #[test]
    fn parses_what_it_formats() {
        assert_eq!(parse_utc("2026-11-23T10:14:36Z"), Some(1_795_428_876_000));
        assert_eq!(parse_utc("2026-11-23 10:14"), Some(1_795_428_840_000));
        assert_eq!(parse_utc("2000-02-29"), Some(951_782_400_000));
        assert_eq!(format_input(1_795_428_876_000), "2026-11-23T10:14");
        assert_eq!(format_iso(1_795_428_876_250), "2026-11-23T10:14:36.250Z");
        assert_eq!(parse_utc(&format_input(1_795_428_876_000)), Some(1_795_428_840_000));
        for bad in ["", "2026-13-01", "2025-02-29", "2026-11-23T24:00", "yesterday", "2026-11-23T10:61", "1969-12-31"] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
