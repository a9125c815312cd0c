//! PNG charts for runs, drawn with plotters' bitmap backend. The DejaVu Sans font is embedded in the binary
//! (`assets/`, with its licence) and registered with plotters' `ab_glyph` renderer, so charts need no system font
//! configuration. Plotters writes PNGs only to files, so each chart goes through a temporary file.

use std::fs;
use std::sync::OnceLock;

use kiln_domain::{ChartRenderer, Code, PortError};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn ensure_font() -> Result<(), PortError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(PortError::new(Code::Internal, "the embedded DejaVuSans font could not be loaded"))
    }
}

/// Draws horizontal bar charts (feature importances, metric comparisons) as PNG bytes.
#[derive(Debug, Clone)]
pub struct PlotChartRenderer {
    /// image width in pixels
    pub width: u32,
    /// height of one bar row in pixels
    pub row_height: u32,
}

impl Default for PlotChartRenderer {
    fn default() -> Self {
        PlotChartRenderer { width: 1000, row_height: 28 }
    }
}

impl PlotChartRenderer {
    /// The image size for `n` bars: the width, and room for the title, the axis and one row per bar.
    pub fn size_for(&self, n: usize) -> (u32, u32) {
        let rows = u32::try_from(n).unwrap_or(u32::MAX / 2).min(2000);
        (self.width, (110 + rows * self.row_height).max(240))
    }
}

fn draw_error(title: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(Code::Internal, format!("cannot draw chart '{title}': {e}"))
}

/// Shortens a label to at most `max` characters, marking the cut with an ellipsis.
fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// An axis tick without float noise: rounded to a millionth of the axis span, `-0` shown as `0`.
fn tick_label(v: f64, span: f64) -> String {
    let unit = 10_f64.powf((span.abs().max(f64::MIN_POSITIVE) / 1e6).log10().floor());
    let rounded = (v / unit).round() * unit;
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    // shortest text of the rounded value, cut to the unit's decimals to drop binary noise
    let decimals = usize::try_from((-unit.log10()).ceil().max(0.0) as i64).unwrap_or(0);
    let text = format!("{rounded:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

impl ChartRenderer for PlotChartRenderer {
    fn bar_chart(&self, title: &str, x_label: &str, labels: &[String], values: &[f64]) -> Result<Vec<u8>, PortError> {
        if labels.len() != values.len() {
            return Err(PortError::new(
                Code::Internal,
                format!("chart '{title}': {} labels but {} values", labels.len(), values.len()),
            ));
        }
        ensure_font()?;
        let n = labels.len();
        let (width, height) = self.size_for(n);
        let labels: Vec<String> = labels.iter().map(|l| shorten(l, 48)).collect();
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let lo = finite.clone().fold(0.0_f64, f64::min);
        let hi = finite.fold(0.0_f64, f64::max);
        let span = if hi > lo { hi - lo } else { 1.0 };
        let (lo, hi) =
            (if lo < 0.0 { lo - 0.05 * span } else { 0.0 }, if hi > 0.0 || lo >= 0.0 { hi + 0.05 * span } else { 0.0 });
        let hi = if hi > lo { hi } else { lo + 1.0 };

        let tmp = tempfile::Builder::new()
            .prefix("kiln-chart-")
            .suffix(".png")
            .tempfile()
            .map_err(|e| PortError::io(format!("cannot create a temporary file for chart '{title}': {e}")))?;
        {
            let root = BitMapBackend::new(tmp.path(), (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| draw_error(title, e))?;
            let label_style = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
            let mut label_width = 40;
            for label in &labels {
                let (w, _) = root.estimate_text_size(label, &label_style).map_err(|e| draw_error(title, e))?;
                label_width = label_width.max(w);
            }
            let label_width = label_width.min(width / 2) + 12;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, (FAMILY, 24).into_font())
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(label_width)
                // a segmented range 0..k has k + 1 rows
                .build_cartesian_2d(lo..hi, (0..n.saturating_sub(1)).into_segmented())
                .map_err(|e| draw_error(title, e))?;
            // the first label is drawn on top
            let row_label = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) if *i < n => labels[n - 1 - *i].clone(),
                _ => String::new(),
            };
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n.max(1))
                .y_label_formatter(&row_label)
                .y_label_style(label_style.clone())
                .x_label_formatter(&|v| tick_label(*v, hi - lo))
                .x_label_style(TextStyle::from((FAMILY, 14).into_font()).color(&BLACK))
                .x_desc(x_label)
                .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                .draw()
                .map_err(|e| draw_error(title, e))?;
            let bar_color = RGBColor(52, 101, 164);
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| {
                let row = n - 1 - i;
                let mut bar = Rectangle::new(
                    [(0.0, SegmentValue::Exact(row)), (v, SegmentValue::Exact(row + 1))],
                    bar_color.filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                bar
            });
            chart.draw_series(bars).map_err(|e| draw_error(title, e))?;
            root.present().map_err(|e| draw_error(title, e))?;
        }
        fs::read(tmp.path()).map_err(|e| PortError::io(format!("cannot read back chart '{title}': {e}")))
    }
}

#[cfg(test)]
mod tests;
