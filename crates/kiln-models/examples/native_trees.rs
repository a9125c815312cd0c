//! Times kiln's native tree evaluation against the libraries' own predict, on one thread: a LightGBM regression of
//! 500 trees x 31 leaves over 20 features (the model of `scripts/bench_serve.sh`), and an XGBoost regression of 500
//! trees of depth 6 on the same rows (5% of the first two features missing; LightGBM also without them); and a
//! smartcore random forest of 200 trees (`max_depth: 10`, `min_samples_leaf: 5`) fitted on 20,000 of those rows
//! without missing values. Prints single-row latency (µs: the median of 15 passes' means per row, each pass over its
//! own 1,333 of the first 20,000 rows, after 1,000 of them untimed to bring the model back into the caches; the passes
//! of every model and path take turns, so that a stretch of a slow
//! machine, which on the 2-vCPU development VM lasts up to a second or two and slows every thread by about half,
//! falls on a few passes of each figure rather than on one figure whole) and the time of one 1,000,000-row batch (s;
//! the forest: 200,000 rows), and checks that both paths give the same bits, batch and single rows.
//!
//! ```text
//! cargo run --release -p kiln-models --example native_trees            # ROWS=1000000 by default
//! ROWS=200000 cargo run --release -p kiln-models --example native_trees
//! ```

use std::hint::black_box;
use std::time::Instant;

use kiln_domain::{Estimator, Matrix, Predictor};
use kiln_models::{LightGbmParams, RandomForestParams, SmartcoreModel, XgBoostParams};

const FEATURES: usize = 20;
const TRAIN_ROWS: usize = 50_000;
const SINGLE_ROWS: usize = 20_000;
/// passes over the single rows (see [`SingleRows`])
const PASSES: usize = 15;
/// rows each path predicts untimed before each of its passes
const WARM_ROWS: usize = 1000;
const FOREST_TRAIN_ROWS: usize = 20_000;
const FOREST_ROWS: usize = 200_000;

/// `n` rows of 20 features in [-1, 1) (5% NaN in the first two), and a nonlinear target with noise.
fn rows(n: usize, mut state: u64) -> (Matrix, Vec<f64>) {
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut data = Vec::with_capacity(n * FEATURES);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let row: Vec<f64> = (0..FEATURES).map(|_| next()).collect();
        let target = (3.0 * row[0]).sin() + row[1] * row[2] + row[3].powi(2) + 0.5 * row[4..].iter().sum::<f64>();
        y.push(target + 0.1 * next());
        data.extend(row.iter().enumerate().map(|(j, &v)| if j < 2 && next() > 0.9 { f64::NAN } else { v }));
    }
    ((Matrix::new((0..FEATURES).map(|j| format!("f{j}")).collect(), data)), y)
}

fn seconds(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// One path's single-row prediction.
type Predict<'a> = Box<dyn Fn(&[f64]) -> f64 + 'a>;

/// Single-row timings taken in turns: each [`SingleRows::pass`] times every registered path over the next
/// [`PASSES`]th of the first [`SINGLE_ROWS`] rows of its matrix; a figure is the median over the passes of the mean
/// µs per call.
struct SingleRows<'a> {
    paths: Vec<(&'a Matrix, Predict<'a>)>,
    means: Vec<Vec<f64>>,
    done: usize,
}

impl<'a> SingleRows<'a> {
    fn new() -> Self {
        SingleRows { paths: Vec::new(), means: Vec::new(), done: 0 }
    }

    /// Registers a path; returns its index for [`SingleRows::us`].
    fn add(&mut self, x: &'a Matrix, predict: impl Fn(&[f64]) -> f64 + 'a) -> usize {
        self.paths.push((x, Box::new(predict)));
        self.means.push(Vec::new());
        self.paths.len() - 1
    }

    fn pass(&mut self) {
        let k = self.done;
        for ((x, predict), means) in self.paths.iter().zip(&mut self.means) {
            let n = SINGLE_ROWS.min(x.n_rows);
            let per_pass = (n / PASSES).max(1);
            let rows = (k * per_pass).min(n)..((k + 1) * per_pass).min(n);
            let count = rows.len().max(1);
            // untimed first: the other paths' passes have pushed this model out of the caches, where a server that
            // answers one model's rows keeps it
            for i in rows.clone().take(WARM_ROWS) {
                black_box(predict(black_box(x.row(i))));
            }
            means.push(
                seconds(|| {
                    for i in rows {
                        black_box(predict(black_box(x.row(i))));
                    }
                }) / count as f64
                    * 1e6,
            );
        }
        self.done += 1;
    }

    fn us(&self, path: usize) -> f64 {
        let mut means = self.means[path].clone();
        means.sort_by(f64::total_cmp);
        means[means.len() / 2]
    }
}

fn report(name: &str, single: (f64, f64), batch: (f64, f64), rows: usize) {
    println!("{name}");
    println!("  single row: native {:.2} us, library {:.2} us ({:.1}x)", single.0, single.1, single.1 / single.0);
    println!("  {rows}-row batch: native {:.2} s, library {:.2} s ({:.1}x)", batch.0, batch.1, batch.1 / batch.0);
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits())
}

