//! The study's charts: what `study_charts` hands the renderer (recorded by a fake: which charts, their axes and
//! lines, what is left out), and the five PNGs drawn by kiln-store's renderer for a realistic study (checked for
//! structure only; they are written to `$TMPDIR/kiln-study-charts/` to be looked at).

use std::cell::RefCell;
use std::collections::BTreeMap;

use kiln_domain::{AxisScale, BeeswarmRow, ChartAxis, ChartRenderer, PortError, SlicePanel};
use kiln_store::PlotChartRenderer;

use super::*;

/// What the fake renderer was asked to draw.
#[derive(Debug, Clone)]
enum Drawn {
    Bars { title: String, labels: Vec<String>, values: Vec<f64> },
    History { title: String, y_label: String, values: Vec<(f64, f64)>, best: Vec<(f64, f64)> },
    Parallel { axes: Vec<ChartAxis>, lines: Vec<Vec<Option<f64>>>, colours: Vec<f64>, low_is_best: bool },
    Intermediate { title: String, x_label: String, trials: Vec<(bool, Vec<(f64, f64)>)> },
    Slice { title: String, y_label: String, panels: Vec<SlicePanel> },
    Lines { title: String, x_label: String, series: Vec<(String, Vec<(f64, f64)>)> },
}

#[derive(Default)]
struct Recorder {
    drawn: RefCell<Vec<Drawn>>,
}

impl Recorder {
    fn record(&self, d: Drawn) -> Result<Vec<u8>, PortError> {
        self.drawn.borrow_mut().push(d);
        Ok(vec![self.drawn.borrow().len() as u8])
    }
}

impl ChartRenderer for Recorder {
    fn slice_chart(&self, title: &str, y_label: &str, panels: &[SlicePanel]) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::Slice { title: title.into(), y_label: y_label.into(), panels: panels.to_vec() })
    }
    fn intermediate_values_chart(
        &self,
        title: &str,
        x_label: &str,
        _: &str,
        trials: &[(bool, Vec<(f64, f64)>)],
    ) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::Intermediate { title: title.into(), x_label: x_label.into(), trials: trials.to_vec() })
    }

    fn bar_chart(&self, title: &str, _: &str, labels: &[String], values: &[f64]) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::Bars { title: title.into(), labels: labels.to_vec(), values: values.to_vec() })
    }
    fn line_chart(
        &self,
        title: &str,
        x_label: &str,
        _: &str,
        series: &[(String, Vec<(f64, f64)>)],
        _: bool,
    ) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::Lines { title: title.into(), x_label: x_label.into(), series: series.to_vec() })
    }
    fn confusion_matrix_chart(&self, _: &str, _: [&str; 2], _: [[u64; 2]; 2]) -> Result<Vec<u8>, PortError> {
        unreachable!()
    }
    fn beeswarm_chart(&self, _: &str, _: &str, _: &[BeeswarmRow]) -> Result<Vec<u8>, PortError> {
        unreachable!()
    }
    fn series_chart(&self, _: &str, _: &str, _: &[i64], _: &[(String, Vec<f64>)]) -> Result<Vec<u8>, PortError> {
        unreachable!()
    }
    fn series_chart_marked(
        &self,
        _: &str,
        _: &str,
        _: &[i64],
        _: &[(String, Vec<f64>)],
        _: &[i64],
    ) -> Result<Vec<u8>, PortError> {
        unreachable!()
    }
    fn residual_chart(&self, _: &str, _: &str, _: &[i64], _: &[f64]) -> Result<Vec<u8>, PortError> {
        unreachable!()
    }
    fn history_chart(
        &self,
        title: &str,
        y_label: &str,
        values: &[(f64, f64)],
        best: &[(f64, f64)],
    ) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::History {
            title: title.into(),
            y_label: y_label.into(),
            values: values.to_vec(),
            best: best.to_vec(),
        })
    }
    fn parallel_coordinates_chart(
        &self,
        _: &str,
        axes: &[ChartAxis],
        lines: &[Vec<Option<f64>>],
        colour_values: &[f64],
        low_is_best: bool,
    ) -> Result<Vec<u8>, PortError> {
        self.record(Drawn::Parallel {
            axes: axes.to_vec(),
            lines: lines.to_vec(),
            colours: colour_values.to_vec(),
            low_is_best,
        })
    }
}

