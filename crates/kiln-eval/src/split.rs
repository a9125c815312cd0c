//! Time-ordered splits: the holdout `[train][validation][gap][test]`, never shuffled, the test part always last, and
//! expanding-window cross-validation folds ([`time_series_folds`]). Shuffled and stratified splits for tabular data
//! live in `shuffled.rs`.
//!
//! Key decisions: a part size is a fraction of all rows (`0.2`) or a row count (`500`). Fractions round up, as
//! scikit-learn's `train_test_split` does for its test part (but 0.07 of 100 rows is 7, not 8), and the training
//! part takes what is left. The validation part (optional) is the tail of the training rows, for early stopping
//! only. The gap drops rows between the fitted rows and the test rows, so that the labels of the last fitted rows
//! (which look `horizon` rows ahead) do not overlap the test period: the caller passes `horizon - 1` as the
//! minimum gap, so a config cannot forget it, and `gap:` in the config may only widen it. There is no gap between
//! train and validation, so that train + validation stays one contiguous range for a refit; the labels of the last
//! training rows may reach into the validation period, which can bias early stopping slightly but never the test
//! metrics.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::EvalError;

/// The size of a holdout part. In YAML a float is a fraction of all rows, strictly between 0 and 1 (`0.2`), and an
/// integer is a row count of at least 1 (`500`); `1.0` and `0` are refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    Fraction(f64),
    Rows(usize),
}

impl Size {
    /// The number of rows this size means in a table of `n_rows`: `ceil(fraction * n_rows)` for a fraction, where a
    /// product within 1e-9 of an integer counts as that integer (floating-point noise does not add a row).
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] naming `key` for a fraction outside (0, 1) or a count of 0.
    pub fn rows_of(self, n_rows: usize, key: &str) -> Result<usize, EvalError> {
        self.check(key)?;
        Ok(match self {
            Size::Fraction(f) => {
                let exact = f * n_rows as f64;
                let nearest = exact.round();
                // 0.07 * 100 is 7.000000000000001 in floating point: that is 7 rows, not 8
                if (exact - nearest).abs() <= 1e-9 * nearest.max(1.0) {
                    nearest as usize
                } else {
                    exact.ceil() as usize
                }
            }
            Size::Rows(r) => r,
        })
    }

    fn check(self, key: &str) -> Result<(), EvalError> {
        let invalid = |reason: String| Err(EvalError::InvalidSpec { key: key.to_string(), reason });
        match self {
            Size::Fraction(f) if !(f > 0.0 && f < 1.0) => {
                invalid(format!("a fraction must be strictly between 0 and 1, got {f}"))
            }
            Size::Rows(0) => invalid("a row count must be at least 1, got 0".to_string()),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Fraction(x) => write!(f, "{x}"),
            Size::Rows(r) => write!(f, "{r} rows"),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Size::Fraction(f) => s.serialize_f64(f),
            Size::Rows(r) => s.serialize_u64(r as u64),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = Size;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fraction strictly between 0 and 1 (0.2) or a row count of at least 1 (500)")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                if v == 0 {
                    return Err(E::custom("a row count must be at least 1, got 0"));
                }
                usize::try_from(v).map(Size::Rows).map_err(|_| E::custom(format!("row count {v} is too large")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("a row count must be at least 1, got {v}"))),
                }
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Size, E> {
                if v > 0.0 && v < 1.0 {
                    Ok(Size::Fraction(v))
                } else {
                    Err(E::custom(format!(
                        "a fraction must be strictly between 0 and 1, got {v} (write a row count as an integer)"
                    )))
                }
            }
        }

        d.deserialize_any(SizeVisitor)
    }
}

/// How to hold out the last rows of a time-ordered table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldoutSpec {
    /// the last rows, for the reported test metrics
    pub test_size: Size,
    /// the tail of the training rows, for early stopping; none by default
    #[serde(default)]
    pub validation_size: Option<Size>,
    /// rows dropped between the fitted rows (train + validation) and the test rows, at least the caller's
    /// minimum (`horizon - 1` for a forecast); 0 by default
    #[serde(default)]
    pub gap: usize,
}

/// Row ranges of a time holdout, in row order and covering every row exactly once: `train`, then `validation`
/// right after it (empty when none was asked for), then the dropped `gap`, then `test` up to the last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdout {
    pub train: Range<usize>,
    pub validation: Range<usize>,
    pub gap: Range<usize>,
    pub test: Range<usize>,
}

impl Holdout {
    /// Train and validation together (the rows a final refit may use); never overlaps the gap or the test.
    pub fn fit_rows(&self) -> Range<usize> {
        self.train.start..self.validation.end.max(self.train.end)
    }
}

