//! Building features from raw rows: [`TimeSeriesRecipe::build_table`] for training and batch scoring (every origin
//! time), [`TimeSeriesRecipe::build_last_row`] for serving (the last row of a window). Both resolve columns the same
//! way and run the same kernels; nothing here does arithmetic on feature values itself.

use kiln_domain::{Column, Frame, Matrix};

use crate::kernels::{Input, KernelState};
use crate::spec::{Output, Source};
use crate::{FeatureError, Lookback, TimeSeriesRecipe};

/// The feature table of a whole frame: one row per origin time `t` past the warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    /// one row per kept origin time, columns = [`TimeSeriesRecipe::feature_names`]
    pub x: Matrix,
    /// origin time `t` of each row, UTC milliseconds
    pub times: Vec<i64>,
    /// target value at `t`
    pub current: Vec<f64>,
    /// target value at `t + horizon`; NaN when that is past the end of the data
    pub future: Vec<f64>,
    /// `target_transform.apply(current, future)`; NaN where `future` is NaN
    pub label: Vec<f64>,
    /// a direct multi-step recipe: the target at `t + k` for k = 2..=steps (`[k - 2][row]`); empty otherwise
    pub step_futures: Vec<Vec<f64>>,
    /// a direct multi-step recipe with `known_in_advance` columns: their values at `t + k` for k = 2..=steps
    /// (`[k - 2][a][row]`, `a` in the order of [`TimeSeriesRecipe::ahead_columns`]); the table's own columns hold
    /// step 1's (`t + horizon`); empty otherwise
    pub step_ahead: Vec<Vec<Vec<f64>>>,
    /// rows dropped at the start (the recipe's warm-up; a panel: summed over the series)
    pub warmup_dropped: usize,
    /// a panel: the series of each row, and the rows' order (by time, then series)
    pub panel: Option<PanelRows>,
}

impl FeatureTable {
    /// Whether each row has at least `n` rows after it in its series (the rows in time order, a panel's by time then
    /// series, as [`TimeSeriesRecipe::build_table`] gives them): the rows whose target `n` steps ahead lies inside
    /// the data.
    pub fn has_rows_after(&self, n: usize) -> Vec<bool> {
        let rows = self.times.len();
        match &self.panel {
            None => (0..rows).map(|i| i + n < rows).collect(),
            Some(panel) => {
                let mut seen_from_end = vec![0usize; panel.keys.len()];
                let mut out = vec![true; rows];
                for i in (0..rows).rev() {
                    let s = panel.series[i] as usize;
                    if seen_from_end[s] < n {
                        out[i] = false;
                        seen_from_end[s] += 1;
                    }
                }
                out
            }
        }
    }

    /// The table restricted to `rows`, in that order.
    #[must_use]
    pub fn take_rows(&self, rows: &[usize]) -> FeatureTable {
        let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        FeatureTable {
            x: self.x.take_rows(rows),
            times: rows.iter().map(|&i| self.times[i]).collect(),
            current: pick(&self.current),
            future: pick(&self.future),
            label: pick(&self.label),
            step_futures: self.step_futures.iter().map(|f| pick(f)).collect(),
            step_ahead: self.step_ahead.iter().map(|step| step.iter().map(|v| pick(v)).collect()).collect(),
            warmup_dropped: self.warmup_dropped,
            panel: self.panel.as_ref().map(|p| PanelRows {
                keys: p.keys.clone(),
                series: rows.iter().map(|&i| p.series[i]).collect(),
                frame_rows: rows.iter().map(|&i| p.frame_rows[i]).collect(),
                short: p.short.clone(),
            }),
        }
    }
}

/// What a panel's feature table says about its series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PanelRows {
    /// the series key of every series, sorted
    pub keys: Vec<String>,
    /// each row's series, an index into `keys`
    pub series: Vec<u32>,
    /// each row's place in the frame given to `build_table` (0-based)
    pub frame_rows: Vec<usize>,
    /// series with no row past the warm-up: their key and row count
    pub short: Vec<(String, usize)>,
}

