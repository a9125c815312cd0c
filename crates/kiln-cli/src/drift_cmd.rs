//! `kiln drift`: is a file of new rows distributed like the training rows (`--model`, against the bundle's
//! `kiln/profile.json`) or like another file (`--reference`)? Per column every statistic of
//! `kiln_eval::drift`, Evidently's default test with its threshold and verdict, the dataset verdict, and with
//! `--model` the drift of the model's predictions on the new rows. A table on stdout (or `--json`), an HTML report
//! with an overlaid histogram per drifted column (`--report`), exit status 4 on dataset drift.
//!
//! Key decision: the input is read in chunks (`kiln_data::read_chunks`) and only what the statistics need is kept:
//! the finite values of each numeric column (the exact tests need them all) and the counts of each categorical one.
//! With `--model` the same chunks are scored by `kiln_score::score_stream` on the way, so the file is read once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use kiln_data::{ReadError, ReadOptions};
use kiln_domain::{ChartRenderer, Column, ColumnKind, Frame};
use kiln_eval::drift::{
    ColumnDrift, ColumnProfile, DatasetDrift, DriftOptions, Profile, ReferenceSummary, Sample, compare_column,
    dataset_drift,
};
use serde::Serialize;

use crate::cli::DriftArgs;
use crate::exit::bad_input;
use crate::progress::{Bar, thousands};

/// One column's values so far.
#[derive(Debug, Clone)]
enum Acc {
    Numeric { values: Vec<f64>, missing: usize },
    Categorical { counts: BTreeMap<String, u64>, missing: usize },
}

impl Acc {
    fn new(kind: ColumnKind) -> Acc {
        match kind {
            ColumnKind::Categorical => Acc::Categorical { counts: BTreeMap::new(), missing: 0 },
            _ => Acc::Numeric { values: Vec::new(), missing: 0 },
        }
    }

    fn push_rows(&mut self, column: &Column, rows: Option<&[usize]>) {
        let all: Vec<usize>;
        let rows = match rows {
            Some(r) => r,
            None => {
                all = (0..column.len()).collect();
                &all
            }
        };
        match (self, column) {
            (Acc::Numeric { values, missing }, Column::Numeric(v)) => {
                for &i in rows {
                    if v[i].is_finite() { values.push(v[i]) } else { *missing += 1 }
                }
            }
            (Acc::Categorical { counts, missing }, Column::Categorical(v)) => {
                for &i in rows {
                    match v[i].as_deref() {
                        Some(s) if !s.is_empty() => *counts.entry(s.to_string()).or_insert(0) += 1,
                        _ => *missing += 1,
                    }
                }
            }
            (Acc::Categorical { counts, missing }, Column::Numeric(v)) => {
                for &i in rows {
                    if v[i].is_finite() {
                        *counts.entry(kiln_data_number(v[i])).or_insert(0) += 1;
                    } else {
                        *missing += 1;
                    }
                }
            }
            (_, _) => {}
        }
    }

    fn into_sample(self) -> (Sample, usize) {
        match self {
            Acc::Numeric { mut values, missing } => {
                values.sort_by(f64::total_cmp);
                (Sample::Numeric(values), missing)
            }
            Acc::Categorical { counts, missing } => (Sample::Categorical(counts), missing),
        }
    }
}

/// A number read into a categorical column, as text.
fn kiln_data_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Accumulators by column, and by series when asked.
struct Accumulators {
    columns: Vec<(String, ColumnKind)>,
    all: Vec<Acc>,
    /// `--series`: the series column and each series' accumulators
    series: Option<(String, BTreeMap<String, Vec<Acc>>)>,
    rows: u64,
}

impl Accumulators {
    fn new(columns: Vec<(String, ColumnKind)>, series_column: Option<String>) -> Accumulators {
        let all = columns.iter().map(|(_, k)| Acc::new(*k)).collect();
        Accumulators { columns, all, series: series_column.map(|c| (c, BTreeMap::new())), rows: 0 }
    }

    /// Room for `rows` values in each numeric column (a file's estimated rows), so that growing never doubles.
    fn reserve(&mut self, rows: usize) {
        for acc in &mut self.all {
            if let Acc::Numeric { values, .. } = acc {
                values.reserve_exact(rows);
            }
        }
    }

    fn push(&mut self, frame: &Frame) {
        self.rows += frame.n_rows() as u64;
        for ((name, _), acc) in self.columns.iter().zip(&mut self.all) {
            if let Ok(column) = frame.column(name) {
                acc.push_rows(column, None);
            }
        }
        if let Some((series_column, by_series)) = &mut self.series
            && let Ok(Column::Categorical(keys)) = frame.column(series_column)
        {
            let mut rows_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, k) in keys.iter().enumerate() {
                rows_of.entry(k.as_deref().unwrap_or("")).or_default().push(i);
            }
            for (key, rows) in rows_of {
                let accs = by_series
                    .entry(key.to_string())
                    .or_insert_with(|| self.columns.iter().map(|(_, k)| Acc::new(*k)).collect());
                for ((name, _), acc) in self.columns.iter().zip(accs.iter_mut()) {
                    if name != series_column
                        && let Ok(column) = frame.column(name)
                    {
                        acc.push_rows(column, Some(&rows));
                    }
                }
            }
        }
    }
}

