//! Scoring in chunks gives the whole-frame predictions bit for bit (a forecast whose lags, rolling window, EWM and
//! expanding mean cross every chunk border, and a tabular classifier), and the streaming loop reports each failure
//! with the rows or the side (source, sink) at fault. The bundles are built here from a small smartcore model.

use kiln_domain::{Code, Column, Estimator, Frame, Matrix};
use kiln_features::{
    Decision, FeatureSpec, FittedPipeline, PipelineInput, RollingStat, TabularInput, TargetTransform, TimeSeriesRecipe,
};
use kiln_models::{Bundle, BundleMetadata, FittedModel, KILN_VERSION, LinearParams};

use crate::{RowKeys, ScoreError, Scored, StreamError, score, score_stream};

const DAY_MS: i64 = 86_400_000;

/// A daily series `x` with its time column `t`.
fn series(n: usize) -> Frame {
    let t = (0..n).map(|i| 1_600_000_000_000 + i as i64 * DAY_MS).collect();
    let x = (0..n).map(|i| 10.0 + (i as f64 * 0.3).sin() + i as f64 * 0.01).collect();
    Frame::new(vec![("t".into(), Column::Timestamp(t)), ("x".into(), Column::Numeric(x))]).unwrap()
}

/// Rows with an id and two features.
fn records(n: usize) -> Frame {
    let id = (0..n).map(|i| Some(format!("c{i}"))).collect();
    let a = (0..n).map(|i| (i % 7) as f64).collect();
    let b = (0..n).map(|i| (i as f64 * 0.7).cos()).collect();
    Frame::new(vec![
        ("id".into(), Column::Categorical(id)),
        ("a".into(), Column::Numeric(a)),
        ("b".into(), Column::Numeric(b)),
    ])
    .unwrap()
}

fn bundle(pipeline: FittedPipeline, x: &Matrix, y: &[f64]) -> Bundle<FittedPipeline> {
    let model = LinearParams::default().check().unwrap().fit(x, y, None).unwrap();
    let metadata = BundleMetadata {
        kiln_version: KILN_VERSION.to_string(),
        model_kind: "smartcore".into(),
        created_ms: 0,
        run_id: None,
        metrics: Default::default(),
        params: Default::default(),
        data_sha256: String::new(),
        feature_names: x.names.clone(),
        target: "y".into(),
        horizon: None,
        files: Default::default(),
    };
    Bundle {
        pipeline,
        model: FittedModel::new(model),
        step_models: Vec::new(),
        per_series: None,
        metadata,
        profile: None,
    }
}

/// Next-day `x` from its lags, a rolling mean, an EWM and the expanding mean.
fn forecast() -> Bundle<FittedPipeline> {
    let x = || "x".to_string();
    let recipe = TimeSeriesRecipe {
        time_format: None,
        na_values: None,
        multi_step: None,
        series_column: None,
        wide: None,
        time_column: "t".into(),
        target: x(),
        horizon: 1,
        target_transform: TargetTransform::None,
        features: vec![
            FeatureSpec::Lag { column: x(), lags: vec![1, 3] },
            FeatureSpec::Rolling { column: x(), windows: vec![5], stats: vec![RollingStat::Mean] },
            FeatureSpec::Ewm { column: x(), spans: vec![4.0] },
            FeatureSpec::ExpandingMean { column: x(), min_periods: 1 },
        ],
    };
    let names = recipe.feature_names();
    let pipeline = FittedPipeline::new(recipe, &names);
    let prepared = pipeline.transform(&series(200)).unwrap();
    let future = prepared.future.unwrap();
    let rows: Vec<usize> = (0..future.len()).filter(|&i| future[i].is_finite()).collect();
    let y: Vec<f64> = rows.iter().map(|&i| future[i]).collect();
    bundle(pipeline, &prepared.x.take_rows(&rows), &y)
}

/// A "probability" of `yes` from `a` and `b`, classified at 0.5.
fn classifier() -> Bundle<FittedPipeline> {
    let columns = vec!["a".to_string(), "b".to_string()];
    let pipeline = FittedPipeline {
        input: PipelineInput::Tabular(TabularInput { columns: columns.clone(), id_column: Some("id".into()) }),
        preprocess: None,
        selection: None,
        decision: Some(Decision { positive: "yes".into(), negative: Some("no".into()), threshold: 0.5 }),
        feature_names: columns,
        step: None,
        intervals: None,
    };
    let x = pipeline.transform(&records(60)).unwrap().x;
    let y: Vec<f64> = (0..60).map(|i| f64::from(u8::from(i % 7 >= 4))).collect();
    bundle(pipeline, &x, &y)
}

