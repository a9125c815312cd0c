//! The feature recipe as read from YAML (serde, `deny_unknown_fields` everywhere), its validation, and the one
//! function ([`TimeSeriesRecipe::outputs`]) that turns it into output columns, so names and kernels never disagree.

use std::collections::HashMap;

use kiln_domain::Frame;
use serde::{Deserialize, Serialize};

use crate::FeatureError;
use crate::kernels::{Encoding, Kernel};

/// One entry of the recipe's `features:` list. Externally tagged, so YAML reads `- lag: {column: USD, lags: [1]}`.
/// Every kernel computes the value at origin time `t` only from rows `<= t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureSpec {
    /// `x[t-k]` for each `k >= 1`; names `<column>_lag_<k>`
    Lag { column: String, lags: Vec<usize> },
    /// `x[t]`, the value known at the origin time; named after the column itself
    Current { columns: Vec<String> },
    /// `x[t] - x[t-p]`; names `<column>_diff_<p>`
    Diff { column: String, periods: Vec<usize> },
    /// `x[t] / x[t-p] - 1` (pandas `pct_change`); names `<column>_pct_change_<p>`
    PctChange { column: String, periods: Vec<usize> },
    /// `ln(x[t] / x[t-p])`; names `<column>_log_return_<p>`
    LogReturn { column: String, periods: Vec<usize> },
    /// a statistic over `x[t-w+1..=t]`, NaN when the window is incomplete or holds a NaN (pandas with
    /// `min_periods=window`); `std` is the sample standard deviation (ddof=1); names `<column>_rolling_<stat>_<w>`
    Rolling { column: String, windows: Vec<usize>, stats: Vec<RollingStat> },
    /// mean of the non-missing values of `x[0..=t]`, NaN while fewer than `min_periods` (pandas `expanding().mean()`);
    /// name `<column>_expanding_mean`
    ExpandingMean {
        column: String,
        #[serde(default = "default_min_periods")]
        min_periods: usize,
    },
    /// pandas `ewm(span=s, adjust=False).mean()`: `alpha = 2/(s+1)`, `s_0 = x_0`, `s_t = alpha*x_t + (1-alpha)*s_{t-1}`;
    /// names `<column>_ewm_<span>`
    Ewm { column: String, spans: Vec<f64> },
    /// a panel's series key itself, as a categorical column named after the series column, for a global model to
    /// tell the series apart; encode it with a `one_hot` or `ordinal` preprocessing step (`series: {}`)
    Series {},
    /// columns whose future values are known when the forecast is made (planned prices, holidays, a weather
    /// forecast): each is taken at the forecast's target time, `x[t + horizon]` (a multi-step forecast: `x[t + k]`
    /// for step `k`), never at the origin; names `<column>_at_target`. To score, the input holds, after each
    /// series' last observed row, future rows with the target left empty and these columns filled
    KnownInAdvance { columns: Vec<String> },
    /// parts of the origin time (UTC); with `cyclical`, also `<part>_sin` and `<part>_cos`. With `at: target`,
    /// parts of the forecast's target time instead, read from the row at that time (a future row when scoring, as
    /// for `known_in_advance`), named `<part>_at_target` (`_sin`, `_cos`)
    Calendar {
        parts: Vec<CalendarPart>,
        #[serde(default)]
        cyclical: bool,
        #[serde(default, skip_serializing_if = "CalendarAt::is_origin")]
        at: CalendarAt,
    },
}

fn default_min_periods() -> usize {
    1
}

/// Statistics of a rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollingStat {
    Mean,
    /// sample standard deviation, ddof = 1 (pandas' default)
    Std,
    Min,
    Max,
    Sum,
}

impl RollingStat {
    pub fn as_str(self) -> &'static str {
        match self {
            RollingStat::Mean => "mean",
            RollingStat::Std => "std",
            RollingStat::Min => "min",
            RollingStat::Max => "max",
            RollingStat::Sum => "sum",
        }
    }
}

/// Calendar parts of a UTC timestamp, with pandas' conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarPart {
    /// 0 = Monday .. 6 = Sunday
    DayOfWeek,
    /// 1..=12
    Month,
    /// 0..=23
    Hour,
    /// 1..=366
    DayOfYear,
    /// 1..=31
    DayOfMonth,
}

