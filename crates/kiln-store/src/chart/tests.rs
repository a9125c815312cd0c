use kiln_domain::{AxisScale, BeeswarmRow, ChartAxis, ChartRenderer, Code, SlicePanel};
use plotters::style::RGBColor;

use super::beeswarm::{colour_range, jitter, value_color};
use super::series::{Step, time_label, time_ticks};
use super::study::{blues, log_ticks, nice_ticks};
use super::{PALETTE, PlotChartRenderer, lower_right_is_emptier, tick_label, unit_axis};

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "too short for a PNG");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

#[test]
fn bar_chart_is_a_png_of_the_expected_size() {
    let renderer = PlotChartRenderer::default();
    let labels: Vec<String> =
        ["OT_lag_1", "HUFL_rolling_mean_24", "hour", "a_rather_long_feature_name_that_keeps_going_on", "dow"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let values = [812.0, 301.5, 120.25, 44.0, f64::NAN];
    let png = renderer.bar_chart("Feature importance (gain)", "gain", &labels, &values).unwrap();
    assert_eq!(png_size(&png), renderer.size_for(labels.len()));
    assert_eq!(renderer.size_for(labels.len()), (1000, 250));
}

#[test]
fn negative_values_and_empty_charts_render() {
    let renderer = PlotChartRenderer::default();
    let labels = vec!["mae".to_string(), "skill".to_string()];
    let png = renderer.bar_chart("Compared with the baseline", "difference", &labels, &[-0.25, 0.5]).unwrap();
    assert_eq!(png_size(&png), (1000, 240));
    let png = renderer.bar_chart("Nothing", "x", &[], &[]).unwrap();
    assert_eq!(png_size(&png), (1000, 240));
}

#[test]
fn mismatched_lengths_are_an_error() {
    let err = PlotChartRenderer::default().bar_chart("t", "x", &["a".to_string()], &[]).unwrap_err();
    assert_eq!(err.code, Code::Internal);
    assert!(err.message.contains("1 labels but 0 values"), "{}", err.message);
}

#[test]
fn tick_labels_have_no_float_noise() {
    for (v, span, text) in [
        (100.0, 800.0, "100"),
        (-0.0, 0.8, "0"),
        (0.1 + 0.2, 1.0, "0.3"),
        (-0.25, 0.8, "-0.25"),
        (1.5e-7, 1e-6, "0.00000015"),
        (123456.0, 1e6, "123456"),
    ] {
        assert_eq!(tick_label(v, span), text, "{v}");
    }
}

fn roc_like() -> Vec<(String, Vec<(f64, f64)>)> {
    vec![
        ("model (AUC 0.80)".to_string(), vec![(0.0, 0.0), (0.05, 0.3), (0.2, 0.62), (0.45, 0.85), (1.0, 1.0)]),
        ("majority (AUC 0.50)".to_string(), vec![(0.0, 0.0), (1.0, 1.0)]),
    ]
}

#[test]
fn line_chart_is_a_png_of_the_configured_size() {
    let renderer = PlotChartRenderer::default();
    let roc = renderer.line_chart("ROC curve (test)", "false positive rate", "true positive rate", &roc_like(), true);
    let roc = roc.unwrap();
    assert_eq!(png_size(&roc), (900, 720));
    // a drawn chart compresses to more than a blank canvas, and the diagonal changes the image
    assert!(roc.len() > 10_000, "{} bytes", roc.len());
    let plain =
        renderer.line_chart("ROC curve (test)", "false positive rate", "true positive rate", &roc_like(), false);
    assert_ne!(plain.unwrap(), roc);

    // a precision-recall staircase, unnamed series (no legend), a custom size
    let small = PlotChartRenderer { line_size: (400, 300), ..PlotChartRenderer::default() };
    let pr = vec![(String::new(), vec![(1.0, 0.27), (1.0, 0.4), (0.6, 0.4), (0.6, 0.7), (0.0, 0.7), (0.0, 1.0)])];
    assert_eq!(png_size(&small.line_chart("PR", "recall", "precision", &pr, false).unwrap()), (400, 300));
}

#[test]
fn a_line_charts_legend_goes_to_the_emptier_right_hand_corner() {
    // a cumulative distribution ends high on the right, a precision-recall curve low
    let edf = vec![("a".to_string(), vec![(0.0, 0.0), (0.5, 0.5), (0.9, 0.95), (1.0, 1.0)])];
    let pr = vec![("a".to_string(), vec![(0.0, 1.0), (0.5, 0.8), (0.9, 0.3), (1.0, 0.1)])];
    assert!(lower_right_is_emptier(&edf, (0.0, 1.0), (0.0, 1.0)));
    assert!(!lower_right_is_emptier(&pr, (0.0, 1.0), (0.0, 1.0)));
    // a tie keeps the upper right
    assert!(!lower_right_is_emptier(&[], (0.0, 1.0), (0.0, 1.0)));
}

#[test]
fn rates_get_the_unit_axis_and_small_values_their_own() {
    assert_eq!(unit_axis(0.0, 1.0), (0.0, 1.0));
    // a precision that reaches 1, a share from 0
    assert_eq!(unit_axis(0.27, 1.0), (0.0, 1.0));
    assert_eq!(unit_axis(0.0, 0.4), (0.0, 1.0));
    // an RMSE between 0.0072 and 0.0075, an AUC between 0.8 and 0.9, values past 1
    assert_eq!(unit_axis(0.0072, 0.0075), (0.0072, 0.0075));
    assert_eq!(unit_axis(0.8, 0.9), (0.8, 0.9));
    assert_eq!(unit_axis(0.0, 3.0), (0.0, 3.0));
}

#[test]
fn degenerate_line_charts() {
    let renderer = PlotChartRenderer::default();
    // nothing to draw is an error that names the chart
    for series in [vec![], vec![("empty".to_string(), vec![])], vec![("nan".to_string(), vec![(f64::NAN, 1.0)])]] {
        let err = renderer.line_chart("Nothing", "x", "y", &series, true).unwrap_err();
        assert_eq!(err.code, Code::DataShape);
        assert!(err.message.contains("chart 'Nothing': no series has a finite point"), "{}", err.message);
    }
    // one point, constant values, infinities among the points, many series: still a picture
    let odd = vec![
        ("one point".to_string(), vec![(0.5, 0.5)]),
        ("flat".to_string(), vec![(0.0, 0.5), (f64::INFINITY, 0.5), (1.0, 0.5)]),
    ];
    assert_eq!(png_size(&renderer.line_chart("Odd", "x", "y", &odd, true).unwrap()), (900, 720));
    let single = vec![("dot".to_string(), vec![(3.0, -2.0)])];
    assert_eq!(png_size(&renderer.line_chart("Dot", "x", "y", &single, false).unwrap()), (900, 720));
    let many: Vec<(String, Vec<(f64, f64)>)> =
        (0..12).map(|i| (format!("fold {i}"), vec![(0.0, 0.0), (0.1 * i as f64 / 12.0, 0.5), (1.0, 1.0)])).collect();
    assert_eq!(png_size(&renderer.line_chart("Folds", "fpr", "tpr", &many, true).unwrap()), (900, 720));
}

#[test]
fn confusion_matrix_chart_is_a_png() {
    let renderer = PlotChartRenderer::default();
    let png =
        renderer.confusion_matrix_chart("Confusion matrix (test)", ["stays", "churns"], [[4771, 403], [981, 888]]);
    let png = png.unwrap();
    assert_eq!(png_size(&png), (640, 560));
    assert!(png.len() > 5_000, "{} bytes", png.len());
    // other counts, other picture
    let other = renderer.confusion_matrix_chart("Confusion matrix (test)", ["stays", "churns"], [[10, 0], [0, 10]]);
    assert_ne!(other.unwrap(), png);
    // all zeros and huge counts and long labels do not panic
    for counts in [[[0, 0], [0, 0]], [[u64::MAX / 4, 1], [0, u64::MAX / 4]]] {
        let long = "a very long class label that keeps going";
        let png = renderer.confusion_matrix_chart("Edge", [long, ""], counts).unwrap();
        assert_eq!(png_size(&png), (640, 560));
    }
}

/// A decoded PNG: width, height and one RGB triple per pixel, row by row.
struct Pixels {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

impl Pixels {
    fn decode(bytes: &[u8]) -> Pixels {
        let mut reader = png::Decoder::new(bytes).read_info().expect("a readable PNG");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("one frame");
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("unexpected colour type {other:?}"),
        };
        let rgb = buf[..info.buffer_size()].chunks(channels).map(|p| [p[0], p[1], p[2]]).collect();
        Pixels { width: info.width, height: info.height, rgb }
    }

    /// (x, y) of every pixel of exactly this colour.
    fn find(&self, color: [u8; 3]) -> Vec<(u32, u32)> {
        let w = self.width as usize;
        self.rgb
            .iter()
            .enumerate()
            .filter(|(_, p)| **p == color)
            .map(|(i, _)| ((i % w) as u32, (i / w) as u32))
            .collect()
    }

    /// How many pixels are not white.
    fn inked(&self) -> usize {
        self.rgb.iter().filter(|p| **p != [255, 255, 255]).count()
    }
}

const SHAP_BLUE: [u8; 3] = [0, 139, 251];
const SHAP_RED: [u8; 3] = [255, 0, 81];
const SHAP_GREY: [u8; 3] = [119, 119, 119];

fn beeswarm_rows() -> Vec<BeeswarmRow> {
    // a feature whose high values push the output up, and one with no known values (grey), 60 rows each
    let values: Vec<f64> = (0..60).map(f64::from).collect();
    let shap: Vec<f64> = values.iter().map(|v| (v - 30.0) / 10.0).collect();
    vec![
        BeeswarmRow { feature: "tenure".to_string(), shap: shap.clone(), values },
        BeeswarmRow {
            feature: "Contract_Month-to-month".to_string(),
            shap: shap.iter().map(|s| s * 0.5).collect(),
            values: vec![f64::NAN; 60],
        },
    ]
}

#[test]
fn beeswarm_is_coloured_by_feature_value_with_the_first_row_on_top() {
    let renderer = PlotChartRenderer::default();
    let png = renderer.beeswarm_chart("SHAP (test)", "SHAP value (impact on model output)", &beeswarm_rows()).unwrap();
    assert_eq!(png_size(&png), renderer.beeswarm_size(2));
    let pixels = Pixels::decode(&png);
    assert_eq!((pixels.width, pixels.height), renderer.beeswarm_size(2));
    let (blue, red, grey) = (pixels.find(SHAP_BLUE), pixels.find(SHAP_RED), pixels.find(SHAP_GREY));
    assert!(blue.len() > 50 && red.len() > 50 && grey.len() > 50, "{} {} {}", blue.len(), red.len(), grey.len());
    // the colour bar runs red (high) above blue (low); in the plot, low values sit left of high ones
    let plot_width = pixels.width - 120;
    let in_plot = |points: &[(u32, u32)]| points.iter().copied().filter(|p| p.0 < plot_width).collect::<Vec<_>>();
    let mean = |points: &[(u32, u32)], f: fn(&(u32, u32)) -> u32| {
        points.iter().map(f).map(f64::from).sum::<f64>() / points.len() as f64
    };
    let (blue_dots, red_dots, grey_dots) = (in_plot(&blue), in_plot(&red), in_plot(&grey));
    assert!(mean(&blue_dots, |p| p.0) < mean(&red_dots, |p| p.0));
    // the first row (tenure, coloured) is above the second (missing values, grey)
    assert!(mean(&red_dots, |p| p.1) < mean(&grey_dots, |p| p.1));
    let bar = |points: &[(u32, u32)]| points.iter().copied().filter(|p| p.0 >= plot_width).collect::<Vec<_>>();
    assert!(mean(&bar(&red), |p| p.1) < mean(&bar(&blue), |p| p.1));
    // the same data draws the same picture
    let again = renderer.beeswarm_chart("SHAP (test)", "SHAP value (impact on model output)", &beeswarm_rows());
    assert_eq!(again.unwrap(), png);
}

#[test]
fn degenerate_beeswarms() {
    let renderer = PlotChartRenderer::default();
    let x = "SHAP value";
    for rows in
        [vec![], vec![BeeswarmRow { feature: "a".into(), shap: vec![f64::NAN, f64::INFINITY], values: vec![1.0, 2.0] }]]
    {
        let err = renderer.beeswarm_chart("Nothing", x, &rows).unwrap_err();
        assert_eq!(err.code, Code::DataShape);
        assert!(err.message.contains("chart 'Nothing': no finite SHAP value"), "{}", err.message);
    }
    let bad = vec![BeeswarmRow { feature: "a".into(), shap: vec![1.0], values: vec![] }];
    let err = renderer.beeswarm_chart("Bad", x, &bad).unwrap_err();
    assert_eq!(err.code, Code::Internal);
    assert!(err.message.contains("feature 'a' has 1 SHAP values but 0 feature values"), "{}", err.message);
    // one dot, constant values, all-zero SHAP, NaN among the SHAP values, a long name: still a picture
    let odd = vec![
        BeeswarmRow { feature: "one".into(), shap: vec![0.5], values: vec![3.0] },
        BeeswarmRow { feature: "constant".into(), shap: vec![0.1, -0.1, f64::NAN], values: vec![2.0; 3] },
        BeeswarmRow { feature: "zero ".repeat(30), shap: vec![0.0; 4], values: vec![0.0, 1.0, f64::NAN, 1.0] },
    ];
    let png = renderer.beeswarm_chart("Odd", x, &odd).unwrap();
    assert_eq!(png_size(&png), renderer.beeswarm_size(3));
    assert!(Pixels::decode(&png).inked() > 1000);
}

#[test]
fn beeswarm_layout_and_colour_scale_follow_shap() {
    // dots in one bin alternate below and above the centre, within 0.4 of a row
    let offsets = jitter(&[1.0, 1.0, 1.0, 1.0, 1.0, 5.0, f64::NAN]);
    assert_eq!(offsets[5], 0.0);
    assert_eq!(offsets[0], 0.0);
    assert!(offsets[1] > 0.0 && offsets[2] < 0.0 && (offsets[1] + offsets[2]).abs() < 1e-12, "{offsets:?}");
    assert!(offsets.iter().all(|o| o.abs() <= 0.4), "{offsets:?}");
    // numpy.nanpercentile(values, [5, 95]), falling back to [1, 99], then the extremes
    let hundred: Vec<f64> = (0..=100).map(f64::from).collect();
    assert_eq!(colour_range(&hundred), Some((5.0, 95.0)));
    let mut rare = vec![0.0; 97];
    rare.extend([1.0, 1.0, 1.0, f64::NAN]);
    let (lo, hi) = colour_range(&rare).unwrap();
    assert_eq!(lo, 0.0);
    assert!((hi - 1.0).abs() < 1e-12, "{hi}");
    let mut one = vec![0.0; 200];
    one.push(7.0);
    assert_eq!(colour_range(&one), Some((0.0, 7.0)));
    assert_eq!(colour_range(&[f64::NAN]), None);
    assert_eq!(value_color(0.0), RGBColor(0, 139, 251));
    assert_eq!(value_color(1.0), RGBColor(255, 0, 81));
}

fn hourly(n: usize) -> Vec<i64> {
    // from 2018-02-20 00:00 UTC, every hour
    (0..n).map(|i| 1_519_084_800_000 + 3_600_000 * i as i64).collect()
}

#[test]
fn series_chart_draws_each_series_with_a_time_axis() {
    let renderer = PlotChartRenderer::default();
    let times = hourly(500);
    let actual: Vec<f64> = (0..500).map(|i| 10.0 + (i as f64 / 20.0).sin() * 3.0).collect();
    let predicted: Vec<f64> = actual.iter().map(|v| v + 0.8).collect();
    let series = vec![("actual".to_string(), actual), ("predicted".to_string(), predicted)];
    let png = renderer.series_chart("OT: actual vs predicted (test)", "OT", &times, &series).unwrap();
    // more than 400 times: a second panel for the last 200
    assert_eq!(png_size(&png), (1200, 896));
    assert_eq!(renderer.series_chart_size(400), (1200, 560));
    let pixels = Pixels::decode(&png);
    let (first, second) = (PALETTE[0], PALETTE[1]);
    assert!(pixels.find([first.0, first.1, first.2]).len() > 500);
    assert!(pixels.find([second.0, second.1, second.2]).len() > 500);

    assert_eq!(time_ticks(times[0] as f64, times[499] as f64).1, Step::Millis(7 * 86_400_000));
    let (ticks, step) = time_ticks(times[0] as f64, times[71] as f64);
    assert_eq!(step, Step::Millis(12 * 3_600_000));
    assert_eq!(time_label(ticks[1], step), "02-20 12:00");
    // ten years of days: yearly ticks on January 1st
    let (ticks, step) = time_ticks(1.0e12, 1.0e12 + 3650.0 * 86_400_000.0);
    assert_eq!(step, Step::Months(24));
    assert_eq!(time_label(ticks[0], step), "2002");
    assert!(ticks.len() <= 8);
}

#[test]
fn degenerate_series_charts() {
    let renderer = PlotChartRenderer::default();
    let times = hourly(3);
    for series in [vec![], vec![("nan".to_string(), vec![f64::NAN; 3])]] {
        let err = renderer.series_chart("Nothing", "y", &times, &series).unwrap_err();
        assert_eq!(err.code, Code::DataShape);
        assert!(err.message.contains("chart 'Nothing': no series has a finite value"), "{}", err.message);
    }
    let err = renderer.series_chart("Short", "y", &times, &[("a".to_string(), vec![1.0])]).unwrap_err();
    assert_eq!(err.code, Code::Internal);
    assert!(err.message.contains("series 'a' has 1 values for 3 times"), "{}", err.message);
    // a gap, one time only, a constant series: still pictures
    let gap = vec![("gap".to_string(), vec![1.0, f64::NAN, 2.0])];
    assert_eq!(png_size(&renderer.series_chart("Gap", "y", &times, &gap).unwrap()), (1200, 560));
    let one = vec![("one".to_string(), vec![5.0])];
    assert_eq!(png_size(&renderer.series_chart("One", "y", &hourly(1), &one).unwrap()), (1200, 560));
}

#[test]
fn residual_chart_has_points_a_zero_line_and_a_histogram() {
    let renderer = PlotChartRenderer::default();
    let times = hourly(400);
    let residuals: Vec<f64> = (0..400).map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0).collect();
    let png = renderer.residual_chart("OT: residuals (test)", "actual - predicted", &times, &residuals).unwrap();
    let pixels = Pixels::decode(&png);
    assert_eq!((pixels.width, pixels.height), (1200, 560));
    // the zero line: a long run of black pixels on one row in each panel
    let black = pixels.find([0, 0, 0]);
    let mut rows = std::collections::BTreeMap::new();
    for (x, y) in black {
        rows.entry(y).or_insert_with(Vec::new).push(x);
    }
    let long: Vec<_> = rows.values().filter(|xs| xs.len() > 600).collect();
    assert!(!long.is_empty(), "no horizontal zero line");
    // histogram bars in the right quarter, points in the left three quarters
    assert!(pixels.inked() > 20_000);
    let err = renderer.residual_chart("Nothing", "r", &times[..1], &[f64::NAN]).unwrap_err();
    assert_eq!(err.code, Code::DataShape);
    let err = renderer.residual_chart("Short", "r", &times, &[1.0]).unwrap_err();
    assert_eq!(err.code, Code::Internal);
    // one residual, all equal residuals: still pictures
    assert_eq!(png_size(&renderer.residual_chart("One", "r", &times[..1], &[0.5]).unwrap()), (1200, 560));
    assert_eq!(png_size(&renderer.residual_chart("Flat", "r", &times, &[0.0; 400]).unwrap()), (1200, 560));
}

