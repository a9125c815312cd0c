//! The feature table of a long series, chunk by chunk, in bounded memory ([`FeatureStream`]): each chunk's rows get
//! exactly the values [`TimeSeriesRecipe::build_table`] gives them in one call on the whole series.
//!
//! Key decision: what a chunk needs from the rows before it is carried, not re-read. Windowed kernels (lags,
//! differences, returns, rolling statistics) read the last rows of the previous chunks, kept as raw values (the
//! longest lag, period or window); the history-dependent kernels (expanding mean, EWM) carry their running
//! recursion. Both call the same kernel code as the whole-table path, so the values agree bit for bit.
//!
//! Not here: labels and future targets (a chunk's last rows would need the next chunk), I/O, sorting.

use std::collections::HashMap;

use kiln_domain::{Column, Frame};

use crate::kernels::{Input, KernelState};
use crate::spec::Source;
use crate::{FeatureError, TimeSeriesRecipe};

/// The features of one chunk: one row per origin time of the chunk past the series' warm-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureChunk {
    /// numeric columns = [`TimeSeriesRecipe::feature_names`] (column by column, as the preprocessing takes them;
    /// no row-major copy is made here)
    pub features: Frame,
    /// origin time of each row, UTC milliseconds
    pub times: Vec<i64>,
    /// target value at each origin time
    pub current: Vec<f64>,
    /// rows of this chunk dropped because they fall in the series' warm-up
    pub warmup_dropped: usize,
    /// a panel: the series of each row
    pub series: Option<Vec<String>>,
}

/// Builds the feature table of a time-ordered series pushed chunk by chunk (see the module documentation); for a
/// panel, one such stream per series, each series' rows in time order (rows of different series may interleave).
#[derive(Debug, Clone)]
pub struct FeatureStream {
    /// the stream of a single series, and the state every series of a panel starts from
    first: SeriesStream,
    /// a panel: the series column and the stream of every series seen so far
    panel: Option<(String, HashMap<String, SeriesStream>)>,
    rows: usize,
}

/// The stream of one series.
#[derive(Debug, Clone)]
struct SeriesStream {
    recipe: TimeSeriesRecipe,
    warmup: usize,
    /// how many raw rows before a chunk the windowed kernels read
    history: usize,
    /// one per output column, in order
    states: Vec<KernelState>,
    /// the last `history` raw values of every numeric input column
    tail: Vec<(String, Vec<f64>)>,
    last_time: Option<i64>,
    rows: usize,
}

impl TimeSeriesRecipe {
    /// A [`FeatureStream`] at the start of a series.
    ///
    /// # Errors
    /// An invalid recipe ([`FeatureError::Spec`]).
    pub fn stream(&self) -> Result<FeatureStream, FeatureError> {
        self.validate()?;
        let outputs = self.outputs();
        let history = outputs
            .iter()
            .filter(|o| matches!(o.source, Source::Column(_)) && !o.kernel.needs_all_history())
            .map(|o| o.kernel.warmup())
            .max()
            .unwrap_or(0);
        let first = SeriesStream {
            recipe: self.clone(),
            warmup: self.warmup(),
            history,
            states: outputs.iter().map(|o| o.kernel.state()).collect(),
            tail: Vec::new(),
            last_time: None,
            rows: 0,
        };
        let panel = self.series_column.clone().map(|c| (c, HashMap::new()));
        Ok(FeatureStream { first, panel, rows: 0 })
    }
}

impl FeatureStream {
    /// Raw rows pushed so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// How many raw rows before a chunk the windowed kernels read (the longest lag, period or window minus one);
    /// the stream keeps that many rows of each input column between chunks (of each series, for a panel).
    pub fn history(&self) -> usize {
        self.first.history
    }

    /// The feature rows of the next chunk (raw rows sorted by time, continuing the rows pushed before; for a panel,
    /// each series in time order). A chunk may be empty, and may give no row while a series is still in its
    /// warm-up. A panel's rows come out in the chunk's order.
    ///
    /// # Errors
    /// A missing or mistyped column, or a time that does not come after the one before it
    /// ([`FeatureError::NotSorted`], with row numbers counted from the start of the input). After an error the
    /// stream must not be used further.
    pub fn push(&mut self, chunk: &Frame) -> Result<FeatureChunk, FeatureError> {
        let offset = self.rows;
        let out = match &mut self.panel {
            None => self.first.push(chunk),
            Some((column, streams)) => {
                let long = self.first.recipe.long_frame(chunk)?;
                push_panel(&self.first, column, streams, &long, offset)
            }
        };
        self.rows += chunk.n_rows();
        out
    }
}