impl CalendarPart {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarPart::DayOfWeek => "day_of_week",
            CalendarPart::Month => "month",
            CalendarPart::Hour => "hour",
            CalendarPart::DayOfYear => "day_of_year",
            CalendarPart::DayOfMonth => "day_of_month",
        }
    }

    /// The period of the cyclical encoding `sin(2*pi*v/period)`: the number of values the part can take
    /// (7, 12, 24, 366, 31). Day of year uses 366 so that every day of a leap year gets its own angle.
    pub fn period(self) -> f64 {
        match self {
            CalendarPart::DayOfWeek => 7.0,
            CalendarPart::Month => 12.0,
            CalendarPart::Hour => 24.0,
            CalendarPart::DayOfYear => 366.0,
            CalendarPart::DayOfMonth => 31.0,
        }
    }
}

/// Which time a calendar feature describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalendarAt {
    /// the origin's (the row's own time)
    #[default]
    Origin,
    /// the forecast's target time (each step's, for a multi-step forecast)
    Target,
}

impl CalendarAt {
    fn is_origin(&self) -> bool {
        *self == CalendarAt::Origin
    }
}

/// How the label is derived from the target at the origin `t` and at `t + horizon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetTransform {
    /// label = future
    #[default]
    None,
    /// label = future - current
    Difference,
    /// label = ln(future / current)
    LogReturn,
}

impl TargetTransform {
    /// The label for a current and a future target value.
    pub fn apply(self, current: f64, future: f64) -> f64 {
        match self {
            TargetTransform::None => future,
            TargetTransform::Difference => future - current,
            TargetTransform::LogReturn => (future / current).ln(),
        }
    }

    /// The forecast of the future target value from a model output in the label's space.
    pub fn invert(self, current: f64, output: f64) -> f64 {
        match self {
            TargetTransform::None => output,
            TargetTransform::Difference => current + output,
            TargetTransform::LogReturn => current * output.exp(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetTransform::None => "none",
            TargetTransform::Difference => "difference",
            TargetTransform::LogReturn => "log_return",
        }
    }
}

/// A forecasting recipe: predict `target` at `t + horizon` from features computed at origin time `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSeriesRecipe {
    pub time_column: String,
    /// how the time column's text was parsed in training (strftime-like); kept so that `kiln predict` parses a file
    /// the same way (absent: ISO 8601, detected)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_format: Option<String>,
    /// the cell texts training read as missing values, when the experiment set its own
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub na_values: Option<Vec<String>>,
    /// a panel (a long file of many series): the column naming each row's series; every kernel runs per series
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_column: Option<String>,
    /// a wide file (one column per series) melted into the panel before anything else: the series column is
    /// `name`, the values go to the target column
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide: Option<WideInput>,
    /// forecasts of every step `1..=steps` from each origin (`task.strategy`); `horizon` is then 1, the step the
    /// model learns. Absent: one forecast per origin, `horizon` steps ahead
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_step: Option<MultiStep>,
    pub target: String,
    /// steps ahead, >= 1
    pub horizon: usize,
    #[serde(default)]
    pub target_transform: TargetTransform,
    pub features: Vec<FeatureSpec>,
}

/// Many steps ahead from every origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiStep {
    /// the last step forecast (`task.horizon`)
    pub steps: usize,
    pub strategy: Strategy,
}

/// How forecasts beyond the next step are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// one model of the next step, its forecasts fed back as the target's latest values (mlforecast)
    Recursive,
    /// one model per step (skforecast's `ForecasterDirect`)
    Direct,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Recursive => "recursive",
            Strategy::Direct => "direct",
        }
    }
}

/// A wide file's series columns, melted into a long panel (pandas `melt`, missing cells left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WideInput {
    /// one column per series, each named after its series
    pub columns: Vec<String>,
    /// the series column of the long panel
    pub name: String,
}

/// How much history the last row of a window needs to be computed exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookback {
    /// the last `n` rows suffice
    Rows(usize),
    /// some kernel (expanding mean, EWM) depends on the whole history, from the first row on
    All,
}

/// Where an output column reads its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    Column(String),
    Time,
}

/// One output column of the feature table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    pub(crate) name: String,
    /// index into `features`
    pub(crate) feature: usize,
    pub(crate) source: Source,
    pub(crate) kernel: Kernel,
}

