//! The tuning core against Optuna 4.9 itself (`.venv/bin/python`, `optuna==4.9.0`): the generator, the truncated
//! normal, the distribution JSON text both ways, the Parzen estimators (split, weights, sigmas, log densities) on
//! fixed histories, whole studies (random, grid, TPE independent and multivariate: the same suggestions), and the
//! pruners' decisions. Floats are compared within 1e-12 (relative where the value is large), texts exactly.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::sampler::add_to_groups;
use super::*;
use kiln_domain::NumpyRandomState;

/// Runs `script` with the project's `.venv/bin/python`, `input` on stdin, and parses the JSON it prints.
fn python(script: &str, input: &Value) -> Value {
    let py = format!("{}/../../.venv/bin/python", std::env::var("CARGO_MANIFEST_DIR").unwrap());
    assert!(Path::new(&py).exists(), "{py} is missing: run `make venv` to create the Python reference environment");
    let mut child = Command::new(py)
        .arg("-c")
        .arg(format!("import json, sys, math, warnings\nwarnings.simplefilter('ignore')\nimport optuna\noptuna.logging.set_verbosity(optuna.logging.ERROR)\nIN = json.load(sys.stdin)\n{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout)))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
}

/// Equal within 1e-12, relative above 1; both NaN or the same infinity count as equal.
fn close(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn assert_close(what: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(close(*a, *b), "{what}[{i}]: kiln {a:e} vs optuna {b:e} (diff {:e})", a - b);
    }
}

#[test]
fn the_generator_draws_what_numpy_random_state_draws() {
    let expected = python(
        r#"
import numpy as np
out = {}
for seed in [0, 1, 42, 4294967295]:
    rs = np.random.RandomState(seed)
    d = list(rs.random_sample(700))
    items = list(range(50)); rs.shuffle(items)
    c = rs.choice(4, p=[0.1, 0.2, 0.3, 0.4], size=20).tolist()
    out[str(seed)] = {"doubles": d, "shuffled": items, "choice": c, "uniform": rs.uniform(-3.0, 5.0)}
print(json.dumps(out))
"#,
        &json!(null),
    );
    for seed in [0u32, 1, 42, u32::MAX] {
        let e = &expected[seed.to_string()];
        let mut rng = NumpyRandomState::new(seed);
        let doubles: Vec<f64> = (0..700).map(|_| rng.next_f64()).collect();
        assert_eq!(doubles, floats(&e["doubles"]), "seed {seed}");
        let mut items: Vec<u64> = (0..50).collect();
        rng.shuffle(&mut items);
        let theirs: Vec<u64> = e["shuffled"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(items, theirs, "seed {seed}");
        let c: Vec<u64> = rng.choice_weighted(&[0.1, 0.2, 0.3, 0.4], 20).into_iter().map(|i| i as u64).collect();
        let theirs: Vec<u64> = e["choice"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(c, theirs, "seed {seed}");
        assert_eq!(rng.uniform(-3.0, 5.0), e["uniform"].as_f64().unwrap());
    }
}

#[test]
fn the_truncated_normal_matches_optuna_and_libm() {
    let xs: Vec<f64> = vec![
        -40.0, -25.0, -20.0, -19.5, -8.0, -6.5, -5.9, -3.0, -2.0, -1.3, -1.0, -0.9, -0.5, -0.2, -1e-9, 0.0, 1e-30,
        1e-9, 0.1, 0.3, 0.7, 0.8437, 0.85, 1.0, 1.2, 1.3, 2.0, 2.8, 2.9, 4.0, 5.9, 6.0, 6.5, 10.0, 27.0, 30.0,
    ];
    let intervals: Vec<(f64, f64)> = vec![
        (-3.0, -1.0),
        (-30.0, -25.0),
        (1.0, 3.0),
        (25.0, 30.0),
        (-0.5, 0.5),
        (-1e-3, 1e-3),
        (-2.0, 0.0),
        (0.0, 2.0),
        (-5.0, 7.0),
        (6.5, 9.0),
        (-40.0, 40.0),
        (-0.01, 50.0),
    ];
    let qs = [0.0, 1e-12, 0.001, 0.1, 0.37, 0.5, 0.9, 0.999999, 1.0];
    let (mut qq, mut aa, mut bb) = (vec![], vec![], vec![]);
    for &(a, b) in &intervals {
        for &q in &qs {
            qq.push(q);
            aa.push(a);
            bb.push(b);
        }
    }
    let expected = python(
        r#"
import numpy as np
from optuna.samplers._tpe import _truncnorm as t
xs = np.array(IN["xs"]); a = np.array(IN["a"]); b = np.array(IN["b"]); q = np.array(IN["q"])
ia = np.array([p[0] for p in IN["iv"]]); ib = np.array([p[1] for p in IN["iv"]])
print(json.dumps({
  "erf": [math.erf(x) for x in xs], "erfc": [math.erfc(x) for x in xs],
  "log_ndtr": t._log_ndtr(xs).tolist(),
  "mass": t._log_gauss_mass(ia, ib).tolist(),
  "ppf": t.ppf(q, a, b).tolist(),
}))
"#,
        &json!({"xs": xs, "a": aa, "b": bb, "q": qq, "iv": intervals}),
    );
    let ours: Vec<f64> = xs.iter().map(|&x| truncnorm::erf(x)).collect();
    assert_close("erf", &ours, &floats(&expected["erf"]));
    let ours: Vec<f64> = xs.iter().map(|&x| truncnorm::erfc(x)).collect();
    // erfc reaches 1e-300: relative
    for (i, (a, b)) in ours.iter().zip(floats(&expected["erfc"])).enumerate() {
        assert!(*a == b || (a - b).abs() <= 1e-13 * b.abs(), "erfc({}) {a:e} vs {b:e}", xs[i]);
    }
    let ours: Vec<f64> = xs.iter().map(|&x| truncnorm::log_ndtr(x)).collect();
    assert_close("log_ndtr", &ours, &floats(&expected["log_ndtr"]));
    let ours: Vec<f64> = intervals.iter().map(|&(a, b)| truncnorm::log_gauss_mass(a, b)).collect();
    assert_close("log_gauss_mass", &ours, &floats(&expected["mass"]));
    let ours = truncnorm::ppf(&qq, &aa, &bb);
    // the inverse is Newton to a relative 1e-8 step: both stop at the same iterate up to rounding
    assert_close("ppf", &ours, &floats(&expected["ppf"]));
}

fn sample_distributions() -> Vec<Distribution> {
    let s = |v: &str| ParamValue::Str(v.into());
    vec![
        Distribution::float(0.0, 1.0, false, None).unwrap(),
        Distribution::float(1e-5, 0.3, true, None).unwrap(),
        Distribution::float(-2.5, 7.25, false, Some(0.25)).unwrap(),
        Distribution::float(0.0, 1.0, false, Some(0.3)).unwrap(),
        Distribution::float(0.1, 1.05, false, Some(0.2)).unwrap(),
        Distribution::float(-1e20, 1e16, false, None).unwrap(),
        Distribution::float(3.0, 3.0, false, None).unwrap(),
        Distribution::int(15, 255, false, 2).unwrap(),
        Distribution::int(1, 10, false, 4).unwrap(),
        Distribution::int(1, 1000, true, 1).unwrap(),
        Distribution::int(-5, 5, false, 1).unwrap(),
        Distribution::categorical(vec![s("gbdt"), s("dart")]).unwrap(),
        Distribution::categorical(vec![
            ParamValue::Null,
            ParamValue::Bool(true),
            ParamValue::Int(3),
            ParamValue::Float(0.5),
            ParamValue::Float(1.0),
            ParamValue::Float(1e-7),
            s("é \"q\" \\ \n 日本 😀"),
        ])
        .unwrap(),
    ]
}

/// The distribution as Optuna's constructor call, for the reference script.
fn optuna_ctor(d: &Distribution) -> Value {
    match d {
        Distribution::Float { low, high, log, step } => json!(["float", low, high, log, step]),
        Distribution::Int { low, high, log, step } => json!(["int", low, high, log, step]),
        Distribution::Categorical { choices } => json!(["cat", choices]),
    }
}

const MAKE_DIST: &str = r#"
from optuna.distributions import FloatDistribution, IntDistribution, CategoricalDistribution
def make(c):
    if c[0] == "float": return FloatDistribution(c[1], c[2], log=c[3], step=c[4])
    if c[0] == "int": return IntDistribution(c[1], c[2], log=c[3], step=c[4])
    return CategoricalDistribution(c[1])
"#;

#[test]
fn distribution_json_is_optunas_text_both_ways() {
    let dists = sample_distributions();
    let raw: Vec<Value> = vec![
        json!(["float", 0.1, 1.05, false, 0.2]),
        json!(["float", 0.0, 1.0, false, 0.3]),
        json!(["int", 1, 10, false, 4]),
    ];
    let expected = python(
        &format!(
            "{MAKE_DIST}\n{}",
            r#"
from optuna.distributions import distribution_to_json, json_to_distribution, UniformDistribution, LogUniformDistribution, DiscreteUniformDistribution, IntUniformDistribution, IntLogUniformDistribution
texts = [distribution_to_json(make(c)) for c in IN["ctors"]]
single = [make(c).single() for c in IN["ctors"]]
old = [distribution_to_json(d) for d in [UniformDistribution(0.0, 2.0), LogUniformDistribution(1e-3, 1.0),
       DiscreteUniformDistribution(0.0, 1.0, 0.25), IntUniformDistribution(0, 9, 3), IntLogUniformDistribution(1, 64)]]
old_new = [distribution_to_json(json_to_distribution(t).__class__.__mro__[0] and optuna.distributions._convert_old_distribution_to_new_distribution(json_to_distribution(t), True)) for t in old]
abbrev = ['{"type": "float", "low": 0.5, "high": 2, "log": true}', '{"type": "int", "low": 1, "high": 9, "step": 2}', '{"type": "categorical", "choices": ["a", 1, null]}']
abbrev_new = [distribution_to_json(json_to_distribution(t)) for t in abbrev]
print(json.dumps({"texts": texts, "single": single, "old": old, "old_new": old_new, "abbrev": abbrev, "abbrev_new": abbrev_new}))
"#
        ),
        &json!({"ctors": dists.iter().map(optuna_ctor).collect::<Vec<_>>(), "raw": raw}),
    );
    for (i, d) in dists.iter().enumerate() {
        let theirs = expected["texts"][i].as_str().unwrap();
        assert_eq!(d.distribution_json(), theirs, "to json: {d:?}");
        assert_eq!(&Distribution::from_distribution_json(theirs).unwrap(), d, "from json: {theirs}");
        assert_eq!(d.single(), expected["single"][i].as_bool().unwrap(), "single: {d:?}");
    }
    for key in ["old", "abbrev"] {
        for (text, new) in
            expected[key].as_array().unwrap().iter().zip(expected[&format!("{key}_new")].as_array().unwrap())
        {
            let d = Distribution::from_distribution_json(text.as_str().unwrap()).unwrap();
            assert_eq!(d.distribution_json(), new.as_str().unwrap(), "{text}");
        }
    }
}

#[test]
fn invalid_distributions_are_refused_as_optuna_refuses_them() {
    let cases: Vec<(Result<Distribution, TuneError>, &str)> = vec![
        (Distribution::float(1.0, 0.5, false, None), "`low <= high` must hold, but got low = 1, high = 0.5"),
        (Distribution::float(0.0, 1.0, true, None), "`low > 0` must hold with `log: true`, but got low = 0"),
        (Distribution::float(0.1, 1.0, true, Some(0.1)), "cannot have both `log: true` and a `step`"),
        (Distribution::float(0.0, 1.0, false, Some(0.0)), "`step > 0` must hold, but got step = 0"),
        (Distribution::int(0, 10, true, 1), "`low >= 1` must hold with `log: true`, but got low = 0"),
        (Distribution::int(1, 10, true, 2), "with `log: true` must have step 1, but got 2"),
        (Distribution::int(1, 10, false, -1), "`step > 0` must hold, but got step = -1"),
        (Distribution::categorical(vec![]), "needs one or more choices"),
    ];
    for (result, message) in cases {
        let e = result.unwrap_err().to_string();
        assert!(e.contains(message), "{e}");
    }
    assert_eq!(
        Distribution::int(15, 256, false, 2).unwrap(),
        Distribution::Int { low: 15, high: 255, log: false, step: 2 }
    );
    assert!(
        Distribution::from_distribution_json(
            r#"{"name": "FloatDistribution", "attributes": {"low": 0, "high": 1, "lg": true}}"#
        )
        .unwrap_err()
        .to_string()
        .contains("unknown attribute `lg`")
    );
    assert!(Distribution::from_distribution_json(r#"{"name": "BetaDistribution", "attributes": {}}"#).is_err());
}

#[test]
fn the_yaml_form_deserializes_checked_with_unknown_keys_named() {
    let space: BTreeMap<String, Distribution> = serde_json::from_value(json!({
        "lr": {"float": {"low": 0.01, "high": 0.3, "log": true}},
        "leaves": {"int": {"low": 15, "high": 256, "step": 2}},
        "boosting": {"categorical": ["gbdt", "dart"]},
    }))
    .unwrap();
    assert_eq!(space["lr"], Distribution::float(0.01, 0.3, true, None).unwrap());
    assert_eq!(space["leaves"], Distribution::Int { low: 15, high: 255, log: false, step: 2 });
    assert_eq!(
        space["boosting"].distribution_json(),
        r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["gbdt", "dart"]}}"#
    );
    let back: BTreeMap<String, Distribution> = serde_json::from_value(serde_json::to_value(&space).unwrap()).unwrap();
    assert_eq!(back, space);
    let err = |v: Value| serde_json::from_value::<BTreeMap<String, Distribution>>(v).unwrap_err().to_string();
    assert!(err(json!({"lr": {"float": {"low": 0.1, "high": 1, "lg": true}}})).contains("unknown field `lg`"));
    assert!(err(json!({"lr": {"uniform": {"low": 0.1, "high": 1}}})).contains("unknown variant `uniform`"));
    assert!(err(json!({"lr": {"float": {"low": 0.0, "high": 1, "log": true}}})).contains("`low > 0` must hold"));
    assert!(err(json!({"n": {"int": {"low": 1.5, "high": 3}}})).contains("invalid type"));
}

#[test]
fn internal_values_are_optunas() {
    let cat =
        Distribution::categorical(vec![ParamValue::Str("a".into()), ParamValue::Int(1), ParamValue::Float(f64::NAN)])
            .unwrap();
    assert_eq!(cat.to_internal(&ParamValue::Str("a".into())).unwrap(), 0.0);
    assert_eq!(cat.to_internal(&ParamValue::Bool(true)).unwrap(), 1.0); // Python: True == 1
    assert_eq!(cat.to_internal(&ParamValue::Float(f64::NAN)).unwrap(), 2.0);
    assert_eq!(cat.to_external(1.0).unwrap(), ParamValue::Int(1));
    assert!(cat.to_external(3.0).is_err());
    let int = Distribution::int(1, 9, false, 2).unwrap();
    assert_eq!(int.to_external(5.0).unwrap(), ParamValue::Int(5));
    assert_eq!(int.to_internal(&ParamValue::Int(5)).unwrap(), 5.0);
    assert!(int.contains(5.0) && !int.contains(4.0));
    let log = Distribution::float(1e-3, 1.0, true, None).unwrap();
    assert!(log.to_internal(&ParamValue::Float(0.0)).is_err());
    assert!(log.to_internal(&ParamValue::Null).is_err());
}

/// A history of mixed parameters (complete trials, pruned ones with and without intermediate values, a failed and
/// a running one), deterministic.
fn mixed_space() -> Vec<(String, Distribution)> {
    mixed_space_of(64, 1, 100, 0.1)
}

/// The mixed space with ints in `1..=n_high` (step 3) and `m_low..=m_high` (log), and a float step `q_step`.
fn mixed_space_of(n_high: i64, m_low: i64, m_high: i64, q_step: f64) -> Vec<(String, Distribution)> {
    let s = |v: &str| ParamValue::Str(v.into());
    vec![
        ("x".into(), Distribution::float(-1.0, 1.0, false, None).unwrap()),
        ("lr".into(), Distribution::float(1e-4, 1.0, true, None).unwrap()),
        ("n".into(), Distribution::int(1, n_high, false, 3).unwrap()),
        ("m".into(), Distribution::int(m_low, m_high, true, 1).unwrap()),
        ("q".into(), Distribution::float(0.0, 1.0, false, Some(q_step)).unwrap()),
        ("cat".into(), Distribution::categorical(vec![s("a"), s("b"), s("c")]).unwrap()),
    ]
}

/// The objective both sides evaluate (the same floating-point operations in Python).
fn mixed_objective(p: &BTreeMap<String, f64>) -> f64 {
    let cat = [0.0, 0.5, 0.2][p["cat"] as usize];
    (p["x"] - 0.3) * (p["x"] - 0.3)
        + 0.1 * (p["lr"].ln() + 4.0) * (p["lr"].ln() + 4.0)
        + (p["n"].ln() - 10.0).abs() / 10.0
        + (p["m"].ln() - 9.0).abs() / 10.0
        + (p["q"] - 0.7) * (p["q"] - 0.7)
        + cat
}

const MIXED_PY: &str = r#"
def suggest(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    n = trial.suggest_int("n", 1, IN["n_high"], step=3)
    m = trial.suggest_int("m", IN["m_low"], IN["m_high"], log=True)
    q = trial.suggest_float("q", 0.0, 1.0, step=IN["q_step"])
    cat = trial.suggest_categorical("cat", ["a", "b", "c"])
    return x, lr, n, m, q, cat
def objective_value(x, lr, n, m, q, cat):
    c = {"a": 0.0, "b": 0.5, "c": 0.2}[cat]
    return (x - 0.3) * (x - 0.3) + 0.1 * (math.log(lr) + 4.0) * (math.log(lr) + 4.0) + abs(math.log(n) - 10.0) / 10.0 + abs(math.log(m) - 9.0) / 10.0 + (q - 0.7) * (q - 0.7) + c
def internal(trial):
    return {k: trial.distributions[k].to_internal_repr(v) for k, v in trial.params.items()}
"#;

/// A fixed history over [`mixed_space`]: 30 trials drawn by a seeded random sampler, some pruned (with and without
/// intermediate values, one NaN), one failed, one running.
fn fixed_history() -> Vec<FrozenTrial> {
    let space = mixed_space();
    let mut sampler = RandomSampler::new(7);
    let mut history = Vec::new();
    for number in 0..30 {
        let mut t = sample_trial(&mut sampler, &history, Direction::Minimize, number, &space).unwrap();
        let v = mixed_objective(&t.params);
        match number % 7 {
            3 => {
                t.state = TrialState::Pruned;
                for step in 0..(number % 4) {
                    t.intermediate_values.insert(step, v + 1.0 / (step as f64 + 1.0));
                }
                if number == 24 {
                    t.intermediate_values.insert(5, f64::NAN);
                }
            }
            5 => t.state = if number == 26 { TrialState::Running } else { TrialState::Fail },
            _ => {
                t.state = TrialState::Complete;
                t.value = Some(v);
            }
        }
        history.push(t);
    }
    history
}

fn trials_json(history: &[FrozenTrial]) -> Value {
    Value::Array(
        history
            .iter()
            .map(|t| {
                json!({
                    "number": t.number, "state": t.state.name(), "value": t.value,
                    "params": t.params,
                    "dists": t.distributions.iter().map(|(k, d)| (k.clone(), d.distribution_json())).collect::<BTreeMap<_, _>>(),
                    "iv": t.intermediate_values.iter().map(|(s, v)| (s.to_string(), if v.is_nan() { json!("nan") } else { json!(v) })).collect::<BTreeMap<_, _>>(),
                })
            })
            .collect(),
    )
}

const TRIALS_PY: &str = r#"
from optuna.distributions import json_to_distribution
from optuna.trial import create_trial, TrialState, FrozenTrial
import datetime
def frozen(t):
    dists = {k: json_to_distribution(v) for k, v in t["dists"].items()}
    params = {k: dists[k].to_external_repr(v) for k, v in t["params"].items()}
    iv = {int(s): float(v) for s, v in t["iv"].items()}
    state = TrialState[t["state"]]
    now = datetime.datetime.now()
    return FrozenTrial(number=t["number"], state=state, value=t["value"], values=None, datetime_start=now,
        datetime_complete=now if state.is_finished() else None, params=params, distributions=dists, user_attrs={},
        system_attrs={}, intermediate_values=iv, trial_id=t["number"])
"#;

#[test]
fn parzen_estimators_match_optunas_on_a_fixed_history() {
    let history = fixed_history();
    let space = mixed_space();
    let candidates: Vec<Vec<f64>> = {
        let mut r = RandomSampler::new(99);
        (0..40).map(|_| space.iter().map(|(_, d)| r.draw(d)).collect()).collect()
    };
    let expected = python(
        &format!(
            "{TRIALS_PY}\n{}",
            r#"
import numpy as np
from optuna.samplers._tpe.sampler import _split_trials, TPESampler
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights, default_gamma
out = {}
for direction in ["minimize", "maximize"]:
    study = optuna.create_study(direction=direction)
    trials = [frozen(t) for t in IN["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    below, above = _split_trials(study, trials, default_gamma(len(trials)), False)
    names = IN["names"]
    space = {k: json_to_distribution(IN["dists"][k]) for k in names}
    res = {"below": [t.number for t in below], "above": [t.number for t in above]}
    for multivariate in [False, True]:
        params = _ParzenEstimatorParameters(1.0, True, False, default_weights, multivariate, {})
        groups = {}
        # multivariate: one joint estimator; independent: one per parameter, as TPESampler builds them
        spaces = [names] if multivariate else [[k] for k in names]
        for sub in spaces:
            ss = {k: space[k] for k in sub}
            for label, group in [("below", below), ("above", above)]:
                obs = {k: np.asarray([t.distributions[k].to_internal_repr(t.params[k]) for t in group if all(n in t.params for n in sub)]) for k in sub}
                mpe = _ParzenEstimator(obs, ss, params)
                cand = {k: np.asarray([c[names.index(k)] for c in IN["cand"]]) for k in sub}
                md = mpe._mixture_distribution
                groups[label + ":" + ",".join(sub)] = {
                    "weights": md.weights.tolist(),
                    "kernels": [ {"mu": d.mu.tolist(), "sigma": d.sigma.tolist()} if hasattr(d, "mu") else {"p": d.weights.tolist()} for d in md.distributions],
                    "log_pdf": mpe.log_pdf(cand).tolist(),
                }
        res["mv" if multivariate else "uv"] = groups
    out[direction] = res
print(json.dumps(out))
"#
        ),
        &json!({
            "trials": trials_json(&history),
            "names": space.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "dists": space.iter().map(|(k, d)| (k.clone(), d.distribution_json())).collect::<BTreeMap<_, _>>(),
            "cand": candidates,
        }),
    );
    let finished: Vec<&FrozenTrial> =
        history.iter().filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)).collect();
    let mut checked = 0;
    for (direction, key) in [(Direction::Minimize, "minimize"), (Direction::Maximize, "maximize")] {
        let e = &expected[key];
        let (below, above) = split(&finished, direction, default_gamma(finished.len()));
        let numbers = |g: &[&FrozenTrial]| g.iter().map(|t| t.number).collect::<Vec<_>>();
        let theirs = |k: &str| e[k].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(numbers(&below), theirs("below"), "{key}");
        assert_eq!(numbers(&above), theirs("above"), "{key}");
        for multivariate in [false, true] {
            let tpe = TpeSampler::new(TpeOptions { multivariate, ..TpeOptions::default() }, 0);
            let subspaces: Vec<Vec<usize>> = if multivariate {
                vec![(0..space.len()).collect()]
            } else {
                (0..space.len()).map(|i| vec![i]).collect()
            };
            for sub in subspaces {
                let ss: Vec<(&str, &Distribution)> = sub.iter().map(|&i| (space[i].0.as_str(), &space[i].1)).collect();
                let (l, g) = tpe.estimators(&finished, direction, &ss);
                let cand: Vec<Vec<f64>> = candidates.iter().map(|c| sub.iter().map(|&i| c[i]).collect()).collect();
                let names: Vec<&str> = ss.iter().map(|(k, _)| *k).collect();
                for (label, pe) in [("below", &l), ("above", &g)] {
                    let what = format!("{key} {} {label}:{}", if multivariate { "mv" } else { "uv" }, names.join(","));
                    let t = &e[if multivariate { "mv" } else { "uv" }][format!("{label}:{}", names.join(","))];
                    assert_close(&format!("{what} weights"), pe.weights(), &floats(&t["weights"]));
                    // tied observations share their sigmas in the order numpy's argsort leaves ties (which
                    // depends on the CPU's sort kernel; kiln sorts stably): kernels compare as sorted pairs
                    for (d, ours) in pe.mus_sigmas().into_iter().enumerate() {
                        if let Some((mu, sigma)) = ours {
                            let pairs = |mu: &[f64], sigma: &[f64]| {
                                let mut p: Vec<(f64, f64)> = mu.iter().copied().zip(sigma.iter().copied()).collect();
                                p.sort_by(|a, b| a.partial_cmp(b).unwrap());
                                p.into_iter().unzip::<f64, f64, Vec<f64>, Vec<f64>>()
                            };
                            let (m1, s1) = pairs(&mu, &sigma);
                            let (m2, s2) = pairs(&floats(&t["kernels"][d]["mu"]), &floats(&t["kernels"][d]["sigma"]));
                            assert_close(&format!("{what} mu {d}"), &m1, &m2);
                            assert_close(&format!("{what} sigma {d}"), &s1, &s2);
                        }
                    }
                    assert_close(&format!("{what} log_pdf"), &pe.log_pdf(&cand), &floats(&t["log_pdf"]));
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 2 * (6 + 1) * 2);
}

/// Runs a whole study both ways (kiln's sampler, Optuna's) on [`mixed_objective`] and compares every suggestion.
///
/// The ints and the float step are wide (a million values): Optuna gives tied observations their sigmas in the order
/// numpy's `argsort` leaves ties, which depends on the CPU's sort kernel (AVX-512 or not), so two Optunas on two
/// machines part ways once a draw picks a tied kernel; kiln sorts stably. Ties are covered by
/// [`parzen_estimators_match_optunas_on_a_fixed_history`].
fn same_study(make: &dyn Fn() -> Box<dyn Sampler>, optuna_sampler: &str, n_trials: i64, direction: Direction) {
    let (n_high, m_low, m_high, q_step) = (1_000_000, 1000, 10_000_000, 1e-6);
    let space = mixed_space_of(n_high, m_low, m_high, q_step);
    let mut sampler = make();
    let mut history: Vec<FrozenTrial> = Vec::new();
    for number in 0..n_trials {
        let mut t = sample_trial(sampler.as_mut(), &history, direction, number, &space).unwrap();
        t.value = Some(mixed_objective(&t.params));
        // every fifth trial is pruned without a value, as a pruned trial with one intermediate value
        if number % 5 == 4 {
            t.state = TrialState::Pruned;
            t.intermediate_values.insert(3, t.value.take().unwrap());
        } else {
            t.state = TrialState::Complete;
        }
        history.push(t);
    }
    let expected = python(
        &format!(
            "{MIXED_PY}\n{}",
            &format!(
                r#"
sampler = {optuna_sampler}
study = optuna.create_study(sampler=sampler, direction=IN["direction"])
def objective(trial):
    v = objective_value(*suggest(trial))
    if trial.number % 5 == 4:
        trial.report(v, 3)
        raise optuna.TrialPruned()
    return v
study.optimize(objective, n_trials=IN["n"])
print(json.dumps([internal(t) for t in study.trials]))
"#
            )
        ),
        &json!({"n": n_trials, "direction": direction.name().to_lowercase(), "n_high": n_high, "m_low": m_low, "m_high": m_high, "q_step": q_step}),
    );
    assert_same_params(optuna_sampler, &history, &expected);
}

/// Each trial's params equal Optuna's (`theirs`: a list of its trials' internal values by name), within [`close`].
fn assert_same_params(what: &str, ours: &[FrozenTrial], theirs: &Value) {
    for (t, e) in ours.iter().zip(theirs.as_array().unwrap()) {
        for (name, v) in &t.params {
            let o = e[name].as_f64().unwrap();
            assert!(close(*v, o), "{what}: trial {} `{name}`: kiln {v} vs optuna {o}", t.number);
        }
    }
}

#[test]
fn random_sampler_suggests_what_optuna_suggests() {
    same_study(&|| Box::new(RandomSampler::new(3)), "optuna.samplers.RandomSampler(seed=3)", 30, Direction::Minimize);
}

#[test]
fn tpe_suggests_what_optuna_suggests() {
    same_study(
        &|| Box::new(TpeSampler::new(TpeOptions::default(), 11)),
        "optuna.samplers.TPESampler(seed=11)",
        60,
        Direction::Minimize,
    );
    same_study(
        &|| Box::new(TpeSampler::new(TpeOptions::default(), 5)),
        "optuna.samplers.TPESampler(seed=5)",
        40,
        Direction::Maximize,
    );
}

#[test]
fn multivariate_tpe_suggests_what_optuna_suggests() {
    same_study(
        &|| Box::new(TpeSampler::new(TpeOptions { multivariate: true, ..TpeOptions::default() }, 2)),
        "optuna.samplers.TPESampler(seed=2, multivariate=True)",
        60,
        Direction::Minimize,
    );
}

/// Two workers on one study in turns, as `kiln tune --jobs 2` or two processes draw: trial `2r` is asked and given
/// its parameters, then `2r + 1` while `2r` is still running, then both are told. Returns the history.
fn two_workers(sampler: &mut dyn Sampler, space: &[(String, Distribution)], rounds: i64) -> Vec<FrozenTrial> {
    let mut history: Vec<FrozenTrial> = Vec::new();
    for round in 0..rounds {
        for number in [2 * round, 2 * round + 1] {
            let t = sample_trial(sampler, &history, Direction::Minimize, number, space).unwrap();
            assert_eq!(t.state, TrialState::Running);
            history.push(t);
        }
        for t in &mut history[2 * round as usize..] {
            t.value = Some(mixed_objective(&t.params));
            t.state = TrialState::Complete;
        }
    }
    history
}

#[test]
fn the_constant_liar_suggests_what_optunas_does_to_workers_in_turns() {
    let (n_high, m_low, m_high, q_step) = (1_000_000, 1000, 10_000_000, 1e-6);
    let space = mixed_space_of(n_high, m_low, m_high, q_step);
    for multivariate in [false, true] {
        let options = TpeOptions { multivariate, constant_liar: true, ..TpeOptions::default() };
        let ours = two_workers(&mut TpeSampler::new(options, 4), &space, 20);
        let expected = python(
            &format!(
                "{MIXED_PY}\n{}",
                r#"
import warnings
warnings.simplefilter("ignore")
sampler = optuna.samplers.TPESampler(seed=4, multivariate=IN["multivariate"], constant_liar=True)
study = optuna.create_study(sampler=sampler)
for _ in range(IN["rounds"]):
    a = study.ask(); va = objective_value(*suggest(a))
    b = study.ask(); vb = objective_value(*suggest(b))
    study.tell(a, va); study.tell(b, vb)
print(json.dumps([internal(t) for t in study.trials]))
"#
            ),
            &json!({"rounds": 20, "multivariate": multivariate, "n_high": n_high, "m_low": m_low, "m_high": m_high, "q_step": q_step}),
        );
        assert_eq!(expected.as_array().unwrap().len(), ours.len());
        assert_same_params(&format!("multivariate {multivariate}"), &ours, &expected);
        // the lie changes what the second worker is given: without it the draws part ways after the startup trials
        let honest = TpeOptions { constant_liar: false, ..options };
        let plain = two_workers(&mut TpeSampler::new(honest, 4), &space, 20);
        let params = |h: &[FrozenTrial]| h[..11].iter().map(|t| t.params.clone()).collect::<Vec<_>>();
        assert_eq!(params(&ours), params(&plain), "the random startup draws are the same");
        assert!(ours.iter().zip(&plain).any(|(a, b)| a.params != b.params));
    }
}

#[test]
fn enqueued_trials_take_their_values_and_the_sampler_goes_on_as_optunas() {
    // trial 15 is enqueued with two of its six values, trial 20 with all six: the rest of 15 is drawn, 20 draws
    // nothing (Optuna makes the relative draw lazily), and every later draw stays Optuna's
    let (n_high, m_low, m_high, q_step) = (1_000_000, 1000, 10_000_000, 1e-6);
    let space = mixed_space_of(n_high, m_low, m_high, q_step);
    let partial = json!({"x": 0.25, "cat": "b"});
    let full = json!({"x": -0.5, "lr": 0.01, "n": 301, "m": 5000, "q": 0.5, "cat": "c"});
    for multivariate in [false, true] {
        let mut sampler = TpeSampler::new(TpeOptions { multivariate, ..TpeOptions::default() }, 9);
        let mut history: Vec<FrozenTrial> = Vec::new();
        for number in 0..30 {
            let fixed = match number {
                15 => serde_json::from_value(partial.clone()).unwrap(),
                20 => serde_json::from_value(full.clone()).unwrap(),
                _ => BTreeMap::new(),
            };
            let mut draw = TrialDraw::start(&mut sampler, &history, number, fixed);
            for (name, dist) in &space {
                draw.suggest(&mut sampler, &history, Direction::Minimize, name, dist).unwrap();
            }
            let mut t = draw.trial;
            t.value = Some(mixed_objective(&t.params));
            t.state = TrialState::Complete;
            history.push(t);
        }
        assert_eq!(history[15].params["x"], 0.25);
        assert_eq!(history[20].params["n"], 301.0);
        assert_eq!(history[20].params["cat"], 2.0);
        let expected = python(
            &format!(
                "{MIXED_PY}\n{}",
                r#"
study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=9, multivariate=IN["multivariate"]))
for i in range(30):
    if i == 15:
        study.enqueue_trial(IN["partial"])
    if i == 20:
        study.enqueue_trial(IN["full"])
    t = study.ask()
    study.tell(t, objective_value(*suggest(t)))
print(json.dumps([internal(t) for t in study.trials]))
"#
            ),
            &json!({"multivariate": multivariate, "partial": partial, "full": full, "n_high": n_high, "m_low": m_low, "m_high": m_high, "q_step": q_step}),
        );
        assert_same_params(&format!("multivariate {multivariate}"), &history, &expected);
    }
}

#[test]
fn grid_sampler_walks_optunas_shuffled_grid() {
    let grid: BTreeMap<String, Vec<ParamValue>> = BTreeMap::from([
        ("b".to_string(), vec![ParamValue::Str("x".into()), ParamValue::Str("y".into())]),
        ("a".to_string(), vec![ParamValue::Int(1), ParamValue::Int(2), ParamValue::Int(3)]),
        ("c".to_string(), vec![ParamValue::Float(0.5), ParamValue::Float(1.5)]),
    ]);
    let space: Vec<(String, Distribution)> = vec![
        ("a".into(), Distribution::int(1, 3, false, 1).unwrap()),
        (
            "b".into(),
            Distribution::categorical(vec![ParamValue::Str("x".into()), ParamValue::Str("y".into())]).unwrap(),
        ),
        ("c".into(), Distribution::float(0.5, 1.5, false, None).unwrap()),
    ];
    for seed in [0u32, 4, 123] {
        let mut sampler = GridSampler::new(grid.clone(), seed);
        let mut history = Vec::new();
        for number in 0..12 {
            assert!(!sampler.is_exhausted(&history));
            let mut t = sample_trial(&mut sampler, &history, Direction::Minimize, number, &space).unwrap();
            t.state = TrialState::Complete;
            t.value = Some(0.0);
            history.push(t);
        }
        assert!(sampler.is_exhausted(&history));
        let expected = python(
            r#"
s = optuna.samplers.GridSampler({"b": ["x", "y"], "a": [1, 2, 3], "c": [0.5, 1.5]}, seed=IN["seed"])
study = optuna.create_study(sampler=s)
study.optimize(lambda t: t.suggest_int("a", 1, 3) * 0 + (t.suggest_categorical("b", ["x", "y"]) == "x") * 0 + t.suggest_float("c", 0.5, 1.5) * 0, n_trials=20)
print(json.dumps([{k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()} for t in study.trials]))
"#,
            &json!({"seed": seed}),
        );
        let theirs = expected.as_array().unwrap();
        assert_eq!(theirs.len(), 12, "Optuna stops once the grid is done");
        let mut seen = std::collections::BTreeSet::new();
        for (t, e) in history.iter().zip(theirs) {
            for (k, v) in &t.params {
                assert_eq!(*v, e[k].as_f64().unwrap(), "seed {seed} trial {} `{k}`", t.number);
            }
            assert!(seen.insert(format!("{:?}", t.params)), "seed {seed}: a grid point twice");
        }
    }
}

/// Studies with intermediate values and a pruner, both ways: the step at which each trial stopped (or not).
fn same_pruning(make: &dyn Fn() -> Box<dyn Pruner>, optuna_pruner: &str, direction: Direction) {
    let space: Vec<(String, Distribution)> = vec![
        ("x".into(), Distribution::float(0.0, 1.0, false, None).unwrap()),
        ("y".into(), Distribution::float(0.0, 1.0, false, None).unwrap()),
    ];
    // the curve of a trial; NaN at step 2 for a few
    let curve = |x: f64, y: f64, step: i64| {
        if y > 0.93 && step == 2 { f64::NAN } else { (x - 0.3) * (x - 0.3) + y / (step as f64 + 1.0) }
    };
    let mut sampler = RandomSampler::new(21);
    let mut pruner = make();
    let mut history: Vec<FrozenTrial> = Vec::new();
    let mut ours = Vec::new();
    for number in 0..60 {
        let mut t = sample_trial(&mut sampler, &history, direction, number, &space).unwrap();
        let (x, y) = (t.params["x"], t.params["y"]);
        let mut stopped = None;
        for step in 0..20 {
            t.intermediate_values.insert(step, curve(x, y, step));
            if pruner.prune(&history, &mut t, direction) {
                stopped = Some(step);
                break;
            }
        }
        if stopped.is_some() {
            t.state = TrialState::Pruned;
        } else {
            t.state = TrialState::Complete;
            t.value = Some(curve(x, y, 19));
        }
        ours.push(stopped.map_or(-1, |s| s));
        history.push(t);
    }
    let expected = python(
        &format!(
            r#"
pruner = {optuna_pruner}
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=21), pruner=pruner, direction=IN["direction"])
stopped = []
def curve(x, y, step):
    return float("nan") if y > 0.93 and step == 2 else (x - 0.3) * (x - 0.3) + y / (step + 1.0)
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0); y = trial.suggest_float("y", 0.0, 1.0)
    for step in range(20):
        trial.report(curve(x, y, step), step)
        if trial.should_prune():
            stopped.append(step)
            raise optuna.TrialPruned()
    stopped.append(-1)
    return curve(x, y, 19)
study.optimize(objective, n_trials=60)
print(json.dumps(stopped))
"#
        ),
        &json!({"direction": direction.name().to_lowercase()}),
    );
    let theirs: Vec<i64> = expected.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(ours, theirs, "{optuna_pruner} {direction:?}");
    assert!(ours.iter().any(|&s| s >= 0) && ours.iter().any(|&s| s < 0), "{optuna_pruner}: prunes some, not all");
}

#[test]
fn median_pruner_decides_as_optuna() {
    for direction in [Direction::Minimize, Direction::Maximize] {
        same_pruning(&|| Box::new(MedianPruner::default()), "optuna.pruners.MedianPruner()", direction);
        same_pruning(
            &|| Box::new(MedianPruner::new(3, 2, 3, 4).unwrap()),
            "optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2, interval_steps=3, n_min_trials=4)",
            direction,
        );
    }
}

#[test]
fn successive_halving_decides_as_optuna() {
    for direction in [Direction::Minimize, Direction::Maximize] {
        same_pruning(
            &|| Box::new(SuccessiveHalvingPruner::default()),
            "optuna.pruners.SuccessiveHalvingPruner()",
            direction,
        );
        same_pruning(
            &|| Box::new(SuccessiveHalvingPruner::new(MinResource::Steps(2), 3, 1, 2).unwrap()),
            "optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3, min_early_stopping_rate=1, bootstrap_count=2)",
            direction,
        );
    }
}

#[test]
fn nan_percentile_is_numpys() {
    let values = [3.0, f64::NAN, 1.0, 7.5, -2.0, 4.25, 4.25];
    let expected = python(
        "import numpy as np\nprint(json.dumps([float(np.nanpercentile(np.array(IN['v'], dtype=float), p)) for p in IN['p']]))",
        &json!({"v": values.iter().map(|v| if v.is_nan() { json!(null) } else { json!(v) }).collect::<Vec<_>>(), "p": [0.0, 10.0, 33.3, 50.0, 87.5, 100.0]}),
    );
    let ours: Vec<f64> =
        [0.0, 10.0, 33.3, 50.0, 87.5, 100.0].iter().map(|&p| nan_percentile(&values, p).unwrap()).collect();
    assert_close("nanpercentile", &ours, &floats(&expected));
    assert_eq!(nan_percentile(&[f64::NAN], 50.0), None);
}

#[test]
fn tpe_keeps_the_candidate_with_the_largest_log_l_minus_log_g() {
    let history = fixed_history();
    let space = mixed_space();
    let finished: Vec<&FrozenTrial> =
        history.iter().filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)).collect();
    for (name, dist) in &space {
        let seed = 17;
        let mut tpe = TpeSampler::new(TpeOptions::default(), seed);
        let trial = FrozenTrial::running(30);
        let got = tpe.sample_independent(&history, Direction::Minimize, &trial, name, dist).unwrap();
        // the candidates the sampler drew: its generator starts fresh (the startup draws use the other one)
        let (l, g) = tpe.estimators(&finished, Direction::Minimize, &[(name.as_str(), dist)]);
        let candidates = l.sample(&mut NumpyRandomState::new(seed), 24);
        let (ll, lg) = (l.log_pdf(&candidates), g.log_pdf(&candidates));
        let acq: Vec<f64> = ll.iter().zip(&lg).map(|(a, b)| a - b).collect();
        let best = acq.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let i = best_candidate(&ll, &lg);
        assert_eq!(acq[i], best, "{name}");
        assert_eq!(got, candidates[i][0], "{name}: the sampler returns the argmax candidate");
        assert!(candidates.iter().any(|c| c[0] != got), "{name}: the candidates differ, so the choice is a real one");
    }
    assert_eq!(best_candidate(&[0.0, 2.0, 2.0], &[0.0, 0.0, 0.0]), 1, "the first of equal maxima");
}

#[test]
fn same_seed_and_history_give_the_same_samples() {
    let space = mixed_space();
    let run = |seed: u32, multivariate: bool| {
        let mut tpe = TpeSampler::new(TpeOptions { multivariate, ..TpeOptions::default() }, seed);
        let mut history: Vec<FrozenTrial> = Vec::new();
        for number in 0..25 {
            let mut t = sample_trial(&mut tpe, &history, Direction::Minimize, number, &space).unwrap();
            t.value = Some(mixed_objective(&t.params));
            t.state = TrialState::Complete;
            history.push(t);
        }
        history.into_iter().map(|t| t.params).collect::<Vec<_>>()
    };
    for multivariate in [false, true] {
        assert_eq!(run(3, multivariate), run(3, multivariate));
        assert_ne!(run(3, multivariate)[12..], run(4, multivariate)[12..]);
    }
    // a sampler reproduces a suggestion from the same history, whatever it did before
    let history = fixed_history();
    let draw = |warm: bool| {
        let mut tpe = TpeSampler::new(TpeOptions::default(), 8);
        if warm {
            let mut other = TpeSampler::new(TpeOptions::default(), 8);
            other
                .sample_independent(&history, Direction::Minimize, &FrozenTrial::running(30), "x", &space[0].1)
                .unwrap();
        }
        tpe.sample_independent(&history, Direction::Minimize, &FrozenTrial::running(30), "x", &space[0].1).unwrap()
    };
    assert_eq!(draw(false), draw(true));
}

/// A study's trials as the importance script reads them (values as text where JSON has no number for them).
fn study_json(history: &[FrozenTrial], direction: Direction) -> Value {
    let trials: Vec<Value> = history
        .iter()
        .map(|t| {
            json!({
                "state": t.state.name(),
                "value": t.value.map(|v| if v.is_finite() { json!(v) } else { json!(v.to_string()) }),
                "params": t.params,
                "dists": t.distributions.iter().map(|(k, d)| (k.clone(), d.distribution_json())).collect::<BTreeMap<_, _>>(),
            })
        })
        .collect();
    json!({"direction": direction.name().to_lowercase(), "trials": trials})
}

const IMPORTANCE_PY: &str = r#"
from optuna.distributions import json_to_distribution
from optuna.importance import get_param_importances, PedAnovaImportanceEvaluator
from optuna.trial import create_trial, TrialState
out = []
for s in IN["studies"]:
    study = optuna.create_study(direction=s["direction"])
    for t in s["trials"]:
        dists = {k: json_to_distribution(v) for k, v in t["dists"].items()}
        params = {k: dists[k].to_external_repr(v) for k, v in t["params"].items()}
        state = TrialState[t["state"]]
        value = float(t["value"]) if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=value, params=params, distributions=dists))
    try:
        imp = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        out.append([[k, v] for k, v in imp.items()])
    except ValueError as e:
        out.append(str(e))
