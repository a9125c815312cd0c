//! `kiln validate`: a data file checked against a schema (the experiment's `validate:` section or a schema file),
//! streamed chunk by chunk (a reader thread parses the next chunk while the validator checks this one), reported
//! as a terminal table and optionally as JSON; and `kiln validate --infer`, which drafts a schema from a good file.
//! `kiln train` calls [`check_experiment_data`] before it starts a run.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_data::{ReadError, ReadOptions, TimeTextParser, Unparsed, column_names, read_chunks};
use kiln_domain::Frame;
use kiln_eval::validate::{
    BadCell, InferOptions, Report, SchemaDraft, SchemaError, SchemaSpec, TimeParse, ValidateOptions, Validator,
};

use crate::cli::ValidateArgs;
use crate::config::{self, Loaded};
use crate::exit::{BadInput, bad_input};
use crate::settings::Settings;
use crate::table::table;

/// Where a schema came from, to name the file and key of an error in it.
pub(crate) struct SchemaSource<'a> {
    pub(crate) loaded: &'a Loaded,
    /// the key path of the schema in that file (`validate` in an experiment, empty in a schema file)
    pub(crate) prefix: &'a str,
}

impl SchemaSource<'_> {
    fn error(&self, e: SchemaError) -> anyhow::Error {
        let path = match (self.prefix.is_empty(), e.path.is_empty()) {
            (true, _) => e.path,
            (false, true) => self.prefix.to_string(),
            (false, false) => format!("{}.{}", self.prefix, e.path),
        };
        self.loaded.error_at(&path, e.reason).into()
    }

    /// Checks what needs no data (regexes, expressions, ranges).
    pub(crate) fn check(&self, spec: &SchemaSpec) -> Result<()> {
        spec.check().map_err(|e| self.error(e))
    }
}

/// How the data file is read and the validator run.
pub(crate) struct RunSettings {
    pub(crate) na_values: Option<Vec<String>>,
    pub(crate) time_format: Option<String>,
    pub(crate) reference_ms: i64,
    pub(crate) chunk_rows: usize,
    pub(crate) samples: usize,
}

fn is_csv(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

fn time_parsers(format: Option<&str>) -> Result<impl Fn() -> Box<dyn TimeParse> + 'static> {
    let parser = TimeTextParser::new(format)?;
    Ok(move || -> Box<dyn TimeParse> {
        let mut p = parser.clone();
        Box::new(move |text: &str| p.parse(text))
    })
}

/// A chunk as the reader thread hands it over: the rows, their CSV lines, the cells of `numeric` columns that are
/// not numbers.
type Chunk = (Frame, Option<Vec<u64>>, Vec<Unparsed>);

