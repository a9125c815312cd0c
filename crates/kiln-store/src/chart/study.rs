//! A tuning study's charts, as Optuna's `plot_optimization_history` and `plot_parallel_coordinate` show a study:
//! trial values as dots with the best value so far as a line (stepping at each improvement, where Optuna joins the
//! points), and parallel coordinates with one vertical axis per column (linear, logarithmic or categorical) and the
//! lines coloured on a blue scale, the best darkest and on top (Optuna's reversed `Blues` for a minimised
//! objective). Unlike Optuna, a line with a missing value is broken on that axis, not dropped. Intermediate values
//! (Optuna's `plot_intermediate_values`) are a line per trial over its steps, pruned trials in their own colour. The
//! slice plot (Optuna's `plot_slice`) is a grid of scatter panels, one per parameter on that parameter's axis, over one
//! value axis, the points on the same blue scale by trial number.

use kiln_domain::{AxisScale, ChartAxis, Code, PortError, SlicePanel};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    FAMILY, PALETTE, PlotChartRenderer, draw_error, draw_legend, padded, render_png, shorten, tick_label, title_style,
};

/// Width in pixels kept on the right of parallel coordinates for the colour bar and its labels.
const COLOUR_BAR_AREA: u32 = 150;
/// Horizontal room per axis of parallel coordinates, in pixels.
const AXIS_SPACING: u32 = 190;
/// Width and height of one panel of a slice plot, in pixels.
const SLICE_PANEL: (u32, u32) = (440, 330);
/// Panels side by side in a row of a slice plot.
const SLICE_COLUMNS: u32 = 3;

/// The colour of a line at `darkness` (0 lightest .. 1 darkest) on matplotlib's `Blues`, from its light end.
pub(super) fn blues(darkness: f64) -> RGBColor {
    const STOPS: [(f64, (u8, u8, u8)); 4] =
        [(0.0, (189, 215, 238)), (0.35, (107, 174, 214)), (0.7, (33, 113, 181)), (1.0, (8, 48, 107))];
    let t = darkness.clamp(0.0, 1.0);
    let k = STOPS.windows(2).position(|w| t <= w[1].0).unwrap_or(STOPS.len() - 2);
    let ((t0, a), (t1, b)) = (STOPS[k], STOPS[k + 1]);
    let s = (t - t0) / (t1 - t0);
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * s).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Round ticks (1, 2 or 5 times a power of ten apart) within `lo..=hi`, as close to `n` of them as those steps
/// allow.
pub(super) fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi <= lo || !lo.is_finite() || !hi.is_finite() {
        return vec![lo];
    }
    let span = hi - lo;
    let magnitude = 10_f64.powf((span / n.max(1) as f64).log10().floor());
    let count = |step: f64| ((hi / step).floor() - (lo / step).ceil() + 1.0).max(0.0);
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .min_by(|a, b| (count(*a) - n as f64).abs().total_cmp(&(count(*b) - n as f64).abs()))
        .unwrap_or(magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks of a log axis over `lo..=hi` (log10 units): powers of ten, or 1-2-5 multiples when fewer than two powers
/// of ten fall inside, or round values of the range when even those are fewer than two. Each tick is `(log10 of
/// the value, the value)`.
pub(super) fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let decades = (lo.ceil() as i64..=hi.floor() as i64).map(|e| e as f64);
    let powers: Vec<(f64, f64)> = decades.map(|e| (e, 10_f64.powf(e))).collect();
    if powers.len() >= 2 {
        return powers;
    }
    let mut multiples = Vec::new();
    for e in (lo.floor() as i64)..=(hi.ceil() as i64) {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10_f64.powf(e as f64);
            if (lo..=hi).contains(&v.log10()) {
                multiples.push((v.log10(), v));
            }
        }
    }
    if multiples.len() >= 2 {
        return multiples;
    }
    let (a, b) = (10_f64.powf(lo), 10_f64.powf(hi));
    nice_ticks(a, b, 4).into_iter().filter(|v| *v > 0.0).map(|v| (v.log10(), v)).collect()
}

/// Where one axis puts its values: the position (0 bottom .. 1 top) of a value, and the ticks `(position, label)`.
struct Placement {
    scale: AxisScale,
    /// the data range in the axis's units (log10 for a log axis)
    lo: f64,
    hi: f64,
}