print(json.dumps(out))
"#;

/// A study of `n` trials over [`mixed_space`] drawn by `sampler`, every trial complete with [`mixed_objective`].
fn complete_study(sampler: &mut dyn Sampler, n: i64, direction: Direction) -> Vec<FrozenTrial> {
    let space = mixed_space();
    let mut history: Vec<FrozenTrial> = Vec::new();
    for number in 0..n {
        let mut t = sample_trial(sampler, &history, direction, number, &space).unwrap();
        let v = mixed_objective(&t.params);
        t.value = Some(if direction == Direction::Maximize { -v } else { v });
        t.state = TrialState::Complete;
        history.push(t);
    }
    history
}

#[test]
fn ped_anova_importances_are_optunas() {
    let tpe_min = complete_study(&mut TpeSampler::new(TpeOptions::default(), 21), 60, Direction::Minimize);
    let tpe_max = complete_study(&mut TpeSampler::new(TpeOptions::default(), 4), 50, Direction::Maximize);
    // a conditional parameter (`q` only with choice `a`), an infinite value and a pruned trial
    let mut conditional = complete_study(&mut RandomSampler::new(12), 90, Direction::Minimize);
    for t in &mut conditional {
        if t.params["cat"] != 0.0 {
            t.params.remove("q");
            t.distributions.remove("q");
        }
    }
    conditional[7].value = Some(f64::INFINITY);
    conditional[8].state = TrialState::Pruned;
    conditional[8].value = None;
    // a parameter whose distribution changes during the study is not assessed
    let mut changed = complete_study(&mut RandomSampler::new(5), 30, Direction::Minimize);
    for t in &mut changed[20..] {
        t.distributions.insert("x".into(), Distribution::float(-1.0, 2.0, false, None).unwrap());
    }
    // fewer than three finite values, a single-valued space, too few trials
    let two = complete_study(&mut RandomSampler::new(1), 2, Direction::Minimize);
    let mut single = complete_study(&mut RandomSampler::new(2), 6, Direction::Minimize);
    for t in &mut single {
        t.params.retain(|k, _| k == "x");
        t.params.insert("x".into(), 3.0);
        t.distributions = BTreeMap::from([("x".into(), Distribution::float(3.0, 3.0, false, None).unwrap())]);
    }
    let one = complete_study(&mut RandomSampler::new(3), 1, Direction::Minimize);
    let studies: Vec<(&str, Vec<FrozenTrial>, Direction)> = vec![
        ("fixed history (pruned, failed, running)", fixed_history(), Direction::Minimize),
        ("tpe, minimize", tpe_min.clone(), Direction::Minimize),
        ("tpe, maximize", tpe_max, Direction::Maximize),
        // the same trials read the other way round: the top trials are the worst ones
        ("tpe trials read as maximize", tpe_min.clone(), Direction::Maximize),
        ("conditional", conditional, Direction::Minimize),
        ("changed distribution", changed, Direction::Minimize),
        ("two trials", two, Direction::Minimize),
        ("single-valued", single, Direction::Minimize),
        ("one trial", one, Direction::Minimize),
    ];
    let expected = python(
        IMPORTANCE_PY,
        &json!({"studies": studies.iter().map(|(_, h, d)| study_json(h, *d)).collect::<Vec<_>>()}),
    );
    let mut worst: f64 = 0.0;
    for ((what, history, direction), theirs) in studies.iter().zip(expected.as_array().unwrap()) {
        let ours = ped_anova_importances(history, *direction);
        let Some(theirs) = theirs.as_array() else {
            assert!(ours.is_empty(), "{what}: optuna raised ({theirs}) but kiln gave {ours:?}");
            continue;
        };
        let theirs: Vec<(String, f64)> =
            theirs.iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_f64().unwrap())).collect();
        let names = |v: &[(String, f64)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ours), names(&theirs), "{what}: the parameters in Optuna's order");
        for ((name, a), (_, b)) in ours.iter().zip(&theirs) {
            worst = worst.max((a - b).abs());
            assert!((a - b).abs() <= 1e-9, "{what}: `{name}`: kiln {a:e} vs optuna {b:e} (diff {:e})", a - b);
        }
    }
    eprintln!("PED-ANOVA importances: largest difference from Optuna {worst:e}");
    // the studies are not degenerate: importances differ between parameters
    let ours = ped_anova_importances(&tpe_min, Direction::Minimize);
    assert!(ours[0].1 > 2.0 * ours[ours.len() - 1].1, "{ours:?}");
}