#[test]
fn study_ticks_are_round_and_within_range() {
    let near = |a: Vec<f64>, b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12);
    assert!(near(nice_ticks(0.82, 1.83, 5), &[1.0, 1.2, 1.4, 1.6, 1.8]));
    assert!(near(nice_ticks(8.0, 256.0, 5), &[50.0, 100.0, 150.0, 200.0, 250.0]));
    assert_eq!(nice_ticks(3.0, 3.0, 5), vec![3.0]);
    // powers of ten over several decades, 1-2-5 multiples within one, round values within less
    let values = |t: Vec<(f64, f64)>| t.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
    assert_eq!(values(log_ticks(-4.0, -0.3)), vec![1e-4, 1e-3, 1e-2, 1e-1]);
    assert_eq!(values(log_ticks(0.1f64.log10(), 0.6f64.log10())), vec![0.1, 0.2, 0.5]);
    let narrow = values(log_ticks(2f64.log10(), 4f64.log10()));
    assert!(narrow.len() >= 2 && narrow.iter().all(|v| (2.0..=4.0).contains(v)), "{narrow:?}");
    // the colour scale darkens monotonically
    let dark = |c: RGBColor| u32::from(c.0) + u32::from(c.1) + u32::from(c.2);
    assert!((0..10).all(|i| dark(blues(f64::from(i) / 10.0)) > dark(blues(f64::from(i + 1) / 10.0))));
}