impl Placement {
    fn new(axis: &ChartAxis, values: impl Iterator<Item = f64>) -> Placement {
        let unit = |v: f64| match axis.scale {
            AxisScale::Log if v > 0.0 => Some(v.log10()),
            AxisScale::Log => None,
            _ => Some(v),
        };
        let (lo, hi) = values
            .filter_map(unit)
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        Placement { scale: axis.scale.clone(), lo, hi }
    }

    fn position(&self, v: f64) -> Option<f64> {
        let u = match &self.scale {
            AxisScale::Categories(choices) => {
                let k = choices.len();
                return Some(if k <= 1 { 0.5 } else { v / (k - 1) as f64 });
            }
            AxisScale::Log if v > 0.0 => v.log10(),
            AxisScale::Log => return None,
            AxisScale::Linear => v,
        };
        if !u.is_finite() {
            return None;
        }
        Some(if self.hi > self.lo { (u - self.lo) / (self.hi - self.lo) } else { 0.5 })
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        match &self.scale {
            AxisScale::Categories(choices) => choices
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((self.position(i as f64)?, shorten(c, 16))))
                .collect(),
            _ if self.lo > self.hi => Vec::new(),
            AxisScale::Log => {
                let span = 10_f64.powf(self.hi) - 10_f64.powf(self.lo);
                let ticks =
                    if self.hi > self.lo { log_ticks(self.lo, self.hi) } else { vec![(self.lo, 10_f64.powf(self.lo))] };
                // one value: its own size sets the digits (a span of 0 has none)
                ticks
                    .into_iter()
                    .map(|(_, v)| {
                        (self.position(v).unwrap_or(0.5), log_label(v, if span > 0.0 { span } else { v.abs() }))
                    })
                    .collect()
            }
            AxisScale::Linear => {
                let span = self.hi - self.lo;
                nice_ticks(self.lo, self.hi, 5)
                    .into_iter()
                    .filter_map(|v| {
                        Some((self.position(v)?, tick_label(v, if span > 0.0 { span } else { v.abs().max(1.0) })))
                    })
                    .collect()
            }
        }
    }
}

/// A log axis's tick: plain below a million and above a thousandth, else in scientific notation (`1e-05`).
fn log_label(v: f64, span: f64) -> String {
    if (1e-3..1e6).contains(&v.abs()) { tick_label(v, span.min(v.abs() * 10.0)) } else { format!("{v:e}") }
}

impl PlotChartRenderer {
    /// The image size of parallel coordinates over `n` axes: `series_size`'s height, wide enough for every axis.
    pub fn parallel_size(&self, n: usize) -> (u32, u32) {
        let n = u32::try_from(n).unwrap_or(64).min(64);
        ((n * AXIS_SPACING + COLOUR_BAR_AREA + 60).max(self.series_size.0), self.series_size.1 + 80)
    }

    /// The image size of a slice plot of `n` panels: up to [`SLICE_COLUMNS`] panels a row, as many rows as needed (at
    /// most 40 rows: the panels past the 120th are not drawn).
    pub fn slice_size(&self, n: usize) -> (u32, u32) {
        let n = u32::try_from(n).unwrap_or(u32::MAX).clamp(1, 120);
        let columns = n.min(SLICE_COLUMNS);
        (columns * SLICE_PANEL.0 + 20, n.div_ceil(columns) * SLICE_PANEL.1 + 60)
    }