/// The split picks the best trials by selection, not by sorting them all: on histories full of tied values, in both
/// directions, with pruned trials and trials out of number order, it equals a stable sort of every trial (Optuna's
/// `sorted`), which is how it was written before.
#[test]
fn the_split_by_selection_equals_a_stable_sort_of_every_trial() {
    fn by_stable_sort(trials: &[&FrozenTrial], direction: Direction, n_below: usize) -> (Vec<i64>, Vec<i64>) {
        let mut complete: Vec<&FrozenTrial> =
            trials.iter().copied().filter(|t| t.state == TrialState::Complete).collect();
        let pruned: Vec<&FrozenTrial> = trials.iter().copied().filter(|t| t.state == TrialState::Pruned).collect();
        complete.sort_by(|a, b| {
            let o = a.value.unwrap().partial_cmp(&b.value.unwrap()).unwrap();
            if direction == Direction::Maximize { o.reverse() } else { o }
        });
        // the pruned trials have no intermediate values: all tie, and keep their order
        let n_complete = n_below.min(complete.len());
        let n_pruned = (n_below - n_complete).min(pruned.len());
        let mut below: Vec<i64> = complete[..n_complete].iter().chain(&pruned[..n_pruned]).map(|t| t.number).collect();
        let mut above: Vec<i64> = complete[n_complete..].iter().chain(&pruned[n_pruned..]).map(|t| t.number).collect();
        below.sort_unstable();
        above.sort_unstable();
        (below, above)
    }
    let mut rng = NumpyRandomState::new(11);
    for case in 0..200 {
        let n = 1 + (rng.next_f64() * 300.0) as i64;
        let mut history: Vec<FrozenTrial> = (0..n)
            .map(|number| {
                let mut t = FrozenTrial::running(number);
                if rng.next_f64() < 0.1 {
                    t.state = TrialState::Pruned;
                } else {
                    t.state = TrialState::Complete;
                    // a handful of distinct values, so that ties straddle the cut
                    t.value = Some((rng.next_f64() * 6.0).floor());
                }
                t
            })
            .collect();
        if case % 3 == 0 {
            rng.shuffle(&mut history);
        }
        let trials: Vec<&FrozenTrial> = history.iter().collect();
        for direction in [Direction::Minimize, Direction::Maximize] {
            for n_below in [0, 1, super::sampler::default_gamma(trials.len()), 25, trials.len()] {
                let (below, above) = super::sampler::split(&trials, direction, n_below);
                let numbers = |g: &[&FrozenTrial]| g.iter().map(|t| t.number).collect::<Vec<_>>();
                assert_eq!(
                    (numbers(&below), numbers(&above)),
                    by_stable_sort(&trials, direction, n_below),
                    "case {case}, {direction:?}, n_below {n_below}"
                );
            }
        }
    }
}