#[test]
fn history_chart_is_a_png_of_the_series_size() {
    let renderer = PlotChartRenderer::default();
    let values = vec![(0.0, 3.0), (1.0, 2.5), (3.0, f64::NAN), (4.0, 2.7), (5.0, 1.0)];
    let best = vec![(0.0, 3.0), (1.0, 2.5), (4.0, 2.5), (5.0, 1.0)];
    let png = renderer.history_chart("Optimization history", "loss", &values, &best).unwrap();
    assert_eq!(png_size(&png), renderer.series_size);
    // one trial is enough
    let png = renderer.history_chart("One trial", "loss", &[(0.0, 1.0)], &[(0.0, 1.0)]).unwrap();
    assert_eq!(png_size(&png), renderer.series_size);
    let err = renderer.history_chart("Nothing", "loss", &[(0.0, f64::NAN)], &[]).unwrap_err();
    assert_eq!(err.code, Code::DataShape);
}

#[test]
fn intermediate_values_chart_is_a_png_of_the_series_size() {
    let renderer = PlotChartRenderer::default();
    let trials = vec![
        (false, vec![(1.0, 0.5), (2.0, 0.45), (3.0, 0.47)]),
        (true, vec![(1.0, 0.9), (2.0, f64::NAN)]),
        // a trial with one fold: a cross alone
        (true, vec![(1.0, 1.2)]),
    ];
    let png = renderer.intermediate_values_chart("Fold scores", "fold", "rmse", &trials).unwrap();
    assert_eq!(png_size(&png), renderer.series_size);
    let err = renderer.intermediate_values_chart("Nothing", "fold", "rmse", &[(false, vec![(1.0, f64::NAN)])]);
    assert_eq!(err.unwrap_err().code, Code::DataShape);
    assert_eq!(renderer.intermediate_values_chart("None", "fold", "rmse", &[]).unwrap_err().code, Code::DataShape);
}