    pub(super) fn draw_slice(&self, title: &str, y_label: &str, panels: &[SlicePanel]) -> Result<Vec<u8>, PortError> {
        let finite = |p: &&(f64, f64, f64)| p.0.is_finite() && p.1.is_finite();
        // (trial number, objective) of every point drawn: the colours' and the shared value axis's ranges
        let numbered: Vec<(f64, f64)> =
            panels.iter().flat_map(|p| p.points.iter().filter(finite).map(|q| (q.2, q.1))).collect();
        let Some((n_lo, n_hi, y_lo, y_hi)) = finite_bounds(numbered.iter()) else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no finite point to draw ({} panels)", panels.len()),
            ));
        };
        for panel in panels {
            if let AxisScale::Categories(choices) = &panel.axis.scale
                && let Some(p) =
                    panel.points.iter().filter(finite).find(|p| !(p.0 >= 0.0 && (p.0 as usize) < choices.len()))
            {
                return Err(PortError::new(
                    Code::Internal,
                    format!(
                        "chart '{title}': panel '{}': index {} outside its {} choices",
                        panel.axis.name,
                        p.0,
                        choices.len()
                    ),
                ));
            }
        }
        let (y_lo, y_hi) = padded(y_lo, y_hi);
        let y_span = y_hi - y_lo;
        // the first trial lightest, the last darkest
        let colour = |number: f64| blues(if n_hi > n_lo { (number - n_lo) / (n_hi - n_lo) } else { 1.0 });
        let n = u32::try_from(panels.len()).unwrap_or(u32::MAX).clamp(1, 120);
        let columns = n.min(SLICE_COLUMNS);
        let size = self.slice_size(panels.len());
        render_png(title, size, |root| {
            let body = titled(root, title)?.margin(0, 0, 10, 10);
            let areas = body.split_evenly((n.div_ceil(columns) as usize, columns as usize));
            let tick_style = TextStyle::from((FAMILY, 13).into_font()).color(&BLACK);
            for (panel, area) in panels.iter().zip(&areas) {
                let points: Vec<&(f64, f64, f64)> = panel.points.iter().filter(finite).collect();
                let placement = Placement::new(&panel.axis, points.iter().map(|p| p.0));
                let suffix = if matches!(panel.axis.scale, AxisScale::Log) { " (log)" } else { "" };
                let caption = shorten(&format!("{}{suffix}", panel.axis.name), 44);
                // a categorical axis keeps room beside its outer choices for their names
                let x_range = match &panel.axis.scale {
                    AxisScale::Categories(choices) if choices.len() > 1 => -0.3..1.3,
                    _ => -0.06..1.06,
                };
                let x_ends = (x_range.start, x_range.end);
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                    .margin(8)
                    .x_label_area_size(30)
                    .y_label_area_size(76)
                    .build_cartesian_2d(x_range, y_lo..y_hi)
                    .map_err(|e| draw_error(title, e))?;
                // the x ticks are the axis's own (a log axis's powers, a categorical one's choices), drawn below
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_labels(0)
                    .max_light_lines(0)
                    .bold_line_style(RGBColor(235, 235, 235))
                    .y_label_formatter(&|v| tick_label(*v, y_span))
                    .y_label_style(tick_style.clone())
                    .y_desc(shorten(y_label, 36))
                    .axis_desc_style(TextStyle::from((FAMILY, 14).into_font()).color(&BLACK))
                    .draw()
                    .map_err(|e| draw_error(title, e))?;
                let ink = RGBColor(60, 60, 60);
                let below = Pos::new(HPos::Center, VPos::Top);
                let (left, bottom) = chart.backend_coord(&(x_ends.0, y_lo));
                let (right, _) = chart.backend_coord(&(x_ends.1, y_lo));
                root.draw(&PathElement::new(vec![(left, bottom), (right, bottom)], ink.stroke_width(1)))
                    .map_err(|e| draw_error(title, e))?;
                for (at, label) in placement.ticks() {
                    let (px, py) = chart.backend_coord(&(at, y_lo));
                    root.draw(&PathElement::new(vec![(px, py), (px, py + 5)], ink.stroke_width(1)))
                        .map_err(|e| draw_error(title, e))?;
                    root.draw(&Text::new(label, (px, py + 8), tick_style.clone().pos(below)))
                        .map_err(|e| draw_error(title, e))?;
                }
                // the later trials on top
                let mut order = points;
                order.sort_by(|a, b| a.2.total_cmp(&b.2));
                let dots = order.into_iter().filter_map(|&(x, y, number)| {
                    Some(Circle::new((placement.position(x)?, y), 4, colour(number).filled()))
                });
                chart.draw_series(dots).map_err(|e| draw_error(title, e))?;
            }
            Ok(())
        })
    }

    pub(super) fn draw_history(
        &self,
        title: &str,
        y_label: &str,
        values: &[(f64, f64)],
        best: &[(f64, f64)],
    ) -> Result<Vec<u8>, PortError> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let Some((x_lo, x_hi, y_lo, y_hi)) = finite_bounds(values.iter().chain(best)) else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no finite trial value to draw ({} values)", values.len()),
            ));
        };
        let (x_lo, x_hi) = padded(x_lo, x_hi);
        let (y_lo, y_hi) = padded(y_lo, y_hi);
        let dots = PALETTE[0];
        let line = PALETTE[3];
        // the best value holds until the next trial improves it
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for &(x, y) in best.iter().filter(finite) {
            if let Some(&(_, last)) = steps.last() {
                steps.push((x, last));
            }
            steps.push((x, y));
        }

        render_png(title, self.series_size, |root| {
            let body = titled(root, title)?;
            // trial numbers are whole
            let mut chart = whole_x_plot(&body, title, (x_lo..x_hi, y_lo..y_hi), ("trial", y_label), None)?;
            chart
                .draw_series(values.iter().filter(finite).map(|&p| Circle::new(p, 4, dots.mix(0.8).filled())))
                .map_err(|e| draw_error(title, e))?
                .label("objective value")
                .legend(move |(x, y)| Circle::new((x + 12, y), 4, dots.filled()));
            chart
                .draw_series(LineSeries::new(steps.iter().copied(), line.stroke_width(2)))
                .map_err(|e| draw_error(title, e))?
                .label("best value")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line.stroke_width(2)));
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, title)
        })
    }

    pub(super) fn draw_intermediate(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        trials: &[(bool, Vec<(f64, f64)>)],
    ) -> Result<Vec<u8>, PortError> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let Some((x_lo, x_hi, y_lo, y_hi)) = finite_bounds(trials.iter().flat_map(|(_, line)| line)) else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no finite intermediate value to draw ({} trials)", trials.len()),
            ));
        };
        let (x_lo, x_hi) = (x_lo - 0.25, x_hi + 0.25);
        let (y_lo, y_hi) = padded(y_lo, y_hi);
        // room above the lines for the legend
        let y_hi = y_hi + 0.14 * (y_hi - y_lo);
        let (complete_colour, pruned_colour) = (PALETTE[0], PALETTE[1]);
        render_png(title, self.series_size, |root| {
            let body = titled(root, title)?;
            // a tick at each step
            let ticks = Some(((x_hi - x_lo).round() as usize + 1).clamp(2, 20));
            let mut chart = whole_x_plot(&body, title, (x_lo..x_hi, y_lo..y_hi), (x_label, y_label), ticks)?;
            // complete trials first, the pruned on top; the first of each kind carries the legend entry
            let mut labelled = [false, false];
            for pruned in [false, true] {
                let colour = if pruned { pruned_colour } else { complete_colour };
                for (_, line) in trials.iter().filter(|(p, _)| *p == pruned) {
                    let points: Vec<(f64, f64)> = line.iter().filter(finite).copied().collect();
                    let series = chart
                        .draw_series(LineSeries::new(points.iter().copied(), colour.mix(0.55).stroke_width(2)))
                        .map_err(|e| draw_error(title, e))?;
                    if !labelled[usize::from(pruned)] {
                        labelled[usize::from(pruned)] = true;
                        series
                            .label(if pruned { "pruned trial (x: where it stopped)" } else { "complete trial" })
                            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2)));
                    }
                    if pruned && let Some(&last) = points.last() {
                        chart
                            .draw_series(std::iter::once(Cross::new(last, 6, colour.stroke_width(2))))
                            .map_err(|e| draw_error(title, e))?;
                    }
                }
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, title)
        })
    }

    pub(super) fn draw_parallel(
        &self,
        title: &str,
        axes: &[ChartAxis],
        lines: &[Vec<Option<f64>>],
        colour_values: &[f64],
        low_is_best: bool,
    ) -> Result<Vec<u8>, PortError> {
        let internal = |msg: String| Err(PortError::new(Code::Internal, format!("chart '{title}': {msg}")));
        if axes.is_empty() || lines.is_empty() {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': nothing to draw ({} axes, {} lines)", axes.len(), lines.len()),
            ));
        }
        if colour_values.len() != lines.len() {
            return internal(format!("{} colour values for {} lines", colour_values.len(), lines.len()));
        }
        if let Some(line) = lines.iter().find(|l| l.len() != axes.len()) {
            return internal(format!("a line has {} values for {} axes", line.len(), axes.len()));
        }
        for (j, axis) in axes.iter().enumerate() {
            if let AxisScale::Categories(choices) = &axis.scale {
                let outside = lines.iter().filter_map(|l| l[j]).find(|v| !(*v >= 0.0 && (*v as usize) < choices.len()));
                if let Some(v) = outside {
                    return internal(format!("axis '{}': index {v} outside its {} choices", axis.name, choices.len()));
                }
            }
        }
        let placements: Vec<Placement> =
            axes.iter().enumerate().map(|(j, axis)| Placement::new(axis, lines.iter().filter_map(|l| l[j]))).collect();
        let finite_colours = colour_values.iter().copied().filter(|v| v.is_finite());
        let (c_lo, c_hi) =
            finite_colours.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let darkness = |v: f64| {
            let share = if c_hi > c_lo { (v - c_lo) / (c_hi - c_lo) } else { 1.0 };
            if low_is_best { 1.0 - share } else { share }
        };
        // the worst lines first, so that the best are drawn on top; lines without a colour value first of all
        let mut order: Vec<usize> = (0..lines.len()).collect();
        let rank = |i: usize| if colour_values[i].is_finite() { darkness(colour_values[i]) } else { -1.0 };
        order.sort_by(|&a, &b| rank(a).total_cmp(&rank(b)));
        let n = axes.len();
        let (width, height) = self.parallel_size(n);

        render_png(title, (width, height), |root| {
            let body = root
                .margin(10, 0, 0, 0)
                .titled(title, title_style(root, title, 22))
                .map_err(|e| draw_error(title, e))?;
            let (plot, _) = body.split_horizontally(width - COLOUR_BAR_AREA);
            let x_range = -0.45..(n as f64 - 1.0 + 0.25);
            let mut chart = ChartBuilder::on(&plot)
                .margin_left(24)
                .margin_right(8)
                .margin_top(64)
                .margin_bottom(24)
                .build_cartesian_2d(x_range, -0.03..1.03)
                .map_err(|e| draw_error(title, e))?;
            // the lines: a segment between two neighbouring axes where both values are known, a dot where a value
            // has no known neighbour
            for &i in &order {
                let colour = if colour_values[i].is_finite() {
                    blues(darkness(colour_values[i]))
                } else {
                    RGBColor(190, 190, 190)
                };
                let at: Vec<Option<(f64, f64)>> = lines[i]
                    .iter()
                    .enumerate()
                    .map(|(j, v)| v.and_then(|v| placements[j].position(v)).map(|y| (j as f64, y)))
                    .collect();
                let segments =
                    at.windows(2).filter_map(|w| Some(PathElement::new(vec![w[0]?, w[1]?], colour.stroke_width(2))));
                chart.draw_series(segments).map_err(|e| draw_error(title, e))?;
                let alone = (0..n).filter(|&j| {
                    at[j].is_some() && (j == 0 || at[j - 1].is_none()) && (j + 1 == n || at[j + 1].is_none())
                });
                chart
                    .draw_series(alone.map(|j| Circle::new(at[j].unwrap_or_default(), 4, colour.filled())))
                    .map_err(|e| draw_error(title, e))?;
            }
            // the axes, their ticks (labels on a white ground to the left of the axis) and their names above
            let ink = RGBColor(60, 60, 60);
            let tick_style = TextStyle::from((FAMILY, 13).into_font()).color(&BLACK);
            let right_middle = Pos::new(HPos::Right, VPos::Center);
            let name_room = AXIS_SPACING as i32 - 16;
            for (j, (axis, placement)) in axes.iter().zip(&placements).enumerate() {
                let x = j as f64;
                let (px, top) = chart.backend_coord(&(x, 1.0));
                let (_, bottom) = chart.backend_coord(&(x, 0.0));
                root.draw(&PathElement::new(vec![(px, top), (px, bottom)], ink.stroke_width(2)))
                    .map_err(|e| draw_error(title, e))?;
                for (y, label) in placement.ticks() {
                    let (_, py) = chart.backend_coord(&(x, y));
                    root.draw(&PathElement::new(vec![(px - 5, py), (px, py)], ink.stroke_width(1)))
                        .map_err(|e| draw_error(title, e))?;
                    let (w, h) = root.estimate_text_size(&label, &tick_style).map_err(|e| draw_error(title, e))?;
                    let (w, h) = (w as i32, h as i32);
                    root.draw(&Rectangle::new(
                        [(px - 9 - w - 2, py - h / 2 - 1), (px - 7, py + h / 2 + 1)],
                        WHITE.filled(),
                    ))
                    .map_err(|e| draw_error(title, e))?;
                    root.draw(&Text::new(label, (px - 8, py), tick_style.clone().pos(right_middle)))
                        .map_err(|e| draw_error(title, e))?;
                }
                // the name above the axis, cut to the room between axes; a log axis says so
                let suffix = if matches!(axis.scale, AxisScale::Log) { " (log)" } else { "" };
                let name_style = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
                let mut name = format!("{}{suffix}", axis.name);
                let mut keep = name.chars().count();
                while keep > 4
                    && root.estimate_text_size(&name, &name_style).map_err(|e| draw_error(title, e))?.0 as i32
                        > name_room
                {
                    keep -= 1;
                    name = shorten(&format!("{}{suffix}", axis.name), keep);
                }
                root.draw(&Text::new(name, (px, top - 22), name_style.pos(Pos::new(HPos::Center, VPos::Bottom))))
                    .map_err(|e| draw_error(title, e))?;
            }
            // the colour bar, beside the plotting area, darkest at the best end, with the first axis's name
            if c_lo <= c_hi {
                let (_, ys) = chart.plotting_area().get_pixel_range();
                let (bar_x, bar_w) = ((width - COLOUR_BAR_AREA + 20) as i32, 16);
                let span = (ys.end - ys.start).max(2);
                let (bar_top, bar_bottom) = (ys.start + span / 10, ys.end - span / 10);
                let steps = (bar_bottom - bar_top).max(1);
                for s in 0..steps {
                    // the top of the bar is the highest value
                    let v = c_hi - (c_hi - c_lo) * f64::from(s) / f64::from((steps - 1).max(1));
                    root.draw(&Rectangle::new(
                        [(bar_x, bar_top + s), (bar_x + bar_w, bar_top + s + 1)],
                        blues(darkness(v)).filled(),
                    ))
                    .map_err(|e| draw_error(title, e))?;
                }
                let small = TextStyle::from((FAMILY, 13).into_font()).color(&BLACK);
                let left_middle = Pos::new(HPos::Left, VPos::Center);
                let bar_span = if c_hi > c_lo { c_hi - c_lo } else { c_hi.abs().max(f64::MIN_POSITIVE) };
                for v in nice_ticks(c_lo, c_hi, 5) {
                    let py = if c_hi > c_lo {
                        bar_top + ((c_hi - v) / (c_hi - c_lo) * f64::from(bar_bottom - bar_top)).round() as i32
                    } else {
                        (bar_top + bar_bottom) / 2
                    };
                    // no tick mark: beside the label it would read as a minus sign
                    root.draw(&Text::new(
                        tick_label(v, bar_span),
                        (bar_x + bar_w + 8, py),
                        small.clone().pos(left_middle),
                    ))
                    .map_err(|e| draw_error(title, e))?;
                }
                let vertical = TextStyle::from((FAMILY, 15).into_font())
                    .color(&BLACK)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new(
                    shorten(&axes[0].name, 40),
                    (bar_x + bar_w + 100, (bar_top + bar_bottom) / 2),
                    vertical,
                ))
                .map_err(|e| draw_error(title, e))?;
            }
            Ok(())
        })
    }
}

