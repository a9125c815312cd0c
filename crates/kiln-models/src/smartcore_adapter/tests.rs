//! Tests of the smartcore adapters on real data (ETTh1: oil temperature from the six loads; Telco churn: churn from
//! tenure, monthly charges and senior citizen), checked against scikit-learn run on the same matrices.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use kiln_domain::{Code, Estimator, Matrix, Predictor};
use serde_json::Value;

use super::*;

fn python_path() -> String {
    format!(
        "{}/../../.venv/bin/python",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR")
    )
}
fn data_path() -> String {
    format!("{}/../../data", std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
}

fn read_csv(file: &str, columns: &[&str]) -> Vec<Vec<String>> {
    let path = Path::new(&data_path()).join(file);
    let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = reader.headers().unwrap().clone();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| header.iter().position(|h| h == *c).unwrap_or_else(|| panic!("{file} has no column {c}")))
        .collect();
    reader.records().map(|r| r.unwrap()).map(|r| idx.iter().map(|&i| r[i].to_string()).collect()).collect()
}

/// ETTh1, every hourly row: HUFL, HULL, MUFL, MULL, LUFL, LULL -> OT.
fn etth1() -> &'static (Matrix, Vec<f64>) {
    static DATA: OnceLock<(Matrix, Vec<f64>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let features = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"];
        let mut columns = features.to_vec();
        columns.push("OT");
        let (mut data, mut y) = (Vec::new(), Vec::new());
        for row in read_csv("ETTh1.csv", &columns) {
            let v: Vec<f64> = row.iter().map(|s| s.parse().unwrap()).collect();
            data.extend_from_slice(&v[..6]);
            y.push(v[6]);
        }
        (Matrix::new(features.iter().map(|s| s.to_string()).collect(), data), y)
    })
}

/// Telco churn, every customer: tenure, MonthlyCharges, SeniorCitizen -> Churn (Yes = 1, No = 0).
fn churn() -> &'static (Matrix, Vec<f64>) {
    static DATA: OnceLock<(Matrix, Vec<f64>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let features = ["tenure", "MonthlyCharges", "SeniorCitizen"];
        let mut columns = features.to_vec();
        columns.push("Churn");
        let (mut data, mut y) = (Vec::new(), Vec::new());
        for row in read_csv("Telco-Customer-Churn_IBM.csv", &columns) {
            for v in &row[..3] {
                data.push(v.parse::<f64>().unwrap());
            }
            y.push(match row[3].as_str() {
                "Yes" => 1.0,
                "No" => 0.0,
                other => panic!("Churn is {other}"),
            });
        }
        (Matrix::new(features.iter().map(|s| s.to_string()).collect(), data), y)
    })
}

/// Rows `i` with `i % k == r` (`keep`) or the others: an interleaved, deterministic split.
fn split(x: &Matrix, y: &[f64], k: usize, r: usize) -> ((Matrix, Vec<f64>), (Matrix, Vec<f64>)) {
    let (train, test): (Vec<usize>, Vec<usize>) = (0..x.n_rows).partition(|i| i % k != r);
    let pick = |rows: &[usize]| (x.take_rows(rows), rows.iter().map(|&i| y[i]).collect::<Vec<f64>>());
    (pick(&train), pick(&test))
}

/// Writes a matrix (and labels) as CSV, every f64 in Rust's shortest round-trip form, which Python's `float` reads
/// back exactly.
fn write_csv(path: &Path, x: &Matrix, y: &[f64]) {
    let mut s = x.names.join(",");
    s.push_str(",y\n");
    for (i, label) in y.iter().enumerate().take(x.n_rows) {
        for v in x.row(i) {
            write!(s, "{v:?},").unwrap();
        }
        writeln!(s, "{label:?}").unwrap();
    }
    std::fs::write(path, s).unwrap();
}

