//! Classification metrics, curves, the F1 threshold and the majority baseline against scikit-learn 1.9.1 on the
//! Telco churn labels, with a made-up logistic score (no fitting). Tolerance: 1e-9 relative (1e-9 absolute below 1).

use kiln_eval::{
    ClassificationMetrics, MajorityClassBaseline, Size, best_f1_threshold, precision_recall_curve, roc_curve,
    stratified_holdout,
};

use crate::reference::{PRELUDE, Telco, assert_close, line, python};

const TOL: f64 = 1e-9;

/// scikit-learn's metrics of `proba` against `y` at `threshold` (predicted 1 where `proba >= threshold`). The
/// label metrics pass `zero_division=0.0`, which is the value of the default `"warn"` without the warning.
const METRICS: &str = r#"
from sklearn import metrics as M
y, p, t = arr(0), arr(1), float(LINES[2])
pred = (p >= t).astype(float)
out("accuracy", M.accuracy_score(y, pred))
out("precision", M.precision_score(y, pred, zero_division=0.0))
out("recall", M.recall_score(y, pred, zero_division=0.0))
out("f1", M.f1_score(y, pred, zero_division=0.0))
out("roc_auc", M.roc_auc_score(y, p))
out("pr_auc", M.average_precision_score(y, p))
out("log_loss", M.log_loss(y, p))
out("confusion", M.confusion_matrix(y, pred, labels=[0.0, 1.0]).ravel())
fpr, tpr, thr = M.roc_curve(y, p)
out("roc_fpr", fpr); out("roc_tpr", tpr); out("roc_thresholds", thr)
prec, rec, thr = M.precision_recall_curve(y, p)
out("pr_precision", prec); out("pr_recall", rec); out("pr_thresholds", thr)
"#;

/// Compares every metric, the confusion matrix and both curves with scikit-learn's; returns kiln's metrics.
fn check(what: &str, y: &[f64], proba: &[f64], threshold: f64) -> ClassificationMetrics {
    let input = format!("{}\n{}\n{threshold:?}\n", line(y.iter().copied()), line(proba.iter().copied()));
    let sk = python(&format!("{PRELUDE}{METRICS}"), &input);
    let m = ClassificationMetrics::compute(y, proba, threshold).unwrap();
    for (name, value) in m.iter() {
        assert_close(&format!("{what}: {name}"), &[value], &sk[name.as_str()], TOL);
    }
    let confusion: Vec<f64> = m.confusion.iter().flatten().map(|&c| c as f64).collect();
    assert_eq!(confusion, sk["confusion"], "{what}: confusion matrix [[tn, fp], [fn, tp]]");
    assert_eq!(m.n_rows(), y.len() as u64);

    let roc = roc_curve(y, proba).unwrap();
    assert_close(&format!("{what}: roc fpr"), &roc.fpr, &sk["roc_fpr"], TOL);
    assert_close(&format!("{what}: roc tpr"), &roc.tpr, &sk["roc_tpr"], TOL);
    assert_close(&format!("{what}: roc thresholds"), &roc.thresholds, &sk["roc_thresholds"], 0.0);
    let pr = precision_recall_curve(y, proba).unwrap();
    assert_close(&format!("{what}: pr precision"), &pr.precision, &sk["pr_precision"], TOL);
    assert_close(&format!("{what}: pr recall"), &pr.recall, &sk["pr_recall"], TOL);
    assert_close(&format!("{what}: pr thresholds"), &pr.thresholds, &sk["pr_thresholds"], 0.0);
    m
}

#[test]
fn metrics_and_curves_match_sklearn_on_telco() {
    let telco = Telco::load();
    let y = &telco.churn;
    let score = telco.score();

    // distinct scores almost everywhere (tenure x charges), two thresholds
    let m = check("continuous score", y, &score, 0.5);
    // a sanity check of the made-up score: it ranks churners clearly above chance
    assert!(m.roc_auc > 0.7 && m.roc_auc < 0.85, "{m:?}");
    check("continuous score, threshold 0.3", y, &score, 0.3);

    // scores rounded to 2 decimals: about 100 distinct values, so the AUC counts many ties (half each), and rows
    // at exactly 0.5 sit on the threshold (predicted positive on both sides)
    let rounded: Vec<f64> = score.iter().map(|p| (p * 100.0).round() / 100.0).collect();
    assert!(rounded.contains(&0.5));
    check("scores rounded to 2 decimals", y, &rounded, 0.5);

    // hard 0/1 "probabilities" and a very sharp score: log loss clips to [eps, 1 - eps] on both columns
    let hard: Vec<f64> = score.iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect();
    let m = check("hard 0/1 probabilities", y, &hard, 0.5);
    assert!(m.log_loss > 5.0, "clipped, not infinite: {}", m.log_loss);
    let sharp: Vec<f64> = score.iter().map(|&p| 1.0 / (1.0 + ((0.5 - p) * 200.0).exp())).collect();
    assert!(sharp.iter().any(|&p| p < f64::EPSILON) && sharp.iter().any(|&p| p > 1.0 - f64::EPSILON));
    check("sharp score beyond the clipping", y, &sharp, 0.5);

    // a small subset where precision and F1 hit zero division (no row predicted positive at 0.99)
    check("first 300 rows, threshold 0.99", &y[..300], &score[..300], 0.99);
}

