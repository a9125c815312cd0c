//! The columnar [`Frame`]: named columns of one length. Numeric missing values are NaN, categorical missing values
//! are `None`, timestamps are UTC milliseconds since the Unix epoch. Readers build it; the pipeline only reads it.

use crate::DomainError;

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// numbers; NaN marks a missing value
    Numeric(Vec<f64>),
    /// labels; `None` marks a missing value
    Categorical(Vec<Option<String>>),
    /// UTC milliseconds since the Unix epoch
    Timestamp(Vec<i64>),
}

/// The type of a column, without its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    Numeric,
    Categorical,
    Timestamp,
}

impl ColumnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Numeric => "numeric",
            ColumnKind::Categorical => "categorical",
            ColumnKind::Timestamp => "timestamp",
        }
    }
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical(v) => v.len(),
            Column::Timestamp(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn kind(&self) -> ColumnKind {
        match self {
            Column::Numeric(_) => ColumnKind::Numeric,
            Column::Categorical(_) => ColumnKind::Categorical,
            Column::Timestamp(_) => ColumnKind::Timestamp,
        }
    }

    fn take(&self, order: &[usize]) -> Column {
        match self {
            Column::Numeric(v) => Column::Numeric(order.iter().map(|&i| v[i]).collect()),
            Column::Categorical(v) => Column::Categorical(order.iter().map(|&i| v[i].clone()).collect()),
            Column::Timestamp(v) => Column::Timestamp(order.iter().map(|&i| v[i]).collect()),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Column {
        match self {
            Column::Numeric(v) => Column::Numeric(v[start..end].to_vec()),
            Column::Categorical(v) => Column::Categorical(v[start..end].to_vec()),
            Column::Timestamp(v) => Column::Timestamp(v[start..end].to_vec()),
        }
    }
}

/// Named columns of equal length, in a fixed order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Frame {
    /// Builds a frame, checking that names are unique and every column has the same length.
    ///
    /// # Errors
    /// [`DomainError::DuplicateColumn`] or [`DomainError::Length`].
    pub fn new(columns: Vec<(String, Column)>) -> Result<Frame, DomainError> {
        let mut frame = Frame::default();
        for (name, column) in columns {
            frame.push(name, column)?;
        }
        Ok(frame)
    }

    /// Appends a column.
    ///
    /// # Errors
    /// [`DomainError::DuplicateColumn`] or [`DomainError::Length`].
    pub fn push(&mut self, name: String, column: Column) -> Result<(), DomainError> {
        if self.names.contains(&name) {
            return Err(DomainError::DuplicateColumn(name));
        }
        if let Some(first) = self.columns.first()
            && first.len() != column.len()
        {
            return Err(DomainError::Length { column: name, expected: first.len(), actual: column.len() });
        }
        self.names.push(name);
        self.columns.push(column);
        Ok(())
    }

    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    pub fn n_cols(&self) -> usize {
        self.columns.len()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn columns(&self) -> impl Iterator<Item = (&str, &Column)> {
        self.names.iter().map(String::as_str).zip(self.columns.iter())
    }

    /// The column called `name`.
    ///
    /// # Errors
    /// [`DomainError::MissingColumn`].
    pub fn column(&self, name: &str) -> Result<&Column, DomainError> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.columns[i])
            .ok_or_else(|| DomainError::MissingColumn(name.to_string()))
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// A numeric column's values.
    ///
    /// # Errors
    /// [`DomainError::MissingColumn`] or [`DomainError::ColumnType`].
    pub fn numeric(&self, name: &str) -> Result<&[f64], DomainError> {
        match self.column(name)? {
            Column::Numeric(v) => Ok(v),
            other => Err(type_error(name, "numeric", other)),
        }
    }

    /// A timestamp column's values.
    ///
    /// # Errors
    /// [`DomainError::MissingColumn`] or [`DomainError::ColumnType`].
    pub fn timestamps(&self, name: &str) -> Result<&[i64], DomainError> {
        match self.column(name)? {
            Column::Timestamp(v) => Ok(v),
            other => Err(type_error(name, "timestamp", other)),
        }
    }

    /// A categorical column's values.
    ///
    /// # Errors
    /// [`DomainError::MissingColumn`] or [`DomainError::ColumnType`].
    pub fn categorical(&self, name: &str) -> Result<&[Option<String>], DomainError> {
        match self.column(name)? {
            Column::Categorical(v) => Ok(v),
            other => Err(type_error(name, "categorical", other)),
        }
    }

    /// Rows reordered so that the timestamp column `time` is strictly increasing.
    ///
    /// # Errors
    /// A missing or non-timestamp column, or [`DomainError::DuplicateTime`] when two rows share a timestamp.
    pub fn sorted_by_time(&self, time: &str) -> Result<Frame, DomainError> {
        let stamps = self.timestamps(time)?;
        if stamps.windows(2).all(|w| w[0] < w[1]) {
            return Ok(self.clone());
        }
        let mut order: Vec<usize> = (0..stamps.len()).collect();
        order.sort_by_key(|&i| stamps[i]);
        if let Some(w) = order.windows(2).find(|w| stamps[w[0]] == stamps[w[1]]) {
            return Err(DomainError::DuplicateTime { column: time.to_string(), millis: stamps[w[0]] });
        }
        Ok(self.take(&order))
    }

    /// The series of every row of column `name`, as codes into the sorted distinct keys (a label as it is, a number
    /// as Rust prints it: `1`, `2.5`): `(codes, keys)`.
    ///
    /// # Errors
    /// A missing or timestamp column, or [`DomainError::MissingSeriesKey`] for the first row without a key.
    pub fn series_codes(&self, name: &str) -> Result<(Vec<u32>, Vec<String>), DomainError> {
        let missing = |row: usize| DomainError::MissingSeriesKey { column: name.to_string(), row: row + 1 };
        let texts: Vec<String>;
        let borrowed: Vec<&str> = match self.column(name)? {
            Column::Categorical(v) => {
                v.iter().enumerate().map(|(i, k)| k.as_deref().ok_or_else(|| missing(i))).collect::<Result<_, _>>()?
            }
            Column::Numeric(v) => {
                if let Some(i) = v.iter().position(|x| x.is_nan()) {
                    return Err(missing(i));
                }
                texts = v.iter().map(f64::to_string).collect();
                texts.iter().map(String::as_str).collect()
            }
            other => return Err(type_error(name, "categorical or numeric", other)),
        };
        // codes in order of first appearance, then renumbered in key order
        let mut first: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut codes: Vec<u32> = Vec::with_capacity(borrowed.len());
        // a key equal to the row before's (rows grouped by series) skips the hash
        let mut previous: Option<(&str, u32)> = None;
        for key in &borrowed {
            let code = match previous {
                Some((p, code)) if p == *key => code,
                _ => {
                    let next = u32::try_from(first.len()).unwrap_or(u32::MAX);
                    *first.entry(key).or_insert(next)
                }
            };
            previous = Some((key, code));
            codes.push(code);
        }
        let mut keys: Vec<(&str, u32)> = first.into_iter().collect();
        keys.sort_unstable();
        let mut renumber = vec![0u32; keys.len()];
        for (sorted, (_, code)) in keys.iter().enumerate() {
            renumber[*code as usize] = u32::try_from(sorted).unwrap_or(u32::MAX);
        }
        codes.iter_mut().for_each(|c| *c = renumber[*c as usize]);
        Ok((codes, keys.into_iter().map(|(k, _)| k.to_string()).collect()))
    }

    /// A long file of many series (a panel) with every series in time order: as it is when each series already is
    /// (grouped or interleaved), else its rows reordered by time, then by series key. A time may repeat across
    /// series but not within one.
    ///
    /// # Errors
    /// A missing or mistyped column, a row without a series key, or [`DomainError::DuplicateSeriesTime`] naming the
    /// first (series, time) pair that repeats.
    pub fn sorted_by_series_time(self, series: &str, time: &str) -> Result<Frame, DomainError> {
        let order = {
            let stamps = self.timestamps(time)?;
            let (codes, keys) = self.series_codes(series)?;
            // each series already in strictly increasing time order (grouped or interleaved): kept as it is
            let mut last: Vec<Option<i64>> = vec![None; keys.len()];
            let ordered = codes.iter().zip(stamps).all(|(&c, &t)| last[c as usize].replace(t).is_none_or(|p| p < t));
            if ordered {
                None
            } else {
                let mut order: Vec<usize> = (0..stamps.len()).collect();
                order.sort_by_key(|&i| (stamps[i], codes[i]));
                if let Some(w) = order.windows(2).find(|w| stamps[w[0]] == stamps[w[1]] && codes[w[0]] == codes[w[1]]) {
                    return Err(DomainError::DuplicateSeriesTime {
                        series_column: series.to_string(),
                        series: keys[codes[w[0]] as usize].clone(),
                        column: time.to_string(),
                        millis: stamps[w[0]],
                    });
                }
                Some(order)
            }
        };
        Ok(match order {
            Some(order) => self.take(&order),
            None => self,
        })
    }

    /// A wide frame (one column per series) melted into a long one: for every row and every column of `columns`
    /// whose value is not missing, a row with the other columns as they are, the column's name under `name` and its
    /// value under `value` (pandas `melt` then `dropna`). Rows come column by column, each in the frame's order.
    /// Returns the long frame and the number of missing cells left out.
    ///
    /// # Errors
    /// A column of `columns` that is missing or not numeric, or `name` or `value` already taken by a kept column.
    pub fn melt(&self, columns: &[String], name: &str, value: &str) -> Result<(Frame, usize), DomainError> {
        let mut rows: Vec<usize> = Vec::new();
        let mut keys: Vec<Option<String>> = Vec::new();
        let mut values: Vec<f64> = Vec::new();
        let mut missing = 0;
        for column in columns {
            let v = self.numeric(column)?;
            for (i, &x) in v.iter().enumerate() {
                if x.is_nan() {
                    missing += 1;
                    continue;
                }
                rows.push(i);
                keys.push(Some(column.clone()));
                values.push(x);
            }
        }
        let mut out = Frame::default();
        for (n, c) in self.names.iter().zip(&self.columns) {
            if !columns.contains(n) {
                out.push(n.clone(), c.take(&rows))?;
            }
        }
        out.push(name.to_string(), Column::Categorical(keys))?;
        out.push(value.to_string(), Column::Numeric(values))?;
        Ok((out, missing))
    }

    /// The rows at `order`, in that order.
    pub fn take(&self, order: &[usize]) -> Frame {
        Frame { names: self.names.clone(), columns: self.columns.iter().map(|c| c.take(order)).collect() }
    }

    /// Rows `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> Frame {
        Frame { names: self.names.clone(), columns: self.columns.iter().map(|c| c.slice(start, end)).collect() }
    }

    /// The named columns, in the given order.
    ///
    /// # Errors
    /// [`DomainError::MissingColumn`].
    pub fn select(&self, names: &[String]) -> Result<Frame, DomainError> {
        let mut out = Frame::default();
        for name in names {
            out.push(name.clone(), self.column(name)?.clone())?;
        }
        Ok(out)
    }
}

impl Frame {
    /// The named columns, in order, moved out of the frame (no copy).
    pub fn into_columns(self) -> Vec<(String, Column)> {
        self.names.into_iter().zip(self.columns).collect()
    }
}

fn type_error(name: &str, expected: &'static str, actual: &Column) -> DomainError {
    DomainError::ColumnType { column: name.to_string(), expected, actual: actual.kind().as_str() }
}
