//! The Yahoo Finance chart API (`GET /v8/finance/chart/<symbol>`): daily or intraday bars of one or many symbols,
//! one page per symbol, with adjusted close, dividends and splits as columns, as yfinance shows them.
//!
//! Key decisions: bars are dated in the exchange's own time zone (`meta.exchangeTimezoneName`): a daily bar's `date`
//! is the exchange's local calendar date, an intraday bar's `time` an instant shown in that zone; `start`/`end` are
//! local dates, `end` exclusive as in yfinance (a day of margin is asked for on either side and the bars are cut by
//! their local date, so no zone loses or gains a day). Bars whose prices and volume are all null are dropped and
//! counted. It does not adjust prices itself (Yahoo's `adjclose` is passed through) and reads no quote or
//! fundamentals endpoint.

use chrono::{NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use polars::prelude::{
    DataFrame, DataType, Int32Chunked, Int64Chunked, IntoColumn, IntoSeries, NamedFrom, Series, TimeUnit, TimeZone,
};
use serde_json::Value;

use super::http::{FetchSummary, HttpClient, HttpPolicy, Request, encode_component, service_message};
use crate::fetch::FetchError;

/// Yahoo's chart API host.
pub const YAHOO_BASE_URL: &str = "https://query2.finance.yahoo.com";

/// Intervals of less than a day: bars get a `time` column; the others (`1d`, `5d`, `1wk`, `1mo`, `3mo`) a `date`.
pub(crate) const INTRADAY: &[&str] = &["1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h"];
const DAILY: &[&str] = &["1d", "5d", "1wk", "1mo", "3mo"];
const RANGES: &[&str] = &["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"];

/// What yfinance asks for when no start is given: 1900-01-01 minus Yahoo's quirk of a few hours.
const EARLIEST: i64 = -2_208_994_789;

/// Bars of one or many symbols from the Yahoo Finance chart API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YahooRequest {
    /// Yahoo's symbols (`NVDA`, `EURUSD=X`, `^GSPC`); more than one makes a panel with a `symbol` column
    pub symbols: Vec<String>,
    /// `1m`, `2m`, `5m`, `15m`, `30m`, `60m`, `90m`, `1h`, `1d` (default), `5d`, `1wk`, `1mo`, `3mo`
    pub interval: String,
    /// first local date, `YYYY-MM-DD`, included
    pub start: Option<String>,
    /// local date, `YYYY-MM-DD`, excluded (yfinance's convention); today when only `start` is given
    pub end: Option<String>,
    /// Yahoo's range (`1d`, `5d`, `1mo`, `3mo`, `6mo`, `1y`, `2y`, `5y`, `10y`, `ytd`, `max`); not with start/end.
    /// With none of start, end and range, the whole history (`max`).
    pub range: Option<String>,
    /// scheme and host of the API, [`YAHOO_BASE_URL`] by default (tests point it at a local server)
    pub base_url: String,
    pub http: HttpPolicy,
}

impl YahooRequest {
    /// Daily bars of `symbols` over their whole history, from [`YAHOO_BASE_URL`] with the default [`HttpPolicy`].
    pub fn new(symbols: Vec<String>) -> Self {
        YahooRequest {
            symbols,
            interval: "1d".to_string(),
            start: None,
            end: None,
            range: None,
            base_url: YAHOO_BASE_URL.to_string(),
            http: HttpPolicy::default(),
        }
    }
}

/// The checked request: the query string every symbol shares and the local dates that cut the bars.
#[derive(Debug)]
struct Plan {
    intraday: bool,
    query: String,
    /// [from, until) in local dates
    from: Option<NaiveDate>,
    until: Option<NaiveDate>,
    /// "between 2021-02-01 and 2022-01-31", "over 1y", for messages
    span: String,
}