/// The features of the last row of a window, for serving.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow {
    /// origin time, UTC milliseconds
    pub time: i64,
    /// target value at the origin time (to invert the target transform)
    pub current: f64,
    /// one value per [`TimeSeriesRecipe::feature_names`]
    pub values: Vec<f64>,
    /// a recipe with `known_in_advance` columns: their values at each of the [`TimeSeriesRecipe::ahead_rows`] rows
    /// after the origin (`[k - 1][a]`, `a` in the order of [`TimeSeriesRecipe::ahead_columns`]); empty otherwise
    pub ahead: Vec<f64>,
    /// a direct multi-step recipe with `known_in_advance` columns, from [`crate::FittedPipeline::transform_last`]:
    /// the model inputs of steps 2, 3, ... (those columns at each step's target time); empty otherwise
    pub step_values: Vec<Vec<f64>>,
}

/// The recipe's columns, checked and borrowed from a frame.
pub(crate) struct Resolved<'a> {
    pub(crate) outputs: Vec<Output>,
    pub(crate) times: &'a [i64],
    pub(crate) target: &'a [f64],
    pub(crate) inputs: Vec<Input<'a>>,
}

impl TimeSeriesRecipe {
    /// The feature table of a whole frame (sorted by time), for training and batch scoring. Rows before the warm-up
    /// are dropped; the last `horizon` rows are kept with a NaN label (they can still be scored).
    ///
    /// # Errors
    /// An invalid recipe, a missing or mistyped column, a time column that is not strictly increasing, or no row
    /// past the warm-up.
    pub fn build_table(&self, frame: &Frame) -> Result<FeatureTable, FeatureError> {
        if let Some(series) = &self.series_column {
            let long = self.long_frame(frame)?;
            let plan = self.panel_plan(&long, series)?;
            let mut carry = plan.carry();
            return Ok(plan.fill(0, plan.n_out, &mut carry));
        }
        let resolved = self.resolve(frame)?;
        let n = resolved.times.len();
        let warmup = self.warmup();
        if n <= warmup {
            return Err(FeatureError::NotEnoughRows {
                what: "the feature table".to_string(),
                needed: warmup.saturating_add(1),
                given: n,
            });
        }
        let mut columns: Vec<Vec<f64>> =
            resolved.outputs.iter().zip(&resolved.inputs).map(|(o, &input)| o.kernel.series(input)).collect();
        let ahead = self.ahead_columns();
        let at = |j: usize, t: usize| resolved.outputs[j].kernel.ahead_at(resolved.inputs[j], t);
        for &j in &ahead {
            columns[j] = (0..n).map(|t| at(j, t + self.horizon)).collect();
        }
        let step_ahead = (2..=self.direct_steps())
            .map(|k| ahead.iter().map(|&j| (warmup..n).map(|t| at(j, t + k)).collect()).collect())
            .collect();
        let kept = n - warmup;
        let mut data = Vec::with_capacity(kept * columns.len());
        for t in warmup..n {
            data.extend(columns.iter().map(|c| c[t]));
        }
        let names = resolved.outputs.into_iter().map(|o| o.name).collect();
        let current = resolved.target[warmup..].to_vec();
        let future: Vec<f64> = (warmup..n)
            .map(|t| match t.checked_add(self.horizon) {
                Some(i) if i < n => resolved.target[i],
                _ => f64::NAN,
            })
            .collect();
        let label = current
            .iter()
            .zip(&future)
            .map(|(&c, &f)| if f.is_nan() { f64::NAN } else { self.target_transform.apply(c, f) })
            .collect();
        let step_futures = (2..=self.direct_steps())
            .map(|k| (warmup..n).map(|t| resolved.target.get(t + k).copied().unwrap_or(f64::NAN)).collect())
            .collect();
        Ok(FeatureTable {
            x: Matrix { names, data, n_rows: kept },
            times: resolved.times[warmup..].to_vec(),
            current,
            future,
            label,
            step_futures,
            step_ahead,
            warmup_dropped: warmup,
            panel: None,
        })
    }

    /// [`TimeSeriesRecipe::build_table`] handed out `rows` table rows at a time, in the table's order, to `each`:
    /// the same rows and values as the whole table, without ever holding it (a panel's table is built slice by
    /// slice; a single series' comes whole, in one call). Every slice carries the whole table's `warmup_dropped`
    /// and, for a panel, all the keys and short series.
    ///
    /// # Errors
    /// What [`TimeSeriesRecipe::build_table`] reports, before the first call of `each`, or the first error `each`
    /// returns (no later slice is built).
    pub fn for_each_table_chunk<E: From<FeatureError>>(
        &self,
        frame: &Frame,
        rows: usize,
        mut each: impl FnMut(FeatureTable) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(series) = &self.series_column else {
            return each(self.build_table(frame)?);
        };
        let long = self.long_frame(frame)?;
        let plan = self.panel_plan(&long, series)?;
        let mut carry = plan.carry();
        let mut start = 0;
        while start < plan.n_out {
            let end = start.saturating_add(rows.max(1)).min(plan.n_out);
            each(plan.fill(start, end, &mut carry))?;
            start = end;
        }
        Ok(())
    }

