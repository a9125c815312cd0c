//! kiln's TPE (and random search) on three benchmark objectives, for `scripts/bench_tpe.py`, which runs Optuna's
//! TPESampler on the same objectives and compares them.
//!
//! `tpe_bench quality [seeds] [trials]`: for each objective (a 4-D mixed space, Branin, 6-D Hartmann), sampler and
//! seed, the best value so far after 50, 100 and 200 trials, as JSON. `tpe_bench overhead [trials]`: the sampler's
//! time per trial (the objective is a few flops) over `trials` TPE trials on the mixed space, as JSON means per
//! block of 100 trials, in milliseconds (`tpe_bench overhead 1000 independent` times the independent sampler only).
//! `tpe_bench workers [seeds] [trials] [k]`: `k` workers asking in turns (each round's `k` trials are drawn while the
//! round's earlier ones run, then all are told), TPE with and without the constant liar, the best value after each
//! quarter of the trials per objective and seed. `tpe_bench conditional [seeds] [trials]`: a model competition (a
//! categorical `model` picking Branin's or Hartmann's own parameters, one shared), TPE independent, multivariate and
//! multivariate with `group`, the best value after each quarter of the trials per seed. `tpe_bench floor [trials]`:
//! what of the sampler's time per trial is the scoring Optuna's algorithm defines (the 24 candidates' log densities
//! under `l` and `g`, whose kernels are the finished trials), at every hundredth trial of the overhead run, beside
//! the whole draw's time at that trial; in milliseconds, as JSON.

use std::collections::BTreeMap;
use std::time::Instant;

use kiln_train::tune::{
    Direction, Distribution, FrozenTrial, ParamValue, RandomSampler, Sampler, TpeOptions, TpeSampler, TrialDraw,
    TrialState, sample_trial,
};

type Objective = fn(&BTreeMap<String, f64>) -> f64;
type Space = fn() -> Vec<(String, Distribution)>;

/// The 4-D mixed space: a float, a log float, an int and a categorical.
fn mixed_space() -> Vec<(String, Distribution)> {
    let c = |s: &str| ParamValue::Str(s.into());
    vec![
        ("x".into(), Distribution::float(-5.0, 5.0, false, None).unwrap()),
        ("lr".into(), Distribution::float(1e-5, 1.0, true, None).unwrap()),
        ("n".into(), Distribution::int(1, 100, false, 1).unwrap()),
        ("cat".into(), Distribution::categorical(vec![c("a"), c("b"), c("c"), c("d")]).unwrap()),
    ]
}

/// Minimum 0 at x = 1.3, lr = 10^-2.5, n = 37, cat = b.
fn mixed(p: &BTreeMap<String, f64>) -> f64 {
    let cat = [0.3, 0.0, 0.6, 0.9][p["cat"] as usize];
    (p["x"] - 1.3) * (p["x"] - 1.3) / 10.0
        + (p["lr"].log10() + 2.5) * (p["lr"].log10() + 2.5) / 4.0
        + (p["n"] - 37.0).abs() / 50.0
        + cat
}

fn branin_space() -> Vec<(String, Distribution)> {
    vec![
        ("x1".into(), Distribution::float(-5.0, 10.0, false, None).unwrap()),
        ("x2".into(), Distribution::float(0.0, 15.0, false, None).unwrap()),
    ]
}