fn check(req: &YahooRequest) -> Result<Plan, FetchError> {
    if req.symbols.is_empty() {
        return Err(FetchError::Request("Yahoo: no symbol to fetch".to_string()));
    }
    for (i, s) in req.symbols.iter().enumerate() {
        if s.trim().is_empty() || s.trim() != s {
            return Err(FetchError::Request(format!("Yahoo: symbol {:?} is empty or has spaces around it", s)));
        }
        if req.symbols[..i].contains(s) {
            return Err(FetchError::Request(format!("Yahoo: symbol {s} is asked for twice")));
        }
    }
    let interval = req.interval.as_str();
    let intraday = INTRADAY.contains(&interval);
    if !intraday && !DAILY.contains(&interval) {
        return Err(FetchError::Request(format!(
            "Yahoo: unknown interval {interval:?} (one of {}, {})",
            INTRADAY.join(", "),
            DAILY.join(", ")
        )));
    }
    let date = |what: &str, s: &Option<String>| -> Result<Option<NaiveDate>, FetchError> {
        s.as_deref()
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map_err(|_| FetchError::Request(format!("Yahoo: {what} {s:?} is not a date like 2021-02-01")))
            })
            .transpose()
    };
    let from = date("start", &req.start)?;
    let until = date("end", &req.end)?;
    let mut query = format!("interval={interval}");
    let span = match (&req.range, from, until) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(FetchError::Request("Yahoo: give either a range or start/end dates, not both".to_string()));
        }
        (Some(range), None, None) => {
            if !RANGES.contains(&range.as_str()) {
                return Err(FetchError::Request(format!(
                    "Yahoo: unknown range {range:?} (one of {})",
                    RANGES.join(", ")
                )));
            }
            query.push_str(&format!("&range={range}"));
            format!("over {range}")
        }
        (None, None, None) => {
            query.push_str("&range=max");
            "over its whole history".to_string()
        }
        (None, from, until) => {
            if let (Some(f), Some(u)) = (from, until)
                && u <= f
            {
                return Err(FetchError::Request(format!(
                    "Yahoo: end {u} is not after start {f} (the end date is excluded)"
                )));
            }
            // a day of margin on either side: the bars are cut by their local date below, whatever the zone
            let period1 = from.map_or(EARLIEST, |f| midnight_utc(f) - 86_400);
            let period2 = until.map_or_else(|| Utc::now().timestamp(), |u| midnight_utc(u) + 86_400);
            query.push_str(&format!("&period1={period1}&period2={period2}"));
            match (from, until) {
                (Some(f), Some(u)) => format!("from {f} to {u} (excluded)"),
                (Some(f), None) => format!("since {f}"),
                (None, Some(u)) => format!("before {u}"),
                (None, None) => unreachable!("handled above"),
            }
        }
    };
    query.push_str("&events=div%2Csplits&includeAdjustedClose=true&includePrePost=false");
    Ok(Plan { intraday, query, from, until, span })
}

fn midnight_utc(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp())
}

/// Fetches every symbol of `req` in turn, one page per symbol to `sink`, each with the same columns: `symbol`
/// (a panel only), `date` (Date, daily and longer intervals) or `time` (Datetime ms in the exchange's zone,
/// intraday; a panel uses its first symbol's zone), `open`, `high`, `low`, `close`, `adj_close` (not intraday),
/// `volume`, `dividends` and `splits` (0.0 where none).
///
/// # Errors
/// [`FetchError::Request`] for a bad request (before anything is sent), [`FetchError::Service`] for Yahoo's error
/// envelope (an unknown symbol), [`FetchError::Empty`] for a symbol with no bar in the range,
/// [`FetchError::Malformed`] for an answer that is not a chart, the HTTP errors of [`HttpClient::send`], and
/// whatever `sink` returns.
pub(crate) fn fetch_yahoo(
    req: &YahooRequest,
    sink: &mut dyn FnMut(DataFrame) -> Result<(), FetchError>,
    note: &mut dyn FnMut(&str),
) -> Result<FetchSummary, FetchError> {
    let plan = check(req)?;
    let mut client = HttpClient::new(&req.http);
    let mut summary = FetchSummary::default();
    let panel = req.symbols.len() > 1;
    let mut zone: Option<Tz> = None;
    let base = req.base_url.trim_end_matches('/');
    for symbol in &req.symbols {
        let url = format!("{base}/v8/finance/chart/{}?{}", encode_component(symbol), plan.query);
        let mut request = Request::get(&url);
        request.pass = &[404];
        request.headers.push(("Accept", "application/json".to_string()));
        let answer = client.send(&request, &mut |line: &str| summary.note(note, line.to_string()))?;
        summary.pages += 1;
        let chart = parse_chart(symbol, answer.status, &answer.body, &plan)?;
        let shown_zone = *zone.get_or_insert(chart.zone);
        if panel && plan.intraday && shown_zone != chart.zone {
            summary.note(
                note,
                format!(
                    "{symbol}: exchange zone {} differs from the panel's {shown_zone}; its times are shown in {shown_zone}",
                    chart.zone
                ),
            );
        }
        let bars = chart.bars(&plan);
        if bars.rows.is_empty() {
            return Err(FetchError::Empty(format!(
                "Yahoo {symbol}: no bars {} at interval {}{}",
                plan.span,
                req.interval,
                if bars.dropped > 0 { format!(" ({} bars had only null values)", bars.dropped) } else { String::new() }
            )));
        }
        let frame = bars.frame(panel.then_some(symbol.as_str()), plan.intraday, shown_zone)?;
        let rows = bars.rows.len() as u64;
        summary.rows += rows;
        summary.dropped_null_bars += bars.dropped;
        let mut line = format!("{symbol}: {rows} {}", if rows == 1 { "bar" } else { "bars" });
        if bars.dropped > 0 {
            line.push_str(&format!(", {} with only null values dropped", bars.dropped));
        }
        if bars.outside > 0 {
            line.push_str(&format!(", {} outside the dates left out", bars.outside));
        }
        for w in &bars.warnings {
            line.push_str(&format!("; {w}"));
        }
        summary.note(note, line);
        sink(frame)?;
    }
    Ok(summary)
}

