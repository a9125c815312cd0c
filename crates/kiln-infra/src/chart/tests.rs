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
