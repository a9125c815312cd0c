//! Feature kernels. Each computes the value at row `t` only from rows `<= t`, and the batch path ([`Kernel::series`],
//! every row) and the serving path ([`Kernel::last`], the last row of a window) call the very same arithmetic, so
//! they agree bit for bit: windowed kernels recompute each value from its own slice (no running sums), and the two
//! history-dependent kernels (expanding mean, EWM) run one recursion from the first row in both paths.

use std::f64::consts::TAU;

use kiln_domain::civil_from_millis;

use crate::{CalendarPart, RollingStat};

/// How a calendar part is written: the raw number, or its position on the unit circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Raw,
    Sin,
    Cos,
}

/// One output column's computation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kernel {
    Current,
    Lag(usize),
    Diff(usize),
    PctChange(usize),
    LogReturn(usize),
    Rolling {
        window: usize,
        stat: RollingStat,
    },
    ExpandingMean {
        min_periods: usize,
    },
    Ewm {
        span: f64,
    },
    Calendar {
        part: CalendarPart,
        encoding: Encoding,
    },
    /// the column's value at the target time (`known_in_advance`), or with a calendar part, that part of the target
    /// time (`calendar` with `at: target`): no kernel computes it from rows `<= t`; the table, the serving window and
    /// the origins read it from the rows ahead ([`Kernel::ahead_at`]), and every kernel path leaves NaN
    Ahead(Option<(CalendarPart, Encoding)>),
}

/// A kernel's input column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Numeric(&'a [f64]),
    Time(&'a [i64]),
}

impl<'a> Input<'a> {
    /// The first `n` rows of the input.
    pub(crate) fn head(self, n: usize) -> Input<'a> {
        match self {
            Input::Numeric(x) => Input::Numeric(&x[..n.min(x.len())]),
            Input::Time(t) => Input::Time(&t[..n.min(t.len())]),
        }
    }
}

impl Kernel {
    /// Leading rows whose value is undefined by construction.
    pub(crate) fn warmup(self) -> usize {
        match self {
            Kernel::Current | Kernel::Ewm { .. } | Kernel::Calendar { .. } | Kernel::Ahead(_) => 0,
            Kernel::Lag(k) | Kernel::Diff(k) | Kernel::PctChange(k) | Kernel::LogReturn(k) => k,
            Kernel::Rolling { window, .. } => window.saturating_sub(1),
            Kernel::ExpandingMean { min_periods } => min_periods.saturating_sub(1),
        }
    }

    /// Whether the value at `t` depends on every row before it.
    pub(crate) fn needs_all_history(self) -> bool {
        matches!(self, Kernel::ExpandingMean { .. } | Kernel::Ewm { .. })
    }

    /// The value at every row of `input` (the batch path).
    pub(crate) fn series(self, input: Input<'_>) -> Vec<f64> {
        self.series_from(input, 0, &mut self.state())
    }

    /// The running state of this kernel before its first row (empty for windowed and calendar kernels).
    pub(crate) fn state(self) -> KernelState {
        KernelState(self.scan())
    }

    /// The values at rows `start..` of `input` (the chunked batch path): windowed kernels read the rows before
    /// `start` as their history; history-dependent kernels read only rows `start..` and continue `state`, which
    /// must hold the recursion after every earlier row. With `start = 0` and a fresh state this is
    /// [`Kernel::series`]; chunk after chunk it gives the very same values.
    pub(crate) fn series_from(self, input: Input<'_>, start: usize, state: &mut KernelState) -> Vec<f64> {
        match (self, input) {
            (Kernel::Calendar { part, encoding }, Input::Time(times)) => {
                times[start..].iter().map(|&ms| calendar(part, encoding, ms)).collect()
            }
            (_, Input::Time(times)) => vec![f64::NAN; times.len().saturating_sub(start)],
            (_, Input::Numeric(x)) => match &mut state.0 {
                Some(scan) => x[start..].iter().map(|&v| scan.push(v)).collect(),
                None => match self {
                    Kernel::Rolling { window, stat } => rolling_series(x, start, window, stat),
                    // the same values as `value_at`, copied without its dispatch per row
                    Kernel::Current => x[start.min(x.len())..].to_vec(),
                    Kernel::Lag(k) => (start..x.len()).map(|t| if t >= k { x[t - k] } else { f64::NAN }).collect(),
                    _ => (start..x.len()).map(|t| self.value_at(x, t)).collect(),
                },
            },
        }
    }