/// One symbol's answer, column by column as Yahoo sent it.
#[derive(Debug)]
struct Chart {
    zone: Tz,
    timestamps: Vec<i64>,
    open: Vec<Option<f64>>,
    high: Vec<Option<f64>>,
    low: Vec<Option<f64>>,
    close: Vec<Option<f64>>,
    adj_close: Option<Vec<Option<f64>>>,
    volume: Vec<Option<f64>>,
    /// (unix seconds, amount)
    dividends: Vec<(i64, f64)>,
    /// (unix seconds, numerator / denominator)
    splits: Vec<(i64, f64)>,
}

/// Reads one chart answer: Yahoo's error envelope and an empty range become errors naming `symbol`.
fn parse_chart(symbol: &str, status: u16, body: &[u8], plan: &Plan) -> Result<Chart, FetchError> {
    let source_name = format!("Yahoo {symbol}");
    let malformed = |message: String| FetchError::Malformed { source_name: source_name.clone(), message };
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        if status == 404 {
            FetchError::Service {
                source_name: source_name.clone(),
                message: format!("HTTP 404: {}", service_message(body)),
            }
        } else {
            malformed(format!("not JSON ({e})"))
        }
    })?;
    let chart = v.get("chart").ok_or_else(|| malformed("no `chart` object".to_string()))?;
    if let Some(error) = chart.get("error").filter(|e| !e.is_null()) {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("error");
        let description = error.get("description").and_then(Value::as_str).unwrap_or("no description");
        let http = if status == 200 { String::new() } else { format!(" (HTTP {status})") };
        return Err(FetchError::Service { source_name, message: format!("{code}: {description}{http}") });
    }
    if status != 200 {
        return Err(FetchError::Service { source_name, message: format!("HTTP {status}: {}", service_message(body)) });
    }
    let result = chart
        .get("result")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .ok_or_else(|| malformed("`chart.result` is empty and there is no `chart.error`".to_string()))?;
    let meta = result.get("meta").ok_or_else(|| malformed("no `meta`".to_string()))?;
    let zone_name = meta
        .get("exchangeTimezoneName")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `meta.exchangeTimezoneName`".to_string()))?;
    let zone: Tz = zone_name.parse().map_err(|_| malformed(format!("unknown exchange time zone {zone_name:?}")))?;
    let Some(stamps) = result.get("timestamp") else {
        return Err(FetchError::Empty(format!(
            "Yahoo {symbol}: no bars {} at interval {} (Yahoo sent no timestamps)",
            plan.span,
            meta.get("dataGranularity").and_then(Value::as_str).unwrap_or("?")
        )));
    };
    let timestamps: Vec<i64> = stamps
        .as_array()
        .ok_or_else(|| malformed("`timestamp` is not a list".to_string()))?
        .iter()
        .map(|t| t.as_i64().ok_or_else(|| malformed(format!("timestamp {t} is not a whole number of seconds"))))
        .collect::<Result<_, _>>()?;
    if let Some(w) = timestamps.windows(2).find(|w| w[1] < w[0]) {
        return Err(malformed(format!("timestamps go back in time ({} after {})", w[1], w[0])));
    }
    let n = timestamps.len();
    let indicators = result.get("indicators").ok_or_else(|| malformed("no `indicators`".to_string()))?;
    let quote = indicators
        .get("quote")
        .and_then(Value::as_array)
        .and_then(|q| q.first())
        .ok_or_else(|| malformed("no `indicators.quote`".to_string()))?;
    let series = |parent: &Value, path: &str, key: &str| -> Result<Vec<Option<f64>>, FetchError> {
        let values = match parent.get(key) {
            Some(Value::Array(a)) => a,
            // a quote with no values at all (every bar null) comes as an empty object
            None if n == 0 => return Ok(Vec::new()),
            None => return Ok(vec![None; n]),
            Some(other) => return Err(malformed(format!("`{path}.{key}` is not a list: {other}"))),
        };
        if values.len() != n {
            return Err(malformed(format!("`{path}.{key}` has {} values for {n} timestamps", values.len())));
        }
        values
            .iter()
            .map(|x| match x {
                Value::Null => Ok(None),
                Value::Number(num) => Ok(num.as_f64()),
                other => Err(malformed(format!("`{path}.{key}` holds {other}, not a number"))),
            })
            .collect()
    };
    let adj_close = match indicators.get("adjclose").and_then(Value::as_array).and_then(|a| a.first()) {
        Some(a) => Some(series(a, "indicators.adjclose", "adjclose")?),
        None => None,
    };
    let events = result.get("events");
    let event_list = |kind: &str| -> Vec<&Value> {
        let mut list: Vec<&Value> = match events.and_then(|e| e.get(kind)) {
            Some(Value::Object(m)) => m.values().collect(),
            Some(Value::Array(a)) => a.iter().collect(),
            _ => Vec::new(),
        };
        list.sort_by_key(|e| e.get("date").and_then(Value::as_i64).unwrap_or(i64::MIN));
        list
    };
    let mut dividends = Vec::new();
    for e in event_list("dividends") {
        let date = e.get("date").and_then(Value::as_i64);
        let amount = e.get("amount").and_then(Value::as_f64);
        match (date, amount) {
            (Some(d), Some(a)) => dividends.push((d, a)),
            _ => return Err(malformed(format!("a dividend without a date or an amount: {e}"))),
        }
    }
    let mut splits = Vec::new();
    for e in event_list("splits") {
        let date = e.get("date").and_then(Value::as_i64);
        let num = e.get("numerator").and_then(Value::as_f64);
        let den = e.get("denominator").and_then(Value::as_f64).filter(|d| *d != 0.0);
        match (date, num, den) {
            (Some(d), Some(n), Some(m)) => splits.push((d, n / m)),
            _ => return Err(malformed(format!("a split without a date or a ratio: {e}"))),
        }
    }
    Ok(Chart {
        zone,
        open: series(quote, "indicators.quote", "open")?,
        high: series(quote, "indicators.quote", "high")?,
        low: series(quote, "indicators.quote", "low")?,
        close: series(quote, "indicators.quote", "close")?,
        volume: series(quote, "indicators.quote", "volume")?,
        adj_close,
        timestamps,
        dividends,
        splits,
    })
}