/// Minimum 0.397887.
fn branin(p: &BTreeMap<String, f64>) -> f64 {
    let (x1, x2) = (p["x1"], p["x2"]);
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    let t = 1.0 / (8.0 * pi);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

fn hartmann_space() -> Vec<(String, Distribution)> {
    (0..6).map(|i| (format!("x{i}"), Distribution::float(0.0, 1.0, false, None).unwrap())).collect()
}

/// Minimum -3.32237.
fn hartmann6(p: &BTreeMap<String, f64>) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    let x: Vec<f64> = (0..6).map(|i| p[&format!("x{i}")]).collect();
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]) * (x[j] - P[i][j])).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// Runs `trials` trials, returning each trial's value and the seconds the sampler took for it.
fn run(sampler: &mut dyn Sampler, space: &[(String, Distribution)], f: Objective, trials: i64) -> Vec<(f64, f64)> {
    let mut history: Vec<FrozenTrial> = Vec::with_capacity(trials as usize);
    let mut out = Vec::with_capacity(trials as usize);
    for number in 0..trials {
        let start = Instant::now();
        let mut t = sample_trial(sampler, &history, Direction::Minimize, number, space).expect("sampling works");
        let secs = start.elapsed().as_secs_f64();
        let v = f(&t.params);
        t.value = Some(v);
        t.state = TrialState::Complete;
        history.push(t);
        out.push((v, secs));
    }
    out
}

/// [`run`] by `k` workers in turns: each round's trials are drawn one after the other, the earlier ones of the round
/// running (with their params) while the later ones are drawn, then all of them are told. Returns the values.
fn run_workers(
    sampler: &mut dyn Sampler,
    space: &[(String, Distribution)],
    f: Objective,
    trials: i64,
    k: i64,
) -> Vec<f64> {
    let mut history: Vec<FrozenTrial> = Vec::with_capacity(trials as usize);
    for round in (0..trials).step_by(k as usize) {
        let first = history.len();
        for number in round..(round + k).min(trials) {
            let t = sample_trial(sampler, &history, Direction::Minimize, number, space).expect("sampling works");
            history.push(t);
        }
        for t in &mut history[first..] {
            t.value = Some(f(&t.params));
            t.state = TrialState::Complete;
        }
    }
    history.iter().map(|t| t.value.expect("every trial is told")).collect()
}

/// A model competition: `model` picks `branin` (its own `b.x1`, `b.x2`) or `hartmann` (its own `h.x0`..`h.x5`);
/// `s` is shared. The value is the branch's (Branin / 10, minimum 0.0398; Hartmann + 3.32237, minimum 0) plus
/// `(s - 0.5)^2`. Drawn in that order, as `kiln tune` draws a joint study; the trial is returned complete.
fn draw_competition(sampler: &mut dyn Sampler, history: &[FrozenTrial], number: i64) -> FrozenTrial {
    let model =
        Distribution::categorical(vec![ParamValue::Str("branin".into()), ParamValue::Str("hartmann".into())]).unwrap();
    let mut draw = TrialDraw::start(sampler, history, number, BTreeMap::new());
    let m = draw.suggest(sampler, history, Direction::Minimize, "model", &model).expect("sampling works");
    let (prefix, space) = if m == 0.0 { ("b.", branin_space()) } else { ("h.", hartmann_space()) };
    for (name, dist) in space {
        draw.suggest(sampler, history, Direction::Minimize, &format!("{prefix}{name}"), &dist).expect("sampling works");
    }
    let shared = Distribution::float(0.0, 1.0, false, None).unwrap();
    draw.suggest(sampler, history, Direction::Minimize, "s", &shared).expect("sampling works");
    let mut t = draw.trial;
    let own: BTreeMap<String, f64> =
        t.params.iter().filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), *v))).collect();
    let branch = if m == 0.0 { branin(&own) / 10.0 } else { hartmann6(&own) + 3.32237 };
    t.value = Some(branch + (t.params["s"] - 0.5) * (t.params["s"] - 0.5));
    t.state = TrialState::Complete;
    t
}

