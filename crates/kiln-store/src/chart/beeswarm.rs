//! The SHAP beeswarm, drawn the way the `shap` package's `summary_plot` draws it: the dot layout (values binned
//! into 100 bins along the row, dots in one bin stacked alternately above and below the row's centre), the colour
//! scaling (each feature between its 5th and 95th percentiles, falling back to the 1st and 99th, then the extremes)
//! and the colours (shap's blue and red, grey for missing values). Unlike shap, ties are broken by row order, not at
//! random, so the same data always gives the same picture.

use kiln_domain::{BeeswarmRow, Code, PortError};
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{FAMILY, PlotChartRenderer, Ticked, draw_error, padded, render_png, shorten, tick_label, title_style};

/// shap's low-value blue (`#008bfb`) and high-value red (`#ff0051`), and its grey for missing values.
const LOW: RGBColor = RGBColor(0, 139, 251);
const HIGH: RGBColor = RGBColor(255, 0, 81);
const MISSING: RGBColor = RGBColor(119, 119, 119);
/// Width in pixels kept on the right for the colour bar and its labels.
const COLOUR_BAR_AREA: u32 = 120;

/// The colour of a value at `share` (0 low .. 1 high) of its feature's range: blue through purple to red.
pub(super) fn value_color(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    RGBColor(mix(LOW.0, HIGH.0), mix(LOW.1, HIGH.1), mix(LOW.2, HIGH.2))
}