    /// The kept rows of a panel in the table's order: the rows of each series (in any order in the frame, sorted by
    /// time here) past the warm-up, then every kept row ordered by time, then series. A series with no row past the
    /// warm-up is left out and listed in [`PanelRows::short`].
    fn panel_plan<'a>(&'a self, frame: &'a Frame, series_column: &str) -> Result<PanelPlan<'a>, FeatureError> {
        let resolved = self.resolve_unsorted(frame)?;
        let (codes, keys) = series_codes(frame, series_column)?;
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
        for (i, &code) in codes.iter().enumerate() {
            groups[code as usize].push(i);
        }
        let warmup = self.warmup();
        let times = resolved.times;
        let mut short = Vec::new();
        let mut warmup_dropped = 0;
        let mut kept: Vec<(u32, Vec<usize>)> = Vec::with_capacity(groups.len());
        for (code, mut rows) in groups.into_iter().enumerate() {
            let key = &keys[code];
            if !rows.windows(2).all(|w| times[w[0]] < times[w[1]]) {
                rows.sort_by_key(|&i| times[i]);
            }
            if let Some(w) = rows.windows(2).find(|w| times[w[0]] == times[w[1]]) {
                return Err(FeatureError::DuplicateSeriesTime {
                    series_column: series_column.to_string(),
                    series: key.clone(),
                    column: self.time_column.clone(),
                    time: times[w[0]],
                });
            }
            if rows.len() <= warmup {
                short.push((key.clone(), rows.len()));
                warmup_dropped += rows.len();
                continue;
            }
            warmup_dropped += warmup;
            kept.push((u32::try_from(code).unwrap_or(u32::MAX), rows));
        }
        if kept.is_empty() {
            return Err(FeatureError::NotEnoughRows {
                what: format!("the feature table (every series of '{series_column}' is shorter)"),
                needed: warmup.saturating_add(1),
                given: short.iter().map(|(_, n)| *n).max().unwrap_or(0),
            });
        }
        // the kept rows in their final order: by time, then series. Each series' rows come in time order, so a
        // stable sort merges these runs
        let mut order: Vec<(i64, u32, u32)> = Vec::new();
        for (s, (code, rows)) in kept.iter().enumerate() {
            let s = u32::try_from(s).unwrap_or(u32::MAX);
            order.extend(rows[warmup..].iter().map(|&r| (times[r], *code, s)));
        }
        order.sort();
        let n_out = order.len();
        // where the k-th kept row of series s lands: series rows come in time order, so the k-th time of s in the
        // sorted order is its k-th kept row
        let mut positions: Vec<Vec<usize>> = kept.iter().map(|(_, r)| Vec::with_capacity(r.len() - warmup)).collect();
        for (at, &(_, _, s)) in order.iter().enumerate() {
            positions[s as usize].push(at);
        }
        drop(order);
        let consecutive = kept.iter().map(|(_, rows)| rows.windows(2).all(|w| w[1] == w[0] + 1)).collect();
        Ok(PanelPlan {
            recipe: self,
            resolved,
            keys,
            kept,
            consecutive,
            positions,
            short,
            warmup,
            warmup_dropped,
            n_out,
            ahead: self.ahead_columns(),
        })
    }