/// The multivariate sampler remembers its relative search space between trials (as Optuna's
/// `IntersectionSearchSpace` does) and reads only the trials it has not seen finished: at every point of a history
/// where trials run, finish late, fail or change their spaces, it equals the space a fresh sampler infers.
#[test]
fn the_remembered_relative_space_equals_a_fresh_one() {
    let c = |s: &str| ParamValue::Str(s.into());
    let wide = Distribution::float(0.0, 1.0, false, None).unwrap();
    let narrow = Distribution::float(0.0, 0.5, false, None).unwrap();
    let kind = Distribution::categorical(vec![c("a"), c("b")]).unwrap();
    let leaves = Distribution::int(2, 64, true, 1).unwrap();
    let mut rng = NumpyRandomState::new(5);
    let mut history: Vec<FrozenTrial> = Vec::new();
    let mut reused = TpeSampler::new(TpeOptions { multivariate: true, ..TpeOptions::default() }, 0);
    for number in 0..120 {
        let mut t = FrozenTrial::running(number);
        t.distributions.insert("kind".into(), kind.clone());
        t.distributions.insert("x".into(), if number == 70 { narrow.clone() } else { wide.clone() });
        if rng.next_f64() < 0.5 {
            t.distributions.insert("leaves".into(), leaves.clone());
        }
        history.push(t);
        // trials finish out of order: some stay running for a while, some fail
        for t in history.iter_mut() {
            if t.state == TrialState::Running && (rng.next_f64() < 0.4 || t.number + 15 < number) {
                t.state = match t.number % 9 {
                    4 => TrialState::Fail,
                    7 => TrialState::Pruned,
                    _ => TrialState::Complete,
                };
                t.value = Some(rng.next_f64());
            }
        }
        let next = FrozenTrial::running(number + 1);
        let mut fresh = TpeSampler::new(TpeOptions { multivariate: true, ..TpeOptions::default() }, 0);
        assert_eq!(
            reused.infer_relative_space(&history, &next),
            fresh.infer_relative_space(&history, &next),
            "after trial {number}"
        );
    }
    let end = reused.infer_relative_space(&history, &FrozenTrial::running(120));
    assert!(end.contains_key("kind") && !end.contains_key("x") && !end.contains_key("leaves"), "{end:?}");
}