/// The bins of a drifted column's overlaid histogram in the report: numeric edges or category labels, and the
/// share of each side's values in each bin.
#[derive(Debug, Default)]
struct Hist {
    edges: Vec<f64>,
    labels: Vec<String>,
    reference: Vec<f64>,
    current: Vec<f64>,
}

/// At most this many categories are drawn (the most frequent over both sides).
const DRAWN_CATEGORIES: usize = 20;

fn histogram(reference: &Sample, current: &Sample) -> Hist {
    match (reference, current) {
        (Sample::Numeric(r), Sample::Numeric(c)) if !r.is_empty() && !c.is_empty() => {
            let lo = r[0].min(c[0]);
            let hi = r[r.len() - 1].max(c[c.len() - 1]);
            let (lo, hi) = if lo < hi { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
            // Sturges' rule over both samples, as Evidently's histograms, at most 50 bins
            let bins = (((r.len() + c.len()) as f64).log2().ceil() as usize + 1).clamp(5, 50);
            let edges: Vec<f64> = (0..=bins).map(|i| lo + (hi - lo) * i as f64 / bins as f64).collect();
            let shares = |v: &[f64]| -> Vec<f64> {
                let mut counts = vec![0u64; bins];
                for &x in v {
                    let i = edges.partition_point(|&e| e <= x).saturating_sub(1).min(bins - 1);
                    counts[i] += 1;
                }
                counts.iter().map(|&k| k as f64 / v.len() as f64).collect()
            };
            Hist { reference: shares(r), current: shares(c), edges, labels: Vec::new() }
        }
        _ => {
            let counts = |s: &Sample| -> BTreeMap<String, u64> {
                match s {
                    Sample::Categorical(c) => c.clone(),
                    Sample::Numeric(v) => {
                        let mut m = BTreeMap::new();
                        for x in v {
                            *m.entry(kiln_data_number(*x)).or_insert(0) += 1;
                        }
                        m
                    }
                }
            };
            let (r, c) = (counts(reference), counts(current));
            let (nr, nc) = (r.values().sum::<u64>().max(1) as f64, c.values().sum::<u64>().max(1) as f64);
            let mut keys: Vec<(&String, f64)> = r
                .keys()
                .chain(c.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|k| (k, r.get(k).copied().unwrap_or(0) as f64 / nr + c.get(k).copied().unwrap_or(0) as f64 / nc))
                .collect();
            keys.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            keys.truncate(DRAWN_CATEGORIES);
            Hist {
                edges: Vec::new(),
                labels: keys.iter().map(|(k, _)| (*k).clone()).collect(),
                reference: keys.iter().map(|(k, _)| r.get(*k).copied().unwrap_or(0) as f64 / nr).collect(),
                current: keys.iter().map(|(k, _)| c.get(*k).copied().unwrap_or(0) as f64 / nc).collect(),
            }
        }
    }
}

/// What `--json` prints and the report shows.
#[derive(Debug, Serialize)]
pub(crate) struct DriftReport {
    reference: String,
    input: String,
    rows: u64,
    options: DriftOptions,
    columns: Vec<ColumnDrift>,
    pub(crate) dataset: DatasetDrift,
    /// `--model`: the model's predictions on the input against its predictions on the training rows (not counted
    /// in the dataset verdict)
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction: Option<ColumnDrift>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    series: Vec<SeriesDrift>,
    /// the drifted columns' histograms, for the report's charts
    #[serde(skip)]
    charts: Vec<(String, Hist)>,
    /// `--model`: the registered model's name and version, when the reference resolved to one
    #[serde(skip_serializing_if = "Option::is_none")]
    model_version: Option<(String, String)>,
}

#[derive(Debug, Serialize)]
struct SeriesDrift {
    series: String,
    columns: Vec<ColumnDrift>,
    dataset: DatasetDrift,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction: Option<ColumnDrift>,
}

pub(crate) fn drift(args: DriftArgs) -> Result<u8> {
    let origin = Instant::now();
    let opts = DriftOptions { p_value: args.p_value, distance: args.distance, drift_share: args.drift_share };
    for (flag, v) in [("--p-value", args.p_value), ("--distance", args.distance), ("--drift-share", args.drift_share)] {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            bad_input!("{flag} {v}: must lie in (0, 1]");
        }
    }
    let chunk_rows = usize::try_from(args.chunk_rows).unwrap_or(usize::MAX);
    let report = match (&args.model, &args.reference) {
        (Some(model), None) => against_model(&args, model, &opts, chunk_rows, origin)?,
        (None, Some(reference)) => against_file(&args, reference, &opts, chunk_rows, origin)?,
        _ => bad_input!("give either --model REF or --reference FILE"),
    };
    let text = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { render_table(&report) };
    {
        use std::io::Write;
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            // a reader that stopped early (`| head`) wants no more; the verdict still decides the status
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.context("writing to stdout")?,
        }
    }
    if let Some(dir) = &args.report {
        write_report(dir, &report, &args)?;
        eprintln!("wrote the report to {}", dir.join("report.html").display());
    }
    let experiment = match (&args.experiment, &report.model_version) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(_)) => Some("drift".to_string()),
        (None, None) => None,
    };
    if let Some(experiment) = experiment {
        let run = log_run(&args, &report, &experiment)?;
        eprintln!("logged run {run} in experiment '{experiment}'");
    }
    Ok(if report.dataset.drifted { crate::exit::WATCH_ALERT } else { 0 })
}

