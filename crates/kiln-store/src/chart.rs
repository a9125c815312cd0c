//! PNG charts for runs, drawn with plotters' bitmap backend: bar charts (feature importances, metric comparisons),
//! line charts (ROC and precision-recall curves), confusion-matrix heatmaps, SHAP beeswarms (`beeswarm`) and charts
//! over time (`series`: a forecast's actual and predicted values, its residuals) and a tuning study's charts
//! (`study`: the optimisation history, parallel coordinates). The DejaVu Sans font is embedded in
//! the binary (`assets/`, with its licence) and registered with plotters' `ab_glyph` renderer, so charts need no
//! system font configuration. Plotters writes PNGs only to files, so each chart goes through a temporary file.

use std::fs;
use std::sync::OnceLock;

use kiln_domain::{BeeswarmRow, ChartAxis, ChartRenderer, Code, PortError, SlicePanel};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, SegmentValue, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
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

/// Draws the charts of a run as PNG bytes: bars in the given order; lines with a legend (lower right when the chance
/// diagonal is drawn, as for ROC curves, upper right otherwise), axes fitted to the data except that an axis whose
/// values all lie in [0, 1] spans the whole unit interval; confusion matrices as a white-to-blue heatmap with each
/// count and its share of all rows in the cell.
#[derive(Debug, Clone)]
pub struct PlotChartRenderer {
    /// bar chart width in pixels
    pub width: u32,
    /// height of one bar row in pixels
    pub row_height: u32,
    /// line chart width and height in pixels
    pub line_size: (u32, u32),
    /// confusion-matrix heatmap width and height in pixels
    pub heatmap_size: (u32, u32),
    /// height of one feature's row of a beeswarm in pixels (its width is `width`)
    pub beeswarm_row_height: u32,
    /// width and height in pixels of a chart over time
    pub series_size: (u32, u32),
}

impl Default for PlotChartRenderer {
    fn default() -> Self {
        PlotChartRenderer {
            width: 1000,
            row_height: 28,
            line_size: (900, 720),
            heatmap_size: (640, 560),
            beeswarm_row_height: 34,
            series_size: (1200, 560),
        }
    }
}

/// Line colours, in series order (the first ten of matplotlib's `tab10`), reused cyclically.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws one chart of `size` pixels with `draw` into a temporary PNG file and returns its bytes.
fn render_png(
    title: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), PortError>,
) -> Result<Vec<u8>, PortError> {
    ensure_font()?;
    let tmp = tempfile::Builder::new()
        .prefix("kiln-chart-")
        .suffix(".png")
        .tempfile()
        .map_err(|e| PortError::io(format!("cannot create a temporary file for chart '{title}': {e}")))?;
    {
        let root = BitMapBackend::new(tmp.path(), size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(title, e))?;
        draw(&root)?;
        root.present().map_err(|e| draw_error(title, e))?;
    }
    fs::read(tmp.path()).map_err(|e| PortError::io(format!("cannot read back chart '{title}': {e}")))
}

/// An axis range around `lo..=hi` with 2 % of room on each side; a single value gets ±0.5 around it.
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = hi - lo;
    if span > 0.0 { (lo - 0.02 * span, hi + 0.02 * span) } else { (lo - 0.5, hi + 0.5) }
}

/// The fill of a heatmap cell whose count is `share` (0..=1) of the largest: white to dark blue (matplotlib's
/// `Blues` ends).
fn heat_color(share: f64) -> RGBColor {
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * share.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(247, 8), mix(251, 48), mix(255, 107))
}

impl PlotChartRenderer {
    /// The image size for `n` bars: the width, and room for the title, the axis and one row per bar.
    pub fn size_for(&self, n: usize) -> (u32, u32) {
        let rows = u32::try_from(n).unwrap_or(u32::MAX / 2).min(2000);
        (self.width, (110 + rows * self.row_height).max(240))
    }
}

/// A numeric axis with ticks chosen by the caller (calendar times, one per beeswarm row): plotters' own
/// `with_key_points` needs a default formatter that its float axis lacks. Labels come from the chart's formatter.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
        Ticked { inner: (lo..hi).into(), ticks }
    }
}