/// A [`TpeSampler`] keeps what it read of the finished trials between draws (their values in the sampling space, in
/// sorted order, and the last split): at every trial of histories where trials finish out of order, fail, are
/// pruned, lack a conditional parameter or belong to another study, its draw is the bit-identical draw of the same
/// sampler reading the history afresh, independent and multivariate.
#[test]
fn the_kept_history_draws_as_a_fresh_read() {
    let space = mixed_space();
    for multivariate in [false, true] {
        let mut rng = NumpyRandomState::new(11);
        let mut kept = TpeSampler::new(TpeOptions { multivariate, n_startup_trials: 5, ..TpeOptions::default() }, 3);
        let mut history: Vec<FrozenTrial> = Vec::new();
        for number in 0..160 {
            if number == 120 {
                // another study's history handed to the same sampler: other values and parameters
                for t in &mut history {
                    t.value = t.value.map(|v| v + 1.0);
                    if let Some(x) = t.params.get_mut("x") {
                        *x = -*x;
                    }
                }
            }
            // a conditional space: `n` only in some trials
            let sp: Vec<_> = space.iter().filter(|(n, _)| n != "n" || number % 4 != 1).cloned().collect();
            let mut fresh_sampler = kept.forgetting();
            let a = sample_trial(&mut kept, &history, Direction::Minimize, number, &sp).unwrap();
            let b = sample_trial(&mut fresh_sampler, &history, Direction::Minimize, number, &sp).unwrap();
            let bits = |t: &FrozenTrial| t.params.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "multivariate {multivariate}, trial {number}");
            history.push(a);
            for t in history.iter_mut() {
                if t.state == TrialState::Running && (rng.next_f64() < 0.5 || t.number + 6 < number) {
                    let v = mixed_objective(
                        &t.params
                            .iter()
                            .map(|(k, v)| (k.clone(), *v))
                            .chain([("n".to_string(), 4.0)].into_iter().filter(|_| !t.params.contains_key("n")))
                            .collect(),
                    );
                    match t.number % 10 {
                        3 => t.state = TrialState::Fail,
                        6 => {
                            t.state = TrialState::Pruned;
                            t.intermediate_values.insert(t.number % 3, v);
                        }
                        _ => {
                            t.state = TrialState::Complete;
                            t.value = Some(v);
                        }
                    }
                }
            }
        }
    }
}