/// Splits `n_rows` time-ordered rows into train, optional validation, gap and test, in that order, never shuffled.
/// The gap is `max(spec.gap, min_gap)` rows; forecasters pass `horizon - 1` as `min_gap`.
///
/// # Errors
/// [`EvalError::InvalidSpec`] for a size outside its domain, [`EvalError::EmptyPart`] naming the part (`test` or
/// `train`) that would get no rows, with the counts.
pub fn time_holdout(n_rows: usize, spec: &HoldoutSpec, min_gap: usize) -> Result<Holdout, EvalError> {
    let n_test = spec.test_size.rows_of(n_rows, "test_size")?;
    let n_val = match spec.validation_size {
        Some(size) => size.rows_of(n_rows, "validation_size")?,
        None => 0,
    };
    let gap = spec.gap.max(min_gap);
    let empty = |part| EvalError::EmptyPart { part, n_rows, test: n_test, validation: n_val, gap };
    if n_test == 0 {
        return Err(empty("test"));
    }
    let n_train = n_rows
        .checked_sub(n_test)
        .and_then(|r| r.checked_sub(n_val))
        .and_then(|r| r.checked_sub(gap))
        .filter(|&r| r > 0)
        .ok_or_else(|| empty("train"))?;
    let fit_end = n_train + n_val;
    Ok(Holdout {
        train: 0..n_train,
        validation: n_train..fit_end,
        gap: fit_end..fit_end + gap,
        test: n_rows - n_test..n_rows,
    })
}

/// One walk-forward fold: train on the rows of `train` (every row before the gap, or the last ones of a sliding
/// window), skip the `gap` rows, test on the `test` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFold {
    pub train: Range<usize>,
    pub gap: Range<usize>,
    pub test: Range<usize>,
}

/// Walk-forward folds over time-ordered rows, the settings of scikit-learn's `TimeSeriesSplit(n_splits, test_size,
/// gap, max_train_size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkForward {
    /// the number of test blocks
    pub folds: usize,
    /// rows per test block; `None`: `n_rows / (folds + 1)`, as scikit-learn
    pub test_size: Option<usize>,
    /// rows left out between each training part and its test block (at least `horizon - 1` for a forecast)
    pub gap: usize,
    /// `None`: an expanding window (every row before the gap); `Some(n)`: a sliding window of the last `n` rows
    pub max_train_size: Option<usize>,
    /// rows between the starts of consecutive test blocks; `None`: the test size (blocks follow each other, as
    /// scikit-learn's); smaller overlaps the blocks, larger leaves rows between them. The last block ends with the
    /// data.
    pub step: Option<usize>,
}

impl WalkForward {
    /// `folds` expanding-window folds with test blocks of `n_rows / (folds + 1)` rows and no gap.
    pub fn new(folds: usize) -> WalkForward {
        WalkForward { folds, test_size: None, gap: 0, max_train_size: None, step: None }
    }
}

/// `k` expanding-window folds over `n_rows` time-ordered rows, as scikit-learn's `TimeSeriesSplit(n_splits=k,
/// gap=gap)`: [`walk_forward`] with the default test size and no cap on the training rows.
///
/// # Errors
/// As [`walk_forward`].
pub fn time_series_folds(n_rows: usize, k: usize, gap: usize) -> Result<Vec<TimeFold>, EvalError> {
    walk_forward(n_rows, &WalkForward { gap, ..WalkForward::new(k) })
}

/// Walk-forward folds over `n_rows` time-ordered rows, index for index scikit-learn's `TimeSeriesSplit`: the test
/// blocks are the last `folds` blocks of `test_size` rows (default `n_rows / (folds + 1)`), fold `i` trains on the
/// rows before its block less the `gap` rows, all of them (expanding) or the last `max_train_size` (sliding). The
/// rows left over by the division go to the first training part.
///
/// # Errors
/// [`EvalError::InvalidSpec`] (`folds`) for fewer than 2 folds, (`test_size`) for a test size of 0 and
/// (`max_train_size`) for 0; [`EvalError::Folds`] when the rows cannot give every fold its test rows and the first
/// fold at least one training row (scikit-learn's conditions).
pub fn walk_forward(n_rows: usize, spec: &WalkForward) -> Result<Vec<TimeFold>, EvalError> {
    let k = spec.folds;
    let invalid = |key: &str, reason: String| EvalError::InvalidSpec { key: key.to_string(), reason };
    if k < 2 {
        return Err(invalid("folds", format!("must be at least 2, got {k}")));
    }
    if spec.test_size == Some(0) {
        return Err(invalid("test_size", "must be at least 1 row".to_string()));
    }
    if spec.max_train_size == Some(0) {
        return Err(invalid("max_train_size", "must be at least 1 row".to_string()));
    }
    if spec.step == Some(0) {
        return Err(invalid("step", "must be at least 1 row".to_string()));
    }
    if k + 1 > n_rows {
        return Err(EvalError::Folds {
            folds: k,
            reason: format!("{n_rows} rows cannot hold {} blocks (a first training block and {k} test blocks)", k + 1),
        });
    }
    let test_size = spec.test_size.unwrap_or(n_rows / (k + 1));
    let step = spec.step.unwrap_or(test_size);
    let gap = spec.gap;
    // the last block ends with the data; the others start `step` rows apart before it
    let first_test = (k - 1)
        .checked_mul(step)
        .and_then(|s| s.checked_add(test_size))
        .and_then(|span| n_rows.checked_sub(span))
        .unwrap_or(0);
    if first_test <= gap {
        return Err(EvalError::Folds {
            folds: k,
            reason: format!(
                "{n_rows} rows with {k} test blocks of {test_size} rows and a gap of {gap} leave no training row"
            ),
        });
    }
    Ok((0..k)
        .map(|i| {
            let start = first_test + i * step;
            let train_end = start - gap;
            let train_start = spec.max_train_size.map_or(0, |m| train_end.saturating_sub(m));
            TimeFold { train: train_start..train_end, gap: train_end..start, test: start..start + test_size }
        })
        .collect())
}