/// A tuning study as `kiln tune` will run one: a model kind (categorical), a log-scale learning rate, a leaf count
/// (int, step 8) and a tree depth that only the boosted kinds have (conditional: missing from the random forest's
/// trials); every 9th trial pruned, trial 13 failed. The objective is a validation RMSE, deterministic.
fn tuning_study(n: i64, seed: u32) -> Vec<FrozenTrial> {
    let s = |v: &str| ParamValue::Str(v.into());
    let space: Vec<(String, Distribution)> = vec![
        ("model".into(), Distribution::categorical(vec![s("lightgbm"), s("xgboost"), s("random_forest")]).unwrap()),
        ("learning_rate".into(), Distribution::float(1e-4, 0.5, true, None).unwrap()),
        ("num_leaves".into(), Distribution::int(8, 256, false, 8).unwrap()),
        ("max_depth".into(), Distribution::int(2, 12, false, 1).unwrap()),
    ];
    let mut sampler = TpeSampler::new(TpeOptions { n_startup_trials: 10, ..TpeOptions::default() }, seed);
    let mut history: Vec<FrozenTrial> = Vec::new();
    for number in 0..n {
        let mut t = sample_trial(&mut sampler, &history, Direction::Minimize, number, &space).unwrap();
        let model = t.params["model"];
        if model == 2.0 {
            t.params.remove("max_depth");
            t.distributions.remove("max_depth");
        }
        let lr = t.params["learning_rate"];
        let leaves = t.params["num_leaves"];
        let depth = t.params.get("max_depth").copied().unwrap_or(8.0);
        let wobble = ((number as f64) * 12.9898).sin() * 0.03;
        let v = 0.8
            + 0.12 * (lr.log10() + 1.3).powi(2)
            + 0.02 * ((leaves - 72.0) / 64.0).powi(2)
            + 0.015 * (depth - 6.0).abs()
            + [0.0, 0.04, 0.15][model as usize]
            + wobble;
        // five folds, each a little off the mean; a pruned trial stopped after its third, a failed one has none
        let folds = if number % 9 == 8 { 3 } else { 5 };
        if number != 13 {
            for fold in 0..folds {
                let off = ((number * 5 + fold) as f64 * 78.233).sin() * 0.05;
                t.intermediate_values.insert(fold, v + off + if number % 9 == 8 { 0.2 } else { 0.0 });
            }
        }
        if number % 9 == 8 {
            t.state = TrialState::Pruned;
        } else if number == 13 {
            t.state = TrialState::Fail;
        } else {
            t.state = TrialState::Complete;
            t.value = Some(v);
        }
        history.push(t);
    }
    history
}