/// The column names of a data file (its header and one row).
fn header(path: &Path) -> Result<Frame> {
    let opts = ReadOptions { categorical: Vec::new(), ..ReadOptions::default() };
    let mut chunks = kiln_data::read_chunks(path, &opts, 1)?;
    match chunks.next() {
        Some(frame) => Ok(frame?),
        None => Ok(Frame::default()),
    }
}

fn stream_into(
    path: &Path,
    opts: &ReadOptions,
    chunk_rows: usize,
    acc: &mut Accumulators,
    origin: Instant,
) -> Result<()> {
    let mut bar = Bar::new("reading", origin);
    let mut chunks = kiln_data::read_chunks(path, opts, chunk_rows)?;
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let frame = match chunk {
            Err(ReadError::NewestFirst { .. }) if first => {
                // no time column is declared here, so this does not happen; kept for safety
                kiln_data::read_frame(path, opts)?
            }
            other => other.with_context(|| format!("reading {}", path.display()))?,
        };
        first = false;
        acc.push(&frame);
        bar.update(chunks.progress());
    }
    bar.finish();
    Ok(())
}

fn against_file(
    args: &DriftArgs,
    reference: &Path,
    opts: &DriftOptions,
    chunk_rows: usize,
    origin: Instant,
) -> Result<DriftReport> {
    // the reference's first chunk fixes every column's type; the input is read with the same types
    let ref_head = {
        let o = ReadOptions { categorical: Vec::new(), ..ReadOptions::default() };
        let mut chunks = kiln_data::read_chunks(reference, &o, chunk_rows.min(100_000))?;
        chunks.next().transpose()?.unwrap_or_default()
    };
    let input_head = header(&args.input)?;
    let columns: Vec<String> = match &args.columns {
        Some(cols) => {
            let missing_ref: Vec<&String> = cols.iter().filter(|c| !ref_head.has_column(c)).collect();
            let missing_in: Vec<&String> = cols.iter().filter(|c| !input_head.has_column(c)).collect();
            if !missing_ref.is_empty() {
                bad_input!("--columns: {} has no column {}", reference.display(), quoted(&missing_ref));
            }
            if !missing_in.is_empty() {
                bad_input!("--columns: {} has no column {}", args.input.display(), quoted(&missing_in));
            }
            cols.clone()
        }
        None => ref_head.names().iter().filter(|c| input_head.has_column(c)).cloned().collect(),
    };
    if columns.is_empty() {
        bad_input!("{} and {} have no column in common", reference.display(), args.input.display());
    }
    let mut kinds = Vec::new();
    for name in &columns {
        match ref_head.column(name)?.kind() {
            ColumnKind::Timestamp => eprintln!("note: column '{name}' holds times; it is left out"),
            kind => kinds.push((name.clone(), kind)),
        }
    }
    // the columns go in groups small enough that their values fit the memory budget (every value of a numeric
    // column is kept: the exact tests need them), each group a pass over both files, compared on every core
    let (ref_rows, cur_rows) = (estimate_rows(reference, chunk_rows)?, estimate_rows(&args.input, chunk_rows)?);
    let rows = ref_rows + cur_rows;
    let per_pass = (VALUE_BUDGET / rows.max(1)).clamp(1, kinds.len().max(1));
    let passes = kinds.len().div_ceil(per_pass);
    if passes > 1 {
        eprintln!(
            "note: about {} rows; {} passes of at most {per_pass} columns keep memory under ~{} MB of values",
            thousands(rows as u64),
            passes,
            VALUE_BUDGET * 8 / 1_000_000
        );
    }
    let mut out = Vec::new();
    let mut charts = Vec::new();
    let mut current_rows = 0;
    for group in kinds.chunks(per_pass) {
        let read_opts = ReadOptions {
            columns: Some(group.iter().map(|(n, _)| n.clone()).collect()),
            categorical: group.iter().filter(|(_, k)| *k == ColumnKind::Categorical).map(|(n, _)| n.clone()).collect(),
            numeric: group.iter().filter(|(_, k)| *k == ColumnKind::Numeric).map(|(n, _)| n.clone()).collect(),
            ..ReadOptions::default()
        };
        let mut ref_acc = Accumulators::new(group.to_vec(), None);
        ref_acc.reserve(ref_rows);
        stream_into(reference, &read_opts, chunk_rows, &mut ref_acc, origin)?;
        let mut cur_acc = Accumulators::new(group.to_vec(), None);
        cur_acc.reserve(cur_rows);
        stream_into(&args.input, &read_opts, chunk_rows, &mut cur_acc, origin)?;
        current_rows = cur_acc.rows;
        let jobs: Vec<Job> =
            group.iter().zip(ref_acc.all).zip(cur_acc.all).map(|(((n, _), r), c)| (n.clone(), r, c)).collect();
        let want_charts = args.report.is_some();
        for (d, chart) in parallel_compare(jobs, opts, want_charts) {
            if let Some(h) = chart {
                charts.push((d.name.clone(), h));
            }
            out.push(d);
        }
    }
    let dataset = dataset_drift(&out, opts);
    Ok(DriftReport {
        reference: reference.display().to_string(),
        input: args.input.display().to_string(),
        rows: current_rows,
        options: *opts,
        columns: out,
        dataset,
        prediction: None,
        series: Vec::new(),
        charts,
        model_version: None,
    })
}