impl FeatureSpec {
    /// The snake_case name of the variant, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            FeatureSpec::Lag { .. } => "lag",
            FeatureSpec::Current { .. } => "current",
            FeatureSpec::Diff { .. } => "diff",
            FeatureSpec::PctChange { .. } => "pct_change",
            FeatureSpec::LogReturn { .. } => "log_return",
            FeatureSpec::Rolling { .. } => "rolling",
            FeatureSpec::ExpandingMean { .. } => "expanding_mean",
            FeatureSpec::Ewm { .. } => "ewm",
            FeatureSpec::Series {} => "series",
            FeatureSpec::KnownInAdvance { .. } => "known_in_advance",
            FeatureSpec::Calendar { .. } => "calendar",
        }
    }

    /// The raw columns this feature reads (the time column is implied by `calendar`).
    pub fn columns(&self) -> Vec<&str> {
        match self {
            FeatureSpec::Current { columns } | FeatureSpec::KnownInAdvance { columns } => {
                columns.iter().map(String::as_str).collect()
            }
            FeatureSpec::Calendar { .. } | FeatureSpec::Series {} => Vec::new(),
            FeatureSpec::Lag { column, .. }
            | FeatureSpec::Diff { column, .. }
            | FeatureSpec::PctChange { column, .. }
            | FeatureSpec::LogReturn { column, .. }
            | FeatureSpec::Rolling { column, .. }
            | FeatureSpec::ExpandingMean { column, .. }
            | FeatureSpec::Ewm { column, .. } => vec![column.as_str()],
        }
    }

    fn validate(&self, index: usize) -> Result<(), FeatureError> {
        let at = |field: &str| format!("features[{index}].{}.{field}", self.kind());
        let column_named = |column: &str, field: &str| {
            if column.is_empty() { Err(FeatureError::spec(at(field), "must not be empty")) } else { Ok(()) }
        };
        let steps = |values: &[usize], field: &str| -> Result<(), FeatureError> {
            if values.is_empty() {
                return Err(FeatureError::spec(at(field), "must not be empty"));
            }
            match values.iter().position(|&v| v < 1) {
                Some(i) => Err(FeatureError::spec(format!("{}[{i}]", at(field)), "must be >= 1, got 0")),
                None => Ok(()),
            }
        };
        match self {
            FeatureSpec::Lag { column, lags } => {
                column_named(column, "column")?;
                steps(lags, "lags")
            }
            FeatureSpec::Current { columns } | FeatureSpec::KnownInAdvance { columns } => {
                if columns.is_empty() {
                    return Err(FeatureError::spec(at("columns"), "must not be empty"));
                }
                match columns.iter().position(String::is_empty) {
                    Some(i) => Err(FeatureError::spec(format!("{}[{i}]", at("columns")), "must not be empty")),
                    None => Ok(()),
                }
            }
            FeatureSpec::Diff { column, periods }
            | FeatureSpec::PctChange { column, periods }
            | FeatureSpec::LogReturn { column, periods } => {
                column_named(column, "column")?;
                steps(periods, "periods")
            }
            FeatureSpec::Rolling { column, windows, stats } => {
                column_named(column, "column")?;
                steps(windows, "windows")?;
                if stats.is_empty() {
                    return Err(FeatureError::spec(at("stats"), "must not be empty"));
                }
                if stats.contains(&RollingStat::Std)
                    && let Some(i) = windows.iter().position(|&w| w < 2)
                {
                    return Err(FeatureError::spec(
                        format!("{}[{i}]", at("windows")),
                        format!("must be >= 2 for the std statistic, got {}", windows[i]),
                    ));
                }
                Ok(())
            }
            FeatureSpec::ExpandingMean { column, min_periods } => {
                column_named(column, "column")?;
                if *min_periods < 1 {
                    return Err(FeatureError::spec(at("min_periods"), "must be >= 1, got 0"));
                }
                Ok(())
            }
            FeatureSpec::Ewm { column, spans } => {
                column_named(column, "column")?;
                if spans.is_empty() {
                    return Err(FeatureError::spec(at("spans"), "must not be empty"));
                }
                match spans.iter().position(|&s| !(s.is_finite() && s >= 1.0)) {
                    Some(i) => Err(FeatureError::spec(
                        format!("{}[{i}]", at("spans")),
                        format!("must be a finite number >= 1, got {}", spans[i]),
                    )),
                    None => Ok(()),
                }
            }
            FeatureSpec::Series {} => Ok(()),
            FeatureSpec::Calendar { parts, .. } => {
                if parts.is_empty() {
                    return Err(FeatureError::spec(at("parts"), "must not be empty"));
                }
                Ok(())
            }
        }
    }

    /// The output columns of this feature, in a fixed order (list order; rolling: windows outer, stats inner;
    /// calendar: each part, then its sin and cos when cyclical).
    fn push_outputs(&self, index: usize, out: &mut Vec<Output>) {
        let mut push = |name: String, source: Source, kernel: Kernel| {
            out.push(Output { name, feature: index, source, kernel });
        };
        let col = |c: &String| Source::Column(c.clone());
        match self {
            FeatureSpec::Lag { column, lags } => {
                for &k in lags {
                    push(format!("{column}_lag_{k}"), col(column), Kernel::Lag(k));
                }
            }
            FeatureSpec::Current { columns } => {
                for column in columns {
                    push(column.clone(), col(column), Kernel::Current);
                }
            }
            FeatureSpec::KnownInAdvance { columns } => {
                for column in columns {
                    push(format!("{column}_at_target"), col(column), Kernel::Ahead(None));
                }
            }
            FeatureSpec::Diff { column, periods } => {
                for &p in periods {
                    push(format!("{column}_diff_{p}"), col(column), Kernel::Diff(p));
                }
            }
            FeatureSpec::PctChange { column, periods } => {
                for &p in periods {
                    push(format!("{column}_pct_change_{p}"), col(column), Kernel::PctChange(p));
                }
            }
            FeatureSpec::LogReturn { column, periods } => {
                for &p in periods {
                    push(format!("{column}_log_return_{p}"), col(column), Kernel::LogReturn(p));
                }
            }
            FeatureSpec::Rolling { column, windows, stats } => {
                for &window in windows {
                    for &stat in stats {
                        let name = format!("{column}_rolling_{}_{window}", stat.as_str());
                        push(name, col(column), Kernel::Rolling { window, stat });
                    }
                }
            }
            FeatureSpec::ExpandingMean { column, min_periods } => {
                let kernel = Kernel::ExpandingMean { min_periods: *min_periods };
                push(format!("{column}_expanding_mean"), col(column), kernel);
            }
            FeatureSpec::Ewm { column, spans } => {
                for &span in spans {
                    // f64's Display prints 10.0 as "10" and 2.5 as "2.5"
                    push(format!("{column}_ewm_{span}"), col(column), Kernel::Ewm { span });
                }
            }
            // a categorical column, added beside the kernels' numeric table (see `with_series_feature`)
            FeatureSpec::Series {} => {}
            FeatureSpec::Calendar { parts, cyclical, at } => {
                let (suffix, kernel): (&str, fn(CalendarPart, Encoding) -> Kernel) = match at {
                    CalendarAt::Origin => ("", |part, encoding| Kernel::Calendar { part, encoding }),
                    CalendarAt::Target => ("_at_target", |part, encoding| Kernel::Ahead(Some((part, encoding)))),
                };
                for &part in parts {
                    let name = format!("{}{suffix}", part.as_str());
                    push(name.clone(), Source::Time, kernel(part, Encoding::Raw));
                    if *cyclical {
                        push(format!("{name}_sin"), Source::Time, kernel(part, Encoding::Sin));
                        push(format!("{name}_cos"), Source::Time, kernel(part, Encoding::Cos));
                    }
                }
            }
        }
    }
}