#[test]
fn study_charts_hand_the_renderer_each_chart_of_the_complete_trials() {
    let study = tuning_study(40, 3);
    let recorder = Recorder::default();
    let charts = study_charts(&study, Direction::Minimize, "val_rmse", &recorder).unwrap();
    let names: Vec<&str> = charts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "optimization_history.png",
            "param_importances.png",
            "parallel_coordinate.png",
            "intermediate_values.png",
            "slice.png"
        ]
    );
    let complete: Vec<&FrozenTrial> = study.iter().filter(|t| t.state == TrialState::Complete).collect();
    let drawn = recorder.drawn.borrow().clone();
    let Drawn::History { title, y_label, values, best } = &drawn[0] else { panic!("{:?}", drawn[0]) };
    assert_eq!(y_label, "val_rmse");
    assert_eq!(title, "Optimization history (35 complete trials; 4 pruned, 1 failed not shown)");
    assert_eq!(values.len(), complete.len());
    assert_eq!(values[0], (0.0, complete[0].value.unwrap()));
    assert!(best.windows(2).all(|w| w[1].1 <= w[0].1), "the best value never gets worse");
    assert_eq!(best.last().unwrap().1, values.iter().map(|v| v.1).fold(f64::INFINITY, f64::min));

    let Drawn::Bars { title, labels, values } = &drawn[1] else { panic!("{:?}", drawn[1]) };
    // max_depth is missing from the random forest's trials: Optuna 4.9 does not assess it
    assert!(title.contains("max_depth not assessed"), "{title}");
    let expected = ped_anova_importances(&study, Direction::Minimize);
    assert_eq!(labels, &expected.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    assert_eq!(values, &expected.iter().map(|(_, v)| *v).collect::<Vec<_>>());

    let Drawn::Parallel { axes, lines, colours, low_is_best } = &drawn[2] else { panic!("{:?}", drawn[2]) };
    let axis_names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(axis_names, ["val_rmse", "learning_rate", "max_depth", "model", "num_leaves"]);
    assert_eq!(axes[1].scale, AxisScale::Log);
    assert_eq!(axes[2].scale, AxisScale::Linear);
    assert_eq!(axes[3].scale, AxisScale::Categories(vec!["lightgbm".into(), "xgboost".into(), "random_forest".into()]));
    assert!(*low_is_best);
    assert_eq!(lines.len(), complete.len());
    for ((line, t), c) in lines.iter().zip(&complete).zip(colours) {
        assert_eq!(line[0], t.value);
        assert_eq!(*c, t.value.unwrap());
        assert_eq!(line[2].is_none(), t.params["model"] == 2.0, "a random forest's line breaks on max_depth");
        assert_eq!(line[3], Some(t.params["model"]));
    }
    assert!(lines.iter().any(|l| l[2].is_none()) && lines.iter().any(|l| l[2].is_some()));

    // the fold scores of the complete and pruned trials (not the failed one), fold k at k
    let Drawn::Intermediate { title, x_label, trials } = &drawn[3] else { panic!("{:?}", drawn[3]) };
    assert_eq!(title, "Fold scores (35 complete trials, 4 pruned)");
    assert_eq!(x_label, "fold");
    assert_eq!(trials.len(), 39);
    let first = &study[0];
    assert_eq!(trials[0], (false, first.intermediate_values.iter().map(|(s, v)| ((s + 1) as f64, *v)).collect()));
    assert!(trials.iter().all(|(pruned, points)| points.len() == if *pruned { 3 } else { 5 }));

    // a panel per parameter, on the parallel coordinates' axes, of the complete trials that have it
    let Drawn::Slice { title, y_label, panels } = &drawn[4] else { panic!("{:?}", drawn[4]) };
    assert_eq!(title, "Slice plot (35 complete trials; 4 pruned, 1 failed not shown; later trials darker)");
    assert_eq!(y_label, "val_rmse");
    assert_eq!(panels.iter().map(|p| &p.axis).collect::<Vec<_>>(), axes[1..].iter().collect::<Vec<_>>());
    for (j, panel) in panels.iter().enumerate() {
        let expected: Vec<(f64, f64, f64)> = complete
            .iter()
            .zip(lines)
            .filter_map(|(t, line)| Some((line[j + 1]?, t.value?, t.number as f64)))
            .collect();
        assert_eq!(panel.points, expected, "{}", panel.axis.name);
    }
    let max_depth = complete.iter().filter(|t| t.params.contains_key("max_depth")).count();
    assert!(max_depth < complete.len(), "the random forest's trials are left out of max_depth's panel");
    assert_eq!(panels[1].points.len(), max_depth);
    assert_eq!(panels[0].points[0], (complete[0].params["learning_rate"], complete[0].value.unwrap(), 0.0));
}