/// Reads `columns` of `path` chunk by chunk on a reader thread and hands each chunk with its CSV lines to `each`. A
/// CSV file's `numeric` columns are parsed into numbers on that thread, a cell that is not a number kept aside
/// (`Unparsed`) instead of failing the read; its other columns come as text, so the checks see every cell as
/// written. A Parquet file's columns come in their own types.
fn stream(
    path: &Path,
    columns: Vec<String>,
    numeric: Vec<String>,
    run: &RunSettings,
    mut each: impl FnMut(&Frame, Option<&[u64]>, &[Unparsed]) -> Result<()>,
) -> Result<()> {
    let csv = is_csv(path);
    let mut opts = ReadOptions {
        categorical: if csv { columns.iter().filter(|c| !numeric.contains(c)).cloned().collect() } else { Vec::new() },
        lenient_numeric: if csv { numeric } else { Vec::new() },
        columns: Some(columns),
        ..ReadOptions::default()
    };
    if let Some(na) = &run.na_values {
        opts.na_values = na.clone();
    }
    let chunks = read_chunks(path, &opts, run.chunk_rows)?;
    // every chunk allocates and frees the same vectors: keep them for the next chunk instead of remapping them
    crate::malloc::keep_freed_memory();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, ReadError>>(2);
        // checked chunks go back to the reader, whose next chunks write their texts over these chunks' strings
        // (`FrameChunks::recycle`): no allocation and no `free` per text cell, and none across threads
        let (done_tx, done_rx) = std::sync::mpsc::channel::<Frame>();
        let reader = scope.spawn(move || {
            let mut chunks = chunks;
            loop {
                done_rx.try_iter().for_each(|frame| chunks.recycle(frame));
                let Some(next) = chunks.next() else { break };
                let item = next.map(|frame| (frame, chunks.lines().map(<[u64]>::to_vec), chunks.unparsed().to_vec()));
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        let mut outcome = Ok(());
        for item in rx.iter() {
            let (frame, lines, unparsed) = match item {
                Ok(chunk) => chunk,
                Err(e) => {
                    outcome = Err(e.into());
                    break;
                }
            };
            if let Err(e) = each(&frame, lines.as_deref(), &unparsed) {
                outcome = Err(e);
                break;
            }
            // a reader that has finished has dropped its end: the frame is freed here then
            let _ = done_tx.send(frame);
        }
        // the receiver is dropped here when the loop stopped early, so the reader ends at its next send
        drop(rx);
        reader.join().map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
        outcome
    })
}

/// Validates `path` against `spec`; errors in the schema (a column missing from the file included) name the key.
pub(crate) fn validate_file(
    path: &Path,
    spec: &SchemaSpec,
    source: &SchemaSource<'_>,
    run: &RunSettings,
) -> Result<Report> {
    source.check(spec)?;
    let names = column_names(path)?;
    let parsers = time_parsers(run.time_format.as_deref())?;
    let options = ValidateOptions { reference_ms: run.reference_ms, samples: run.samples };
    let mut validator = Validator::new(spec, &names, options, &parsers).map_err(|e| source.error(e))?;
    let numeric = validator.numeric_columns();
    stream(path, validator.columns(), numeric, run, |frame, lines, unparsed| {
        let bad: Vec<BadCell<'_>> =
            unparsed.iter().map(|u| BadCell { column: &u.column, row: u.row, text: &u.text }).collect();
        validator.push_read(frame, lines, &bad).map_err(|e| source.error(e))
    })?;
    Ok(validator.finish())
}

/// The report as terminal text: one line per check, then the first failing rows of each failed check.
pub(crate) fn report_text(path: &Path, report: &Report) -> String {
    let failed = report.errors() + report.warnings();
    let mut out = format!(
        "{}: {} rows, {} checks: {} passed, {} failed ({} error, {} warning)\n\n",
        path.display(),
        report.rows,
        report.checks.len(),
        report.checks.len() - failed,
        failed,
        report.errors(),
        report.warnings()
    );
    let mut rows = vec![["check", "column", "severity", "result", "failing rows", "detail"].map(String::from).to_vec()];
    for c in &report.checks {
        rows.push(vec![
            c.check.clone(),
            c.column.clone().unwrap_or_default(),
            c.severity.as_str().to_string(),
            if c.passed { "ok".into() } else { "FAILED".into() },
            c.failing_rows.to_string(),
            kiln_domain::cut_for_message(&c.detail, 70),
        ]);
    }
    out.push_str(&table(&rows));
    for c in report.checks.iter().filter(|c| !c.passed && !c.samples.is_empty()) {
        let shown = if c.samples.len() as u64 == c.failing_rows {
            String::new()
        } else {
            format!(", the first {}", c.samples.len())
        };
        out.push_str(&format!(
            "\n{} {}{} ({}): {} failing row{}{shown}:\n",
            c.severity.as_str(),
            c.check,
            c.column.as_ref().map_or(String::new(), |col| format!(" {col}")),
            kiln_domain::cut_for_message(&c.detail, 70),
            c.failing_rows,
            if c.failing_rows == 1 { "" } else { "s" },
        ));
        for s in &c.samples {
            let values: Vec<String> = s
                .values
                .iter()
                .map(|(k, v)| format!("{k}={}", kiln_domain::cut_for_message(&one_line(v), 40)))
                .collect();
            out.push_str(&format!("  {:<12} {}\n", s.location(), values.join(", ")));
        }
    }
    out
}

/// A cell's text on one line of the terminal (a quoted CSV cell may hold line breaks).
fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n").replace('\t', "\\t")
}