/// Numeric values kept at once by `--reference` (8 bytes each: about 96 MB).
const VALUE_BUDGET: usize = 12_000_000;

/// About how many data rows a file has: a Parquet file says; a CSV file's size over its first rows' bytes.
fn estimate_rows(path: &Path, chunk_rows: usize) -> Result<usize> {
    let opts = ReadOptions { categorical: Vec::new(), ..ReadOptions::default() };
    let sample = chunk_rows.clamp(1, 2000);
    let mut chunks = kiln_data::read_chunks(path, &opts, sample)?;
    let first = chunks.next().transpose()?.map_or(0, |f| f.n_rows());
    let p = chunks.progress();
    Ok(match (p.total_rows, p.bytes, p.total_bytes) {
        (Some(n), _, _) => n as usize,
        (None, Some(read), Some(total)) if read > 0 && first > 0 => {
            ((total as f64 / read as f64) * first as f64).ceil() as usize
        }
        _ => first,
    })
}

/// A compared column and, when asked for and drifted, its histogram.
type Compared = (ColumnDrift, Option<Hist>);

/// A column to compare: its name, the reference's values and the current ones.
type Job = (String, Acc, Acc);

/// Sorts and compares columns on every core, the columns dealt to the threads in turn; results in the jobs' order
/// (a panic in a thread is raised again here, never a column silently missing).
fn parallel_compare(jobs: Vec<Job>, opts: &DriftOptions, want_charts: bool) -> Vec<Compared> {
    let n = jobs.len();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n.max(1));
    let mut dealt: Vec<Vec<(usize, Job)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        dealt[i % threads].push((i, job));
    }
    let compare = |(i, (name, r, c)): (usize, Job)| {
        let (r, _) = r.into_sample();
        let (c, missing) = c.into_sample();
        let d = compare_column(&name, &r, None, &c, missing, opts);
        let chart = (want_charts && d.drifted).then(|| histogram(&r, &c));
        (i, (d, chart))
    };
    let mut done: Vec<(usize, Compared)> = std::thread::scope(|scope| {
        let handles: Vec<_> = dealt
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().map(compare).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, c)| c).collect()
}

/// The reference side of a profiled column: its sample (or category counts, the values beyond the cap as
/// `<other>`) and, for a number, the training rows' summary.
fn reference_of(p: &ColumnProfile) -> Option<(Sample, Option<ReferenceSummary<'_>>)> {
    if let Some(n) = &p.numeric {
        let mut sample = n.sample.clone();
        sample.sort_by(f64::total_cmp);
        let rows = (p.count - p.missing) as usize;
        return Some((
            Sample::Numeric(sample),
            Some(ReferenceSummary { rows, sd: n.sd, edges: &n.edges, fractions: &n.fractions }),
        ));
    }
    let c = p.categorical.as_ref()?;
    let mut counts: BTreeMap<String, u64> = c.values.iter().map(|v| (v.value.clone(), v.count)).collect();
    if c.other > 0 {
        counts.insert(OTHER.to_string(), c.other);
    }
    Some((Sample::Categorical(counts), None))
}

const OTHER: &str = "<other>";

/// Current counts mapped onto the reference's kept values: a value the reference lumped into `<other>` joins it.
fn fold_other(reference: &Sample, current: Sample) -> Sample {
    match (reference, current) {
        (Sample::Categorical(r), Sample::Categorical(c)) if r.contains_key(OTHER) => {
            let mut out = BTreeMap::new();
            for (k, v) in c {
                let key = if r.contains_key(&k) { k } else { OTHER.to_string() };
                *out.entry(key).or_insert(0) += v;
            }
            Sample::Categorical(out)
        }
        (_, c) => c,
    }
}