/// `frame` in chunks of `rows` rows.
fn chunks(frame: &Frame, rows: usize) -> Vec<Result<Frame, String>> {
    (0..frame.n_rows()).step_by(rows).map(|start| Ok(frame.slice(start, (start + rows).min(frame.n_rows())))).collect()
}

/// Every scored chunk of `frame` in chunks of `rows`, appended into one.
fn streamed(bundle: &Bundle<FittedPipeline>, frame: &Frame, rows: usize) -> Scored {
    streamed_on(bundle, frame, rows, 1)
}

/// [`streamed`] with the model predicting on `threads` threads.
fn streamed_on(bundle: &Bundle<FittedPipeline>, frame: &Frame, rows: usize, threads: usize) -> Scored {
    let mut all: Option<Scored> = None;
    let totals = score_stream(
        bundle,
        false,
        chunks(frame, rows),
        |scored| {
            match &mut all {
                None => all = Some(scored),
                Some(all) => {
                    match (&mut all.keys, scored.keys) {
                        (RowKeys::Times { values, .. }, RowKeys::Times { values: more, .. }) => values.extend(more),
                        (RowKeys::Ids { values, .. }, RowKeys::Ids { values: more, .. }) => values.extend(more),
                        _ => return Err("the keys changed kind".to_string()),
                    }
                    all.predictions.extend(scored.predictions);
                    all.raw.extend(scored.raw);
                    if let (Some(classes), Some(more)) = (&mut all.classes, scored.classes) {
                        classes.extend(more);
                    }
                    all.features.data.extend(scored.features.data);
                    all.features.n_rows += scored.features.n_rows;
                    all.warmup_dropped += scored.warmup_dropped;
                }
            }
            Ok(())
        },
        threads,
    )
    .unwrap();
    let all = all.unwrap();
    assert_eq!(totals.rows_in, frame.n_rows());
    assert_eq!(totals.rows_scored, all.predictions.len());
    assert_eq!(totals.warmup_dropped, all.warmup_dropped);
    all
}

fn assert_same(actual: &Scored, expected: &Scored, what: &str) {
    assert_eq!(actual.keys, expected.keys, "{what}: keys");
    assert_eq!(actual.classes, expected.classes, "{what}: classes");
    assert_eq!(actual.warmup_dropped, expected.warmup_dropped, "{what}: warm-up");
    assert_eq!(actual.features, expected.features, "{what}: features");
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&actual.predictions), bits(&expected.predictions), "{what}: predictions");
    assert_eq!(bits(&actual.raw), bits(&expected.raw), "{what}: raw");
}

#[test]
fn a_forecast_in_chunks_equals_the_whole_frame() {
    let bundle = forecast();
    let frame = series(300);
    let whole = score(&bundle, &frame, false).unwrap();
    assert_eq!(whole.warmup_dropped, 4, "lag 3 and a 5-row window");
    assert_eq!(whole.predictions.len(), 296);
    // chunks of one row and of 3 rows lie entirely inside the warm-up at first
    for rows in [1, 3, 7, 64, 300] {
        assert_same(&streamed(&bundle, &frame, rows), &whole, &format!("chunks of {rows}"));
    }
}

#[test]
fn a_classifier_in_chunks_equals_the_whole_frame_with_classes_at_the_threshold() {
    let bundle = classifier();
    let frame = records(50);
    let whole = score(&bundle, &frame, false).unwrap();
    let RowKeys::Ids { column, values } = &whole.keys else { panic!("tabular rows have ids") };
    assert_eq!((column.as_str(), values[3].as_str()), ("id", "c3"));
    let classes = whole.classes.as_ref().unwrap();
    for (p, class) in whole.predictions.iter().zip(classes) {
        assert_eq!(class, if *p >= 0.5 { "yes" } else { "no" });
    }
    assert!(classes.iter().any(|c| c == "yes") && classes.iter().any(|c| c == "no"));
    for rows in [1, 7, 50] {
        assert_same(&streamed(&bundle, &frame, rows), &whole, &format!("chunks of {rows}"));
    }
}

