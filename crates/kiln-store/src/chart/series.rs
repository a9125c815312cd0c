//! Charts over time: named series as lines (a forecast's actual and predicted values) and residuals as points
//! around zero with their histogram beside them. The time axis gets calendar ticks (whole hours, days, months or
//! years, whichever gives at most eight) labelled in UTC.

use kiln_domain::{Code, PortError, civil_from_millis, millis_from_civil};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{
    FAMILY, PALETTE, PlotChartRenderer, Ticked, draw_error, draw_legend, padded, render_png, shorten, tick_label,
    title_style,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// The most time ticks an axis gets.
const MAX_TICKS: i64 = 8;

/// A tick step on the time axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Step {
    Millis(i64),
    Months(i64),
}

/// Calendar-aligned ticks within `lo..=hi` (UTC ms) and the step they are on.
pub(super) fn time_ticks(lo: f64, hi: f64) -> (Vec<f64>, Step) {
    let (lo_ms, hi_ms) = (lo.ceil() as i64, hi.floor() as i64);
    let span = (hi_ms - lo_ms).max(1);
    let fixed = [1, 2, 3, 6, 12].map(|h| h * HOUR).into_iter().chain([1, 2, 7, 14].map(|d| d * DAY));
    for step in fixed {
        if span / step < MAX_TICKS {
            let first = lo_ms.div_euclid(step) * step + if lo_ms.rem_euclid(step) == 0 { 0 } else { step };
            let ticks = (0..).map(|k| first + k * step).take_while(|&t| t <= hi_ms).map(|t| t as f64).collect();
            return (ticks, Step::Millis(step));
        }
    }
    let month_index = |ms: i64| {
        let c = civil_from_millis(ms);
        c.year * 12 + i64::from(c.month) - 1
    };
    let (first, last) = (month_index(lo_ms), month_index(hi_ms));
    for months in [1, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200] {
        if (last - first) / months < MAX_TICKS {
            let start = first.div_euclid(months) * months;
            let ticks = (0..)
                .map(|k| start + k * months)
                .take_while(|&m| m <= last)
                .filter_map(|m| millis_from_civil(m.div_euclid(12), (m.rem_euclid(12) + 1) as u32, 1, 0, 0, 0))
                .filter(|&t| t >= lo_ms && t <= hi_ms)
                .map(|t| t as f64)
                .collect();
            return (ticks, Step::Months(months));
        }
    }
    (vec![lo, hi], Step::Months(1200))
}

/// A time tick's label: as precise as its step needs.
pub(super) fn time_label(ms: f64, step: Step) -> String {
    let c = civil_from_millis(ms.round() as i64);
    match step {
        Step::Millis(s) if s < DAY => format!("{:02}-{:02} {:02}:{:02}", c.month, c.day, c.hour, c.minute),
        Step::Millis(_) => format!("{}-{:02}-{:02}", c.year, c.month, c.day),
        Step::Months(m) if m < 12 => format!("{}-{:02}", c.year, c.month),
        Step::Months(_) => c.year.to_string(),
    }
}

/// The time range of the points and the value range, both padded; `None` when no point is finite.
fn bounds<'a>(times: &[i64], values: impl Iterator<Item = &'a [f64]>) -> Option<((f64, f64), (f64, f64))> {
    let mut b: Option<(f64, f64, f64, f64)> = None;
    for series in values {
        for (&t, &v) in times.iter().zip(series) {
            if v.is_finite() {
                let t = t as f64;
                b = Some(b.map_or((t, t, v, v), |(t0, t1, v0, v1)| (t0.min(t), t1.max(t), v0.min(v), v1.max(v))));
            }
        }
    }
    let (t0, t1, v0, v1) = b?;
    let (t0, t1) = if t1 > t0 { (t0, t1) } else { (t0 - DAY as f64, t1 + DAY as f64) };
    Some((padded(t0, t1), padded(v0, v1)))
}

