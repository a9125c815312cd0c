//! The step of a time series, learned from the training rows' times, so that a forecast made at origin `t` can say
//! the time it is for (`t` + horizon steps) even past the end of the data.
//!
//! Key decisions: the step is the median spacing of the training times. A daily series with no Saturday or Sunday
//! row (ECB reference rates, stock closes) steps over weekends; holidays are not known, so the target time of a
//! forecast made the day before a holiday names the holiday. Irregular series still get the median step: the
//! target time is then an estimate, as the docs say.

use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 86_400_000;

/// How one step of the series advances time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SeriesStep {
    /// a fixed number of milliseconds (an hour, a day, ...)
    Fixed { ms: i64 },
    /// one weekday: Friday's next step is Monday (same time of day)
    BusinessDays,
}

/// Monday = 0 ... Sunday = 6, for a time in UTC milliseconds (1970-01-01 was a Thursday).
fn weekday(ms: i64) -> i64 {
    (ms.div_euclid(DAY_MS) + 3).rem_euclid(7)
}

impl SeriesStep {
    /// The step of a series whose rows are at `times` (UTC ms, ascending): `None` with fewer than two rows or a
    /// median spacing that is not positive.
    pub fn learn(times: &[i64]) -> Option<SeriesStep> {
        let mut deltas: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0).collect();
        if deltas.is_empty() {
            return None;
        }
        deltas.sort_unstable();
        let median = deltas[deltas.len() / 2];
        let weekends = times.iter().any(|&t| weekday(t) >= 5);
        let skips_weekends = deltas.contains(&(3 * DAY_MS));
        Some(if median == DAY_MS && !weekends && skips_weekends {
            SeriesStep::BusinessDays
        } else {
            SeriesStep::Fixed { ms: median }
        })
    }

    /// `origin` advanced by `steps` steps (saturating at the ends of i64).
    pub fn advance(self, origin: i64, steps: usize) -> i64 {
        match self {
            SeriesStep::Fixed { ms } => {
                origin.saturating_add(ms.saturating_mul(i64::try_from(steps).unwrap_or(i64::MAX)))
            }
            SeriesStep::BusinessDays => {
                let mut t = origin;
                let mut left = steps;
                while left > 0 {
                    t = t.saturating_add(DAY_MS);
                    if weekday(t) < 5 {
                        left -= 1;
                    }
                }
                t
            }
        }
    }

    /// How the step reads in docs and errors: `1h`, `1d`, `business day`, `90s`, ...
    pub fn describe(self) -> String {
        match self {
            SeriesStep::BusinessDays => "business day".to_string(),
            SeriesStep::Fixed { ms } => {
                for (unit, size) in [("d", DAY_MS), ("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
                    if ms % size == 0 {
                        return format!("{}{unit}", ms / size);
                    }
                }
                format!("{ms}ms")
            }
        }
    }
}

#[cfg(test)]
mod tests;