/// Runs `script` with scikit-learn. The script sees `X, y` (training, float64 arrays read from the CSV written here),
/// `Xt, yt` (the test set, or the training set again when none is given), `extra` (a JSON value) and `np`; it
/// assigns its result to `out`, which comes back as JSON.
fn sklearn(script: &str, train: (&Matrix, &[f64]), test: Option<(&Matrix, &[f64])>, extra: &Value) -> Value {
    assert!(
        Path::new(&python_path()).exists(),
        "{} is missing: run `make venv` to create the Python reference environment",
        python_path()
    );
    let dir = tempfile::tempdir().unwrap();
    let train_path = dir.path().join("train.csv");
    let test_path = dir.path().join("test.csv");
    write_csv(&train_path, train.0, train.1);
    let (tx, ty) = test.unwrap_or(train);
    write_csv(&test_path, tx, ty);
    let prelude = r#"
import json, sys, warnings
import numpy as np
def load(path):
    with open(path) as f:
        next(f)
        a = np.array([[float(v) for v in line.split(",")] for line in f], dtype=np.float64)
    return np.ascontiguousarray(a[:, :-1]), a[:, -1].copy()
X, y = load(sys.argv[1])
Xt, yt = load(sys.argv[2])
extra = json.loads(sys.argv[3])
warnings.simplefilter("error")
"#;
    let code = format!("{prelude}\n{script}\nprint(json.dumps(out))\n");
    let output = Command::new(python_path())
        .arg("-c")
        .arg(code)
        .arg(&train_path)
        .arg(&test_path)
        .arg(extra.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "python failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The largest `|a - b| / max(|b|, floor)` over the pairs.
fn max_rel(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs() / b.abs().max(floor)).fold(0.0, f64::max)
}

fn fit(checked: &CheckedSmartcore, x: &Matrix, y: &[f64]) -> SmartcoreModel {
    checked.fit(x, y, None).unwrap()
}

fn message(e: ModelError) -> String {
    e.to_string()
}

// ---- hyperparameters ----

#[test]
fn defaults_are_sklearns() {
    // scikit-learn's own defaults, read from the installed version
    let sk = sklearn(
        r#"
from sklearn.ensemble import RandomForestRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, Ridge, Lasso, ElasticNet, LogisticRegression
out = {k: {n: (v if v is None or isinstance(v, (bool, int, float, str)) else str(v)) for n, v in e().get_params().items()}
       for k, e in [("rfr", RandomForestRegressor), ("rfc", RandomForestClassifier), ("linear", LinearRegression),
                    ("ridge", Ridge), ("lasso", Lasso), ("enet", ElasticNet), ("logistic", LogisticRegression)]}
"#,
        (&Matrix::new(vec!["a".into()], vec![0.0]), &[0.0]),
        None,
        &Value::Null,
    );
    let rf = RandomForestParams::default();
    for est in ["rfr", "rfc"] {
        let s = &sk[est];
        assert_eq!(s["n_estimators"], rf.n_trees, "{est}");
        assert_eq!(s["max_depth"], Value::Null);
        assert_eq!(s["min_samples_leaf"], rf.min_samples_leaf);
        assert_eq!(s["min_samples_split"], rf.min_samples_split);
        assert_eq!(s["bootstrap"], true);
    }
    assert_eq!(rf.max_features, None);
    assert_eq!(sk["rfr"]["max_features"], 1.0, "regressor: every feature, which kiln's unset max_features means");
    assert_eq!(sk["rfc"]["max_features"], "sqrt", "classifier: floor(sqrt(p)), which kiln's unset max_features means");
    assert_eq!(sk["rfc"]["criterion"], "gini");
    assert_eq!(rf.seed, 42);

    assert_eq!(sk["linear"]["fit_intercept"], LinearParams::default().fit_intercept);
    let ridge = RidgeParams::default();
    assert_eq!(sk["ridge"]["alpha"], ridge.alpha);
    assert_eq!(sk["ridge"]["fit_intercept"], ridge.fit_intercept);
    let lasso = LassoParams::default();
    assert_eq!(sk["lasso"]["alpha"], lasso.alpha);
    assert_eq!(sk["lasso"]["fit_intercept"], lasso.fit_intercept);
    assert_eq!(sk["lasso"]["max_iter"], lasso.max_iter);
    assert_eq!(sk["lasso"]["tol"], lasso.tol);
    let enet = ElasticNetParams::default();
    assert_eq!(sk["enet"]["alpha"], enet.alpha);
    assert_eq!(sk["enet"]["l1_ratio"], enet.l1_ratio);
    assert_eq!(sk["enet"]["max_iter"], enet.max_iter);
    assert_eq!(sk["enet"]["tol"], enet.tol);
    assert_eq!(sk["logistic"]["C"], LogisticParams::default().c);
    assert_eq!(sk["logistic"]["fit_intercept"], true);
}

#[test]
fn params_read_from_yaml_and_refuse_unknown_keys() {
    let rf: RandomForestParams = serde_yaml::from_str("n_trees: 7\nmax_depth: 3\nmax_features: 2").unwrap();
    assert_eq!(rf, RandomForestParams { n_trees: 7, max_depth: Some(3), max_features: Some(2), ..Default::default() });
    let linear: LinearParams = serde_yaml::from_str("fit_intercept: false\nsolver: qr").unwrap();
    assert_eq!(linear, LinearParams { fit_intercept: false, solver: LinearSolver::Qr });
    let ridge: RidgeParams = serde_yaml::from_str("alpha: 0.5\nsolver: svd").unwrap();
    assert_eq!(ridge, RidgeParams { alpha: 0.5, solver: RidgeSolver::Svd, ..Default::default() });
    let logistic: LogisticParams = serde_yaml::from_str("C: 0.25").unwrap();
    assert_eq!(logistic.c, 0.25);
    let unpenalized: LogisticParams = serde_yaml::from_str("c: .inf").unwrap();
    assert!(unpenalized.check().is_ok());

    let e = serde_yaml::from_str::<RidgeParams>("alpha: 1\nnormalize: true").unwrap_err().to_string();
    assert!(e.contains("unknown field `normalize`"), "{e}");
    let e = serde_yaml::from_str::<RandomForestParams>("n_estimators: 10").unwrap_err().to_string();
    assert!(e.contains("unknown field `n_estimators`"), "{e}");
    let e = serde_yaml::from_str::<LinearParams>("solver: lsqr").unwrap_err().to_string();
    assert!(e.contains("unknown variant `lsqr`"), "{e}");
}

#[test]
fn checks_name_the_parameter_its_value_and_the_range() {
    let rf = RandomForestParams::default;
    let cases: Vec<(Result<CheckedSmartcore, ModelError>, &str)> = vec![
        (RandomForestParams { n_trees: 0, ..rf() }.check(false), "model.params.n_trees = 0: must be >= 1"),
        (
            RandomForestParams { max_depth: Some(0), ..rf() }.check(true),
            "model.params.max_depth = 0: must be in 1..=65534, or unset for no limit",
        ),
        (
            RandomForestParams { max_depth: Some(70_000), ..rf() }.check(false),
            "model.params.max_depth = 70000: must be in 1..=65534",
        ),
        (
            RandomForestParams { min_samples_leaf: 0, ..rf() }.check(false),
            "model.params.min_samples_leaf = 0: must be >= 1",
        ),
        (
            RandomForestParams { min_samples_split: 1, ..rf() }.check(false),
            "model.params.min_samples_split = 1: must be >= 2",
        ),
        (
            RandomForestParams { max_features: Some(0), ..rf() }.check(false),
            "model.params.max_features = 0: must be >= 1",
        ),
        (
            RidgeParams { alpha: -1.0, ..Default::default() }.check(),
            "model.params.alpha = -1.0: must be a finite number >= 0",
        ),
        (RidgeParams { alpha: f64::NAN, ..Default::default() }.check(), "model.params.alpha = nan: must be a finite"),
        (
            LassoParams { alpha: 0.0, ..Default::default() }.check(),
            "model.params.alpha = 0.0: must be a finite number > 0 (for no penalty use linear)",
        ),
        (LassoParams { max_iter: 0, ..Default::default() }.check(), "model.params.max_iter = 0: must be >= 1"),
        (LassoParams { tol: 0.0, ..Default::default() }.check(), "model.params.tol = 0.0: must be a finite number > 0"),
        (
            ElasticNetParams { l1_ratio: 0.0, ..Default::default() }.check(),
            "model.params.l1_ratio = 0.0: must be in (0, 1] (for a pure L2 penalty use ridge)",
        ),
        (
            ElasticNetParams { l1_ratio: 1.5, ..Default::default() }.check(),
            "model.params.l1_ratio = 1.5: must be in (0, 1]",
        ),
        (
            ElasticNetParams { alpha: f64::INFINITY, ..Default::default() }.check(),
            "model.params.alpha = inf: must be a finite number > 0",
        ),
        (ElasticNetParams { tol: -1e-3, ..Default::default() }.check(), "model.params.tol = -0.001: must be a finite"),
        (LogisticParams { c: 0.0 }.check(), "model.params.c = 0.0: must be > 0 (.inf for no penalty)"),
        (LogisticParams { c: f64::NAN }.check(), "model.params.c = nan: must be > 0"),
    ];
    for (result, expected) in cases {
        let e = result.unwrap_err();
        assert_eq!(e.code(), Code::ModelParams);
        let m = message(e);
        assert!(m.starts_with(expected), "{m:?} does not start with {expected:?}");
    }

    // max_features is checked against the data when fitting
    let (x, y) = churn();
    let e = RandomForestParams { max_features: Some(4), ..rf() }.check(true).unwrap().fit(x, y, None).unwrap_err();
    assert_eq!(message(e), "model.params.max_features = 4: must be <= the number of features (3)");
}

#[test]
fn kinds_and_logged_params() {
    let rf = RandomForestParams::default();
    let reg = rf.check(false).unwrap();
    let clf = rf.check(true).unwrap();
    assert_eq!(
        (reg.kind(), reg.kind_str(), reg.is_classifier()),
        (SmartcoreKind::RandomForestRegressor, "random_forest", false)
    );
    assert_eq!(
        (clf.kind(), clf.kind_str(), clf.is_classifier()),
        (SmartcoreKind::RandomForestClassifier, "random_forest", true)
    );
    let logistic = LogisticParams::default().check().unwrap();
    assert_eq!((logistic.kind_str(), logistic.is_classifier()), ("logistic", true));
    assert_eq!(ElasticNetParams::default().check().unwrap().kind_str(), "elastic_net");

    let logged: BTreeMap<String, String> = reg.as_params().into_iter().collect();
    let expected: BTreeMap<String, String> = [
        ("n_trees", "100"),
        ("max_depth", "None"),
        ("min_samples_leaf", "1"),
        ("min_samples_split", "2"),
        ("max_features", "None"),
        ("seed", "42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(logged, expected);
    let pairs = |c: CheckedSmartcore| c.as_params().into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    assert_eq!(pairs(LinearParams::default().check().unwrap()), ["fit_intercept=True", "solver=svd"]);
    assert_eq!(pairs(RidgeParams::default().check().unwrap()), ["alpha=1.0", "fit_intercept=True", "solver=cholesky"]);
    assert_eq!(
        pairs(LassoParams::default().check().unwrap()),
        ["alpha=1.0", "fit_intercept=True", "max_iter=1000", "tol=0.0001"]
    );
    assert_eq!(
        pairs(ElasticNetParams::default().check().unwrap()),
        ["alpha=1.0", "l1_ratio=0.5", "max_iter=1000", "tol=0.0001"]
    );
    assert_eq!(pairs(LogisticParams { c: f64::INFINITY }.check().unwrap()), ["c=inf"]);
}

// ---- linear models against scikit-learn ----

const LINEAR_SCRIPT: &str = r#"
from sklearn.linear_model import LinearRegression, Ridge, Lasso, ElasticNet, LogisticRegression
kind, p = extra["kind"], extra["params"]
if kind == "linear":
    m = LinearRegression(fit_intercept=p["fit_intercept"])
elif kind == "ridge":
    m = Ridge(alpha=p["alpha"], fit_intercept=p["fit_intercept"], solver="cholesky")
elif kind == "lasso":
    m = Lasso(alpha=p["alpha"], fit_intercept=p["fit_intercept"], tol=1e-13, max_iter=100_000)
elif kind == "elastic_net":
    m = ElasticNet(alpha=p["alpha"], l1_ratio=p["l1_ratio"], tol=1e-13, max_iter=100_000)
elif kind == "logistic":
    C = float(p["c"])
    m = LogisticRegression(C=C, tol=1e-14, max_iter=100_000)
m.fit(X, y)
coef = np.ravel(m.coef_)
intercept = float(np.ravel(m.intercept_)[0]) if np.ndim(m.intercept_) else float(m.intercept_)
pred = m.predict_proba(Xt)[:, 1] if kind == "logistic" else m.predict(Xt)
out = {"coef": coef.tolist(), "intercept": intercept, "pred": pred.tolist()}
"#;

/// Fits `checked` and scikit-learn's counterpart on the same data; returns the largest relative differences of the
/// coefficients, the intercept and the predictions (each relative to the largest absolute reference value of its
/// kind, so a coefficient at 0 is compared on the scale of the others).
fn against_sklearn(checked: &CheckedSmartcore, params: Value, x: &Matrix, y: &[f64]) -> (f64, f64, f64) {
    let model = fit(checked, x, y);
    let extra = serde_json::json!({ "kind": checked.kind_str(), "params": params });
    let sk = sklearn(LINEAR_SCRIPT, (x, y), None, &extra);
    let (coef, pred) = (floats(&sk["coef"]), floats(&sk["pred"]));
    let intercept = sk["intercept"].as_f64().unwrap();
    let ours = model.predict(x).unwrap();
    let scale = |v: &[f64]| v.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    let d_coef = max_rel(model.coefficients().unwrap(), &coef, scale(&coef));
    let d_int = (model.intercept().unwrap() - intercept).abs() / intercept.abs().max(scale(&coef));
    let d_pred = max_rel(&ours, &pred, scale(&pred));
    eprintln!(
        "{} {params}: coef {coef:?} ours {:?}; max rel diff coef {d_coef:.2e} intercept {d_int:.2e} pred {d_pred:.2e}",
        checked.kind_str(),
        model.coefficients().unwrap()
    );
    (d_coef, d_int, d_pred)
}

#[test]
fn linear_regression_matches_sklearn() {
    let (x, y) = etth1();
    for fit_intercept in [true, false] {
        for solver in [LinearSolver::Svd, LinearSolver::Qr] {
            let p = LinearParams { fit_intercept, solver };
            let (c, i, pr) = against_sklearn(&p.check().unwrap(), serde_json::to_value(&p).unwrap(), x, y);
            // both solve the same least-squares problem with orthogonal factorizations (scikit-learn: LAPACK gelsd
            // on centered data); 1e-8 relative leaves room for the conditioning of these correlated loads
            assert!(c < 1e-8 && i < 1e-8 && pr < 1e-8, "{p:?}: coef {c:e} intercept {i:e} pred {pr:e}");
        }
    }
    let m = fit(&LinearParams { fit_intercept: false, ..Default::default() }.check().unwrap(), x, y);
    assert_eq!(m.intercept(), Some(0.0));
}

#[test]
fn ridge_matches_sklearn() {
    let (x, y) = etth1();
    for alpha in [1.0, 1000.0] {
        for fit_intercept in [true, false] {
            for solver in [RidgeSolver::Cholesky, RidgeSolver::Svd] {
                let p = RidgeParams { alpha, fit_intercept, solver };
                let (c, i, pr) = against_sklearn(&p.check().unwrap(), serde_json::to_value(&p).unwrap(), x, y);
                // the same normal equations (XᵀX + alpha I) w = Xᵀy on centered data as scikit-learn's cholesky
                assert!(c < 1e-8 && i < 1e-8 && pr < 1e-8, "{p:?}: coef {c:e} intercept {i:e} pred {pr:e}");
            }
        }
    }
}

#[test]
fn lasso_and_elastic_net_match_sklearn() {
    // Both sides are driven to their optimum: scikit-learn's coordinate descent with tol 1e-13 (its duality gap
    // scaled by |y|²/n), smartcore's interior point with tol 1e-12 (relative duality gap), which takes 0.1-0.25 s
    // here. Measured: coefficients within 1.5e-9 of the largest one, predictions within 1.3e-10. The tolerance,
    // 1e-7, is looser because the interior point never reaches an exact 0: a coefficient scikit-learn sets to 0
    // stays at ~1e-9 (lasso, alpha 0.05) and shrinks only as the duality gap does. At the default tol (1e-4, the
    // number scikit-learn uses for its own gap) the coefficients were within 1.3e-2 of the optimum; scikit-learn's
    // at its default within 1.7e-3.
    let (x, y) = etth1();
    // alphas chosen so that some coefficients are 0 at the optimum and others are not
    for (alpha, fit_intercept) in [(0.05, true), (1.0, true), (0.05, false)] {
        let p = LassoParams { alpha, fit_intercept, max_iter: 1000, tol: 1e-12 };
        let (c, i, pr) = against_sklearn(&p.check().unwrap(), serde_json::to_value(&p).unwrap(), x, y);
        assert!(c < 1e-7 && i < 1e-7 && pr < 1e-7, "{p:?}: coef {c:e} intercept {i:e} pred {pr:e}");
    }
    for (alpha, l1_ratio) in [(0.05, 0.5), (1.0, 0.5), (0.2, 0.9), (0.1, 0.1)] {
        let p = ElasticNetParams { alpha, l1_ratio, max_iter: 1000, tol: 1e-12 };
        let (c, i, pr) = against_sklearn(&p.check().unwrap(), serde_json::to_value(&p).unwrap(), x, y);
        assert!(c < 1e-7 && i < 1e-7 && pr < 1e-7, "{p:?}: coef {c:e} intercept {i:e} pred {pr:e}");
    }
}

#[test]
fn logistic_regression_matches_sklearn() {
    // scikit-learn's lbfgs with tol 1e-14 against smartcore's fixed L-BFGS (stops at |gradient|∞ <= 1e-8 on the
    // summed loss, raw features of scales 1 to 100). Measured: coefficients within 1e-7 of the largest, probabilities
    // within 1.7e-8; asserted 1e-6, the accuracy smartcore's stopping rule allows on these scales.
    let (x, y) = churn();
    for c in [1.0, 0.01, f64::INFINITY] {
        let p = LogisticParams { c };
        let params = serde_json::json!({ "c": if c.is_finite() { Value::from(c) } else { Value::from("inf") } });
        let (dc, di, dp) = against_sklearn(&p.check().unwrap(), params, x, y);
        assert!(dc < 1e-6 && di < 1e-6 && dp < 1e-6, "{p:?}: coef {dc:e} intercept {di:e} prob {dp:e}");
    }
}

// ---- random forests ----

const FOREST_SCRIPT: &str = r#"
from sklearn.ensemble import RandomForestRegressor, RandomForestClassifier
from sklearn.metrics import r2_score, roc_auc_score, brier_score_loss
p = extra["params"]
kw = dict(n_estimators=p["n_trees"], max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"],
          min_samples_split=p["min_samples_split"], random_state=p["seed"], n_jobs=1)
if p["max_features"] is not None:
    kw["max_features"] = p["max_features"]
ours = np.array(extra["ours"])
if extra["classifier"]:
    m = RandomForestClassifier(**kw).fit(X, y)
    sk = m.predict_proba(Xt)[:, 1]
    base = np.full(len(yt), y.mean())
    out = {"auc_sklearn": roc_auc_score(yt, sk), "auc_ours": roc_auc_score(yt, ours),
           "brier_sklearn": brier_score_loss(yt, sk), "brier_ours": brier_score_loss(yt, ours),
           "brier_base_rate": brier_score_loss(yt, base), "majority_accuracy": max(yt.mean(), 1 - yt.mean()),
           "accuracy_ours": float(np.mean((ours > 0.5) == (yt == 1)))}
else:
    m = RandomForestRegressor(**kw).fit(X, y)
    out = {"r2_sklearn": r2_score(yt, m.predict(Xt)), "r2_ours": r2_score(yt, ours),
           "r2_train_mean": r2_score(yt, np.full(len(yt), y.mean()))}
out["importance_sklearn"] = m.feature_importances_.tolist()
"#;

fn forest_against_sklearn(p: &RandomForestParams, classifier: bool, x: &Matrix, y: &[f64]) -> (SmartcoreModel, Value) {
    let ((xa, ya), (xb, yb)) = split(x, y, 5, 4);
    let model = fit(&p.check(classifier).unwrap(), &xa, &ya);
    let ours = model.predict(&xb).unwrap();
    let extra = serde_json::json!({ "params": p, "classifier": classifier, "ours": ours });
    let sk = sklearn(FOREST_SCRIPT, (&xa, &ya), Some((&xb, &yb)), &extra);
    eprintln!("{}: {sk}", model.kind());
    let importance = model.feature_importance().unwrap();
    eprintln!("ours importance {importance:?}");
    assert!((importance.iter().map(|(_, v)| v).sum::<f64>() - 1.0).abs() < 1e-12);
    assert!(importance.iter().all(|(_, v)| *v >= 0.0));
    (model, sk)
}

/// Our forest's importances against scikit-learn's `feature_importances_` (both normalized mean impurity
/// decreases), feature by feature.
fn assert_importance_close(model: &SmartcoreModel, sk: &Value, tolerance: f64) {
    let theirs = floats(&sk["importance_sklearn"]);
    for ((name, ours), theirs) in model.feature_importance().unwrap().iter().zip(theirs) {
        assert!((ours - theirs).abs() < tolerance, "importance of {name}: {ours} vs scikit-learn's {theirs}");
    }
}

#[test]
fn forest_regressor_beats_the_mean_and_is_close_to_sklearn() {
    // ETTh1, every fifth hour held out; forests are not bit-comparable with scikit-learn's (other random numbers)
    let (x, y) = etth1();
    let p = RandomForestParams { n_trees: 100, max_depth: Some(12), min_samples_leaf: 3, ..Default::default() };
    let (model, sk) = forest_against_sklearn(&p, false, x, y);
    // measured: 0.456 vs 0.460, importances within 0.013
    assert_importance_close(&model, &sk, 0.03);
    let r2 = sk["r2_ours"].as_f64().unwrap();
    let r2_sk = sk["r2_sklearn"].as_f64().unwrap();
    assert!(sk["r2_train_mean"].as_f64().unwrap() <= 0.0);
    assert!(r2 > 0.3, "out-of-sample R² {r2}: the forest must beat the training mean (R² <= 0) clearly");
    assert!((r2 - r2_sk).abs() < 0.02, "out-of-sample R² {r2} vs scikit-learn's {r2_sk}");
}

#[test]
fn forest_classifier_beats_the_base_rate_and_is_close_to_sklearn() {
    // Telco churn, every fifth customer held out, 100 fully grown trees. With every feature tried at each split
    // both forests grow the same kind of trees and must score alike.
    let (x, y) = churn();
    let all = RandomForestParams { max_features: Some(3), ..Default::default() };
    let (model, sk) = forest_against_sklearn(&all, true, x, y);
    // measured: AUC 0.756 vs 0.758, importances within 0.001 (squared error on 0/1 labels ranks splits as Gini)
    assert_importance_close(&model, &sk, 0.02);
    let get = |k: &str| sk[k].as_f64().unwrap();
    let (auc, auc_sk) = (get("auc_ours"), get("auc_sklearn"));
    assert!(auc > 0.7, "out-of-sample AUC {auc}: a constant scores 0.5");
    assert!((auc - auc_sk).abs() < 0.02, "max_features 3: out-of-sample AUC {auc} vs scikit-learn's {auc_sk}");
    assert!((get("brier_ours") - get("brier_sklearn")).abs() < 0.01);

    // The defaults (1 feature per split) differ by design: a smartcore node whose one drawn feature cannot split it
    // becomes a leaf where scikit-learn draws another, so smartcore's trees are shallower. They must not be worse.
    let (model, sk) = forest_against_sklearn(&RandomForestParams::default(), true, x, y);
    let get = |k: &str| sk[k].as_f64().unwrap();
    let (auc, auc_sk) = (get("auc_ours"), get("auc_sklearn"));
    assert!(auc > 0.75, "out-of-sample AUC {auc}: a constant scores 0.5");
    assert!(auc > auc_sk - 0.02, "defaults: out-of-sample AUC {auc} vs scikit-learn's {auc_sk}");
    assert!(get("brier_ours") < get("brier_base_rate"), "Brier score must beat predicting the base rate");
    assert!(get("accuracy_ours") > get("majority_accuracy"), "accuracy at 0.5 must beat the majority class");
    let p = model.predict(x).unwrap();
    assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
    // probabilities, not votes: with leaves of several customers they are not all multiples of 1/100
    assert!(p.iter().any(|v| (v * 100.0 - (v * 100.0).round()).abs() > 1e-9));
}

#[test]
fn forest_max_depth_counts_splits_as_sklearn() {
    let (x, y) = etth1();
    let distinct = |depth: u32| {
        let p = RandomForestParams { n_trees: 1, max_depth: Some(depth), ..Default::default() };
        let out = fit(&p.check(false).unwrap(), x, y).predict(x).unwrap();
        let mut bits: Vec<u64> = out.iter().map(|v| v.to_bits()).collect();
        bits.sort_unstable();
        bits.dedup();
        bits.len()
    };
    // a tree of depth d has at most 2^d leaves, and these data fill them
    assert_eq!(distinct(1), 2);
    assert_eq!(distinct(2), 4);
    assert_eq!(distinct(3), 8);
}

// ---- determinism, serialization, single rows ----

fn every_kind() -> Vec<(CheckedSmartcore, &'static (Matrix, Vec<f64>))> {
    let small_forest = RandomForestParams { n_trees: 20, max_depth: Some(8), ..Default::default() };
    vec![
        (small_forest.check(false).unwrap(), etth1()),
        (small_forest.check(true).unwrap(), churn()),
        (LinearParams::default().check().unwrap(), etth1()),
        (LinearParams { fit_intercept: false, solver: LinearSolver::Qr }.check().unwrap(), etth1()),
        (RidgeParams::default().check().unwrap(), etth1()),
        (LassoParams { alpha: 0.05, ..Default::default() }.check().unwrap(), etth1()),
        (ElasticNetParams { alpha: 0.05, ..Default::default() }.check().unwrap(), etth1()),
        (LogisticParams::default().check().unwrap(), churn()),
    ]
}

#[test]
fn fits_are_deterministic_and_round_trip_bit_for_bit() {
    for (checked, data) in every_kind() {
        let (x, y) = data;
        let ((xa, ya), (xb, _)) = split(x, y, 3, 0);
        let a = fit(&checked, &xa, &ya);
        let b = fit(&checked, &xa, &ya);
        let bytes = a.to_bytes().unwrap();
        assert_eq!(bytes, b.to_bytes().unwrap(), "{}: two fits differ", checked.kind());
        let header: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(header["format"], "kiln-smartcore");
        assert_eq!(header["format_version"], 1);
        assert_eq!(header["kind"], checked.kind().as_str());
        assert_eq!(header["smartcore_version"], SMARTCORE_VERSION);
        assert_eq!(header["feature_names"], serde_json::to_value(&x.names).unwrap());

        let back = SmartcoreModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.kind(), checked.kind());
        assert_eq!(back.feature_names(), x.names.as_slice());
        assert_eq!(back.to_bytes().unwrap(), bytes, "{}: re-serialized bytes differ", checked.kind());
        let pa = a.predict(&xb).unwrap();
        let pb = back.predict(&xb).unwrap();
        assert_eq!(pa.len(), xb.n_rows);
        for i in 0..xb.n_rows {
            assert_eq!(pa[i].to_bits(), pb[i].to_bits(), "{} row {i}: loaded model differs", checked.kind());
            assert_eq!(a.predict_row(xb.row(i)).unwrap().to_bits(), pa[i].to_bits(), "{} row {i}", checked.kind());
        }
        if checked.is_classifier() {
            assert!(pa.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(a.predict(&xb.rows(0, 0)).unwrap(), Vec::<f64>::new());
    }
}

#[test]
fn linear_importance_is_the_absolute_coefficient() {
    let (x, y) = etth1();
    let m = fit(&RidgeParams::default().check().unwrap(), x, y);
    let imp = m.feature_importance().unwrap();
    let coef = m.coefficients().unwrap();
    assert_eq!(imp.len(), 6);
    for ((name, v), (w, expected)) in imp.iter().zip(coef.iter().zip(&x.names)) {
        assert_eq!(name, expected);
        assert_eq!(*v, w.abs());
    }
    let forest = fit(&RandomForestParams { n_trees: 5, ..Default::default() }.check(false).unwrap(), x, y);
    assert_eq!((forest.coefficients(), forest.intercept()), (None, None));
}

#[test]
fn a_fitted_model_is_send_and_sync() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<SmartcoreModel>();
    shared::<CheckedSmartcore>();
    let (x, y) = churn();
    let m = std::sync::Arc::new(fit(&LogisticParams::default().check().unwrap(), x, y));
    let expected = m.predict_row(x.row(0)).unwrap();
    let m2 = std::sync::Arc::clone(&m);
    let row = x.row(0).to_vec();
    let got = std::thread::spawn(move || m2.predict_row(&row).unwrap()).join().unwrap();
    assert_eq!(got.to_bits(), expected.to_bits());
}

// ---- refusals ----

#[test]
fn missing_values_are_refused_naming_column_and_row() {
    let (x, y) = etth1();
    let mut bad = x.rows(0, 100);
    bad.data[5 * 6 + 2] = f64::NAN; // row 5, MUFL
    for checked in [RandomForestParams::default().check(false).unwrap(), RidgeParams::default().check().unwrap()] {
        let e = checked.fit(&bad, &y[..100], None).unwrap_err();
        assert_eq!(e.code(), Code::ModelTrain);
        assert_eq!(
            message(e),
            "training failed: training feature 'MUFL' is NaN at row 5; smartcore models take no missing or infinite \
             values (impute them in the pipeline)"
        );
    }
    let model = fit(&LinearParams::default().check().unwrap(), &x.rows(0, 100), &y[..100]);
    let mut input = x.rows(100, 110);
    input.data[3 * 6] = f64::INFINITY; // row 3, HUFL
    let e = model.predict(&input).unwrap_err();
    assert_eq!(e.code(), Code::ModelPredict);
    assert!(message(e).contains("input feature 'HUFL' is inf at row 3"));
    let mut row = x.row(0).to_vec();
    row[5] = f64::NAN;
    assert!(message(model.predict_row(&row).unwrap_err()).contains("input feature 'LULL' is NaN"));

    let mut labels = y[..100].to_vec();
    labels[7] = f64::NAN;
    let e = RidgeParams::default().check().unwrap().fit(&x.rows(0, 100), &labels, None).unwrap_err();
    assert_eq!(message(e), "training failed: training label at row 7 is NaN; labels must be finite");
}

#[test]
fn labels_and_shapes_are_checked() {
    let (x, y) = churn();
    let (x, y) = (x.rows(0, 200), &y[..200]);
    let mut labels = y.to_vec();
    labels[9] = 2.0;
    for checked in [RandomForestParams::default().check(true).unwrap(), LogisticParams::default().check().unwrap()] {
        let e = checked.fit(&x, &labels, None).unwrap_err();
        assert!(message(e).contains("training label at row 9 is 2; "), "{}", checked.kind());
    }
    let e = LogisticParams::default().check().unwrap().fit(&x, &vec![0.0; 200], None).unwrap_err();
    assert_eq!(message(e), "training failed: every training label is 0; logistic regression needs both classes");
    let e = LinearParams::default().check().unwrap().fit(&x, &y[..10], None).unwrap_err();
    assert_eq!(message(e), "training failed: the training set has 200 rows but 10 labels");
    let e = LinearParams::default().check().unwrap().fit(&x.rows(0, 0), &[], None).unwrap_err();
    assert_eq!(message(e), "training failed: the training set has no rows");
    // smartcore's own refusals come through as training errors
    let e = LinearParams::default().check().unwrap().fit(&x.rows(0, 3), &y[..3], None).unwrap_err();
    assert_eq!(e.code(), Code::ModelTrain);
    assert!(message(e).contains("smartcore least squares"));

    let model = fit(&LogisticParams::default().check().unwrap(), &x, y);
    let e = model.predict_row(&[1.0, 2.0]).unwrap_err();
    assert_eq!(message(e), "prediction failed: the input has 2 feature columns, the model was fitted on 3");
    let mut renamed = x.rows(0, 5);
    renamed.names[1] = "TotalCharges".into();
    let e = model.predict(&renamed).unwrap_err();
    assert_eq!(message(e), "prediction failed: input column 1 is 'TotalCharges', the model expects 'MonthlyCharges'");
}

#[test]
fn foreign_bytes_are_refused() {
    let (x, y) = churn();
    let (x, y) = (x.rows(0, 300), &y[..300]);
    let linear = fit(&LinearParams::default().check().unwrap(), &x, y).to_bytes().unwrap();
    let forest =
        fit(&RandomForestParams { n_trees: 2, ..Default::default() }.check(true).unwrap(), &x, y).to_bytes().unwrap();
    let edit = |bytes: &[u8], f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(bytes).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"tree\nversion=v4\n".to_vec(), "not a JSON object"),
        (b"[1, 2]".to_vec(), "not a JSON object"),
        (
            edit(&linear, &|v| v["format"] = "kiln-lightgbm".into()),
            "format is 'kiln-lightgbm', expected 'kiln-smartcore'",
        ),
        (edit(&linear, &|v| drop(v.as_object_mut().unwrap().remove("format"))), "format is missing"),
        (edit(&linear, &|v| v["format_version"] = 2.into()), "format_version is 2, this kiln reads version 1"),
        (edit(&linear, &|v| v["kind"] = "svm".into()), "unknown kind 'svm'"),
        (
            edit(&linear, &|v| v["kind"] = "random_forest_regressor".into()),
            "the random_forest_regressor model holds no fitted forest",
        ),
        (edit(&forest, &|v| v["kind"] = "ridge".into()), "the ridge model does not parse"),
        (edit(&linear, &|v| v["extra"] = 1.into()), "unknown field `extra`"),
        (edit(&linear, &|v| v["smartcore_version"] = "0.4.0".into()), "written by smartcore 0.4.0"),
        (
            edit(&linear, &|v| v["feature_names"].as_array_mut().unwrap().push("x".into())),
            "the model has 3 features but names 4 of them",
        ),
        (
            edit(&forest, &|v| drop(v["feature_names"].as_array_mut().unwrap().pop())),
            "the model has 3 features but names 2 of them",
        ),
        (edit(&linear, &|v| v["model"]["intercept"] = Value::Null), "does not parse"),
    ];
    for (bytes, expected) in cases {
        let e = SmartcoreModel::from_bytes(&bytes).unwrap_err();
        assert_eq!(e.code(), Code::BundleFormat);
        let m = message(e);
        assert!(m.starts_with("model text is invalid: smartcore model: "), "{m}");
        assert!(m.contains(expected), "{m:?} does not contain {expected:?}");
    }
}
