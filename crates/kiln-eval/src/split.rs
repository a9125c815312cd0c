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

/// One expanding-window fold: train on every row before `gap`, skip the `gap` rows, test on the next `test` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFold {
    pub train: Range<usize>,
    pub gap: Range<usize>,
    pub test: Range<usize>,
}

/// `k` expanding-window folds over `n_rows` time-ordered rows, as scikit-learn's `TimeSeriesSplit(n_splits=k,
/// gap=gap)`: the test folds are the last `k` blocks of `n_rows / (k + 1)` rows each, and fold `i` trains on every
/// row up to `gap` rows before its test block. The rows left over by the division go to the first training part.
///
/// # Errors
/// [`EvalError::InvalidSpec`] (`folds`) for `k < 2`, [`EvalError::Folds`] when the rows cannot give every fold at
/// least one test row and the first fold at least one training row (scikit-learn's conditions).
pub fn time_series_folds(n_rows: usize, k: usize, gap: usize) -> Result<Vec<TimeFold>, EvalError> {
    if k < 2 {
        return Err(EvalError::InvalidSpec {
            key: "folds".to_string(),
            reason: format!("must be at least 2, got {k}"),
        });
    }
    if k + 1 > n_rows {
        return Err(EvalError::Folds {
            folds: k,
            reason: format!("{n_rows} rows cannot hold {} blocks (a first training block and {k} test blocks)", k + 1),
        });
    }
    let test_size = n_rows / (k + 1);
    let first_test = n_rows - k * test_size;
    if first_test <= gap {
        return Err(EvalError::Folds {
            folds: k,
            reason: format!(
                "{n_rows} rows with test blocks of {test_size} rows and a gap of {gap} leave no training row"
            ),
        });
    }
    Ok((0..k)
        .map(|i| {
            let start = first_test + i * test_size;
            TimeFold { train: 0..start - gap, gap: start - gap..start, test: start..start + test_size }
        })
        .collect())
}