fn compare_profiled(
    p: &ColumnProfile,
    acc: Acc,
    opts: &DriftOptions,
    charts: Option<&mut Vec<(String, Hist)>>,
) -> Option<ColumnDrift> {
    let (reference, summary) = reference_of(p)?;
    let (current, missing) = acc.into_sample();
    let current = fold_other(&reference, current);
    let mut d = compare_column(&p.name, &reference, summary, &current, missing, opts);
    if let Some(s) = summary {
        d.reference_rows = s.rows;
    }
    if let Some(charts) = charts
        && d.drifted
    {
        charts.push((p.name.clone(), histogram(&reference, &current)));
    }
    Some(d)
}

fn against_model(
    args: &DriftArgs,
    model: &str,
    opts: &DriftOptions,
    chunk_rows: usize,
    origin: Instant,
) -> Result<DriftReport> {
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let loaded = kiln::load_bundle(model, &uri)?;
    eprintln!("[{:>6.1}s] loaded {}, checksums verified", origin.elapsed().as_secs_f64(), loaded.label);
    against_loaded(args, &loaded, opts, chunk_rows, origin)
}

/// [`against_model`] with the model already loaded (`kiln retrain --when drift` has loaded the champion).
pub(crate) fn against_loaded(
    args: &DriftArgs,
    loaded: &kiln::LoadedBundle,
    opts: &DriftOptions,
    chunk_rows: usize,
    origin: Instant,
) -> Result<DriftReport> {
    let step = |message: &str| eprintln!("[{:>6.1}s] {message}", origin.elapsed().as_secs_f64());
    let label = loaded.label.clone();
    let bundle = &loaded.bundle;
    let Some(bytes) = &bundle.profile else {
        bad_input!(
            "{label} has no reference profile (kiln/profile.json): it was trained before kiln wrote one; train it \
             again, or compare two files with --reference"
        );
    };
    let profile = Profile::from_json(bytes)?;
    let pipeline = &bundle.pipeline;
    let head = header(&args.input)?;
    let missing: Vec<String> = pipeline.input_columns().into_iter().filter(|c| !head.has_column(c)).collect();
    if !missing.is_empty() {
        bad_input!(
            "{} lacks the column{} {} that {label} reads",
            args.input.display(),
            if missing.len() == 1 { "" } else { "s" },
            quoted(&missing.iter().collect::<Vec<_>>())
        );
    }
    let mut columns: Vec<(String, ColumnKind)> = profile
        .inputs
        .iter()
        .map(|p| (p.name.clone(), if p.categorical.is_some() { ColumnKind::Categorical } else { ColumnKind::Numeric }))
        .collect();
    if let Some(only) = &args.columns {
        let unknown: Vec<&String> = only.iter().filter(|c| !columns.iter().any(|(n, _)| n == *c)).collect();
        if !unknown.is_empty() {
            bad_input!("--columns: {label}'s profile has no input column {}", quoted(&unknown));
        }
        columns.retain(|(n, _)| only.contains(n));
    }
    // a long panel's rows name their series; a wide panel's series are its columns (compared as columns already)
    let wide = pipeline.recipe().is_some_and(|r| r.wide.is_some());
    let series_column = if args.series {
        if profile.series.is_empty() {
            bad_input!("--series: {label} is not a panel model (its profile has no series)");
        }
        if wide { None } else { pipeline.recipe().and_then(|r| r.series_column.clone()) }
    } else {
        None
    };
    let read_opts = kiln::read_options(pipeline);
    // the columns go in groups whose values fit the memory budget: the first is read while the file is scored,
    // each other one in a pass of its own over the file
    let rows_estimate = estimate_rows(&args.input, chunk_rows)?;
    let copies = if series_column.is_some() { 2 } else { 1 };
    let per_pass = (VALUE_BUDGET / (rows_estimate * copies).max(1)).clamp(1, columns.len().max(1));
    let groups: Vec<Vec<(String, ColumnKind)>> = columns.chunks(per_pass).map(<[_]>::to_vec).collect();
    if groups.len() > 1 {
        step(&format!(
            "note: about {} rows; {} passes of at most {per_pass} columns keep memory under ~{} MB of values",
            thousands(rows_estimate as u64),
            groups.len(),
            VALUE_BUDGET * 8 / 1_000_000
        ));
    }
    let mut acc = Accumulators::new(groups.first().cloned().unwrap_or_default(), series_column.clone());
    acc.reserve(rows_estimate);
    let mut predictions: Vec<f64> = Vec::new();
    let mut pred_series: Vec<String> = Vec::new();
    let mut chunk_rows = chunk_rows;
    if pipeline.recipe().is_some_and(|r| r.ahead_rows() > 0) {
        chunk_rows = usize::MAX;
    }
    let mut reader = kiln_data::read_chunks(&args.input, &read_opts, chunk_rows)?;
    let mut first = reader.next();
    let mut whole = None;
    if let Some(Err(ReadError::NewestFirst { .. })) = &first {
        step(&format!("note: {} starts newest first; reading it whole and sorting it by time", args.input.display()));
        whole = Some(kiln_data::read_frame(&args.input, &read_opts)?);
        first = None;
    }
    let mut bar = Bar::new("reading and scoring", origin);
    {
        let acc = &mut acc;
        let bar = &mut bar;
        let reader = &mut reader;
        let mut whole = whole;
        let chunks = std::iter::from_fn(move || {
            let next: Option<Result<Frame>> = match whole.take() {
                Some(frame) => Some(Ok(frame)),
                None => first.take().or_else(|| reader.next()).map(|r| r.map_err(anyhow::Error::from)),
            };
            if let Some(Ok(frame)) = &next {
                acc.push(frame);
                bar.update(reader.progress());
            }
            next
        });
        let sink = |scored: kiln_score::Scored| -> Result<()> {
            if let Some((_, keys)) = &scored.series {
                pred_series.extend(keys.iter().cloned());
            }
            predictions.extend(scored.predictions.iter().copied());
            Ok(())
        };
        let threads = kiln_models::default_threads() as usize;
        kiln_score::score_stream(bundle, false, chunks, sink, threads).map_err(|e| match e {
            kiln_score::StreamError::Start(e) => anyhow::Error::new(e),
            kiln_score::StreamError::Source(e) | kiln_score::StreamError::Sink(e) => e,
            kiln_score::StreamError::Chunk { first, last, source } => {
                anyhow::Error::new(source).context(format!("scoring rows {first}-{last} of {}", args.input.display()))
            }
            kiln_score::StreamError::Finish(e) => anyhow::Error::new(e).context("scoring the input"),
        })?;
    }
    bar.finish();
    step(&format!("read and scored {} rows", thousands(acc.rows)));

    let mut out = Vec::new();
    let mut charts = Vec::new();
    let want_charts = args.report.is_some();
    let rows = acc.rows;
    let mut series_columns: BTreeMap<String, Vec<ColumnDrift>> = BTreeMap::new();
    let mut absorb = |acc: Accumulators, out: &mut Vec<ColumnDrift>| {
        for ((name, _), a) in acc.columns.iter().zip(acc.all) {
            if let Some(p) = profile.input(name)
                && let Some(d) = compare_profiled(p, a, opts, want_charts.then_some(&mut charts))
            {
                out.push(d);
            }
        }
        if let Some((_, by_series)) = acc.series {
            for (key, accs) in by_series {
                let Some(sp) = profile.series.iter().find(|s| s.series == key) else { continue };
                let cols = series_columns.entry(key).or_default();
                for ((name, _), a) in acc.columns.iter().zip(accs) {
                    if let Some(p) = sp.inputs.iter().find(|c| &c.name == name)
                        && let Some(d) = compare_profiled(p, a, opts, None)
                    {
                        cols.push(d);
                    }
                }
            }
        }
    };
    absorb(acc, &mut out);
    for group in groups.iter().skip(1) {
        let names: Vec<String> = group.iter().map(|(n, _)| n.clone()).chain(series_column.clone()).collect();
        let pass_opts = ReadOptions {
            numeric: read_opts.numeric.iter().filter(|c| names.contains(c)).cloned().collect(),
            categorical: read_opts.categorical.iter().filter(|c| names.contains(c)).cloned().collect(),
            columns: Some(names),
            ..read_opts.clone()
        };
        let mut pass = Accumulators::new(group.clone(), series_column.clone());
        pass.reserve(rows_estimate);
        stream_into(&args.input, &pass_opts, chunk_rows, &mut pass, origin)?;
        absorb(pass, &mut out);
    }
    let dataset = dataset_drift(&out, opts);
    let prediction_of = |p: Option<&ColumnProfile>, values: Vec<f64>| -> Option<ColumnDrift> {
        let p = p?;
        let mut a = Acc::Numeric { values: Vec::new(), missing: 0 };
        a.push_rows(&Column::Numeric(values), None);
        compare_profiled(p, a, opts, None)
    };
    let mut series = Vec::new();
    if args.series && wide {
        for sp in &profile.series {
            let cols: Vec<ColumnDrift> = out.iter().filter(|c| c.name == sp.series).cloned().collect();
            let mine: Vec<f64> =
                pred_series.iter().zip(&predictions).filter(|(s, _)| **s == sp.series).map(|(_, p)| *p).collect();
            let dataset = dataset_drift(&cols, opts);
            series.push(SeriesDrift {
                series: sp.series.clone(),
                columns: cols,
                dataset,
                prediction: prediction_of(sp.prediction.as_ref(), mine),
            });
        }
    }
    if series_column.is_some() {
        let seen: std::collections::BTreeSet<&String> = pred_series.iter().collect();
        for key in seen.iter().filter(|k| !profile.series.iter().any(|s| &&s.series == *k)) {
            step(&format!("note: series '{key}' is not in {label}'s profile; left out"));
        }
        for (key, cols) in series_columns {
            let Some(sp) = profile.series.iter().find(|s| s.series == key) else { continue };
            let mine: Vec<f64> =
                pred_series.iter().zip(&predictions).filter(|(s, _)| **s == key).map(|(_, p)| *p).collect();
            let dataset = dataset_drift(&cols, opts);
            series.push(SeriesDrift {
                series: key,
                columns: cols,
                dataset,
                prediction: prediction_of(sp.prediction.as_ref(), mine),
            });
        }
    }
    let prediction = prediction_of(profile.prediction.as_ref(), predictions);
    Ok(DriftReport {
        charts,
        model_version: loaded.version.as_ref().map(|v| (v.name.clone(), v.version.to_string())),
        reference: format!("{label} (profile of {} training rows)", profile.rows),
        input: args.input.display().to_string(),
        rows,
        options: *opts,
        columns: out,
        dataset,
        prediction,
        series,
    })
}