/// The runs of consecutive finite points of a series, each drawn as one line (a missing value leaves a gap).
fn finite_runs(times: &[i64], values: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for (&t, &v) in times.iter().zip(values) {
        if v.is_finite() {
            if let Some(run) = runs.last_mut() {
                run.push((t as f64, v));
            }
        } else if runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// A chart over more times than this gets a second panel with the last [`ZOOM_ROWS`] of them, where lines that
/// overlap at the scale of the whole range can be told apart.
const ZOOM_AFTER: usize = 400;
const ZOOM_ROWS: usize = 200;

/// What a panel of a series chart adds to its lines.
#[derive(Debug, Clone, Copy)]
enum Panel<'a> {
    /// the legend, and a shade over the rows from this one on (those the zoom panel shows)
    Whole { shade: Option<usize> },
    /// a caption instead of the legend (the panel above has it)
    Zoom { caption: &'a str },
}

/// One panel of a series chart: the rows from `first` on.
/// What a series panel draws: the series over the times, and the times of the vertical markers.
#[derive(Clone, Copy)]
struct Lines<'a> {
    times_ms: &'a [i64],
    series: &'a [(String, Vec<f64>)],
    markers_ms: &'a [i64],
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    lines: Lines<'_>,
    first: usize,
    panel: Panel<'_>,
) -> Result<(), PortError> {
    let Lines { times_ms, series, markers_ms } = lines;
    let times = &times_ms[first..];
    let Some(((t_lo, t_hi), (y_lo, y_hi))) = bounds(times, series.iter().map(|(_, v)| &v[first..])) else {
        // nothing finite in these rows (the whole chart has something): the panel stays empty
        return Ok(());
    };
    let (ticks, step) = time_ticks(t_lo, t_hi);
    // dense series get thin lines, so that two of them stay apart
    let width = if times.len() > 300 { 1 } else { 2 };
    let mut builder = ChartBuilder::on(area);
    if let Panel::Zoom { caption } = panel {
        builder.caption(caption, TextStyle::from((FAMILY, 16).into_font()).color(&RGBColor(80, 80, 80)));
    }
    let mut chart = builder
        .margin_left(16)
        .margin_right(24)
        .margin_top(8)
        .margin_bottom(8)
        .x_label_area_size(52)
        .y_label_area_size(80)
        .build_cartesian_2d(Ticked::new(t_lo, t_hi, ticks), y_lo..y_hi)
        .map_err(|e| draw_error(title, e))?;
    draw_time_mesh(&mut chart, step, y_hi - y_lo, y_label, title)?;
    if let Panel::Whole { shade: Some(from) } = panel {
        let band = Rectangle::new([(times_ms[from] as f64, y_lo), (t_hi, y_hi)], RGBColor(0, 0, 0).mix(0.06).filled());
        chart.draw_series(std::iter::once(band)).map_err(|e| draw_error(title, e))?;
    }
    // dashed grey lines at the markers inside the panel (a backtest's fold boundaries), under the series
    for &m in markers_ms.iter().filter(|&&m| (t_lo..=t_hi).contains(&(m as f64))) {
        let x = m as f64;
        let dashes = (0..40).map(|k| {
            let (a, b) =
                (y_lo + (y_hi - y_lo) * (2 * k) as f64 / 80.0, y_lo + (y_hi - y_lo) * (2 * k + 1) as f64 / 80.0);
            PathElement::new(vec![(x, a), (x, b)], RGBColor(120, 120, 120).stroke_width(1))
        });
        chart.draw_series(dashes).map_err(|e| draw_error(title, e))?;
    }
    let mut labelled = false;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut drawn = None;
        for run in finite_runs(times, &values[first..]) {
            drawn = Some(
                chart.draw_series(LineSeries::new(run, color.stroke_width(width))).map_err(|e| draw_error(title, e))?,
            );
        }
        if let Some(drawn) = drawn.filter(|_| !name.is_empty() && matches!(panel, Panel::Whole { .. })) {
            labelled = true;
            drawn
                .label(shorten(name, 40))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
        }
    }
    if labelled {
        draw_legend(&mut chart, SeriesLabelPosition::UpperLeft, title)?;
    }
    Ok(())
}

/// The grid and axes of a panel over time: time labels at the ticks' step, values labelled for their span.
fn draw_time_mesh<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<Ticked, plotters::coord::types::RangedCoordf64>>,
    step: Step,
    span: f64,
    y_label: &str,
    title: &str,
) -> Result<(), PortError> {
    let tick_style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    chart
        .configure_mesh()
        .light_line_style(RGBColor(246, 246, 246))
        .bold_line_style(RGBColor(230, 230, 230))
        .x_label_formatter(&|v| time_label(*v, step))
        .y_label_formatter(&|v| tick_label(*v, span))
        .x_label_style(tick_style.clone())
        .y_label_style(tick_style)
        .x_desc("time (UTC)")
        .y_desc(y_label)
        .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
        .draw()
        .map_err(|e| draw_error(title, e))
}

impl PlotChartRenderer {
    /// The image size of a chart of `n` times: one panel, or two when the last rows get a panel of their own.
    pub fn series_chart_size(&self, n: usize) -> (u32, u32) {
        let (width, height) = self.series_size;
        if n > ZOOM_AFTER { (width, height * 8 / 5) } else { (width, height) }
    }