/// The bars kept, as row indices into the chart, with the events placed on them.
#[derive(Debug)]
struct Bars<'c> {
    chart: &'c Chart,
    rows: Vec<usize>,
    dividends: Vec<f64>,
    splits: Vec<f64>,
    /// local days since 1970-01-01, per kept row
    days: Vec<i32>,
    dropped: u64,
    outside: u64,
    warnings: Vec<String>,
}

impl Chart {
    /// The bars to keep: inside the plan's local dates, not all null (unless an event falls on them); every event
    /// on the bar whose period holds it (the last bar that starts at or before it). For daily and longer intervals
    /// two bars on one local date (Yahoo's live bar beside the day's) keep the later one.
    fn bars(&self, plan: &Plan) -> Bars<'_> {
        let n = self.timestamps.len();
        let mut dividends = vec![0.0; n];
        let mut splits = vec![0.0; n];
        let mut warnings = Vec::new();
        let mut unplaced = 0;
        for (events, column, product) in [(&self.dividends, &mut dividends, false), (&self.splits, &mut splits, true)] {
            for &(at, value) in events.iter() {
                let i = self.timestamps.partition_point(|t| *t <= at);
                if i == 0 {
                    unplaced += 1;
                    continue;
                }
                let slot = &mut column[i - 1];
                *slot = match (product, *slot == 0.0) {
                    (_, true) => value,
                    (true, false) => *slot * value,
                    (false, false) => *slot + value,
                };
            }
        }
        if unplaced > 0 {
            warnings.push(format!("{unplaced} dividend or split before the first bar left out"));
        }
        let days: Vec<i32> = self.timestamps.iter().map(|t| self.local_day(*t)).collect();
        let from = plan.from.map(days_since_epoch);
        let until = plan.until.map(days_since_epoch);
        let mut rows = Vec::with_capacity(n);
        let (mut dropped, mut outside, mut doubled) = (0, 0, 0);
        for i in 0..n {
            if from.is_some_and(|f| days[i] < f) || until.is_some_and(|u| days[i] >= u) {
                outside += 1;
                continue;
            }
            let values = [&self.open, &self.high, &self.low, &self.close, &self.volume];
            let all_null = values.iter().all(|v| v[i].is_none())
                && self.adj_close.as_ref().is_none_or(|a| a[i].is_none())
                && dividends[i] == 0.0
                && splits[i] == 0.0;
            if all_null {
                dropped += 1;
                continue;
            }
            if !plan.intraday
                && let Some(&last) = rows.last()
                && days[last] == days[i]
            {
                rows.pop();
                doubled += 1;
            }
            rows.push(i);
        }
        if doubled > 0 {
            warnings.push(format!("{doubled} bars sharing a date with the next one left out"));
        }
        Bars { chart: self, rows, dividends, splits, days, dropped, outside, warnings }
    }

    fn local_day(&self, unix_seconds: i64) -> i32 {
        let local = self.zone.timestamp_opt(unix_seconds, 0).single().map(|t| t.date_naive());
        local.map_or((unix_seconds.div_euclid(86_400)) as i32, days_since_epoch)
    }
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    (d - NaiveDate::default()).num_days() as i32
}