impl TimeSeriesRecipe {
    /// Checks the recipe without looking at data.
    ///
    /// # Errors
    /// [`FeatureError::Spec`] naming the key path at fault, e.g. `features[2].rolling.windows[0]: must be >= 1, got 0`.
    pub fn validate(&self) -> Result<(), FeatureError> {
        if self.time_column.is_empty() {
            return Err(FeatureError::spec("time_column", "must not be empty"));
        }
        if self.target.is_empty() {
            return Err(FeatureError::spec("target", "must not be empty"));
        }
        if let Some(wide) = &self.wide {
            if self.series_column.as_ref() != Some(&wide.name) {
                return Err(FeatureError::spec("wide.name", "must be the series column"));
            }
            if wide.columns.is_empty() {
                return Err(FeatureError::spec("wide.columns", "must not be empty"));
            }
            for (i, c) in wide.columns.iter().enumerate() {
                if *c == self.time_column || *c == self.target || *c == wide.name || wide.columns[..i].contains(c) {
                    return Err(FeatureError::spec(
                        format!("wide.columns[{i}]"),
                        format!("'{c}' is the time column, the target, the series column or listed twice"),
                    ));
                }
            }
        }
        if let Some(series) = &self.series_column {
            if series.is_empty() {
                return Err(FeatureError::spec("series_column", "must not be empty"));
            }
            if *series == self.time_column || *series == self.target {
                return Err(FeatureError::spec(
                    "series_column",
                    format!("'{series}' is already the time column or the target"),
                ));
            }
            if let Some(i) = self.features.iter().position(|f| f.columns().contains(&series.as_str())) {
                return Err(FeatureError::spec(
                    format!("features[{i}]"),
                    format!("reads the series column '{series}', which names series and is not a number"),
                ));
            }
        }
        if self.horizon < 1 {
            return Err(FeatureError::spec("horizon", "must be >= 1, got 0"));
        }
        if self.features.is_empty() {
            return Err(FeatureError::spec("features", "must not be empty"));
        }
        if let Some(multi) = self.multi_step
            && multi.steps < 1
        {
            return Err(FeatureError::spec("horizon", "must be >= 1, got 0"));
        }
        for (i, feature) in self.features.iter().enumerate() {
            feature.validate(i)?;
            if let FeatureSpec::KnownInAdvance { columns } = feature
                && let Some(j) = columns.iter().position(|c| *c == self.target || *c == self.time_column)
            {
                return Err(FeatureError::spec(
                    format!("features[{i}].known_in_advance.columns[{j}]"),
                    format!(
                        "'{}' is the target or the time column; known_in_advance is for covariates whose future \
                         values are known (the calendar of the target time needs no column)",
                        columns[j]
                    ),
                ));
            }
            if matches!(feature, FeatureSpec::Series {}) && self.series_column.is_none() {
                return Err(FeatureError::spec(
                    format!("features[{i}].series"),
                    "the series key is a feature of a panel only: set data.series_column (or data.wide)",
                ));
            }
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let outputs = self.outputs();
        for output in &outputs {
            if let Some(&first) = seen.get(output.name.as_str()) {
                let reason = if first == output.feature {
                    format!("produces the feature '{}' twice", output.name)
                } else {
                    format!("produces the feature '{}', which features[{first}] already produces", output.name)
                };
                return Err(FeatureError::spec(format!("features[{}]", output.feature), reason));
            }
            seen.insert(&output.name, output.feature);
        }
        Ok(())
    }

    /// The output columns (indexes into [`TimeSeriesRecipe::feature_names`]) taken at the target time
    /// (`known_in_advance`, `calendar` with `at: target`), in order; empty when the recipe has none.
    pub fn ahead_columns(&self) -> Vec<usize> {
        self.outputs()
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.kernel, Kernel::Ahead(_)))
            .map(|(j, _)| j)
            .collect()
    }

    /// How many rows past an origin its values at the target time lie: every step of a multi-step recipe, else the
    /// horizon; 0 when the recipe has no such column.
    pub fn ahead_rows(&self) -> usize {
        if self.ahead_columns().is_empty() {
            return 0;
        }
        self.multi_step.map_or(self.horizon, |m| m.steps)
    }

    /// Base features with their `known_in_advance` columns replaced by `values` (one per
    /// [`TimeSeriesRecipe::ahead_columns`], e.g. a later step's target time); the other columns as they are.
    ///
    /// # Errors
    /// `values` of another length than the frame's rows.
    pub fn at_step(&self, features: Frame, values: &[Vec<f64>]) -> Result<Frame, FeatureError> {
        let names = self.feature_names();
        let ahead: Vec<&str> = self.ahead_columns().iter().map(|&j| names[j].as_str()).collect();
        let columns = features
            .into_columns()
            .into_iter()
            .map(|(name, column)| match ahead.iter().position(|a| *a == name) {
                Some(a) => (name, kiln_domain::Column::Numeric(values[a].clone())),
                None => (name, column),
            })
            .collect();
        Frame::new(columns).map_err(|e| FeatureError::spec("features", e.to_string()))
    }

    /// Whether the series key is a feature (`series: {}`).
    pub fn series_feature(&self) -> bool {
        self.features.iter().any(|f| matches!(f, FeatureSpec::Series {}))
    }

    /// The base features with the series key added as a categorical column (named after the series column) when the
    /// recipe asks for it (`series: {}`); as they are otherwise. `keys` is each row's series.
    ///
    /// # Errors
    /// A recipe with the series feature but rows without their series.
    pub fn with_series_feature(&self, mut features: Frame, keys: Option<&[String]>) -> Result<Frame, FeatureError> {
        let (true, Some(column)) = (self.series_feature(), &self.series_column) else {
            return Ok(features);
        };
        let keys = keys.ok_or_else(|| FeatureError::spec("features", "the series feature needs each row's series"))?;
        features
            .push(column.clone(), kiln_domain::Column::Categorical(keys.iter().cloned().map(Some).collect()))
            .map_err(|e| FeatureError::spec("features", e.to_string()))?;
        Ok(features)
    }

    /// The steps a direct multi-step recipe forecasts (one model each); 0 for any other recipe.
    pub fn direct_steps(&self) -> usize {
        match self.multi_step {
            Some(MultiStep { steps, strategy: Strategy::Direct }) => steps,
            _ => 0,
        }
    }

    /// The fewest origins left out between the fitted rows and the test rows, so that no label the model learns
    /// lies in the test part's targets: `horizon - 1`, or `steps - 1` for a direct multi-step recipe (its last step
    /// is learned from rows that far ahead); 0 for a recursive one (its model learns the next step only).
    pub fn min_gap(&self) -> usize {
        match self.multi_step {
            Some(MultiStep { steps, strategy: Strategy::Direct }) => steps.saturating_sub(1),
            _ => self.horizon.saturating_sub(1),
        }
    }

    /// The raw columns the recipe reads: the time column, the target, then every column a feature references, each
    /// once, in first-mention order.
    pub fn input_columns(&self) -> Vec<String> {
        let mut out = vec![self.time_column.clone()];
        let referenced = self.features.iter().flat_map(FeatureSpec::columns);
        match &self.wide {
            // a wide file: the series' columns, then any other column a feature reads
            Some(wide) => {
                for name in wide.columns.iter().map(String::as_str).chain(referenced) {
                    if name != self.target && name != wide.name && !out.iter().any(|c| c == name) {
                        out.push(name.to_string());
                    }
                }
            }
            None => {
                out.extend(self.series_column.clone());
                for name in std::iter::once(self.target.as_str()).chain(referenced) {
                    if !out.iter().any(|c| c == name) {
                        out.push(name.to_string());
                    }
                }
            }
        }
        out
    }

    /// The frame as the kernels read it: a wide file melted into its long panel ([`WideInput`]), any other frame
    /// as it is.
    ///
    /// # Errors
    /// A series column of `wide` that is missing or not numeric.
    pub fn long_frame<'a>(&self, frame: &'a Frame) -> Result<std::borrow::Cow<'a, Frame>, FeatureError> {
        let Some(wide) = &self.wide else {
            return Ok(std::borrow::Cow::Borrowed(frame));
        };
        if let Some(missing) = wide.columns.iter().find(|c| !frame.has_column(c)) {
            return Err(FeatureError::MissingColumn {
                needed_by: "data.wide.columns".to_string(),
                column: missing.clone(),
            });
        }
        let (long, _missing_cells) = frame.melt(&wide.columns, &wide.name, &self.target).map_err(|e| match e {
            kiln_domain::DomainError::ColumnType { column, expected, actual } => {
                FeatureError::ColumnType { needed_by: "data.wide.columns".to_string(), column, expected, actual }
            }
            other => FeatureError::spec("wide", other.to_string()),
        })?;
        Ok(std::borrow::Cow::Owned(long))
    }

    /// The feature table's column names, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.outputs().into_iter().map(|o| o.name).collect()
    }

    /// The number of leading rows whose features are undefined by construction (the largest warm-up of any kernel).
    pub fn warmup(&self) -> usize {
        self.outputs().iter().map(|o| o.kernel.warmup()).max().unwrap_or(0)
    }

    /// The history the last row of a window needs: [`Lookback::All`] if an expanding mean or an EWM is used,
    /// else the longest lag, period or window (plus the current row).
    pub fn lookback(&self) -> Lookback {
        let outputs = self.outputs();
        if outputs.iter().any(|o| o.kernel.needs_all_history()) {
            Lookback::All
        } else {
            Lookback::Rows(outputs.iter().map(|o| o.kernel.warmup().saturating_add(1)).max().unwrap_or(1))
        }
    }

    /// The fewest rows [`TimeSeriesRecipe::build_last_row`] accepts: the lookback for [`Lookback::Rows`], the
    /// warm-up plus one for [`Lookback::All`] (where the caller must pass the whole history for exact values).
    pub fn min_window_rows(&self) -> usize {
        match self.lookback() {
            Lookback::Rows(n) => n,
            Lookback::All => self.warmup().saturating_add(1),
        }
    }

    /// Every output column with its kernel; the single source of names and kernels.
    pub(crate) fn outputs(&self) -> Vec<Output> {
        let mut out = Vec::new();
        for (i, feature) in self.features.iter().enumerate() {
            feature.push_outputs(i, &mut out);
        }
        out
    }
}
