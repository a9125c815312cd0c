//! Data validation: a schema of column, table, time and row rules ([`SchemaSpec`], read from YAML by the CLI),
//! checked over a file's chunks by the streaming [`Validator`] into a [`Report`] of every check with its failing
//! rows; and [`infer_schema`], which drafts a schema from a file known to be good.
//!
//! Key decision: the validator sees only [`kiln_domain::Frame`] chunks and a time parser handed in by the caller, so
//! this module reads no file and knows no format; the chunks must come in file order (data row numbers and CSV lines
//! are the report's locations). It does not stop at the first failure: every check sees every row.

mod expr;
mod infer;
mod run;
mod schema;
mod whole;

pub use expr::{ArithOp, CmpOp, Expr, ParseError};
pub use infer::{InferOptions, SchemaDraft};
pub use run::{BadCell, CheckResult, Report, Sample, TimeParse, ValidateOptions, Validator};
pub use schema::{
    ColumnSpec, Columns, Order, RowsSpec, RuleSpec, Scalar, SchemaError, SchemaSpec, Sev, Severity, Span, TimeSpec,
    ValueType,
};

#[cfg(test)]
mod tests;