/// A model competition's space: `model` picks `a` (a float and a log float) or `b` (a wide int and a stepped
/// float); `m` (a log int) is shared. Drawn in that order, as `kiln tune` draws a joint study.
fn draw_competition(sampler: &mut dyn Sampler, history: &[FrozenTrial], number: i64) -> FrozenTrial {
    let s = |v: &str| ParamValue::Str(v.into());
    let model = Distribution::categorical(vec![s("a"), s("b")]).unwrap();
    let own: Vec<(&str, Distribution)> = vec![
        ("a.x", Distribution::float(-1.0, 1.0, false, None).unwrap()),
        ("a.lr", Distribution::float(1e-4, 1.0, true, None).unwrap()),
        ("b.n", Distribution::int(1, 1_000_000, false, 3).unwrap()),
        ("b.q", Distribution::float(0.0, 1.0, false, Some(1e-6)).unwrap()),
    ];
    let shared = Distribution::int(1000, 10_000_000, true, 1).unwrap();
    let mut draw = TrialDraw::start(sampler, history, number, BTreeMap::new());
    let m = draw.suggest(sampler, history, Direction::Minimize, "model", &model).unwrap();
    let prefix = if m == 0.0 { "a." } else { "b." };
    for (name, dist) in own.iter().filter(|(name, _)| name.starts_with(prefix)) {
        draw.suggest(sampler, history, Direction::Minimize, name, dist).unwrap();
    }
    draw.suggest(sampler, history, Direction::Minimize, "m", &shared).unwrap();
    draw.trial
}