/// A column name as an MLflow metric key part (letters, digits, `_ - . /` and spaces).
fn metric_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "_-. ".contains(c) { c } else { '_' }).collect()
}

/// Logs the result as an evaluation run: per column the chosen test's score, 1 when drifted, PSI, the KS p-value
/// and the normed Wasserstein and Jensen-Shannon distances (`drift/<column>/<name>`), the dataset's share; tags
/// naming the model and version; drift.json and the report as artifacts.
fn log_run(args: &DriftArgs, r: &DriftReport, experiment: &str) -> Result<String> {
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let opened = kiln::create_store(&uri)?;
    let store = opened.as_store();
    let now = crate::commands::now_ms();
    let exp = store.experiment_by_name(experiment)?;
    store.ensure_experiment_tag(&exp, kiln_domain::EXPERIMENT_KIND_TAG, kiln_domain::CLASSIC_ML_KIND)?;
    let name = match &r.model_version {
        Some((model, version)) => format!("drift-{model}-v{version}"),
        None => "drift".to_string(),
    };
    let mut tags = vec![
        ("kiln.run.kind".to_string(), "evaluation".to_string()),
        ("kiln.evaluation".to_string(), "drift".to_string()),
        ("kiln.drift.input".to_string(), r.input.clone()),
        ("kiln.drift.reference".to_string(), r.reference.clone()),
        ("kiln.drift".to_string(), if r.dataset.drifted { "drift" } else { "none" }.to_string()),
    ];
    if let Some(m) = &args.model {
        tags.push(("kiln.model".to_string(), m.clone()));
    }
    if let Some((model, version)) = &r.model_version {
        tags.push(("kiln.evaluated.model".to_string(), model.clone()));
        tags.push(("kiln.evaluated.version".to_string(), version.clone()));
    }
    let run = store.create_run(&exp, &name, &tags, now)?;
    let id = &run.run_id;
    let point = |key: String, value: f64| kiln_domain::MetricPoint { key, value, timestamp_ms: now, step: 0 };
    let mut metrics = vec![
        point("drift/share".into(), r.dataset.share),
        point("drift/columns_drifted".into(), r.dataset.drifted_columns as f64),
        point("drift/dataset".into(), f64::from(u8::from(r.dataset.drifted))),
        point("rows/input".into(), r.rows as f64),
    ];
    for c in r.columns.iter().chain(&r.prediction) {
        let base = format!("drift/{}", metric_name(&c.name));
        metrics.push(point(format!("{base}/score"), c.score));
        metrics.push(point(format!("{base}/drifted"), f64::from(u8::from(c.drifted))));
        let extra = [
            ("psi", c.psi),
            ("ks_pvalue", c.ks.map(|k| k.pvalue)),
            ("wasserstein_norm", c.wasserstein_norm),
            ("jensenshannon", Some(c.jensenshannon)),
        ];
        for (k, v) in extra {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                metrics.push(point(format!("{base}/{k}"), v));
            }
        }
    }
    metrics.retain(|m| m.value.is_finite());
    for chunk in metrics.chunks(1000) {
        store.log_metrics(id, chunk)?;
    }
    store.put_bytes(id, "drift/drift.json", &serde_json::to_vec_pretty(r)?)?;
    if let Some(dir) = &args.report {
        store.put_dir(id, "drift/report", dir)?;
    }
    store.end_run(id, kiln_domain::RunStatus::Finished, crate::commands::now_ms())?;
    Ok(id.0.clone())
}

