use kiln_domain::Matrix;
use kiln_models::{EvalCurve, EvalData, LgbMetric, LightGbmParams, LinearParams, XgBoostParams};

use kiln_models::ModelSpec;

use super::{METRICS_PER_CALL, curve_points};

/// 400 rows of two smooth features and a target made of them (deterministic).
fn data() -> (Matrix, Vec<f64>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let (a, b) = ((i as f64 * 0.07).sin(), (i as f64 * 0.013).cos());
        x.extend([a, b]);
        y.push(3.0 * a - 2.0 * b * b + 0.1 * (i % 7) as f64);
    }
    (Matrix::new(vec!["a".into(), "b".into()], x), y)
}

#[test]
fn curves_become_metric_points_with_the_round_as_step() {
    let curves = [
        EvalCurve {
            data: EvalData::Train,
            metric: "l2".into(),
            rounds: vec![0, 2, 5],
            values: vec![3.0, 2.0, 1.5],
            elapsed_ms: vec![4, 9, 15],
        },
        EvalCurve {
            data: EvalData::Valid,
            metric: "l2".into(),
            rounds: vec![0, 1, 2],
            values: vec![3.5, 2.5, 2.6],
            elapsed_ms: vec![4, 9, 15],
        },
    ];
    let points = curve_points(&curves, 1_700_000_000_000);
    let got: Vec<_> = points.iter().map(|p| (p.key.as_str(), p.step, p.value, p.timestamp_ms)).collect();
    let t = 1_700_000_000_000;
    // each point stamped with the time its round ended
    assert_eq!(
        got,
        [
            ("train_curve/train/l2", 0, 3.0, t + 4),
            ("train_curve/train/l2", 2, 2.0, t + 9),
            ("train_curve/train/l2", 5, 1.5, t + 15),
            ("train_curve/valid/l2", 0, 3.5, t + 4),
            ("train_curve/valid/l2", 1, 2.5, t + 9),
            ("train_curve/valid/l2", 2, 2.6, t + 15),
        ]
    );
    assert!(curve_points(&[], t).is_empty());
}

#[test]
fn every_boosting_fit_carries_its_curves_out_and_smartcore_none() {
    let (x, y) = data();
    let (train, valid) = (x.rows(0, 300), x.rows(300, 400));
    let valid = Some((&valid, &y[300..]));

    let lgb = LightGbmParams { num_iterations: 1200, metric: Some(LgbMetric::Rmse), ..LightGbmParams::default() };
    let fitted = ModelSpec::new(lgb.check().unwrap()).fit(&train, &y[..300], valid).unwrap();
    let points = curve_points(fitted.eval_curves(), 0);
    // the training rows after round 0 and every 12th (1200 rounds: 101 points), the validation rows every round,
    // each point's step its round
    let steps = |key: &str| points.iter().filter(|p| p.key == key).map(|p| p.step).collect::<Vec<i64>>();
    let train_steps: Vec<i64> = (0..1200).filter(|r| r % 12 == 11 || *r == 0).collect();
    assert_eq!(steps("train_curve/train/rmse"), train_steps);
    assert_eq!(steps("train_curve/valid/rmse"), (0..1200).collect::<Vec<i64>>());
    assert_eq!(points.len(), 1301);
    assert_eq!(
        (points[0].key.as_str(), points[101].key.as_str()),
        ("train_curve/train/rmse", "train_curve/valid/rmse")
    );
    // real times: never decreasing along a curve, and the fit took some time over 1200 rounds
    assert!(points[101..].windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    assert!(points[..101].windows(2).all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    // two calls carry them, the first one full
    let sizes: Vec<usize> = points.chunks(METRICS_PER_CALL).map(<[_]>::len).collect();
    assert_eq!(sizes, [1000, 301]);

    let xgb = XgBoostParams { num_boost_round: 20, early_stopping_rounds: Some(3), ..XgBoostParams::default() };
    let fitted = ModelSpec::new(xgb.check().unwrap()).fit(&train, &y[..300], valid).unwrap();
    let curves = fitted.eval_curves();
    let rounds = curves.iter().find(|c| c.data == EvalData::Valid).unwrap().values.len();
    assert!(rounds >= fitted.best_iteration().unwrap());
    let names: Vec<_> = curve_points(curves, 0).iter().map(|p| p.key.clone()).collect();
    assert_eq!(names.iter().filter(|k| *k == "train_curve/valid/rmse").count(), rounds);

    let linear = ModelSpec::new(LinearParams::default().check().unwrap());
    assert!(linear.fit(&train, &y[..300], valid).unwrap().eval_curves().is_empty());
}