#[test]
fn best_f1_threshold_matches_a_brute_force_sklearn_search() {
    let telco = Telco::load();
    let score = telco.score();
    // choose on a validation part, as a pipeline would
    let split = stratified_holdout(&telco.churn, Size::Fraction(0.2), None, 7).unwrap();
    let y: Vec<f64> = split.test.iter().map(|&i| telco.churn[i]).collect();
    for (what, proba) in [
        ("continuous", split.test.iter().map(|&i| score[i]).collect::<Vec<f64>>()),
        ("rounded to 2 decimals", split.test.iter().map(|&i| (score[i] * 100.0).round() / 100.0).collect()),
    ] {
        // every distinct probability as threshold, F1 by f1_score; the best F1, ties to the highest threshold
        let sk = python(
            &format!(
                "{PRELUDE}{}",
                r#"
from sklearn.metrics import f1_score
y, p = arr(0), arr(1)
f1, t = max((f1_score(y, (p >= t).astype(float)), t) for t in np.unique(p))
out("threshold", t); out("f1", f1)
"#
            ),
            &format!("{}\n{}\n", line(y.iter().copied()), line(proba.iter().copied())),
        );
        let best = best_f1_threshold(&y, &proba).unwrap();
        assert_eq!(best.threshold, sk["threshold"][0], "{what}");
        assert_close(what, &[best.f1], &sk["f1"], TOL);
        // the metrics at that threshold reproduce it
        assert_eq!(ClassificationMetrics::compute(&y, &proba, best.threshold).unwrap().f1, best.f1, "{what}");
    }
}

#[test]
fn majority_baseline_matches_sklearn_dummy_classifier() {
    let telco = Telco::load();
    let split = stratified_holdout(&telco.churn, Size::Fraction(0.25), None, 11).unwrap();
    let pick = |rows: &[usize]| rows.iter().map(|&i| telco.churn[i]).collect::<Vec<f64>>();
    let (y_train, y_test) = (pick(&split.train), pick(&split.test));
    let baseline = MajorityClassBaseline::fit(&y_train).unwrap();
    assert_eq!(baseline.majority, 0, "most customers stay");
    let m = baseline.evaluate(&y_test).unwrap();

    // DummyClassifier(strategy="prior"): predicts the training majority, with the training class shares as
    // probabilities; scikit-learn computes the same metrics on its predictions
    let sk = python(
        &format!(
            "{PRELUDE}{}",
            r#"
from sklearn import metrics as M
from sklearn.dummy import DummyClassifier
y_train, y_test = arr(0), arr(1)
X_train, X_test = np.zeros((len(y_train), 1)), np.zeros((len(y_test), 1))
dummy = DummyClassifier(strategy="prior").fit(X_train, y_train)
p = dummy.predict_proba(X_test)[:, 1]
pred = dummy.predict(X_test)
out("share", p[0])
out("accuracy", M.accuracy_score(y_test, pred))
out("precision", M.precision_score(y_test, pred, zero_division=0.0))
out("recall", M.recall_score(y_test, pred, zero_division=0.0))
out("f1", M.f1_score(y_test, pred, zero_division=0.0))
out("roc_auc", M.roc_auc_score(y_test, p))
out("pr_auc", M.average_precision_score(y_test, p))
out("log_loss", M.log_loss(y_test, p))
out("confusion", M.confusion_matrix(y_test, pred, labels=[0.0, 1.0]).ravel())
"#
        ),
        &format!("{}\n{}\n", line(y_train.iter().copied()), line(y_test.iter().copied())),
    );
    assert_close("positive share", &[baseline.positive_share], &sk["share"], TOL);
    for (name, value) in m.iter() {
        assert_close(&format!("baseline {name}"), &[value], &sk[name.as_str()], TOL);
    }
    let confusion: Vec<f64> = m.confusion.iter().flatten().map(|&c| c as f64).collect();
    assert_eq!(confusion, sk["confusion"]);
    assert_eq!((m.roc_auc, m.precision, m.f1), (0.5, 0.0, 0.0));
}