/// The `p`-th percentile of sorted finite values, interpolated linearly between ranks (numpy's default).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// The value range a feature's colours span, as shap picks it; `None` when no value is finite.
pub(super) fn colour_range(values: &[f64]) -> Option<(f64, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = (percentile(&sorted, 5.0), percentile(&sorted, 95.0));
    if lo == hi {
        (lo, hi) = (percentile(&sorted, 1.0), percentile(&sorted, 99.0));
        if lo == hi {
            (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
        }
    }
    Some((lo.min(hi), hi))
}

/// Where a value sits in its feature's colour range (0 low .. 1 high; a constant feature sits in the middle).
fn share_of(value: f64, (lo, hi): (f64, f64)) -> f64 {
    if hi > lo { ((value - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 }
}

/// The vertical offset of each dot from its row's centre, in rows (within ±0.4), for the finite SHAP values:
/// shap's layout, values binned into 100 bins over the row's range, dots in one bin alternately above and below.
pub(super) fn jitter(shap: &[f64]) -> Vec<f64> {
    let finite = shap.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let bin = |v: f64| ((100.0 * (v - lo) / (hi - lo + 1e-8)).round()) as i64;
    let mut order: Vec<usize> = (0..shap.len()).filter(|&i| shap[i].is_finite()).collect();
    order.sort_by_key(|&i| (bin(shap[i]), i));
    let mut offsets = vec![0.0; shap.len()];
    let (mut layer, mut last) = (0_i64, None);
    for &i in &order {
        if last != Some(bin(shap[i])) {
            layer = 0;
        }
        offsets[i] = ((layer + 1) / 2) as f64 * if layer % 2 == 1 { 1.0 } else { -1.0 };
        layer += 1;
        last = Some(bin(shap[i]));
    }
    let widest = offsets.iter().copied().fold(0.0_f64, f64::max);
    let scale = 0.9 * 0.4 / (widest + 1.0);
    offsets.iter().map(|o| o * scale).collect()
}

impl PlotChartRenderer {
    /// The image size of a beeswarm of `n` features.
    pub fn beeswarm_size(&self, n: usize) -> (u32, u32) {
        let rows = u32::try_from(n).unwrap_or(u32::MAX / 2).min(2000);
        (self.width, (130 + rows * self.beeswarm_row_height).max(260))
    }

    pub(super) fn draw_beeswarm(&self, title: &str, x_label: &str, rows: &[BeeswarmRow]) -> Result<Vec<u8>, PortError> {
        if let Some(row) = rows.iter().find(|r| r.shap.len() != r.values.len()) {
            return Err(PortError::new(
                Code::Internal,
                format!(
                    "chart '{title}': feature '{}' has {} SHAP values but {} feature values",
                    row.feature,
                    row.shap.len(),
                    row.values.len()
                ),
            ));
        }
        let finite = rows.iter().flat_map(|r| r.shap.iter().copied()).filter(|v| v.is_finite());
        let Some((lo, hi)) =
            finite.fold(None, |b: Option<(f64, f64)>, v| Some(b.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))))
        else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no finite SHAP value to draw ({} features)", rows.len()),
            ));
        };
        // the zero line always shows
        let (x_lo, x_hi) = padded(lo.min(0.0), hi.max(0.0));
        let n = rows.len();
        let labels: Vec<String> = rows.iter().map(|r| shorten(&r.feature, 40)).collect();
        let (width, height) = self.beeswarm_size(n);

        render_png(title, (width, height), |root| {
            let body = root
                .margin(10, 0, 0, 0)
                .titled(title, title_style(root, title, 22))
                .map_err(|e| draw_error(title, e))?;
            let (plot, _) = body.split_horizontally(width - COLOUR_BAR_AREA);
            let label_style = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
            let mut label_width = 40;
            for label in &labels {
                let (w, _) = root.estimate_text_size(label, &label_style).map_err(|e| draw_error(title, e))?;
                label_width = label_width.max(w);
            }
            let label_width = label_width.min(width / 2) + 14;
            // row i (the first is the most important) is drawn at y = n - 1 - i, so that it is on top
            let top = n as f64 - 0.5;
            let y_range = Ticked::new(-0.5, top, (0..n).map(|i| i as f64).collect());
            let mut chart = ChartBuilder::on(&plot)
                .margin_left(16)
                .margin_right(8)
                .margin_top(8)
                .margin_bottom(12)
                .x_label_area_size(56)
                .y_label_area_size(label_width)
                .build_cartesian_2d(x_lo..x_hi, y_range)
                .map_err(|e| draw_error(title, e))?;
            let row_label = |v: &f64| {
                let i = (n as f64 - 1.0 - v).round();
                if i >= 0.0 && (i as usize) < n { labels[i as usize].clone() } else { String::new() }
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .y_label_formatter(&row_label)
                .y_label_style(label_style)
                .x_label_formatter(&|v| tick_label(*v, x_hi - x_lo))
                .x_label_style(TextStyle::from((FAMILY, 14).into_font()).color(&BLACK))
                .x_desc(x_label)
                .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                .draw()
                .map_err(|e| draw_error(title, e))?;
            // a faint line through each row, the zero line, then the dots (missing values first, as shap does)
            let guide = RGBColor(225, 225, 225);
            chart
                .draw_series((0..n).map(|i| PathElement::new(vec![(x_lo, i as f64), (x_hi, i as f64)], guide)))
                .map_err(|e| draw_error(title, e))?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, -0.5), (0.0, top)],
                    RGBColor(153, 153, 153).stroke_width(1),
                )))
                .map_err(|e| draw_error(title, e))?;
            for (i, row) in rows.iter().enumerate() {
                let y = (n - 1 - i) as f64;
                let offsets = jitter(&row.shap);
                let range = colour_range(&row.values);
                let dot = |k: usize, color: RGBColor| Circle::new((row.shap[k], y + offsets[k]), 3, color.filled());
                let shown = |k: &usize| row.shap[*k].is_finite();
                let missing = (0..row.shap.len()).filter(shown).filter(|&k| !row.values[k].is_finite());
                chart.draw_series(missing.map(|k| dot(k, MISSING))).map_err(|e| draw_error(title, e))?;
                if let Some(range) = range {
                    let known = (0..row.shap.len()).filter(shown).filter(|&k| row.values[k].is_finite());
                    chart
                        .draw_series(known.map(|k| dot(k, value_color(share_of(row.values[k], range)))))
                        .map_err(|e| draw_error(title, e))?;
                }
            }
            // the colour bar, beside the plotting area and as tall as most of it
            let (_, ys) = chart.plotting_area().get_pixel_range();
            let (bar_x, bar_w) = ((width - COLOUR_BAR_AREA + 16) as i32, 14);
            let span = (ys.end - ys.start).max(2);
            let (bar_top, bar_bottom) = (ys.start + span / 10, ys.end - span / 10);
            let steps = (bar_bottom - bar_top).max(1);
            for s in 0..steps {
                let share = 1.0 - f64::from(s) / f64::from((steps - 1).max(1));
                root.draw(&Rectangle::new(
                    [(bar_x, bar_top + s), (bar_x + bar_w, bar_top + s + 1)],
                    value_color(share).filled(),
                ))
                .map_err(|e| draw_error(title, e))?;
            }
            let small = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
            let left_middle = Pos::new(HPos::Left, VPos::Center);
            root.draw(&Text::new("High", (bar_x + bar_w + 6, bar_top), small.pos(left_middle)))
                .map_err(|e| draw_error(title, e))?;
            root.draw(&Text::new("Low", (bar_x + bar_w + 6, bar_bottom), small.pos(left_middle)))
                .map_err(|e| draw_error(title, e))?;
            let vertical = TextStyle::from((FAMILY, 15).into_font())
                .color(&BLACK)
                .transform(FontTransform::Rotate270)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw(&Text::new("Feature value", (bar_x + bar_w + 44, (bar_top + bar_bottom) / 2), vertical))
                .map_err(|e| draw_error(title, e))?;
            Ok(())
        })
    }
}
