//! Times kiln's native tree evaluation against the libraries' own predict, on one thread: a LightGBM regression of
//! 500 trees x 31 leaves over 20 features (the model of `scripts/bench_serve.sh`), and an XGBoost regression of 500
//! trees of depth 6 on the same rows (5% of the first two features missing; LightGBM also without them); and a
//! smartcore random forest of 200 trees (`max_depth: 10`, `min_samples_leaf: 5`) fitted on 20,000 of those rows
//! without missing values. Prints single-row latency (µs: the median of five passes' means per row, each pass over
//! 4,000 of the first 20,000 rows) and the time of one 1,000,000-row batch (s; the forest: 200,000 rows), and checks
//! that both paths give the same bits.
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
/// passes over the single rows (see [`per_row_us`])
const PASSES: usize = 5;
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

/// µs per call of `predict` over the first [`SINGLE_ROWS`] rows of `x`: the median of [`PASSES`] passes' means, each
/// over its own fifth of the rows, so that a moment of a busy machine moves one pass rather than the figure.
fn per_row_us(x: &Matrix, predict: impl Fn(&[f64]) -> f64) -> f64 {
    let n = SINGLE_ROWS.min(x.n_rows);
    let per_pass = (n / PASSES).max(1);
    let mut means: Vec<f64> = (0..PASSES)
        .map(|k| {
            let rows = (k * per_pass).min(n)..((k + 1) * per_pass).min(n);
            let count = rows.len().max(1);
            seconds(|| {
                for i in rows {
                    black_box(predict(black_box(x.row(i))));
                }
            }) / count as f64
                * 1e6
        })
        .collect();
    means.sort_by(f64::total_cmp);
    means[PASSES / 2]
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
    random_forest(&train, &y);

    let params: LightGbmParams = serde_yaml::from_str("{num_iterations: 500, num_leaves: 31}").unwrap();
    let model = params.check().unwrap().fit(&train, &y, None).unwrap();
    assert!(model.is_native() && model.num_trees() == 500);
    let single =
        (per_row_us(&x, |r| model.predict_row(r).unwrap()), per_row_us(&x, |r| model.predict_row_library(r).unwrap()));
    let (mut native, mut library) = (Vec::new(), Vec::new());
    let batch =
        (seconds(|| native = model.predict(&x).unwrap()), seconds(|| library = model.predict_library(&x).unwrap()));
    assert!(same_bits(&native, &library), "LightGBM: native and library differ");
    report("LightGBM 4.7.0, 500 trees x 31 leaves, 20 features, one thread", single, batch, n_rows);
    // the same rows without missing values: the native walk's one-comparison path
    let complete = Matrix::new(x.names.clone(), x.data.iter().map(|v| if v.is_nan() { 0.5 } else { *v }).collect());
    let single = (
        per_row_us(&complete, |r| model.predict_row(r).unwrap()),
        per_row_us(&complete, |r| model.predict_row_library(r).unwrap()),
    );
    let batch = (
        seconds(|| native = model.predict(&complete).unwrap()),
        seconds(|| library = model.predict_library(&complete).unwrap()),
    );
    assert!(same_bits(&native, &library), "LightGBM: native and library differ on complete rows");
    report("  the same rows, no value missing", single, batch, n_rows);

    let params: XgBoostParams = serde_yaml::from_str("{num_boost_round: 500, max_depth: 6}").unwrap();
    let model = params.check().unwrap().fit(&train, &y, None).unwrap();
    assert!(model.is_native());
    let single =
        (per_row_us(&x, |r| model.predict_row(r).unwrap()), per_row_us(&x, |r| model.predict_row_library(r).unwrap()));
    let batch =
        (seconds(|| native = model.predict(&x).unwrap()), seconds(|| library = model.predict_library(&x).unwrap()));
    assert!(same_bits(&native, &library), "XGBoost: native and library differ");
    report("XGBoost 3.2.0, 500 trees of depth 6, 20 features, one thread", single, batch, n_rows);
}

/// `x` with its missing values as 0.5.
fn complete(x: &Matrix) -> Matrix {
    Matrix::new(x.names.clone(), x.data.iter().map(|v| if v.is_nan() { 0.5 } else { *v }).collect())
}

fn random_forest(train: &Matrix, y: &[f64]) {
    let params: RandomForestParams =
        serde_yaml::from_str("{n_trees: 200, max_depth: 10, min_samples_leaf: 5}").unwrap();
    let train = complete(&train.rows(0, FOREST_TRAIN_ROWS));
    let fit = Instant::now();
    let model = params.check(false).unwrap().fit(&train, &y[..FOREST_TRAIN_ROWS], None).unwrap();
    let fit = fit.elapsed().as_secs_f64();
    let bytes = model.to_bytes().unwrap();
    let mut loaded = None;
    let load = seconds(|| loaded = Some(SmartcoreModel::from_bytes(&bytes).unwrap()));
    assert!(model.is_native() && loaded.is_some_and(|m| m.is_native()));
    let x = complete(&rows(FOREST_ROWS, 3).0);
    let single = (
        per_row_us(&x, |r| model.predict_row(r).unwrap()),
        per_row_us(&x, |r| model.predict_library(&Matrix::new(x.names.clone(), r.to_vec())).unwrap()[0]),
    );
    let (mut native, mut library) = (Vec::new(), Vec::new());
    let batch =
        (seconds(|| native = model.predict(&x).unwrap()), seconds(|| library = model.predict_library(&x).unwrap()));
    assert!(same_bits(&native, &library), "random forest: native and smartcore differ");
    report(
        "smartcore 0.7.0 random forest, 200 trees, max_depth 10, 20 features, one thread",
        single,
        batch,
        FOREST_ROWS,
    );
    println!(
        "  fit {fit:.1} s; loading the model ({} MB of JSON, native trees included) {load:.2} s",
        bytes.len() >> 20
    );
}