fn main() {
    let n_rows: usize = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let (train, y) = rows(TRAIN_ROWS, 1);
    let (x, _) = rows(n_rows, 2);
    // the same rows without missing values: the native walk's one-comparison path
    let complete_x = complete(&x);

    // the forest: fitted on 20,000 rows without missing values, scored on rows of its own
    let params: RandomForestParams =
        serde_yaml::from_str("{n_trees: 200, max_depth: 10, min_samples_leaf: 5}").unwrap();
    let forest_train = complete(&train.rows(0, FOREST_TRAIN_ROWS));
    let fit = Instant::now();
    let forest = params.check(false).unwrap().fit(&forest_train, &y[..FOREST_TRAIN_ROWS], None).unwrap();
    let forest_fit = fit.elapsed().as_secs_f64();
    let bytes = forest.to_bytes().unwrap();
    let mut loaded = None;
    let forest_load = seconds(|| loaded = Some(SmartcoreModel::from_bytes(&bytes).unwrap()));
    assert!(forest.is_native() && loaded.is_some_and(|m| m.is_native()));
    let forest_x = complete(&rows(FOREST_ROWS, 3).0);

    let params: LightGbmParams = serde_yaml::from_str("{num_iterations: 500, num_leaves: 31}").unwrap();
    let lgb = params.check().unwrap().fit(&train, &y, None).unwrap();
    assert!(lgb.is_native() && lgb.num_trees() == 500);
    let params: XgBoostParams = serde_yaml::from_str("{num_boost_round: 500, max_depth: 6}").unwrap();
    let xgb = params.check().unwrap().fit(&train, &y, None).unwrap();
    assert!(xgb.is_native());

    // single rows: the same bits on both paths, then every path's passes in turns
    for i in 0..SINGLE_ROWS.min(n_rows) {
        let (r, c) = (x.row(i), complete_x.row(i));
        assert_eq!(lgb.predict_row(r).unwrap().to_bits(), lgb.predict_row_library(r).unwrap().to_bits());
        assert_eq!(lgb.predict_row(c).unwrap().to_bits(), lgb.predict_row_library(c).unwrap().to_bits());
        assert_eq!(xgb.predict_row(r).unwrap().to_bits(), xgb.predict_row_library(r).unwrap().to_bits());
    }
    let mut single = SingleRows::new();
    let forest_row = |r: &[f64]| forest.predict_library(&Matrix::new(forest_x.names.clone(), r.to_vec())).unwrap()[0];
    let paths = [
        (single.add(&forest_x, |r| forest.predict_row(r).unwrap()), single.add(&forest_x, forest_row)),
        (single.add(&x, |r| lgb.predict_row(r).unwrap()), single.add(&x, |r| lgb.predict_row_library(r).unwrap())),
        (
            single.add(&complete_x, |r| lgb.predict_row(r).unwrap()),
            single.add(&complete_x, |r| lgb.predict_row_library(r).unwrap()),
        ),
        (single.add(&x, |r| xgb.predict_row(r).unwrap()), single.add(&x, |r| xgb.predict_row_library(r).unwrap())),
    ];
    for _ in 0..PASSES {
        single.pass();
    }
    let us = |(native, library): (usize, usize)| (single.us(native), single.us(library));

    let (mut native, mut library) = (Vec::new(), Vec::new());
    let batch = (
        seconds(|| native = forest.predict(&forest_x).unwrap()),
        seconds(|| library = forest.predict_library(&forest_x).unwrap()),
    );
    assert!(same_bits(&native, &library), "random forest: native and smartcore differ");
    report(
        "smartcore 0.7.0 random forest, 200 trees, max_depth 10, 20 features, one thread",
        us(paths[0]),
        batch,
        FOREST_ROWS,
    );
    println!(
        "  fit {forest_fit:.1} s; loading the model ({} MB of JSON, native trees included) {forest_load:.2} s",
        bytes.len() >> 20
    );
    let batch = (seconds(|| native = lgb.predict(&x).unwrap()), seconds(|| library = lgb.predict_library(&x).unwrap()));
    assert!(same_bits(&native, &library), "LightGBM: native and library differ");
    report("LightGBM 4.7.0, 500 trees x 31 leaves, 20 features, one thread", us(paths[1]), batch, n_rows);
    let batch = (
        seconds(|| native = lgb.predict(&complete_x).unwrap()),
        seconds(|| library = lgb.predict_library(&complete_x).unwrap()),
    );
    assert!(same_bits(&native, &library), "LightGBM: native and library differ on complete rows");
    report("  the same rows, no value missing", us(paths[2]), batch, n_rows);
    let batch = (seconds(|| native = xgb.predict(&x).unwrap()), seconds(|| library = xgb.predict_library(&x).unwrap()));
    assert!(same_bits(&native, &library), "XGBoost: native and library differ");
    report("XGBoost 3.2.0, 500 trees of depth 6, 20 features, one thread", us(paths[3]), batch, n_rows);
}

/// `x` with its missing values as 0.5.
fn complete(x: &Matrix) -> Matrix {
    Matrix::new(x.names.clone(), x.data.iter().map(|v| if v.is_nan() { 0.5 } else { *v }).collect())
}