/// The report as JSON: the file, the verdict and every check with its first failing rows.
pub(crate) fn report_json(path: &Path, report: &Report) -> Result<serde_json::Value> {
    let mut value = serde_json::Map::new();
    value.insert("file".into(), path.display().to_string().into());
    value.insert("rows".into(), report.rows.into());
    value.insert("passed".into(), report.passed().into());
    value.insert("errors".into(), report.errors().into());
    value.insert("warnings".into(), report.warnings().into());
    value.insert("checks".into(), serde_json::to_value(&report.checks).context("cannot write the report as JSON")?);
    Ok(serde_json::Value::Object(value))
}

pub(crate) fn write_json(target: &Path, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json).context("cannot write the report as JSON")? + "\n";
    if target == Path::new("-") {
        std::io::stdout().write_all(text.as_bytes()).context("cannot write the report to stdout")?;
        return Ok(());
    }
    std::fs::write(target, text).with_context(|| format!("cannot write {}", target.display()))
}

/// Parses `--reference-time` (ISO 8601: a date or a date and time, UTC).
fn reference_time(text: Option<&str>) -> Result<i64> {
    match text {
        None => Ok(crate::commands::now_ms()),
        Some(t) => match TimeTextParser::new(None)?.parse(t) {
            Some(ms) => Ok(ms),
            None => bad_input!("--reference-time '{t}' is not a time: write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS (UTC)"),
        },
    }
}

/// `kiln train`'s step before any run: the experiment's `validate:` section over its data file. `Ok(None)` when
/// the experiment has none; an error-severity failure prints the report and is an error (exit 2).
pub(crate) fn check_experiment_data(
    settings: &Settings,
    progress: &dyn kiln_train::Progress,
) -> Result<Option<Report>> {
    let exp = &settings.experiment;
    let Some(spec) = &exp.validate else { return Ok(None) };
    let (path, snapshot_ms) = data_file(&exp.data)?;
    progress.step(&format!("validating {} against the experiment's validate: section", path.display()));
    let run = RunSettings {
        na_values: spec.na_values.clone().or_else(|| exp.data.na_values.clone()),
        time_format: spec.time_format.clone().or_else(|| exp.data.time_format.clone()),
        reference_ms: snapshot_ms.unwrap_or_else(crate::commands::now_ms),
        chunk_rows: 20_000,
        samples: 5,
    };
    let source = SchemaSource { loaded: &settings.loaded, prefix: "validate" };
    let report = validate_file(&path, spec, &source, &run)?;
    if !report.passed() {
        eprint!("{}", report_text(&path, &report));
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.passed && c.severity == kiln_eval::validate::Severity::Error)
            .map(|c| format!("{}{}", c.check, c.column.as_ref().map_or(String::new(), |col| format!(" {col}"))))
            .collect();
        return Err(BadInput(format!(
            "{} failed validation ({}); no run was started",
            path.display(),
            failed.join("; ")
        ))
        .into());
    }
    if report.warnings() > 0 {
        eprint!("{}", report_text(&path, &report));
    }
    Ok(Some(report))
}

/// The experiment's data file: `data.path`, or the file of the snapshot `data.snapshot` names, with the time that
/// snapshot was fetched (freshness is measured from it, so the same snapshot validates the same way later).
fn data_file(data: &crate::settings::DataSettings) -> Result<(PathBuf, Option<i64>)> {
    match &data.snapshot {
        Some(reference) => {
            let snapshot = crate::fetch_cmd::resolve_snapshot(reference, data.snapshot_root.as_deref())?;
            let fetched = TimeTextParser::new(None)?.parse(&snapshot.manifest.fetched_at);
            Ok((snapshot.path, fetched))
        }
        None => Ok((data.path.clone(), None)),
    }
}