    /// The features of the last row of `window` (raw rows sorted by time), for serving. With [`Lookback::Rows`]
    /// any window of at least that many rows gives exactly the batch value; with [`Lookback::All`] the window must
    /// be the whole history from the first training row on.
    ///
    /// # Errors
    /// An invalid recipe, a missing or mistyped column, a time column that is not strictly increasing, or fewer rows
    /// than [`TimeSeriesRecipe::min_window_rows`].
    pub fn build_last_row(&self, window: &Frame) -> Result<FeatureRow, FeatureError> {
        if let Some(series) = &self.series_column
            && window.has_column(series)
        {
            let (codes, keys) = series_codes(window, series)?;
            if keys.len() > 1 {
                return Err(FeatureError::MixedSeries {
                    column: series.clone(),
                    first: keys[codes[0] as usize].clone(),
                    other: keys[codes.iter().map(|&c| c as usize).find(|&c| c != codes[0] as usize).unwrap_or(0)]
                        .clone(),
                });
            }
        }
        let resolved = self.resolve(window)?;
        let (n, ahead) = self.window_origin(&resolved)?;
        let needed = self.min_window_rows();
        if n < needed {
            let what = match self.lookback() {
                Lookback::Rows(_) => "the last feature row".to_string(),
                Lookback::All => "the last feature row (expanding and ewm features need the whole history)".to_string(),
            };
            return Err(FeatureError::NotEnoughRows { what, needed, given: n });
        }
        let mut values: Vec<f64> =
            resolved.outputs.iter().zip(&resolved.inputs).map(|(o, &input)| o.kernel.last(input.head(n))).collect();
        let columns = self.ahead_columns();
        for (a, &j) in columns.iter().enumerate() {
            values[j] = ahead[(self.horizon - 1) * columns.len() + a];
        }
        Ok(FeatureRow {
            time: resolved.times[n - 1],
            current: resolved.target[n - 1],
            values,
            ahead,
            step_values: Vec::new(),
        })
    }

    /// A window's origin, as the number of rows up to and including it, and the `known_in_advance` values of the
    /// rows after it (see [`FeatureRow::ahead`]): the last row for a recipe without such columns; else the last row
    /// with a target, followed by at least [`TimeSeriesRecipe::ahead_rows`] future rows.
    fn window_origin(&self, resolved: &Resolved<'_>) -> Result<(usize, Vec<f64>), FeatureError> {
        let n = resolved.times.len();
        let columns = self.ahead_columns();
        if columns.is_empty() {
            return Ok((n, Vec::new()));
        }
        let mut names: Vec<String> = Vec::new();
        for &j in &columns {
            let name = match &resolved.outputs[j].source {
                Source::Column(c) => format!("'{c}'"),
                Source::Time => format!("'{}'", self.time_column),
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        let Some(origin) = resolved.target.iter().rposition(|v| !v.is_nan()) else {
            return Err(FeatureError::NotEnoughRows {
                what: format!("a window (rows with target '{}', then future rows without it)", self.target),
                needed: self.min_window_rows(),
                given: 0,
            });
        };
        let rows = self.ahead_rows();
        let after = n - origin - 1;
        if after < rows {
            return Err(FeatureError::NotEnoughRows {
                what: format!(
                    "the forecast from the window's last row with target '{}' (time {}): the rows after it, with the \
                     target empty and the column(s) {} filled for each target time,",
                    self.target,
                    kiln_domain::iso_from_millis(resolved.times[origin]),
                    names.join(", ")
                ),
                needed: rows,
                given: after,
            });
        }
        let mut ahead = Vec::with_capacity(rows * columns.len());
        for k in 1..=rows {
            for &j in &columns {
                ahead.push(resolved.outputs[j].kernel.ahead_at(resolved.inputs[j], origin + k));
            }
        }
        Ok((origin + 1, ahead))
    }

    /// Validates the recipe and borrows its columns from `frame`, checking types and time order.
    pub(crate) fn resolve<'a>(&self, frame: &'a Frame) -> Result<Resolved<'a>, FeatureError> {
        let resolved = self.resolve_unsorted(frame)?;
        let times = resolved.times;
        if let Some(row) = (1..times.len()).find(|&i| times[i] <= times[i - 1]) {
            return Err(FeatureError::NotSorted {
                column: self.time_column.clone(),
                prev_row: Some(row - 1),
                row,
                prev: times[row - 1],
                next: times[row],
            });
        }
        Ok(resolved)
    }

    /// [`TimeSeriesRecipe::resolve`] without the time-order check (a panel checks it series by series).
    pub(crate) fn resolve_unsorted<'a>(&self, frame: &'a Frame) -> Result<Resolved<'a>, FeatureError> {
        self.validate()?;
        let times = match column(frame, &self.time_column, "time_column")? {
            Column::Timestamp(v) => v.as_slice(),
            other => return Err(type_error("time_column", &self.time_column, "timestamp", other)),
        };
        let target = numeric(frame, &self.target, "target")?;
        let outputs = self.outputs();
        let mut inputs = Vec::with_capacity(outputs.len());
        for output in &outputs {
            inputs.push(match &output.source {
                Source::Time => Input::Time(times),
                Source::Column(name) => {
                    let needed_by =
                        format!("feature '{}' (features[{}])", self.features[output.feature].kind(), output.feature);
                    Input::Numeric(numeric(frame, name, &needed_by)?)
                }
            });
        }
        Ok(Resolved { outputs, times, target, inputs })
    }
}