/// A column name as part of a file name.
fn safe_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(40).collect()
}

fn quoted(names: &[&String]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
                format!("{v:.3e}")
            } else {
                format!("{v:.4}")
            }
        }
        Some(_) => "nan".to_string(),
        None => "-".to_string(),
    }
}

fn column_rows(columns: &[ColumnDrift]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "column",
            "kind",
            "test",
            "score",
            "threshold",
            "drift",
            "ks_stat",
            "ks_p",
            "psi",
            "wasserstein_norm",
            "jensenshannon",
            "chi2_p",
            "missing",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for c in columns {
        rows.push(vec![
            c.name.clone(),
            c.kind.to_string(),
            c.test.as_str().to_string(),
            num(Some(c.score)),
            format!("{}{}", if c.test.is_p_value() { "p < " } else { ">= " }, c.threshold),
            if c.drifted { "DRIFT".into() } else { "ok".into() },
            num(c.ks.map(|k| k.statistic)),
            num(c.ks.map(|k| k.pvalue)),
            num(c.psi),
            num(c.wasserstein_norm),
            num(Some(c.jensenshannon)),
            num(c.chisquare.map(|k| k.pvalue)),
            format!("{:.1}%", 100.0 * c.current_missing_fraction),
        ]);
    }
    rows
}