#[test]
fn slice_chart_is_a_png_of_the_grid_size() {
    let renderer = PlotChartRenderer::default();
    let panels = vec![
        SlicePanel {
            axis: axis("learning_rate", AxisScale::Log),
            points: vec![(1e-4, 0.9, 0.0), (3e-3, 0.7, 1.0), (0.2, 0.8, 2.0), (f64::NAN, 0.5, 3.0)],
        },
        SlicePanel { axis: axis("num_leaves", AxisScale::Linear), points: vec![(16.0, 0.9, 0.0), (200.0, 0.7, 1.0)] },
        SlicePanel {
            axis: axis("model", AxisScale::Categories(vec!["lightgbm".into(), "xgboost".into()])),
            points: vec![(0.0, 0.9, 0.0), (1.0, 0.7, 1.0), (1.0, 0.8, 2.0)],
        },
        // one value only: the panel still draws
        SlicePanel { axis: axis("max_depth", AxisScale::Linear), points: vec![(6.0, 0.75, 4.0)] },
    ];
    let png = renderer.slice_chart("Slice plot", "rmse", &panels).unwrap();
    assert_eq!(png_size(&png), renderer.slice_size(4));
    assert_eq!(renderer.slice_size(4), (3 * 440 + 20, 2 * 330 + 60), "three panels a row");
    assert_eq!(renderer.slice_size(1), (440 + 20, 330 + 60));
    let err = |panels: &[SlicePanel]| renderer.slice_chart("Bad", "rmse", panels).unwrap_err().code;
    assert_eq!(err(&[]), Code::DataShape);
    assert_eq!(
        err(&[SlicePanel { axis: axis("x", AxisScale::Linear), points: vec![(1.0, f64::NAN, 0.0)] }]),
        Code::DataShape
    );
    let outside =
        SlicePanel { axis: axis("m", AxisScale::Categories(vec!["a".into()])), points: vec![(1.0, 0.5, 0.0)] };
    assert_eq!(err(&[outside]), Code::Internal);
    // a non-finite value is skipped, not taken for an index
    let skipped = SlicePanel {
        axis: axis("m", AxisScale::Categories(vec!["a".into()])),
        points: vec![(f64::NAN, 0.5, 0.0), (0.0, 0.4, 1.0)],
    };
    assert_eq!(png_size(&renderer.slice_chart("One", "rmse", &[skipped]).unwrap()), renderer.slice_size(1));
}