/// [`draw_competition`] and [`competition_objective`] in Python: `suggest(trial)` draws and returns the value.
const COMPETITION_PY: &str = r#"
def suggest(trial):
    model = trial.suggest_categorical("model", ["a", "b"])
    if model == "a":
        x = trial.suggest_float("a.x", -1.0, 1.0)
        lr = trial.suggest_float("a.lr", 1e-4, 1.0, log=True)
    else:
        n = trial.suggest_int("b.n", 1, 1000000, step=3)
        q = trial.suggest_float("b.q", 0.0, 1.0, step=1e-6)
    m = trial.suggest_int("m", 1000, 10000000, log=True)
    shared = abs(math.log(m) - 9.0) / 10.0
    if model == "a":
        return (x - 0.3) * (x - 0.3) + 0.1 * (math.log(lr) + 4.0) * (math.log(lr) + 4.0) + shared
    return abs(math.log(n) - 10.0) / 10.0 + (q - 0.7) * (q - 0.7) + shared + 0.05
def internal(trial):
    return {k: trial.distributions[k].to_internal_repr(v) for k, v in trial.params.items()}
"#;

fn competition_objective(p: &BTreeMap<String, f64>) -> f64 {
    let shared = (p["m"].ln() - 9.0).abs() / 10.0;
    if p["model"] == 0.0 {
        (p["a.x"] - 0.3) * (p["a.x"] - 0.3) + 0.1 * (p["a.lr"].ln() + 4.0) * (p["a.lr"].ln() + 4.0) + shared
    } else {
        (p["b.n"].ln() - 10.0).abs() / 10.0 + (p["b.q"] - 0.7) * (p["b.q"] - 0.7) + shared + 0.05
    }
}

#[test]
fn grouped_multivariate_tpe_draws_a_conditional_space_as_optunas() {
    // `group: true` draws each model's parameters jointly from the trials that have them; without it they are
    // drawn one by one. Both as Optuna's, every trial (every seventh pruned), and the two ways part
    let mut runs = Vec::new();
    for group in [true, false] {
        let mut sampler = TpeSampler::new(TpeOptions { multivariate: true, group, ..TpeOptions::default() }, 6);
        let mut history: Vec<FrozenTrial> = Vec::new();
        for number in 0..60 {
            let mut t = draw_competition(&mut sampler, &history, number);
            let v = competition_objective(&t.params);
            if number % 7 == 6 {
                t.state = TrialState::Pruned;
                t.intermediate_values.insert(2, v);
            } else {
                t.state = TrialState::Complete;
                t.value = Some(v);
            }
            history.push(t);
        }
        let expected = python(
            &format!(
                "{COMPETITION_PY}\n{}",
                r#"
sampler = optuna.samplers.TPESampler(seed=6, multivariate=True, group=IN["group"])
study = optuna.create_study(sampler=sampler)
def objective(trial):
    v = suggest(trial)
    if trial.number % 7 == 6:
        trial.report(v, 2)
        raise optuna.TrialPruned()
    return v
study.optimize(objective, n_trials=60)
print(json.dumps([internal(t) for t in study.trials]))
"#
            ),
            &json!({"group": group}),
        );
        let theirs = expected.as_array().unwrap();
        assert_eq!(theirs.len(), history.len());
        for (t, e) in history.iter().zip(theirs) {
            let mut names: Vec<&String> = e.as_object().unwrap().keys().collect();
            names.sort();
            assert_eq!(t.params.keys().collect::<Vec<_>>(), names, "group {group}: trial {} asks the same", t.number);
        }
        assert_same_params(&format!("group {group}"), &history, &expected);
        if group {
            // the groups Optuna's _SearchSpaceGroup ends with: what every trial has, then each model's own
            let groups: Vec<Vec<&str>> =
                sampler.groups().iter().map(|g| g.keys().map(String::as_str).collect()).collect();
            assert_eq!(groups, [vec!["m", "model"], vec!["a.lr", "a.x"], vec!["b.n", "b.q"]]);
        }
        runs.push(history);
    }
    assert_eq!(runs[0][..10], runs[1][..10], "the random startup draws are the same");
    assert!(runs[0].iter().zip(&runs[1]).any(|(a, b)| a.params != b.params));
}