    /// The value at the last row of `input` (the serving path); NaN for an empty input.
    pub(crate) fn last(self, input: Input<'_>) -> f64 {
        match (self, input) {
            (Kernel::Calendar { part, encoding }, Input::Time(times)) => {
                times.last().map_or(f64::NAN, |&ms| calendar(part, encoding, ms))
            }
            (_, Input::Time(_)) => f64::NAN,
            (_, Input::Numeric(x)) => match self.scan() {
                Some(mut scan) => x.iter().fold(f64::NAN, |_, &v| scan.push(v)),
                None if x.is_empty() => f64::NAN,
                None => self.value_at(x, x.len() - 1),
            },
        }
    }

    /// The value a [`Kernel::Ahead`] output reads from row `row` of its input (the column's value, or the calendar
    /// part of the row's time); NaN past the input's end.
    pub(crate) fn ahead_at(self, input: Input<'_>, row: usize) -> f64 {
        match (self, input) {
            (Kernel::Ahead(Some((part, encoding))), Input::Time(times)) => {
                times.get(row).map_or(f64::NAN, |&ms| calendar(part, encoding, ms))
            }
            (_, Input::Numeric(x)) => x.get(row).copied().unwrap_or(f64::NAN),
            (_, Input::Time(_)) => f64::NAN,
        }
    }

    /// The running state of a history-dependent kernel; `None` for windowed kernels.
    fn scan(self) -> Option<Scan> {
        match self {
            Kernel::ExpandingMean { min_periods } => {
                Some(Scan::Mean { min_periods, count: 0, sum: 0.0, compensation: 0.0 })
            }
            Kernel::Ewm { span } => {
                // pandas: com = (span - 1) / 2, alpha = 1 / (1 + com)
                let alpha = 1.0 / (1.0 + (span - 1.0) / 2.0);
                Some(Scan::Ewm { alpha, weighted: f64::NAN, old_weight: 1.0, started: false })
            }
            _ => None,
        }
    }

    /// The value at `t` of a windowed kernel, from `x[..=t]` only.
    fn value_at(self, x: &[f64], t: usize) -> f64 {
        let back = |k: usize| if t >= k { Some(x[t - k]) } else { None };
        match self {
            Kernel::Current => x[t],
            Kernel::Lag(k) => back(k).unwrap_or(f64::NAN),
            Kernel::Diff(p) => back(p).map_or(f64::NAN, |b| x[t] - b),
            Kernel::PctChange(p) => back(p).map_or(f64::NAN, |b| x[t] / b - 1.0),
            Kernel::LogReturn(p) => back(p).map_or(f64::NAN, |b| (x[t] / b).ln()),
            Kernel::Rolling { window, stat } => {
                if window == 0 || t + 1 < window {
                    f64::NAN
                } else {
                    rolling(&x[t + 1 - window..=t], stat)
                }
            }
            // history-dependent and calendar kernels never reach here; NaN rather than a panic
            Kernel::ExpandingMean { .. } | Kernel::Ewm { .. } | Kernel::Calendar { .. } | Kernel::Ahead(_) => f64::NAN,
        }
    }
}

/// A statistic of one full window; NaN if the window holds a NaN.
pub(crate) fn rolling(window: &[f64], stat: RollingStat) -> f64 {
    if window.is_empty() || window.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let n = window.len() as f64;
    let sum = || window.iter().fold(0.0, |acc, &v| acc + v);
    match stat {
        RollingStat::Sum => sum(),
        RollingStat::Mean => sum() / n,
        RollingStat::Min => window.iter().copied().fold(f64::INFINITY, f64::min),
        RollingStat::Max => window.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        RollingStat::Std => {
            if window.len() < 2 {
                return f64::NAN;
            }
            // a constant window has exactly zero spread (the two-pass formula could leave rounding noise)
            if window.iter().all(|&v| v == window[0]) {
                return 0.0;
            }
            let mean = sum() / n;
            let squares = window.iter().fold(0.0, |acc, &v| acc + (v - mean) * (v - mean));
            (squares / (n - 1.0)).sqrt()
        }
    }
}

/// Windows computed side by side by [`rolling_series`].
const LANES: usize = 8;