/// `kiln validate`.
pub(crate) fn validate(args: ValidateArgs) -> Result<u8> {
    if let Some(file) = &args.infer {
        return infer(file, &args);
    }
    let env = crate::commands::env_var;
    let mut reference_ms = reference_time(args.reference_time.as_deref())?;
    let (loaded, prefix, spec, data_defaults) = match (&args.schema, &args.config) {
        (Some(schema), None) => {
            let loaded = config::load(schema, &env)?;
            let spec: SchemaSpec = loaded.parse()?;
            (loaded, "", spec, None)
        }
        (None, Some(config)) => {
            let settings = Settings::resolve(config::load(config, &env)?)?;
            let Some(spec) = settings.experiment.validate.clone() else {
                bad_input!("{}: the experiment has no 'validate' section (or pass --schema FILE)", config.display())
            };
            let data = settings.experiment.data.clone();
            (settings.loaded, "validate", spec, Some(data))
        }
        (Some(_), Some(_)) => bad_input!("--schema and --config both give a schema: pass one"),
        (None, None) => bad_input!("kiln validate needs --schema FILE or --config EXPERIMENT (or --infer FILE)"),
    };
    let path = match (&args.file, &data_defaults) {
        (Some(file), _) => file.clone(),
        (None, Some(data)) => {
            let (path, snapshot_ms) = data_file(data)?;
            if let (Some(ms), None) = (snapshot_ms, &args.reference_time) {
                reference_ms = ms;
            }
            path
        }
        (None, None) => bad_input!(
            "no data file: kiln validate --schema {} FILE",
            args.schema.as_deref().unwrap_or(Path::new("SCHEMA")).display()
        ),
    };
    let run = RunSettings {
        na_values: spec.na_values.clone().or_else(|| data_defaults.as_ref().and_then(|d| d.na_values.clone())),
        time_format: spec.time_format.clone().or_else(|| data_defaults.as_ref().and_then(|d| d.time_format.clone())),
        reference_ms,
        chunk_rows: args.chunk_rows.max(1),
        samples: args.samples,
    };
    let source = SchemaSource { loaded: &loaded, prefix };
    let report = validate_file(&path, &spec, &source, &run)?;
    let to_stdout = args.json.as_deref() == Some(Path::new("-"));
    let text = report_text(&path, &report);
    if to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(target) = &args.json {
        write_json(target, &report_json(&path, &report)?)?;
    }
    Ok(if report.passed() { 0 } else { kiln_domain::ErrorKind::InvalidInput.exit_code() })
}

/// `kiln validate --infer FILE`: a drafted schema, on stdout or in `--output`.
fn infer(file: &Path, args: &ValidateArgs) -> Result<u8> {
    if args.schema.is_some() || args.config.is_some() || args.json.is_some() {
        bad_input!("--infer drafts a schema from a file: it takes no --schema, --config or --json");
    }
    let names = column_names(file)?;
    for (flag, column) in [("--time-column", &args.time_column), ("--series-column", &args.series_column)] {
        if let Some(c) = column
            && !names.contains(c)
        {
            bad_input!("{flag} '{c}' is not a column of {}", file.display());
        }
    }
    let options = InferOptions {
        time_column: args.time_column.clone(),
        series_column: args.series_column.clone(),
        max_allowed: 20,
    };
    let mut draft = SchemaDraft::new(&names, options, Box::new(time_parsers(None)?));
    let run = RunSettings {
        na_values: None,
        time_format: None,
        reference_ms: 0,
        chunk_rows: args.chunk_rows.max(1),
        samples: 0,
    };
    let mut rows = 0;
    stream(file, names.clone(), Vec::new(), &run, |frame, _, _| {
        rows += frame.n_rows();
        draft.push(frame);
        Ok(())
    })?;
    let spec = draft.finish();
    let value = serde_json::to_value(&spec).context("cannot write the drafted schema")?;
    let yaml = serde_yaml::to_string(&value).context("cannot write the drafted schema")?;
    let text = format!(
        "# drafted by `kiln validate --infer {}` from {rows} rows: every rule holds on that file; review it, add row\n\
         # rules and freshness, then: kiln validate --schema <this file> FILE\n{yaml}",
        file.display()
    );
    match &args.output {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!("wrote a drafted schema of {} columns to {}", names.len(), out.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}