#[test]
fn a_chunk_that_fails_names_its_rows() {
    let bundle = classifier();
    let frame = records(20);
    let mut source = chunks(&frame, 7);
    // the second chunk (rows 8-14) has no column `b`
    let bad = frame.slice(7, 14);
    source[1] = Ok(Frame::new(vec![
        ("id".into(), bad.column("id").unwrap().clone()),
        ("a".into(), bad.column("a").unwrap().clone()),
    ])
    .unwrap());
    let mut written = 0;
    let err = score_stream(
        &bundle,
        false,
        source,
        |_| {
            written += 1;
            Ok::<_, String>(())
        },
        1,
    )
    .unwrap_err();
    let StreamError::Chunk { first, last, source } = &err else { panic!("{err:?}") };
    assert_eq!((*first, *last), (8, 14));
    assert_eq!(source.code(), Code::MissingColumn);
    assert_eq!(written, 1, "the chunk before was written, nothing after");
    assert!(err.to_string().starts_with("scoring rows 8-14"), "{err}");
}

#[test]
fn source_and_sink_errors_stop_the_loop_as_they_are() {
    let bundle = classifier();
    let frame = records(20);
    let mut source = chunks(&frame, 5);
    source[2] = Err("disk gone".to_string());
    let mut written = 0;
    let err = score_stream(
        &bundle,
        false,
        source,
        |_| {
            written += 1;
            Ok(())
        },
        1,
    )
    .unwrap_err();
    assert!(matches!(&err, StreamError::Source(e) if e == "disk gone"), "{err:?}");
    assert_eq!(written, 2);

    let err = score_stream(&bundle, false, chunks(&frame, 5), |_| Err("disk full".to_string()), 1).unwrap_err();
    assert!(matches!(&err, StreamError::Sink(e) if e == "disk full"), "{err:?}");
}

#[test]
fn too_few_rows_for_the_features_is_an_error_once_all_are_read() {
    let bundle = forecast();
    let frame = series(4);
    let whole = score(&bundle, &frame, false).unwrap_err();
    assert_eq!(whole.code(), Code::NotEnoughRows);
    assert_eq!(whole.to_string(), "features: the feature table needs at least 5 rows, got 4");
    let mut written = 0;
    let err = score_stream(
        &bundle,
        false,
        chunks(&frame, 2),
        |scored| {
            assert!(scored.predictions.is_empty(), "warm-up rows get no prediction");
            written += 1;
            Ok::<_, String>(())
        },
        1,
    )
    .unwrap_err();
    let StreamError::Finish(e) = &err else { panic!("{err:?}") };
    assert_eq!(e.code(), Code::NotEnoughRows);
    assert_eq!(e.to_string(), "not enough rows: 4 rows given, the features need at least 5 rows of history");
    assert_eq!(written, 2, "the warm-up chunks went through");
}

#[test]
fn explain_needs_a_model_with_native_contributions() {
    let bundle = classifier();
    let err = score(&bundle, &records(5), true).unwrap_err();
    assert!(matches!(err, ScoreError::NoContributions { kind: "smartcore" }), "{err:?}");
    assert_eq!(err.code(), Code::DataShape);
    let err = score_stream(&bundle, true, chunks(&records(5), 2), |_| Ok::<_, String>(()), 1).unwrap_err();
    assert!(matches!(err, StreamError::Start(ScoreError::NoContributions { .. })), "{err:?}");
    assert_eq!(
        err.to_string(),
        "target: --explain needs a model with native SHAP contributions (lightgbm, xgboost); this one is smartcore"
    );
}

#[test]
fn predicting_on_threads_gives_the_same_chunks_in_order_and_the_same_errors() {
    for (bundle, frame) in [(forecast(), series(200)), (classifier(), records(200))] {
        let one = streamed_on(&bundle, &frame, 7, 1);
        for threads in [2, 3] {
            let many = streamed_on(&bundle, &frame, 7, threads);
            assert_eq!(many.keys, one.keys);
            let bits = |s: &Scored| s.predictions.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&many), bits(&one));
            assert_eq!(many.classes, one.classes);
        }
    }
    // a chunk whose features fail names its rows, as on one thread
    let bundle = classifier();
    let frame = records(40);
    let mut source = chunks(&frame, 7);
    let bad = frame.slice(14, 21);
    source[2] = Ok(Frame::new(vec![("id".into(), bad.column("id").unwrap().clone())]).unwrap());
    let err = score_stream(&bundle, false, source, |_| Ok::<_, String>(()), 3).unwrap_err();
    let StreamError::Chunk { first, last, source } = &err else { panic!("{err:?}") };
    assert_eq!((*first, *last, source.code()), (15, 21, Code::MissingColumn));
    let err = score_stream(&bundle, false, chunks(&frame, 7), |_| Err("disk full".to_string()), 3).unwrap_err();
    assert!(matches!(&err, StreamError::Sink(e) if e == "disk full"), "{err:?}");
}