/// A panel's kept rows in the feature table's order, before any feature is computed
/// ([`TimeSeriesRecipe::panel_plan`]); [`PanelPlan::fill`] computes a slice of the table's rows.
struct PanelPlan<'a> {
    recipe: &'a TimeSeriesRecipe,
    resolved: Resolved<'a>,
    /// every series key, sorted
    keys: Vec<String>,
    /// per kept series: its code (an index into `keys`) and its frame rows in time order
    kept: Vec<(u32, Vec<usize>)>,
    /// per kept series: whether its frame rows follow one another (its inputs are then borrowed, not gathered)
    consecutive: Vec<bool>,
    /// per kept series: the table row of its k-th row past the warm-up (increasing)
    positions: Vec<Vec<usize>>,
    short: Vec<(String, usize)>,
    warmup: usize,
    warmup_dropped: usize,
    n_out: usize,
    /// the outputs read at the target time ([`TimeSeriesRecipe::ahead_columns`])
    ahead: Vec<usize>,
}

/// Per kept series and output: a history-dependent kernel's running state and the series rows it has read.
type Carry = Vec<Vec<(KernelState, usize)>>;

impl PanelPlan<'_> {
    /// Fresh running states, before the first slice.
    fn carry(&self) -> Carry {
        let states: Vec<(KernelState, usize)> = self.resolved.outputs.iter().map(|o| (o.kernel.state(), 0)).collect();
        vec![states; self.kept.len()]
    }

    /// Table rows `a..b` (slices must come in order, `carry` handed from one to the next). Each series computes
    /// only its origins in the slice: windowed kernels from the `warmup` rows before them, history-dependent ones
    /// continuing their state, so every value is the one of the whole series, bit for bit.
    fn fill(&self, a: usize, b: usize, carry: &mut Carry) -> FeatureTable {
        let recipe = self.recipe;
        let (warmup, horizon) = (self.warmup, recipe.horizon);
        let resolved = &self.resolved;
        let times = resolved.times;
        let n_cols = resolved.outputs.len();
        let n_rows = b - a;
        let mut data = vec![f64::NAN; n_rows * n_cols];
        let mut out_times = vec![0i64; n_rows];
        let mut current = vec![f64::NAN; n_rows];
        let mut future = vec![f64::NAN; n_rows];
        let mut series = vec![0u32; n_rows];
        let mut frame_rows = vec![0usize; n_rows];
        let direct_steps = recipe.direct_steps();
        let mut step_futures = vec![vec![f64::NAN; n_rows]; direct_steps.saturating_sub(1)];
        let ahead = &self.ahead;
        let mut step_ahead =
            vec![vec![vec![f64::NAN; n_rows]; ahead.len()]; if ahead.is_empty() { 0 } else { step_futures.len() }];
        // the furthest an ahead column looks past an origin
        let reach = horizon.max(direct_steps);
        let mut gathered: Vec<(*const f64, Vec<f64>)> = Vec::new();
        let mut values: Vec<Vec<f64>> = vec![Vec::new(); n_cols];
        for (s, ((code, rows), positions)) in self.kept.iter().zip(&self.positions).enumerate() {
            let k0 = positions.partition_point(|&p| p < a);
            let k1 = positions.partition_point(|&p| p < b);
            if k0 == k1 {
                continue;
            }
            let n = rows.len();
            // the origins in this slice are the series rows first..end; windowed kernels read `warmup` rows back,
            // history-dependent ones from where they stopped, ahead columns up to `reach` rows on
            let (first, end) = (warmup + k0, warmup + k1);
            let from = resolved
                .outputs
                .iter()
                .zip(&carry[s])
                .filter(|(o, _)| o.kernel.needs_all_history())
                .map(|(_, (_, read))| *read)
                .fold(k0, usize::min);
            let to = end.saturating_add(reach).min(n);
            let series_rows = &rows[from..to];
            let series_times: Vec<i64> = series_rows.iter().map(|&r| times[r]).collect();
            gathered.clear();
            for (j, (output, input)) in resolved.outputs.iter().zip(&resolved.inputs).enumerate() {
                let series_input = match input {
                    Input::Time(_) => Input::Time(&series_times),
                    Input::Numeric(x) if self.consecutive[s] => {
                        Input::Numeric(&x[series_rows[0]..series_rows[0] + series_rows.len()])
                    }
                    Input::Numeric(x) => {
                        // each input column gathered once per series, however many outputs read it
                        let at = match gathered.iter().position(|(p, _)| *p == x.as_ptr()) {
                            Some(at) => at,
                            None => {
                                gathered.push((x.as_ptr(), series_rows.iter().map(|&r| x[r]).collect()));
                                gathered.len() - 1
                            }
                        };
                        Input::Numeric(&gathered[at].1)
                    }
                };
                let kernel = output.kernel;
                let column = &mut values[j];
                column.clear();
                match ahead.iter().position(|&c| c == j) {
                    // a column at the target time: its value there, and at every later step's
                    Some(c) => {
                        for (step, values) in step_ahead.iter_mut().enumerate() {
                            for k in k0..k1 {
                                values[c][positions[k] - a] =
                                    kernel.ahead_at(series_input, warmup + k + step + 2 - from);
                            }
                        }
                        column.extend((first..end).map(|t| kernel.ahead_at(series_input, t + horizon - from)));
                    }
                    None if kernel.needs_all_history() => {
                        let (state, read) = &mut carry[s][j];
                        let out = kernel.series_from(series_input.head(end - from), *read - from, state);
                        *read = end;
                        column.extend_from_slice(&out[out.len() - (end - first)..]);
                    }
                    None => {
                        let mut fresh = kernel.state();
                        column.extend(kernel.series_from(series_input.head(end - from), first - from, &mut fresh));
                    }
                }
            }
            for k in k0..k1 {
                let (at, t) = (positions[k] - a, warmup + k);
                for (cell, column) in data[at * n_cols..(at + 1) * n_cols].iter_mut().zip(&values) {
                    *cell = column[k - k0];
                }
                out_times[at] = times[rows[t]];
                current[at] = resolved.target[rows[t]];
                future[at] = t.checked_add(horizon).filter(|&i| i < n).map_or(f64::NAN, |i| resolved.target[rows[i]]);
                series[at] = *code;
                frame_rows[at] = rows[t];
                for (j, f) in step_futures.iter_mut().enumerate() {
                    f[at] = rows.get(t + j + 2).map_or(f64::NAN, |&r| resolved.target[r]);
                }
            }
        }
        let label = current
            .iter()
            .zip(&future)
            .map(|(&c, &f)| if f.is_nan() { f64::NAN } else { recipe.target_transform.apply(c, f) })
            .collect();
        let names = resolved.outputs.iter().map(|o| o.name.clone()).collect();
        FeatureTable {
            x: Matrix { names, data, n_rows },
            times: out_times,
            current,
            future,
            label,
            step_futures,
            step_ahead,
            warmup_dropped: self.warmup_dropped,
            panel: Some(PanelRows { keys: self.keys.clone(), series, frame_rows, short: self.short.clone() }),
        }
    }
}

