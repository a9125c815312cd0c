//! Timestamps in requests and responses: the ISO shapes `kiln predict` reads from a file without a format
//! (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DDTHH:MM:SS`, optional fractional seconds, an optional `Z` or UTC
//! offset after a time, converted to UTC), so a window copied from a data file parses to the same milliseconds.

use kiln_domain::{civil_from_millis, millis_from_civil};

/// What a time value must look like, for error messages.
pub(crate) const EXPECTED: &str = "an ISO date or date-time in UTC: YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or \
                                   YYYY-MM-DDTHH:MM:SS, with optional fractional seconds and Z or a UTC offset (+01:00)";

/// The JSON Schema `pattern` of a time value in `/openapi.json`: exactly what [`parse_iso`] accepts, real dates only
/// (February 29 in leap years, a leap second 60), up to 9 fractional digits. `[0-9]`, not `\d`, which is any
/// Unicode digit in some regex engines.
pub(crate) const PATTERN: &str = concat!(
    "^(",
    // days 01-28 of any month, 29-30 of any month but February, 31 of the long months
    "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
    "|[0-9]{4}-(0[13-9]|1[0-2])-(29|30)",
    "|[0-9]{4}-(0[13578]|1[02])-31",
    // February 29: years divisible by 4 but not by 100, or by 400
    "|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29",
    ")([T ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?|Z)?$",
);

fn digits(bytes: &[u8], pos: &mut usize, n: usize) -> Option<u32> {
    let end = pos.checked_add(n)?;
    let slice = bytes.get(*pos..end)?;
    let mut value = 0_u32;
    for &b in slice {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    *pos = end;
    Some(value)
}

fn expect(bytes: &[u8], pos: &mut usize, c: u8) -> Option<()> {
    (bytes.get(*pos) == Some(&c)).then(|| *pos += 1)
}

/// UTC milliseconds since the epoch, or `None` when `text` is not one of the accepted shapes or no real date.
pub(crate) fn parse_iso(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let y = i64::from(digits(bytes, &mut pos, 4)?);
    expect(bytes, &mut pos, b'-')?;
    let mo = digits(bytes, &mut pos, 2)?;
    expect(bytes, &mut pos, b'-')?;
    let d = digits(bytes, &mut pos, 2)?;
    let (mut h, mut mi, mut s, mut frac_ms) = (0, 0, 0, 0_i64);
    let has_time = matches!(bytes.get(pos), Some(b'T' | b' '));
    if has_time {
        pos += 1;
        h = digits(bytes, &mut pos, 2)?;
        expect(bytes, &mut pos, b':')?;
        mi = digits(bytes, &mut pos, 2)?;
        expect(bytes, &mut pos, b':')?;
        s = digits(bytes, &mut pos, 2)?;
        if expect(bytes, &mut pos, b'.').is_some() {
            // keep milliseconds, drop finer digits (as the file reader does)
            let start = pos;
            while pos < bytes.len() && pos - start < 9 && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            let n = pos - start;
            if n == 0 {
                return None;
            }
            let kept = &text[start..start + n.min(3)];
            let value: i64 = kept.parse().ok()?;
            frac_ms = value * 10_i64.pow(3 - n.min(3) as u32);
        }
    }
    let mut offset_ms = 0_i64;
    match bytes.get(pos) {
        Some(b'Z') => pos += 1,
        // a UTC offset after a time: +HH:MM, +HHMM or +HH (the instant is converted to UTC, as the file reader does)
        Some(&sign @ (b'+' | b'-')) if has_time => {
            pos += 1;
            let hours = i64::from(digits(bytes, &mut pos, 2)?);
            let minutes = if pos == bytes.len() {
                0
            } else {
                let _ = expect(bytes, &mut pos, b':');
                i64::from(digits(bytes, &mut pos, 2)?)
            };
            if hours >= 24 || minutes >= 60 {
                return None;
            }
            offset_ms = (hours * 3_600_000 + minutes * 60_000) * if sign == b'-' { -1 } else { 1 };
        }
        _ => {}
    }
    if pos != bytes.len() {
        return None;
    }
    Some(millis_from_civil(y, mo, d, h, mi, s)? + frac_ms - offset_ms)
}

/// `YYYY-MM-DD` at midnight, `YYYY-MM-DDTHH:MM:SS` on a whole second, else with `.mmm`.
pub(crate) fn format_iso(ms: i64) -> String {
    let c = civil_from_millis(ms);
    let date = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
    if ms.rem_euclid(86_400_000) == 0 {
        date
    } else if ms.rem_euclid(1000) == 0 {
        format!("{date}T{:02}:{:02}:{:02}", c.hour, c.minute, c.second)
    } else {
        format!("{date}T{:02}:{:02}:{:02}.{:03}", c.hour, c.minute, c.second, ms.rem_euclid(1000))
    }
}
