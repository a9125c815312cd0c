use kiln_domain::{ChartRenderer, Code};

use super::{PlotChartRenderer, tick_label};

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