/// A plot in the [`whole_x_plot`] frame.
type WholeXPlot<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The smallest and largest x and y of the finite points, `None` when none is finite.
fn finite_bounds<'p>(points: impl Iterator<Item = &'p (f64, f64)>) -> Option<(f64, f64, f64, f64)> {
    points.filter(|p| p.0.is_finite() && p.1.is_finite()).fold(None, |b, &(x, y)| {
        Some(b.map_or((x, x, y, y), |(x0, x1, y0, y1)| (x0.min(x), x1.max(x), y0.min(y), y1.max(y))))
    })
}

/// `root` with `title` on top.
fn titled<'b>(
    root: &DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
) -> Result<DrawingArea<BitMapBackend<'b>, Shift>, PortError> {
    root.margin(10, 0, 0, 0).titled(title, title_style(root, title, 22)).map_err(|e| draw_error(title, e))
}

/// The frame of the history and fold-scores charts: a plot over `ranges` with whole numbers on x (a fractional tick
/// gets no label; `x_labels` ticks when given), light grid lines and the axes' descriptions.
fn whole_x_plot<'a, 'b>(
    body: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_desc, y_desc): (&str, &str),
    x_labels: Option<usize>,
) -> Result<WholeXPlot<'a, 'b>, PortError> {
    let y_span = y.end - y.start;
    let mut chart = ChartBuilder::on(body)
        .margin(16)
        .margin_top(8)
        .x_label_area_size(52)
        .y_label_area_size(84)
        .build_cartesian_2d(x, y)
        .map_err(|e| draw_error(title, e))?;
    let tick_style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    let whole = |v: &f64| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() };
    let mut mesh = chart.configure_mesh();
    if let Some(n) = x_labels {
        mesh.x_labels(n);
    }
    mesh.light_line_style(RGBColor(246, 246, 246))
        .x_label_formatter(&whole)
        .y_label_formatter(&|v| tick_label(*v, y_span))
        .x_label_style(tick_style.clone())
        .y_label_style(tick_style)
        .x_desc(x_desc)
        .y_desc(shorten(y_desc, 48))
        .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
        .draw()
        .map_err(|e| draw_error(title, e))?;
    Ok(chart)
}