/// [`rolling`] at every row `t >= start` of `x` (NaN before the first full window), for the batch path. Sums, means
/// and standard deviations take [`LANES`] consecutive windows at once, each with exactly the arithmetic of
/// [`rolling`] (the same additions in the same order, so the very same values as the serving path): the windows
/// only interleave to keep the CPU's adders busy, where one window's sum is a chain of dependent additions. A window
/// holding a NaN needs no test of its own: its sum, its mean and its squares are NaN, as [`rolling`] answers.
fn rolling_series(x: &[f64], start: usize, window: usize, stat: RollingStat) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len().saturating_sub(start));
    let first_full = window.max(1) - 1;
    let mut t = start;
    while t < x.len() && t < first_full {
        out.push(f64::NAN);
        t += 1;
    }
    if matches!(stat, RollingStat::Sum | RollingStat::Mean | RollingStat::Std) && window >= 2 {
        let n = window as f64;
        while t + LANES <= x.len() {
            // lane l's window is w[l..l + window]
            let w = &x[t + 1 - window..t + LANES];
            let mut sum = [0.0; LANES];
            for i in 0..window {
                for (l, s) in sum.iter_mut().enumerate() {
                    *s += w[l + i];
                }
            }
            match stat {
                RollingStat::Sum => out.extend(sum),
                RollingStat::Mean => out.extend(sum.map(|s| s / n)),
                _ => {
                    let mut equal = [true; LANES];
                    let mut squares = [0.0; LANES];
                    let mean = sum.map(|s| s / n);
                    for i in 0..window {
                        for l in 0..LANES {
                            let v = w[l + i];
                            equal[l] &= v == w[l];
                            squares[l] += (v - mean[l]) * (v - mean[l]);
                        }
                    }
                    // a constant window has exactly zero spread, as in `rolling`
                    out.extend((0..LANES).map(|l| if equal[l] { 0.0 } else { (squares[l] / (n - 1.0)).sqrt() }));
                }
            }
            t += LANES;
        }
    }
    out.extend((t..x.len()).map(|t| rolling(&x[t + 1 - window..=t], stat)));
    out
}

/// The value of a calendar part of a UTC timestamp.
pub(crate) fn calendar(part: CalendarPart, encoding: Encoding, ms: i64) -> f64 {
    let civil = civil_from_millis(ms);
    let value = f64::from(match part {
        CalendarPart::DayOfWeek => civil.weekday,
        CalendarPart::Month => civil.month,
        CalendarPart::Hour => civil.hour,
        CalendarPart::DayOfYear => civil.day_of_year,
        CalendarPart::DayOfMonth => civil.day,
    });
    match encoding {
        Encoding::Raw => value,
        Encoding::Sin => (TAU * value / part.period()).sin(),
        Encoding::Cos => (TAU * value / part.period()).cos(),
    }
}

/// What a kernel carries from one chunk of rows to the next: the recursion of a history-dependent kernel, nothing
/// for the others.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KernelState(Option<Scan>);

/// The running state of a history-dependent kernel; `push` takes the next value and returns the output at it.
#[derive(Debug, Clone, Copy)]
enum Scan {
    /// pandas' expanding mean: NaN values are skipped, Kahan-compensated sum
    Mean { min_periods: usize, count: usize, sum: f64, compensation: f64 },
    /// pandas' `ewm(adjust=False, ignore_na=False).mean()`, operation for operation
    Ewm { alpha: f64, weighted: f64, old_weight: f64, started: bool },
}

impl Scan {
    fn push(&mut self, value: f64) -> f64 {
        match self {
            Scan::Mean { min_periods, count, sum, compensation } => {
                if !value.is_nan() {
                    *count += 1;
                    let y = value - *compensation;
                    let t = *sum + y;
                    *compensation = (t - *sum) - y;
                    *sum = t;
                }
                if *count >= *min_periods && *count > 0 { *sum / *count as f64 } else { f64::NAN }
            }
            Scan::Ewm { alpha, weighted, old_weight, started } => {
                let is_observation = !value.is_nan();
                if !*started {
                    *started = true;
                    *weighted = value;
                    *old_weight = 1.0;
                } else if !weighted.is_nan() {
                    // a missing value still ages the old mean (ignore_na=False)
                    *old_weight *= 1.0 - *alpha;
                    if is_observation {
                        if *weighted != value {
                            *weighted = (*old_weight * *weighted + *alpha * value) / (*old_weight + *alpha);
                        }
                        *old_weight = 1.0;
                    }
                } else if is_observation {
                    *weighted = value;
                }
                *weighted
            }
        }
    }
}