    pub(super) fn draw_series(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        series: &[(String, Vec<f64>)],
        markers_ms: &[i64],
    ) -> Result<Vec<u8>, PortError> {
        if let Some((name, values)) = series.iter().find(|(_, v)| v.len() != times_ms.len()) {
            return Err(PortError::new(
                Code::Internal,
                format!("chart '{title}': series '{name}' has {} values for {} times", values.len(), times_ms.len()),
            ));
        }
        if bounds(times_ms, series.iter().map(|(_, v)| v.as_slice())).is_none() {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no series has a finite value to draw ({} series)", series.len()),
            ));
        }
        let n = times_ms.len();
        let size = self.series_chart_size(n);
        let lines = Lines { times_ms, series, markers_ms };

        render_png(title, size, |root| {
            let body = root
                .margin(10, 0, 0, 0)
                .titled(title, title_style(root, title, 22))
                .map_err(|e| draw_error(title, e))?;
            if n > ZOOM_AFTER {
                let (whole, last) = body.split_vertically(body.dim_in_pixel().1 * 11 / 20);
                let from = n - ZOOM_ROWS;
                draw_panel(&whole, title, y_label, lines, 0, Panel::Whole { shade: Some(from) })?;
                let caption = format!("the last {ZOOM_ROWS} of {n} rows (shaded above)");
                draw_panel(&last, title, y_label, lines, from, Panel::Zoom { caption: &caption })
            } else {
                draw_panel(&body, title, y_label, lines, 0, Panel::Whole { shade: None })
            }
        })
    }

    pub(super) fn draw_residuals(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        residuals: &[f64],
    ) -> Result<Vec<u8>, PortError> {
        if residuals.len() != times_ms.len() {
            return Err(PortError::new(
                Code::Internal,
                format!("chart '{title}': {} residuals for {} times", residuals.len(), times_ms.len()),
            ));
        }
        let Some(((t_lo, t_hi), (lo, hi))) = bounds(times_ms, std::iter::once(residuals)) else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no finite residual to draw ({} residuals)", residuals.len()),
            ));
        };
        // the zero line always shows
        let (y_lo, y_hi) = padded(lo.min(0.0), hi.max(0.0));
        let (ticks, step) = time_ticks(t_lo, t_hi);
        let finite: Vec<f64> = residuals.iter().copied().filter(|v| v.is_finite()).collect();
        // the histogram: about the square root of the count in bins, between 10 and 40, over the value axis
        let bins = ((finite.len() as f64).sqrt().round() as usize).clamp(10, 40);
        let (b_lo, b_hi) = (lo, if hi > lo { hi } else { lo + 1.0 });
        let bin_width = (b_hi - b_lo) / bins as f64;
        let mut counts = vec![0_u64; bins];
        for v in &finite {
            counts[(((v - b_lo) / bin_width) as usize).min(bins - 1)] += 1;
        }
        let most = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        let (width, height) = self.series_size;
        let blue = PALETTE[0];
        let point_size = if finite.len() > 1000 { 2 } else { 3 };

        render_png(title, (width, height), |root| {
            let body = root
                .margin(10, 0, 0, 0)
                .titled(title, title_style(root, title, 22))
                .map_err(|e| draw_error(title, e))?;
            let (left, right) = body.split_horizontally(width * 3 / 4);
            let tick_style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
            let desc_style = TextStyle::from((FAMILY, 16).into_font()).color(&BLACK);
            let mut over_time = ChartBuilder::on(&left)
                .margin_left(16)
                .margin_right(8)
                .margin_top(8)
                .margin_bottom(16)
                .x_label_area_size(52)
                .y_label_area_size(80)
                .build_cartesian_2d(Ticked::new(t_lo, t_hi, ticks), y_lo..y_hi)
                .map_err(|e| draw_error(title, e))?;
            draw_time_mesh(&mut over_time, step, y_hi - y_lo, y_label, title)?;
            over_time
                .draw_series(std::iter::once(PathElement::new(vec![(t_lo, 0.0), (t_hi, 0.0)], BLACK.stroke_width(1))))
                .map_err(|e| draw_error(title, e))?;
            let points = times_ms
                .iter()
                .zip(residuals)
                .filter(|(_, v)| v.is_finite())
                .map(|(&t, &v)| Circle::new((t as f64, v), point_size, blue.mix(0.55).filled()));
            over_time.draw_series(points).map_err(|e| draw_error(title, e))?;

            let mut histogram = ChartBuilder::on(&right)
                .margin_left(4)
                .margin_right(16)
                .margin_top(8)
                .margin_bottom(16)
                .x_label_area_size(52)
                .y_label_area_size(0)
                .build_cartesian_2d(0.0..most * 1.05, y_lo..y_hi)
                .map_err(|e| draw_error(title, e))?;
            histogram
                .configure_mesh()
                .disable_y_mesh()
                .light_line_style(RGBColor(246, 246, 246))
                .x_labels(3)
                .x_label_formatter(&|v| tick_label(*v, most))
                .x_label_style(tick_style)
                .x_desc("count")
                .axis_desc_style(desc_style)
                .draw()
                .map_err(|e| draw_error(title, e))?;
            let bars = counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(k, &c)| {
                let (from, to) = (b_lo + k as f64 * bin_width, b_lo + (k + 1) as f64 * bin_width);
                let mut bar = Rectangle::new([(0.0, to), (c as f64, from)], blue.mix(0.75).filled());
                bar.set_margin(1, 0, 0, 0);
                bar
            });
            histogram.draw_series(bars).map_err(|e| draw_error(title, e))?;
            histogram
                .draw_series(std::iter::once(PathElement::new(
                    vec![(0.0, 0.0), (most * 1.05, 0.0)],
                    BLACK.stroke_width(1),
                )))
                .map_err(|e| draw_error(title, e))?;
            Ok(())
        })
    }
}