fn render_table(r: &DriftReport) -> String {
    let mut out = format!("drift of {} ({} rows) against {}\n\n", r.input, thousands(r.rows), r.reference);
    out.push_str(&crate::table::table(&column_rows(&r.columns)));
    if let Some(p) = &r.prediction {
        out.push_str("\nprediction drift (not counted in the dataset verdict):\n");
        out.push_str(&crate::table::table(&column_rows(std::slice::from_ref(p))));
    }
    for s in &r.series {
        out.push_str(&format!(
            "\nseries '{}': {} of {} columns drifted{}\n",
            s.series,
            s.dataset.drifted_columns,
            s.dataset.columns,
            if s.dataset.drifted { " (drift)" } else { "" }
        ));
        let mut cols = s.columns.clone();
        cols.extend(s.prediction.iter().cloned());
        out.push_str(&crate::table::table(&column_rows(&cols)));
    }
    out.push_str(&format!(
        "\ndataset: {} of {} columns drifted (share {:.3}, drift at >= {}): {}\n",
        r.dataset.drifted_columns,
        r.dataset.columns,
        r.dataset.share,
        r.dataset.drift_share,
        if r.dataset.drifted { "DRIFT" } else { "no drift" }
    ));
    out
}

fn write_report(dir: &PathBuf, r: &DriftReport, _args: &DriftArgs) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kiln drift</title><style>body{font-family:sans-serif;margin:2em}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
         td:first-child{text-align:left}.drift{background:#fdd}</style></head><body>",
    );
    html.push_str(&format!(
        "<h1>Drift</h1><p>{} ({} rows) against {}</p><p><b>{}</b>: {} of {} columns drifted (share {:.3}, drift at &gt;= {})</p>",
        esc(&r.input),
        r.rows,
        esc(&r.reference),
        if r.dataset.drifted { "Dataset drift" } else { "No dataset drift" },
        r.dataset.drifted_columns,
        r.dataset.columns,
        r.dataset.share,
        r.dataset.drift_share
    ));
    let table = |cols: &[ColumnDrift]| -> String {
        let rows = column_rows(cols);
        let mut t = String::from("<table>");
        for (i, row) in rows.iter().enumerate() {
            let class = if i > 0 && cols[i - 1].drifted { " class=\"drift\"" } else { "" };
            t.push_str(&format!("<tr{class}>"));
            for cell in row {
                if i == 0 {
                    t.push_str(&format!("<th>{}</th>", esc(cell)))
                } else {
                    t.push_str(&format!("<td>{}</td>", esc(cell)))
                }
            }
            t.push_str("</tr>");
        }
        t.push_str("</table>");
        t
    };
    html.push_str(&table(&r.columns));
    let renderer = kiln_store::PlotChartRenderer::default();
    if !r.charts.is_empty() {
        html.push_str("<h2>Drifted columns</h2>");
    }
    for (i, (name, h)) in r.charts.iter().enumerate() {
        let file = format!("hist_{i:02}_{}.png", safe_name(name));
        let title = format!("{name}: reference and current");
        let png = renderer.overlaid_histogram_chart(&title, name, &h.edges, &h.labels, &h.reference, &h.current)?;
        std::fs::write(dir.join(&file), png).with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
        html.push_str(&format!("<h3>{}</h3><img src=\"{file}\" alt=\"{}\" width=\"720\">", esc(name), esc(name)));
    }
    if let Some(p) = &r.prediction {
        html.push_str("<h2>Prediction drift</h2>");
        html.push_str(&table(std::slice::from_ref(p)));
    }
    html.push_str("</body></html>\n");
    std::fs::write(dir.join("report.html"), html).with_context(|| format!("cannot write {}", dir.display()))?;
    std::fs::write(dir.join("drift.json"), serde_json::to_vec_pretty(r)?)?;
    Ok(())
}