/// At a history of `n` trials: the median over repeats of a whole draw of trial `n` (a copy of the sampler, so that
/// the run's own generator is left alone), and of the part of it Optuna's algorithm defines as kernel work: for each
/// estimator pair the draw builds (one per parameter, or one over the space when multivariate), the log densities
/// of 24 candidates under `l` and under `g`. In milliseconds, with `n`.
fn floor_at(
    tpe: &TpeSampler,
    options: &TpeOptions,
    history: &[FrozenTrial],
    space: &[(String, Distribution)],
) -> serde_json::Value {
    const REPEATS: usize = 41;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        1e3 * v[v.len() / 2]
    };
    let draw = median(
        (0..REPEATS)
            .map(|_| {
                let mut copy = tpe.clone();
                let start = Instant::now();
                sample_trial(&mut copy, history, Direction::Minimize, history.len() as i64, space)
                    .expect("sampling works");
                start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let trials: Vec<&FrozenTrial> = history.iter().collect();
    let groups: Vec<Vec<(&str, &Distribution)>> = if options.multivariate {
        vec![space.iter().map(|(n, d)| (n.as_str(), d)).collect()]
    } else {
        space.iter().map(|(n, d)| vec![(n.as_str(), d)]).collect()
    };
    let mut rng = kiln_domain::NumpyRandomState::new(1);
    let pairs: Vec<_> = groups
        .iter()
        .map(|g| {
            let (l, g) = tpe.estimators(&trials, Direction::Minimize, g);
            let candidates = l.sample(&mut rng, options.n_ei_candidates);
            (l, g, candidates)
        })
        .collect();
    let kernels = median(
        (0..REPEATS)
            .map(|_| {
                let start = Instant::now();
                for (l, g, c) in &pairs {
                    std::hint::black_box((l.log_pdf(c), g.log_pdf(c)));
                }
                start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    serde_json::json!({"trials": history.len(), "draw_ms": draw, "scoring_ms": kernels})
}

/// The best of the first `n` values for each checkpoint `n`.
fn best_at(values: &[f64], checkpoints: &[usize]) -> Vec<f64> {
    checkpoints.iter().map(|&n| values[..n].iter().copied().fold(f64::INFINITY, f64::min)).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("quality", String::as_str);
    let objectives: [(&str, Space, Objective); 3] =
        [("mixed4", mixed_space, mixed), ("branin", branin_space, branin), ("hartmann6", hartmann_space, hartmann6)];
    match mode {
        "quality" => {
            let seeds: u32 = args.get(1).map_or(30, |s| s.parse().expect("seeds"));
            let trials: i64 = args.get(2).map_or(200, |s| s.parse().expect("trials"));
            let checkpoints: Vec<usize> = [50, 100, 200].into_iter().filter(|&c| c as i64 <= trials).collect();
            let mut out = serde_json::Map::new();
            for (name, space, f) in objectives {
                let space = space();
                let mut per_sampler = serde_json::Map::new();
                for sampler in ["tpe", "random"] {
                    let rows: Vec<Vec<f64>> = (0..seeds)
                        .map(|seed| {
                            let mut s: Box<dyn Sampler> = match sampler {
                                "tpe" => Box::new(TpeSampler::new(TpeOptions::default(), seed)),
                                _ => Box::new(RandomSampler::new(seed)),
                            };
                            let values: Vec<f64> = run(s.as_mut(), &space, f, trials).iter().map(|v| v.0).collect();
                            best_at(&values, &checkpoints)
                        })
                        .collect();
                    per_sampler.insert(sampler.into(), serde_json::json!(rows));
                }
                out.insert(name.into(), serde_json::Value::Object(per_sampler));
            }
            println!("{}", serde_json::json!({"checkpoints": checkpoints, "results": out}));
        }
        "overhead" => {
            let trials: i64 = args.get(1).map_or(1000, |s| s.parse().expect("trials"));
            let mut out = serde_json::Map::new();
            // a third argument, `independent` or `multivariate`, times one kind only (for a profile)
            let only = args.get(2).map(String::as_str);
            for multivariate in [false, true] {
                if only.is_some_and(|o| o != if multivariate { "multivariate" } else { "independent" }) {
                    continue;
                }
                let mut tpe = TpeSampler::new(TpeOptions { multivariate, ..TpeOptions::default() }, 0);
                let start = Instant::now();
                let values = run(&mut tpe, &mixed_space(), mixed, trials);
                let total = start.elapsed().as_secs_f64();
                let blocks: Vec<f64> =
                    values.chunks(100).map(|c| 1e3 * c.iter().map(|v| v.1).sum::<f64>() / c.len() as f64).collect();
                let key = if multivariate { "tpe_multivariate" } else { "tpe" };
                out.insert(
                    key.into(),
                    serde_json::json!({"ms_per_trial_by_100": blocks, "ms_per_trial": 1e3 * total / trials as f64}),
                );
            }
            println!("{}", serde_json::Value::Object(out));
        }
        "floor" => {
            let trials: usize = args.get(1).map_or(1000, |s| s.parse().expect("trials"));
            let mut out = serde_json::Map::new();
            for multivariate in [false, true] {
                let options = TpeOptions { multivariate, ..TpeOptions::default() };
                let space = mixed_space();
                let mut tpe = TpeSampler::new(options, 0);
                let mut history: Vec<FrozenTrial> = Vec::with_capacity(trials);
                let mut rows = Vec::new();
                for number in 0..trials {
                    if number > 0 && number % 100 == 0 {
                        rows.push(floor_at(&tpe, &options, &history, &space));
                    }
                    let mut t = sample_trial(&mut tpe, &history, Direction::Minimize, number as i64, &space)
                        .expect("sampling works");
                    t.value = Some(mixed(&t.params));
                    t.state = TrialState::Complete;
                    history.push(t);
                }
                let key = if multivariate { "tpe_multivariate" } else { "tpe" };
                out.insert(key.into(), serde_json::json!(rows));
            }
            println!("{}", serde_json::Value::Object(out));
        }
        "workers" => {
            let seeds: u32 = args.get(1).map_or(30, |s| s.parse().expect("seeds"));
            let trials: i64 = args.get(2).map_or(100, |s| s.parse().expect("trials"));
            let k: i64 = args.get(3).map_or(4, |s| s.parse().expect("workers"));
            let checkpoints: Vec<usize> = (1..=4).map(|q| (trials as usize * q) / 4).collect();
            let mut out = serde_json::Map::new();
            for (name, space, f) in objectives {
                let space = space();
                let mut per_sampler = serde_json::Map::new();
                for constant_liar in [false, true] {
                    let rows: Vec<Vec<f64>> = (0..seeds)
                        .map(|seed| {
                            let options = TpeOptions { constant_liar, ..TpeOptions::default() };
                            let mut tpe = TpeSampler::new(options, seed);
                            best_at(&run_workers(&mut tpe, &space, f, trials, k), &checkpoints)
                        })
                        .collect();
                    per_sampler.insert(if constant_liar { "liar" } else { "honest" }.into(), serde_json::json!(rows));
                }
                out.insert(name.into(), serde_json::Value::Object(per_sampler));
            }
            println!("{}", serde_json::json!({"checkpoints": checkpoints, "workers": k, "results": out}));
        }
        "conditional" => {
            let seeds: u32 = args.get(1).map_or(30, |s| s.parse().expect("seeds"));
            let trials: i64 = args.get(2).map_or(200, |s| s.parse().expect("trials"));
            let checkpoints: Vec<usize> = (1..=4).map(|q| (trials as usize * q) / 4).collect();
            let mut out = serde_json::Map::new();
            for (name, multivariate, group) in
                [("independent", false, false), ("multivariate", true, false), ("group", true, true)]
            {
                let rows: Vec<Vec<f64>> = (0..seeds)
                    .map(|seed| {
                        let options = TpeOptions { multivariate, group, ..TpeOptions::default() };
                        let mut tpe = TpeSampler::new(options, seed);
                        let mut history: Vec<FrozenTrial> = Vec::with_capacity(trials as usize);
                        for number in 0..trials {
                            let t = draw_competition(&mut tpe, &history, number);
                            history.push(t);
                        }
                        let values: Vec<f64> = history.iter().map(|t| t.value.expect("told")).collect();
                        best_at(&values, &checkpoints)
                    })
                    .collect();
                out.insert(name.into(), serde_json::json!(rows));
            }
            println!("{}", serde_json::json!({"checkpoints": checkpoints, "results": out}));
        }
        other => panic!("unknown mode `{other}`: quality, overhead, workers or conditional"),
    }
}