/// The series of every row of a panel's series column, as codes into the sorted keys: `(codes, keys)`.
pub(crate) fn series_codes(frame: &Frame, name: &str) -> Result<(Vec<u32>, Vec<String>), FeatureError> {
    let column = column(frame, name, "series_column")?;
    if let Column::Timestamp(_) = column {
        return Err(type_error("series_column", name, "categorical or numeric", column));
    }
    frame.series_codes(name).map_err(|e| match e {
        kiln_domain::DomainError::MissingSeriesKey { column, row } => {
            FeatureError::MissingSeriesKey { column, row: row - 1 }
        }
        other => FeatureError::spec("series_column", other.to_string()),
    })
}

fn column<'a>(frame: &'a Frame, name: &str, needed_by: &str) -> Result<&'a Column, FeatureError> {
    // `Frame::column` fails only when the column is absent
    frame
        .column(name)
        .map_err(|_| FeatureError::MissingColumn { needed_by: needed_by.to_string(), column: name.to_string() })
}

fn numeric<'a>(frame: &'a Frame, name: &str, needed_by: &str) -> Result<&'a [f64], FeatureError> {
    match column(frame, name, needed_by)? {
        Column::Numeric(v) => Ok(v),
        other => Err(type_error(needed_by, name, "numeric", other)),
    }
}

fn type_error(needed_by: &str, name: &str, expected: &'static str, actual: &Column) -> FeatureError {
    FeatureError::ColumnType {
        needed_by: needed_by.to_string(),
        column: name.to_string(),
        expected,
        actual: actual.kind().as_str(),
    }
}
