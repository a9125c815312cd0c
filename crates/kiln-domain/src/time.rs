//! Civil calendar arithmetic on UTC milliseconds (Howard Hinnant's algorithms), so that calendar features need no
//! date library and give the same answer everywhere.

/// A UTC date and time broken into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilDateTime {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Monday .. 6 = Sunday (pandas' `dayofweek`)
    pub weekday: u32,
    /// 1..=366
    pub day_of_year: u32,
}

const MS_PER_DAY: i64 = 86_400_000;

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Milliseconds since the epoch for a UTC civil time. Returns `None` for an impossible date or time.
pub fn millis_from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month as usize - 1];
    if day > month_len {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * MS_PER_DAY + i64::from(hour) * 3_600_000 + i64::from(minute) * 60_000 + i64::from(second) * 1000)
}

/// The civil parts of a UTC timestamp.
pub fn civil_from_millis(ms: i64) -> CivilDateTime {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let secs = rem / 1000;
    CivilDateTime {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: ((secs / 60) % 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday (3 when Monday is 0)
        weekday: (days + 3).rem_euclid(7) as u32,
        day_of_year: (days - days_from_civil(year, 1, 1) + 1) as u32,
    }
}

/// A UTC time in microseconds since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff`, the text Python's `datetime` prints
/// (MLflow's `utc_time_created`, Optuna's stored times).
pub fn utc_datetime_text(micros: i64) -> String {
    let c = civil_from_millis(micros.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        micros.rem_euclid(1_000_000)
    )
}

/// `ms` as ISO 8601 text for messages: the date alone at midnight, else with the time (and milliseconds when any).
pub fn iso_from_millis(ms: i64) -> String {
    let c = civil_from_millis(ms);
    let date = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
    match (ms.rem_euclid(MS_PER_DAY), ms.rem_euclid(1000)) {
        (0, _) => date,
        (_, 0) => format!("{date}T{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
        (_, milli) => format!("{date}T{:02}:{:02}:{:02}.{milli:03}", c.hour, c.minute, c.second),
    }
}