impl Ranged for Ticked {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // the ticks are the bold lines and the labels; no light lines between them
        if hint.weight().allow_light_points() { Vec::new() } else { self.ticks.clone() }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

impl ValueFormatter<f64> for Ticked {
    fn format(value: &f64) -> String {
        value.to_string()
    }
}

/// The title's style: `size` pixels, or smaller (down to 12) when the title would not fit the image's width.
fn title_style(area: &DrawingArea<BitMapBackend<'_>, Shift>, title: &str, size: u32) -> TextStyle<'static> {
    let room = area.dim_in_pixel().0.saturating_sub(24);
    let mut size = size;
    while size > 12 {
        match area.estimate_text_size(title, &TextStyle::from((FAMILY, size).into_font())) {
            Ok((w, _)) if w > room => size -= 1,
            _ => break,
        }
    }
    TextStyle::from((FAMILY, size).into_font())
}

/// The legend of a chart's named lines: the names on white, in a thin grey frame, at `position`.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
    title: &str,
) -> Result<(), PortError> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(12)
        .label_font(TextStyle::from((FAMILY, 15).into_font()).color(&BLACK))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(|e| draw_error(title, e))
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

/// A line chart's axis range for data from `lo` to `hi`: rates, probabilities and shares (every value in [0, 1],
/// reaching 0 or 1: a ROC or precision-recall curve, a cumulative share) get the whole unit axis, so that charts
/// compare; other values, those in [0, 1] included (a study's RMSE of 0.007), keep their own range.
fn unit_axis(lo: f64, hi: f64) -> (f64, f64) {
    if lo >= 0.0 && hi <= 1.0 && (lo == 0.0 || hi == 1.0) { (0.0, 1.0) } else { (lo, hi) }
}

/// Whether fewer of the series' points fall in the lower right of the plot (the right 40% of `x`, the bottom 35% of
/// `y`) than in its upper right, where a legend would cover them.
fn lower_right_is_emptier(series: &[(String, Vec<(f64, f64)>)], x: (f64, f64), y: (f64, f64)) -> bool {
    let right = x.1 - 0.4 * (x.1 - x.0);
    let (low, high) = (y.0 + 0.35 * (y.1 - y.0), y.1 - 0.35 * (y.1 - y.0));
    let points = series.iter().flat_map(|(_, p)| p).filter(|p| p.0.is_finite() && p.1.is_finite() && p.0 >= right);
    let (lower, upper) = points.fold((0, 0), |(l, u), p| (l + usize::from(p.1 <= low), u + usize::from(p.1 >= high)));
    lower < upper
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
    fn overlaid_histogram_chart(
        &self,
        title: &str,
        x_label: &str,
        edges: &[f64],
        labels: &[String],
        reference: &[f64],
        current: &[f64],
    ) -> Result<Vec<u8>, PortError> {
        let bins = if labels.is_empty() { edges.len().saturating_sub(1) } else { labels.len() };
        if bins == 0 || reference.len() != bins || current.len() != bins {
            return Err(PortError::new(
                Code::DataShape,
                format!(
                    "chart '{title}': {bins} bins but {} reference and {} current shares",
                    reference.len(),
                    current.len()
                ),
            ));
        }
        let top = reference.iter().chain(current).copied().filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
        let top = if top > 0.0 { top * 1.1 } else { 1.0 };
        let (x_lo, x_hi) = if labels.is_empty() { padded(edges[0], edges[bins]) } else { (-0.5, bins as f64 - 0.5) };
        let blue = RGBColor(31, 119, 180);
        let orange = RGBColor(255, 127, 14);
        render_png(title, self.line_size, |root| {
            let names: Vec<String> = labels.iter().map(|l| shorten(l, 18)).collect();
            let mut chart = ChartBuilder::on(root)
                .caption(title, title_style(root, title, 24))
                .margin(16)
                .x_label_area_size(if labels.is_empty() { 48 } else { 90 })
                .y_label_area_size(70)
                .build_cartesian_2d(x_lo..x_hi, 0.0..top)
                .map_err(|e| draw_error(title, e))?;
            let category = |v: &f64| {
                let i = v.round();
                if (v - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            };
            let numeric_tick = |v: &f64| tick_label(*v, x_hi - x_lo);
            let mut mesh = chart.configure_mesh();
            mesh.y_desc("share of values")
                .x_desc(x_label)
                .y_label_formatter(&|v| format!("{v:.2}"))
                .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                .label_style(TextStyle::from((FAMILY, 13).into_font()).color(&BLACK));
            if labels.is_empty() {
                mesh.x_label_formatter(&numeric_tick);
            } else {
                mesh.x_labels(bins * 2 + 1).x_label_formatter(&category);
            }
            mesh.draw().map_err(|e| draw_error(title, e))?;
            for (name, shares, color, side) in [("reference", reference, blue, 0.0), ("current", current, orange, 1.0)]
            {
                let bars = shares.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| {
                    let (a, b) = if labels.is_empty() {
                        (edges[i], edges[i + 1])
                    } else {
                        (i as f64 - 0.4 + 0.4 * side, i as f64 + 0.4 * side)
                    };
                    Rectangle::new([(a, 0.0), (b, v)], color.mix(0.5).filled())
                });
                chart
                    .draw_series(bars)
                    .map_err(|e| draw_error(title, e))?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.mix(0.5).filled()));
            }
            draw_legend(&mut chart, SeriesLabelPosition::UpperRight, title)
        })
    }

    fn bar_chart(&self, title: &str, x_label: &str, labels: &[String], values: &[f64]) -> Result<Vec<u8>, PortError> {
        if labels.len() != values.len() {
            return Err(PortError::new(
                Code::Internal,
                format!("chart '{title}': {} labels but {} values", labels.len(), values.len()),
            ));
        }
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

        render_png(title, (width, height), |root| {
            let label_style = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
            let mut label_width = 40;
            for label in &labels {
                let (w, _) = root.estimate_text_size(label, &label_style).map_err(|e| draw_error(title, e))?;
                label_width = label_width.max(w);
            }
            let label_width = label_width.min(width / 2) + 12;
            let mut chart = ChartBuilder::on(root)
                .caption(title, title_style(root, title, 24))
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
            Ok(())
        })
    }

    fn line_chart(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        series: &[(String, Vec<(f64, f64)>)],
        diagonal: bool,
    ) -> Result<Vec<u8>, PortError> {
        let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let all = series.iter().flat_map(|(_, points)| points.iter().filter(finite));
        let bounds = all.fold(None, |b: Option<(f64, f64, f64, f64)>, &(x, y)| {
            Some(b.map_or((x, x, y, y), |(x0, x1, y0, y1)| (x0.min(x), x1.max(x), y0.min(y), y1.max(y))))
        });
        let Some((x_lo, x_hi, y_lo, y_hi)) = bounds else {
            return Err(PortError::new(
                Code::DataShape,
                format!("chart '{title}': no series has a finite point to draw ({} series)", series.len()),
            ));
        };
        let ((x_lo, x_hi), (y_lo, y_hi)) = (unit_axis(x_lo, x_hi), unit_axis(y_lo, y_hi));
        let ((x_lo, x_hi), (y_lo, y_hi)) = (padded(x_lo, x_hi), padded(y_lo, y_hi));
        let labelled = series.iter().any(|(name, _)| !name.is_empty());

        render_png(title, self.line_size, |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(title, title_style(root, title, 24))
                .margin(16)
                .x_label_area_size(52)
                .y_label_area_size(72)
                .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
                .map_err(|e| draw_error(title, e))?;
            let tick_style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
            chart
                .configure_mesh()
                .light_line_style(RGBColor(246, 246, 246))
                .x_label_formatter(&|v| tick_label(*v, x_hi - x_lo))
                .y_label_formatter(&|v| tick_label(*v, y_hi - y_lo))
                .x_label_style(tick_style.clone())
                .y_label_style(tick_style)
                .x_desc(x_label)
                .y_desc(y_label)
                .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                .draw()
                .map_err(|e| draw_error(title, e))?;
            // the chance line, clipped to where both axes overlap
            let (d_lo, d_hi) = (x_lo.max(y_lo), x_hi.min(y_hi));
            if diagonal && d_lo < d_hi {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(d_lo, d_lo), (d_hi, d_hi)],
                        8,
                        6,
                        RGBColor(128, 128, 128).stroke_width(1),
                    ))
                    .map_err(|e| draw_error(title, e))?;
            }
            for (i, (name, points)) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let line = LineSeries::new(points.iter().filter(finite).copied(), color.stroke_width(2));
                let drawn = chart.draw_series(line).map_err(|e| draw_error(title, e))?;
                if !name.is_empty() {
                    drawn
                        .label(shorten(name, 40))
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2)));
                }
            }
            if labelled {
                // a ROC curve leaves the lower right empty; other curves get the right-hand corner their points
                // leave emptier (a precision-recall curve the upper, a cumulative distribution the lower)
                let position = if diagonal || lower_right_is_emptier(series, (x_lo, x_hi), (y_lo, y_hi)) {
                    SeriesLabelPosition::LowerRight
                } else {
                    SeriesLabelPosition::UpperRight
                };
                draw_legend(&mut chart, position, title)?;
            }
            Ok(())
        })
    }

    fn confusion_matrix_chart(
        &self,
        title: &str,
        labels: [&str; 2],
        counts: [[u64; 2]; 2],
    ) -> Result<Vec<u8>, PortError> {
        let labels = labels.map(|l| shorten(l, 24));
        let total: u64 = counts.iter().flatten().sum();
        let largest = counts.iter().flatten().copied().max().unwrap_or(0);

        render_png(title, self.heatmap_size, |root| {
            // two segments per axis (0..1 segmented); actual class 0 is the top row, as scikit-learn draws it
            let mut chart = ChartBuilder::on(root)
                .caption(title, title_style(root, title, 24))
                .margin(16)
                .x_label_area_size(60)
                .y_label_area_size(110)
                .build_cartesian_2d((0..1_usize).into_segmented(), (0..1_usize).into_segmented())
                .map_err(|e| draw_error(title, e))?;
            let column_label = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) if *i < 2 => labels[*i].clone(),
                _ => String::new(),
            };
            let row_label = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) if *i < 2 => labels[1 - *i].clone(),
                _ => String::new(),
            };
            let label_style = TextStyle::from((FAMILY, 16).into_font()).color(&BLACK);
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(2)
                .y_labels(2)
                .x_label_formatter(&column_label)
                .y_label_formatter(&row_label)
                .x_label_style(label_style.clone())
                .y_label_style(label_style)
                .x_desc("predicted")
                .y_desc("actual")
                .axis_desc_style(TextStyle::from((FAMILY, 16).into_font()).color(&BLACK))
                .draw()
                .map_err(|e| draw_error(title, e))?;
            let mut cells = Vec::new();
            let mut texts = Vec::new();
            for (actual, row) in counts.iter().enumerate() {
                for (predicted, &count) in row.iter().enumerate() {
                    let share = if largest == 0 { 0.0 } else { count as f64 / largest as f64 };
                    let y = 1 - actual;
                    cells.push(Rectangle::new(
                        [
                            (SegmentValue::Exact(predicted), SegmentValue::Exact(y + 1)),
                            (SegmentValue::Exact(predicted + 1), SegmentValue::Exact(y)),
                        ],
                        heat_color(share).filled(),
                    ));
                    let ink: &'static RGBColor = if share > 0.5 { &WHITE } else { &BLACK };
                    let centered = Pos::new(HPos::Center, VPos::Center);
                    let percent = if total == 0 { 0.0 } else { 100.0 * count as f64 / total as f64 };
                    texts.push(
                        EmptyElement::at((SegmentValue::CenterOf(predicted), SegmentValue::CenterOf(y)))
                            + Text::new(
                                count.to_string(),
                                (0, -12),
                                TextStyle::from((FAMILY, 30).into_font()).color(ink).pos(centered),
                            )
                            + Text::new(
                                format!("{percent:.1} %"),
                                (0, 20),
                                TextStyle::from((FAMILY, 16).into_font()).color(ink).pos(centered),
                            ),
                    );
                }
            }
            chart.draw_series(cells).map_err(|e| draw_error(title, e))?;
            chart.draw_series(texts).map_err(|e| draw_error(title, e))?;
            Ok(())
        })
    }

    fn beeswarm_chart(&self, title: &str, x_label: &str, rows: &[BeeswarmRow]) -> Result<Vec<u8>, PortError> {
        self.draw_beeswarm(title, x_label, rows)
    }

    fn series_chart(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        series: &[(String, Vec<f64>)],
    ) -> Result<Vec<u8>, PortError> {
        self.draw_series(title, y_label, times_ms, series, &[])
    }

    fn series_chart_marked(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        series: &[(String, Vec<f64>)],
        markers_ms: &[i64],
    ) -> Result<Vec<u8>, PortError> {
        self.draw_series(title, y_label, times_ms, series, markers_ms)
    }

    fn residual_chart(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        residuals: &[f64],
    ) -> Result<Vec<u8>, PortError> {
        self.draw_residuals(title, y_label, times_ms, residuals)
    }

    fn history_chart(
        &self,
        title: &str,
        y_label: &str,
        values: &[(f64, f64)],
        best: &[(f64, f64)],
    ) -> Result<Vec<u8>, PortError> {
        self.draw_history(title, y_label, values, best)
    }

    fn parallel_coordinates_chart(
        &self,
        title: &str,
        axes: &[ChartAxis],
        lines: &[Vec<Option<f64>>],
        colour_values: &[f64],
        low_is_best: bool,
    ) -> Result<Vec<u8>, PortError> {
        self.draw_parallel(title, axes, lines, colour_values, low_is_best)
    }

    fn slice_chart(&self, title: &str, y_label: &str, panels: &[SlicePanel]) -> Result<Vec<u8>, PortError> {
        self.draw_slice(title, y_label, panels)
    }

    fn intermediate_values_chart(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        trials: &[(bool, Vec<(f64, f64)>)],
    ) -> Result<Vec<u8>, PortError> {
        self.draw_intermediate(title, x_label, y_label, trials)
    }
}

mod beeswarm;
mod series;
mod study;
#[cfg(test)]
mod tests;