fn axis(name: &str, scale: AxisScale) -> ChartAxis {
    ChartAxis { name: name.into(), scale }
}

#[test]
fn parallel_coordinates_draw_every_kind_of_axis_and_broken_lines() {
    let renderer = PlotChartRenderer::default();
    let axes = vec![
        axis("accuracy", AxisScale::Linear),
        axis("learning_rate", AxisScale::Log),
        axis("a_parameter_name_far_too_long_for_the_room_between_two_axes", AxisScale::Linear),
        axis("booster", AxisScale::Categories(vec!["gbtree".into(), "dart".into()])),
        axis("only", AxisScale::Categories(vec!["one".into()])),
    ];
    let lines = vec![
        vec![Some(0.91), Some(0.01), Some(5.0), Some(0.0), Some(0.0)],
        vec![Some(0.85), Some(0.3), None, Some(1.0), Some(0.0)],
        // a value with no known neighbour is a dot
        vec![Some(0.7), None, Some(5.0), None, Some(0.0)],
        vec![Some(0.95), Some(0.002), Some(5.0), Some(1.0), None],
    ];
    let colours = vec![0.91, 0.85, 0.7, 0.95];
    let png = renderer.parallel_coordinates_chart("Parallel coordinates", &axes, &lines, &colours, false).unwrap();
    assert_eq!(png_size(&png), renderer.parallel_size(5));
    assert_eq!(renderer.parallel_size(5), (1200, 640));
    assert_eq!(renderer.parallel_size(8).0, 8 * 190 + 150 + 60);
    let dir = std::env::temp_dir().join("kiln-study-charts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("parallel_edge_cases.png"), &png).unwrap();

    let err = |axes: &[ChartAxis], lines: &[Vec<Option<f64>>], colours: &[f64]| {
        renderer.parallel_coordinates_chart("t", axes, lines, colours, true).unwrap_err()
    };
    assert_eq!(err(&axes, &[], &[]).code, Code::DataShape);
    assert!(err(&axes, &lines, &colours[..2]).message.contains("2 colour values for 4 lines"));
    assert!(err(&axes[..2], &lines, &colours).message.contains("a line has 5 values for 2 axes"));
    let bad = vec![vec![Some(0.9), Some(0.1), Some(1.0), Some(2.0), Some(0.0)]];
    let e = err(&axes, &bad, &[0.9]);
    assert_eq!(e.code, Code::Internal);
    assert!(e.message.contains("axis 'booster': index 2 outside its 2 choices"), "{}", e.message);
}

#[test]
fn overlaid_histograms_draw_numeric_bins_and_categories_and_refuse_mismatched_shares() {
    let r = PlotChartRenderer::default();
    let png =
        r.overlaid_histogram_chart("x", "x", &[0.0, 1.0, 2.0, 3.0], &[], &[0.2, 0.5, 0.3], &[0.6, 0.3, 0.1]).unwrap();
    assert_eq!(png_size(&png), r.line_size);
    let labels = vec!["a".to_string(), "b".to_string()];
    let png = r.overlaid_histogram_chart("c", "c", &[], &labels, &[0.4, 0.6], &[0.9, 0.1]).unwrap();
    assert_eq!(png_size(&png), r.line_size);
    let e = r.overlaid_histogram_chart("bad", "x", &[0.0, 1.0], &[], &[0.5, 0.5], &[1.0]).unwrap_err();
    assert_eq!(e.code, Code::DataShape, "{e}");
}