impl Bars<'_> {
    fn frame(&self, symbol: Option<&str>, intraday: bool, zone: Tz) -> Result<DataFrame, FetchError> {
        let c = self.chart;
        let n = self.rows.len();
        let pick = |v: &[Option<f64>]| -> Series {
            Series::new("".into(), self.rows.iter().map(|&i| v[i]).collect::<Vec<_>>())
        };
        let named = |s: Series, name: &str| s.with_name(name.into()).into_column();
        let mut columns = Vec::with_capacity(11);
        if let Some(symbol) = symbol {
            columns.push(Series::new("symbol".into(), vec![symbol; n]).into_column());
        }
        if intraday {
            let ms: Vec<i64> = self.rows.iter().map(|&i| c.timestamps[i] * 1000).collect();
            let tz = TimeZone::opt_try_new(Some(zone.name())).map_err(|e| FetchError::Malformed {
                source_name: "Yahoo".to_string(),
                message: format!("time zone {}: {e}", zone.name()),
            })?;
            columns.push(
                Int64Chunked::from_vec("time".into(), ms)
                    .into_datetime(TimeUnit::Milliseconds, tz)
                    .into_series()
                    .into_column(),
            );
        } else {
            let days: Vec<i32> = self.rows.iter().map(|&i| self.days[i]).collect();
            columns.push(Int32Chunked::from_vec("date".into(), days).into_date().into_series().into_column());
        }
        columns.push(named(pick(&c.open), "open"));
        columns.push(named(pick(&c.high), "high"));
        columns.push(named(pick(&c.low), "low"));
        columns.push(named(pick(&c.close), "close"));
        if !intraday {
            // Yahoo sends `adjclose` for daily and longer bars; should it not, the column stays, all null
            let adj = match &c.adj_close {
                Some(a) => pick(a),
                None => Series::full_null("".into(), n, &DataType::Float64),
            };
            columns.push(named(adj, "adj_close"));
        }
        columns.push(named(pick(&c.volume), "volume"));
        let events =
            |v: &[f64], name: &str| Series::new(name.into(), self.rows.iter().map(|&i| v[i]).collect::<Vec<f64>>());
        columns.push(events(&self.dividends, "dividends").into_column());
        columns.push(events(&self.splits, "splits").into_column());
        DataFrame::new(n, columns)
            .map_err(|e| FetchError::Malformed { source_name: "Yahoo".to_string(), message: e.to_string() })
    }
}

#[cfg(test)]
mod tests;