#[test]
fn search_space_groups_split_as_optunas() {
    let d = Distribution::float(0.0, 1.0, false, None).unwrap();
    let space = |names: &[&str]| names.iter().map(|n| (n.to_string(), d.clone())).collect::<SearchSpace>();
    let mut groups = Vec::new();
    for trial in [&["a", "b", "c"][..], &["a", "d"], &["b", "c", "d"], &["a", "b", "c"], &["e"]] {
        add_to_groups(&mut groups, &space(trial));
    }
    let names: Vec<Vec<&str>> = groups.iter().map(|g| g.keys().map(String::as_str).collect()).collect();
    let expected = python(
        r#"
from optuna.search_space.group_decomposed import _SearchSpaceGroup
from optuna.distributions import FloatDistribution
g = _SearchSpaceGroup()
for t in IN:
    g.add_distributions({k: FloatDistribution(0.0, 1.0) for k in t})
print(json.dumps([sorted(s) for s in g.search_spaces]))
"#,
        &json!([["a", "b", "c"], ["a", "d"], ["b", "c", "d"], ["a", "b", "c"], ["e"]]),
    );
    let theirs: Vec<Vec<String>> = serde_json::from_value(expected).unwrap();
    assert_eq!(names, theirs);
}

#[test]
fn grouped_tpe_with_the_constant_liar_counts_a_running_trials_shared_draw_as_optunas() {
    // two workers in turns on the competition space: the trial still running lies with all it was drawn jointly,
    // the other model's values included (shared as Optuna shares them, `tpe:relative_params`)
    let options = TpeOptions { multivariate: true, group: true, constant_liar: true, ..TpeOptions::default() };
    let mut sampler = TpeSampler::new(options, 8);
    let mut history: Vec<FrozenTrial> = Vec::new();
    for round in 0..25 {
        for number in [2 * round, 2 * round + 1] {
            let t = draw_competition(&mut sampler, &history, number);
            history.push(t);
        }
        for t in &mut history[2 * round as usize..] {
            t.value = Some(competition_objective(&t.params));
            t.state = TrialState::Complete;
        }
    }
    // after the startup trials every first worker of a round shares its draw: each model's values
    let shared = &history[30].system_attrs[kiln_domain::RELATIVE_PARAMS_KEY];
    for name in ["model", "m", "a.x", "a.lr", "b.n", "b.q"] {
        assert!(shared.get(name).is_some(), "{name} in {shared}");
    }
    let expected = python(
        &format!(
            "{COMPETITION_PY}\n{}",
            r#"
sampler = optuna.samplers.TPESampler(seed=8, multivariate=True, group=True, constant_liar=True)
study = optuna.create_study(sampler=sampler)
for _ in range(25):
    a = study.ask(); va = suggest(a)
    b = study.ask(); vb = suggest(b)
    study.tell(a, va); study.tell(b, vb)
print(json.dumps([internal(t) for t in study.trials]))
"#
        ),
        &json!({}),
    );
    assert_eq!(expected.as_array().unwrap().len(), history.len());
    assert_same_params("group with the liar", &history, &expected);
    // without the shared draw (only what the running trial was given) the draws part ways
    let mut forgetful = TpeSampler::new(options, 8);
    let mut plain: Vec<FrozenTrial> = Vec::new();
    for round in 0..25 {
        for number in [2 * round, 2 * round + 1] {
            let mut t = draw_competition(&mut forgetful, &plain, number);
            t.system_attrs.clear();
            plain.push(t);
        }
        for t in &mut plain[2 * round as usize..] {
            t.value = Some(competition_objective(&t.params));
            t.state = TrialState::Complete;
        }
    }
    assert!(history.iter().zip(&plain).any(|(a, b)| a.params != b.params));
}

#[test]
fn a_shared_draw_is_split_and_joined_as_optuna_splits_and_joins_it() {
    let long: String = (0..700).map(|i| format!("é{i}")).collect();
    let params = json!({"model": "lightgbm", "note": long, "lightgbm.learning_rate": 0.05});
    let chunks = super::study::relative_params_chunks(&params);
    assert!(chunks.len() > 1);
    let text = params.to_string();
    let expected = python(
        "print(json.dumps([[f'tpe:relative_params:{i // 2045}', json.dumps(IN[i:i + 2045])] for i in range(0, len(IN), 2045)]))",
        &json!(text),
    );
    let theirs: Vec<(String, String)> = serde_json::from_value(expected).unwrap();
    // the same chunks (JSON text may escape differently: compared as strings)
    assert_eq!(chunks.len(), theirs.len());
    for ((k1, v1), (k2, v2)) in chunks.iter().zip(&theirs) {
        assert_eq!(k1, k2);
        assert_eq!(serde_json::from_str::<String>(v1).unwrap(), serde_json::from_str::<String>(v2).unwrap());
    }
    let mut shuffled = chunks.clone();
    shuffled.reverse();
    assert_eq!(super::study::join_relative_params(&shuffled).as_deref(), Some(text.as_str()));
    // a gap ends the text; without chunk 0 there is none
    assert_eq!(super::study::join_relative_params(&chunks[1..]), None);
}

#[test]
fn wilcoxon_p_values_are_scipys() {
    // continuous differences (the exact distribution up to 50, the normal one above), rounded ones with ties and
    // zeros (every sign flip up to 13, the normal one with the tie correction above), both alternatives
    let mut rng = NumpyRandomState::new(31);
    let mut cases: Vec<Vec<f64>> = Vec::new();
    for n in [2, 3, 4, 5, 7, 10, 13, 14, 20, 50, 51, 60] {
        let d: Vec<f64> = (0..n).map(|_| rng.next_f64() - 0.35).collect();
        cases.push(d.iter().map(|v| (v * 10.0).round() / 10.0).collect());
        cases.push(d);
    }
    cases.push(vec![0.0, 0.0, 0.0]);
    cases.push(vec![0.5, -0.5, 0.5, 0.0]);
    let expected = python(
        "from scipy.stats import wilcoxon\nprint(json.dumps([[float(wilcoxon(d, alternative=a, zero_method='zsplit').pvalue) for a in ('greater', 'less')] for d in IN]))",
        &json!(cases),
    );
    for (d, e) in cases.iter().zip(expected.as_array().unwrap()) {
        let ours = [wilcoxon_zsplit_p_value(d, true), wilcoxon_zsplit_p_value(d, false)];
        assert_close(&format!("wilcoxon {d:?}"), &ours, &floats(e));
    }
}

#[test]
fn wilcoxon_pruner_decides_as_optuna() {
    for direction in [Direction::Minimize, Direction::Maximize] {
        same_pruning(&|| Box::new(WilcoxonPruner::default()), "optuna.pruners.WilcoxonPruner()", direction);
        same_pruning(
            &|| Box::new(WilcoxonPruner::new(0.02, 4).unwrap()),
            "optuna.pruners.WilcoxonPruner(p_threshold=0.02, n_startup_steps=4)",
            direction,
        );
    }
    assert!(WilcoxonPruner::new(1.5, 2).is_err());
}

#[test]
fn percentile_and_threshold_pruners_decide_as_optuna() {
    for direction in [Direction::Minimize, Direction::Maximize] {
        same_pruning(
            &|| Box::new(PercentilePruner::new(25.0, 4, 1, 2, 3).unwrap()),
            "optuna.pruners.PercentilePruner(25.0, n_startup_trials=4, n_warmup_steps=1, interval_steps=2, n_min_trials=3)",
            direction,
        );
        same_pruning(
            &|| Box::new(ThresholdPruner::new(None, Some(0.3), 0, 1).unwrap()),
            "optuna.pruners.ThresholdPruner(upper=0.3)",
            direction,
        );
        same_pruning(
            &|| Box::new(ThresholdPruner::new(Some(0.05), Some(0.6), 2, 3).unwrap()),
            "optuna.pruners.ThresholdPruner(lower=0.05, upper=0.6, n_warmup_steps=2, interval_steps=3)",
            direction,
        );
    }
    assert!(PercentilePruner::new(101.0, 5, 0, 1, 1).is_err());
    assert!(ThresholdPruner::new(None, None, 0, 1).is_err());
    assert!(ThresholdPruner::new(Some(1.0), Some(0.5), 0, 1).is_err());
}
