//! Frames from columns already in memory (a pandas frame handed over by kiln's Python package), read with the same
//! rules as a data file: what a caller holds in memory scores exactly as the same rows written to a CSV file would.

use std::path::{Path, PathBuf};

use kiln_domain::{Column, Frame};
use polars::prelude::DataType;

use crate::error::{Location, ReadError};
use crate::read::{
    NaValues, ReadOptions, build_frame, check_unique, numbers_from_texts, parse_number, plan, sorted_by_time,
    time_from_column, to_categorical,
};
use crate::timefmt::TimeParser;

/// Builds a frame from in-memory columns as [`read_frame`](crate::read_frame) reads a CSV file with `opts`.
///
/// Text cells ([`Column::Categorical`], `None` for a missing one) are CSV cells: trimmed, and `na_values` mean
/// missing. Then, as for a file: only the kept columns ([`ReadOptions::columns`], the time column first) remain, every
/// named column must be there; the time column's texts are parsed with `time_format` (timestamps are taken as they
/// are); a [`ReadOptions::numeric`] column's texts must be numbers; a [`ReadOptions::categorical`] column's numbers
/// become the texts kiln writes for them; an undeclared text column whose cells are all numbers or missing is numeric,
/// as CSV inference makes it; the rows are sorted by time. `source` names the data in errors (`pandas DataFrame`),
/// whose locations are 1-based rows.
///
/// # Errors
/// [`ReadError::MissingColumn`], [`ReadError::DuplicateColumn`], [`ReadError::BadTime`] (also for a missing
/// time), [`ReadError::NotNumber`], [`ReadError::TimeColumnType`], [`ReadError::DuplicateTime`],
/// [`ReadError::TimeFormat`], each naming `source`, the row and the column.
pub fn frame_from_columns(
    source: &str,
    columns: Vec<(String, Column)>,
    opts: &ReadOptions,
) -> Result<Frame, ReadError> {
    let path = PathBuf::from(source);
    let path = path.as_path();
    let mut parser = match &opts.time_format {
        Some(format) => TimeParser::with_format(format)
            .map_err(|reason| ReadError::TimeFormat { format: format.clone(), reason })?,
        None => TimeParser::Auto(None),
    };
    let na = NaValues::new(&opts.na_values);
    let available: Vec<String> = columns.iter().map(|(name, _)| name.clone()).collect();
    check_unique(path, &available)?;
    let keep = plan(path, &available, opts)?;
    let mut by_name: Vec<Option<(String, Column)>> = columns.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(keep.len());
    for name in keep {
        let slot = by_name.iter_mut().find(|c| c.as_ref().is_some_and(|(n, _)| *n == name));
        let Some((_, column)) = slot.and_then(Option::take) else {
            return Err(ReadError::DuplicateColumn { path: path.to_path_buf(), column: name });
        };
        let column = match column {
            Column::Categorical(texts) => Column::Categorical(cells(texts, &na)),
            other => other,
        };
        let column = if opts.time_column.as_ref() == Some(&name) {
            // the file reader's own conversion; a numeric time column is reported as a float column
            time_from_column(path, &name, column, &DataType::Float64, &mut parser, 0)?
        } else if opts.categorical.contains(&name) {
            to_categorical(column)
        } else if opts.numeric.contains(&name) {
            numbers(path, &name, column, &na)?
        } else {
            infer(column)
        };
        if let Column::Numeric(values) = &column {
            crate::read::check_finite(
                path,
                &name,
                values,
                |row| Location::Row(row + 1),
                |row| values[row].to_string(),
            )?;
        }
        out.push((name, column));
    }
    sorted_by_time(path, build_frame(path, out)?, opts)
}

/// Texts as a CSV reader sees its cells: trimmed, with the missing markers as `None`.
fn cells(texts: Vec<Option<String>>, na: &NaValues) -> Vec<Option<String>> {
    texts
        .into_iter()
        .map(|t| {
            t.and_then(|t| {
                let trimmed = t.trim();
                if na.contains(trimmed) {
                    None
                } else if trimmed.len() == t.len() {
                    Some(t)
                } else {
                    Some(trimmed.to_string())
                }
            })
        })
        .collect()
}

fn numbers(path: &Path, name: &str, column: Column, na: &NaValues) -> Result<Column, ReadError> {
    match column {
        Column::Categorical(texts) => Ok(Column::Numeric(numbers_from_texts(path, name, &texts, 0, na)?)),
        // timestamps as a numeric input are refused by the pipeline, which names the column and the type it needs
        other => Ok(other),
    }
}

/// An undeclared text column is numeric when every present cell is a number, as CSV inference makes it.
fn infer(column: Column) -> Column {
    let Column::Categorical(texts) = &column else {
        return column;
    };
    let none = NaValues::default();
    let parsed: Option<Vec<f64>> =
        texts.iter().map(|t| t.as_deref().map_or(Some(f64::NAN), |c| parse_number(c, &none).ok())).collect();
    parsed.map_or(column, Column::Numeric)
}

#[cfg(test)]
mod tests;