#[test]
fn a_chart_with_nothing_to_show_is_left_out() {
    let study = tuning_study(40, 3);
    let names = |trials: &[FrozenTrial]| {
        study_charts(trials, Direction::Maximize, "score", &Recorder::default())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    assert!(names(&[]).is_empty());
    let failed: Vec<FrozenTrial> = study.iter().filter(|t| t.state != TrialState::Complete).cloned().collect();
    assert!(names(&failed).is_empty(), "no complete trial, no chart");
    // one complete trial: no importances
    assert_eq!(
        names(&study[..1]),
        ["optimization_history.png", "parallel_coordinate.png", "intermediate_values.png", "slice.png"]
    );
    // no parameter and no fold score: a history only
    let mut bare = study[..5].to_vec();
    for t in &mut bare {
        t.params.clear();
        t.distributions.clear();
        t.intermediate_values.clear();
    }
    assert_eq!(names(&bare), ["optimization_history.png"]);
    // a maximised study's best line is the running maximum
    let recorder = Recorder::default();
    study_charts(&study, Direction::Maximize, "score", &recorder).unwrap();
    let Drawn::History { best, .. } = &recorder.drawn.borrow()[0] else { panic!() };
    assert!(best.windows(2).all(|w| w[1].1 >= w[0].1));
}

#[test]
fn the_candidates_distributions_step_through_each_ones_complete_values() {
    let study = tuning_study(40, 3);
    let names = ["lightgbm", "xgboost", "random_forest"];
    let by_model: Vec<(String, Vec<FrozenTrial>)> = names
        .iter()
        .enumerate()
        .map(|(k, name)| (name.to_string(), study.iter().filter(|t| t.params["model"] == k as f64).cloned().collect()))
        .collect();
    let recorder = Recorder::default();
    assert!(edf_chart(&by_model, "val_rmse", &recorder).unwrap().is_some());
    let Drawn::Lines { title, x_label, series } = &recorder.drawn.borrow()[0] else { panic!() };
    assert_eq!(title, "Empirical distribution of val_rmse by candidate (complete trials)");
    assert_eq!(x_label, "val_rmse");
    assert_eq!(series.len(), 3);
    for ((name, trials), (label, points)) in by_model.iter().zip(series) {
        let mut values: Vec<f64> =
            trials.iter().filter(|t| t.state == TrialState::Complete).filter_map(|t| t.value).collect();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        assert_eq!(label, &format!("{name} ({n} trials)"));
        // from 0 at the smallest value, a rise of 1/n at each value, 1 at the largest
        assert_eq!(points.len(), 2 * n + 1);
        assert_eq!(points[0], (values[0], 0.0));
        assert_eq!(*points.last().unwrap(), (values[n - 1], 1.0));
        for (i, v) in values.iter().enumerate() {
            assert_eq!(points[2 * i + 2], (*v, (i + 1) as f64 / n as f64));
        }
        assert!(points.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
    }
    // one candidate with a complete trial: nothing to compare
    let pruned_only: Vec<FrozenTrial> = study.iter().filter(|t| t.state == TrialState::Pruned).cloned().collect();
    let one = vec![by_model[0].clone(), ("xgboost".to_string(), pruned_only)];
    assert!(edf_chart(&one, "val_rmse", &Recorder::default()).unwrap().is_none());
    assert!(edf_chart(&by_model[..1], "val_rmse", &Recorder::default()).unwrap().is_none());
    // the kiln-store renderer draws it
    let png = edf_chart(&by_model, "val_rmse", &PlotChartRenderer::default()).unwrap().unwrap();
    let dir = std::env::temp_dir().join("kiln-study-charts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("edf.png"), &png).unwrap();
    assert_eq!(png_size(&png), PlotChartRenderer::default().line_size);
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "too short for a PNG");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

#[test]
fn the_five_pngs_of_a_tuning_study_render() {
    let study = tuning_study(40, 3);
    let renderer = PlotChartRenderer::default();
    let charts = study_charts(&study, Direction::Minimize, "val_rmse", &renderer).unwrap();
    let dir = std::env::temp_dir().join("kiln-study-charts");
    std::fs::create_dir_all(&dir).unwrap();
    let sizes: BTreeMap<&str, (u32, u32)> = charts
        .iter()
        .map(|(name, png)| {
            std::fs::write(dir.join(name), png).unwrap();
            // a drawn chart compresses to more than a blank canvas
            assert!(png.len() > 10_000, "{name}: {} bytes", png.len());
            (name.as_str(), png_size(png))
        })
        .collect();
    eprintln!("study charts written to {}", dir.display());
    assert_eq!(sizes.len(), 5);
    assert_eq!(sizes["slice.png"], renderer.slice_size(4));
    assert_eq!(sizes["intermediate_values.png"], renderer.series_size);
    assert_eq!(sizes["optimization_history.png"], renderer.series_size);
    assert_eq!(sizes["param_importances.png"], renderer.size_for(3));
    assert_eq!(sizes["parallel_coordinate.png"], renderer.parallel_size(5));
}