/// [`FeatureStream::push`] for a panel: each series' rows go through that series' stream, and the rows come back
/// in the chunk's order.
fn push_panel(
    template: &SeriesStream,
    column: &str,
    streams: &mut HashMap<String, SeriesStream>,
    chunk: &Frame,
    offset: usize,
) -> Result<FeatureChunk, FeatureError> {
    let (codes, keys) = crate::table::series_codes(chunk, column).map_err(|e| match e {
        FeatureError::MissingSeriesKey { column, row } => FeatureError::MissingSeriesKey { column, row: row + offset },
        other => other,
    })?;
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); keys.len()];
    for (i, &c) in codes.iter().enumerate() {
        rows_of[c as usize].push(i);
    }
    let groups: Vec<(&str, Vec<usize>)> = keys.iter().map(String::as_str).zip(rows_of).collect();
    let names = template.recipe.feature_names();
    let mut parts: Vec<(FeatureChunk, Vec<usize>)> = Vec::with_capacity(groups.len());
    let mut warmup_dropped = 0;
    for (key, rows) in &groups {
        let stream = streams.entry((*key).to_string()).or_insert_with(|| template.clone());
        let part = stream.push(&chunk.take(rows)).map_err(|e| match e {
            // the series' own row numbers, told as rows of the whole input
            FeatureError::NotSorted { column, row, prev, next, .. } => {
                // the push that failed did not count its rows
                let local = row - stream.rows;
                FeatureError::NotSorted { column, prev_row: None, row: offset + rows[local], prev, next }
            }
            other => other,
        })?;
        warmup_dropped += part.warmup_dropped;
        let kept = rows[part.warmup_dropped..].to_vec();
        parts.push((part, kept));
    }
    // every kept row in the chunk's order
    let mut order: Vec<(usize, usize, usize)> = Vec::new();
    for (g, (_, kept)) in parts.iter().enumerate() {
        order.extend(kept.iter().enumerate().map(|(k, &r)| (r, g, k)));
    }
    order.sort_unstable();
    let mut columns = Vec::with_capacity(names.len());
    for name in &names {
        let sources: Vec<&[f64]> = parts.iter().map(|(p, _)| p.features.numeric(name).map_or(&[][..], |v| v)).collect();
        let values: Vec<f64> = order.iter().map(|&(_, g, k)| sources[g][k]).collect();
        columns.push((name.clone(), Column::Numeric(values)));
    }
    let features =
        Frame::new(columns).map_err(|e| FeatureError::Spec { path: "features".to_string(), reason: e.to_string() })?;
    Ok(FeatureChunk {
        features,
        times: order.iter().map(|&(_, g, k)| parts[g].0.times[k]).collect(),
        current: order.iter().map(|&(_, g, k)| parts[g].0.current[k]).collect(),
        warmup_dropped,
        series: Some(order.iter().map(|&(r, _, _)| keys[codes[r] as usize].clone()).collect()),
    })
}

impl SeriesStream {
    fn push(&mut self, chunk: &Frame) -> Result<FeatureChunk, FeatureError> {
        let offset = self.rows;
        let resolved = self.recipe.resolve(chunk).map_err(|e| match e {
            FeatureError::NotSorted { column, prev_row, row, prev, next } => FeatureError::NotSorted {
                column,
                prev_row: prev_row.map(|p| p + offset),
                row: row + offset,
                prev,
                next,
            },
            other => other,
        })?;
        let n = resolved.times.len();
        if let (Some(prev), Some(&next)) = (self.last_time, resolved.times.first())
            && next <= prev
        {
            return Err(FeatureError::NotSorted {
                column: self.recipe.time_column.clone(),
                prev_row: Some(offset - 1),
                row: offset,
                prev,
                next,
            });
        }

        // each numeric input once: the carried rows, then the chunk's
        let mut combined: Vec<(String, Vec<f64>)> = Vec::new();
        for (output, input) in resolved.outputs.iter().zip(&resolved.inputs) {
            if let (Source::Column(name), Input::Numeric(x)) = (&output.source, input)
                && !combined.iter().any(|(c, _)| c == name)
            {
                let carried = self.tail.iter().find(|(c, _)| c == name).map_or(&[][..], |(_, v)| v.as_slice());
                let mut values = Vec::with_capacity(carried.len() + x.len());
                values.extend_from_slice(carried);
                values.extend_from_slice(x);
                combined.push((name.clone(), values));
            }
        }
        let mut columns = Vec::with_capacity(resolved.outputs.len());
        for ((output, input), state) in resolved.outputs.iter().zip(&resolved.inputs).zip(&mut self.states) {
            let values = match (&output.source, input) {
                (Source::Column(name), Input::Numeric(_)) => {
                    let all = combined.iter().find(|(c, _)| c == name).map_or(&[][..], |(_, v)| v.as_slice());
                    let start = all.len() - n;
                    output.kernel.series_from(Input::Numeric(all), start, state)
                }
                (_, &input) => output.kernel.series_from(input, 0, state),
            };
            columns.push(values);
        }

        let skip = self.warmup.saturating_sub(offset).min(n);
        let named = resolved.outputs.iter().zip(columns).map(|(o, mut values)| {
            values.drain(..skip);
            (o.name.clone(), Column::Numeric(values))
        });
        let features = Frame::new(named.collect())
            .map_err(|e| FeatureError::Spec { path: "features".to_string(), reason: e.to_string() })?;
        let out = FeatureChunk {
            features,
            times: resolved.times[skip..].to_vec(),
            current: resolved.target[skip..].to_vec(),
            warmup_dropped: skip,
            series: None,
        };

        for (name, values) in combined {
            let keep = values[values.len() - self.history.min(values.len())..].to_vec();
            match self.tail.iter_mut().find(|(c, _)| *c == name) {
                Some((_, tail)) => *tail = keep,
                None => self.tail.push((name, keep)),
            }
        }
        if let Some(&last) = resolved.times.last() {
            self.last_time = Some(last);
        }
        self.rows += n;
        Ok(out)
    }
}
