//! Classification metrics, curves, the F1 threshold and the majority baseline against scikit-learn 1.9.1 on the
//! Telco churn labels, with a made-up logistic score (no fitting). Tolerance: 1e-9 relative (1e-9 absolute below 1).

use kiln_eval::{
    ClassificationMetrics, MajorityClassBaseline, Size, best_f1_threshold, precision_recall_curve, roc_curve,
    stratified_holdout,
};

use crate::reference::{PRELUDE, Telco, assert_close, line, python};

const TOL: f64 = 1e-9;

/// scikit-learn's metrics of `proba` against `y` at `threshold` (predicted 1 where `proba >= threshold`), for every
/// case: three input lines each (y, proba, threshold), outputs prefixed with the case number. The label metrics pass
/// `zero_division=0.0`, which is the value of the default `"warn"` without the warning.
const METRICS: &str = r#"
from sklearn import metrics as M
for c in range(len(LINES) // 3):
    y, p, t = arr(3 * c), arr(3 * c + 1), float(LINES[3 * c + 2])
    pred = (p >= t).astype(float)
    o = lambda name, v: out(f"{c}_{name}", v)
    o("accuracy", M.accuracy_score(y, pred))
    o("precision", M.precision_score(y, pred, zero_division=0.0))
    o("recall", M.recall_score(y, pred, zero_division=0.0))
    o("f1", M.f1_score(y, pred, zero_division=0.0))
    o("roc_auc", M.roc_auc_score(y, p))
    o("pr_auc", M.average_precision_score(y, p))
    o("log_loss", M.log_loss(y, p))
    o("confusion", M.confusion_matrix(y, pred, labels=[0.0, 1.0]).ravel())
    fpr, tpr, thr = M.roc_curve(y, p)
    o("roc_fpr", fpr); o("roc_tpr", tpr); o("roc_thresholds", thr)
    prec, rec, thr = M.precision_recall_curve(y, p)
    o("pr_precision", prec); o("pr_recall", rec); o("pr_thresholds", thr)
"#;

/// One comparison: a name, labels, probabilities and the threshold of the label metrics.
type Case<'a> = (&'a str, &'a [f64], &'a [f64], f64);

/// Compares every metric, the confusion matrix and both curves with scikit-learn's (one Python run for all cases).
fn check(cases: &[Case<'_>]) {
    let input: String = cases
        .iter()
        .map(|(_, y, p, t)| format!("{}\n{}\n{t:?}\n", line(y.iter().copied()), line(p.iter().copied())))
        .collect();
    let sk = python(&format!("{PRELUDE}{METRICS}"), &input);
    for (c, &(what, y, proba, threshold)) in cases.iter().enumerate() {
        let reference = |name: &str| &sk[&format!("{c}_{name}")];
        let m = ClassificationMetrics::compute(y, proba, threshold).unwrap();
        for (name, value) in m.iter() {
            assert_close(&format!("{what}: {name}"), &[value], reference(name.as_str()), TOL);
        }
        let confusion: Vec<f64> = m.confusion.iter().flatten().map(|&c| c as f64).collect();
        assert_eq!(&confusion, reference("confusion"), "{what}: confusion matrix [[tn, fp], [fn, tp]]");
        assert_eq!(m.n_rows(), y.len() as u64);

        let roc = roc_curve(y, proba).unwrap();
        assert_close(&format!("{what}: roc fpr"), &roc.fpr, reference("roc_fpr"), TOL);
        assert_close(&format!("{what}: roc tpr"), &roc.tpr, reference("roc_tpr"), TOL);
        assert_close(&format!("{what}: roc thresholds"), &roc.thresholds, reference("roc_thresholds"), 0.0);
        let pr = precision_recall_curve(y, proba).unwrap();
        assert_close(&format!("{what}: pr precision"), &pr.precision, reference("pr_precision"), TOL);
        assert_close(&format!("{what}: pr recall"), &pr.recall, reference("pr_recall"), TOL);
        assert_close(&format!("{what}: pr thresholds"), &pr.thresholds, reference("pr_thresholds"), 0.0);
    }
}

#[test]
fn metrics_and_curves_match_sklearn_on_telco() {
    let telco = Telco::load();
    let y = &telco.churn;
    let score = telco.score();
    // a sanity check of the made-up score: it ranks churners clearly above chance
    let auc = ClassificationMetrics::compute(y, &score, 0.5).unwrap().roc_auc;
    assert!(auc > 0.7 && auc < 0.85, "{auc}");

    // scores rounded to 2 decimals: about 100 distinct values, so the AUC counts many ties (half each), and rows
    // at exactly 0.5 sit on the threshold (predicted positive)
    let rounded: Vec<f64> = score.iter().map(|p| (p * 100.0).round() / 100.0).collect();
    assert!(rounded.contains(&0.5));
    // hard 0/1 "probabilities" and a very sharp score: log loss clips to [eps, 1 - eps] on both columns
    let hard: Vec<f64> = score.iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect();
    let sharp: Vec<f64> = score.iter().map(|&p| 1.0 / (1.0 + ((0.5 - p) * 200.0).exp())).collect();
    assert!(sharp.iter().any(|&p| p < f64::EPSILON) && sharp.iter().any(|&p| p > 1.0 - f64::EPSILON));
    let hard_loss = ClassificationMetrics::compute(y, &hard, 0.5).unwrap().log_loss;
    assert!(hard_loss.is_finite() && hard_loss > 5.0, "clipped, not infinite: {hard_loss}");

    check(&[
        // the tenure x charges grid repeats: about 4300 distinct scores for 7043 rows
        ("continuous score", y, &score, 0.5),
        ("continuous score, threshold 0.3", y, &score, 0.3),
        ("scores rounded to 2 decimals", y, &rounded, 0.5),
        ("hard 0/1 probabilities", y, &hard, 0.5),
        ("sharp score beyond the clipping", y, &sharp, 0.5),
        // no row predicted positive at 0.99: precision and F1 divide by zero
        ("first 300 rows, threshold 0.99", &y[..300], &score[..300], 0.99),
    ]);
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
