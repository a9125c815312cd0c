use std::path::PathBuf;
use std::time::Duration;

use polars::prelude::{DataFrame, DataType, TimeUnit};

use super::*;
use crate::source::http::stub::{Reply, Stub};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/yahoo")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const NVDA: &str = "chart_NVDA_1d_2021-02-01_2022-01-31_split.json";
const MSFT: &str = "chart_MSFT_1d_2021-02-01_2022-01-31_dividends.json";
const AAPL: &str = "chart_AAPL_1d_2020-08-31_2020-11-07.json";
const AAPL_ONE: &str = "chart_AAPL_1d_2020-01-01_2020-01-03.json";
const EURUSD: &str = "chart_EURUSD=X_1d_2020-01-01_2020-01-03.json";
const TSLA: &str = "chart_TSLA_1d_max_to_2023-08-12.json";

fn request(symbols: &[&str]) -> YahooRequest {
    let mut r = YahooRequest::new(symbols.iter().map(|s| s.to_string()).collect());
    r.http = fast_policy();
    r
}

fn fast_policy() -> HttpPolicy {
    HttpPolicy {
        retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        min_interval: Duration::ZERO,
        timeout: Duration::from_secs(10),
        ..HttpPolicy::default()
    }
}

/// One fixture read as `fetch_yahoo` reads it, for `req`'s plan (the whole answer when it has no dates).
fn parse(symbol: &str, body: &[u8], req: &YahooRequest) -> Result<(DataFrame, u64), FetchError> {
    let plan = check(req)?;
    let chart = parse_chart(symbol, 200, body, &plan)?;
    let bars = chart.bars(&plan);
    Ok((bars.frame(None, plan.intraday, chart.zone)?, bars.dropped))
}

fn date(s: &str) -> i32 {
    days_since_epoch(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

/// The row of `frame` dated `day`, as (open, high, low, close, adj_close, volume, dividends, splits).
fn row(frame: &DataFrame, day: &str) -> [f64; 8] {
    let dates = frame.column("date").unwrap().date().unwrap().physical().clone();
    let i = dates.iter().position(|d| d == Some(date(day))).unwrap_or_else(|| panic!("no bar on {day}"));
    let mut out = [0.0; 8];
    for (k, name) in ["open", "high", "low", "close", "adj_close", "volume", "dividends", "splits"].iter().enumerate() {
        out[k] = frame.column(name).unwrap().f64().unwrap().get(i).unwrap();
    }
    out
}

fn column_f64(frame: &DataFrame, name: &str) -> Vec<f64> {
    frame.column(name).unwrap().f64().unwrap().iter().map(|x| x.unwrap()).collect()
}

fn dates(frame: &DataFrame) -> Vec<i32> {
    frame.column("date").unwrap().date().unwrap().physical().iter().map(|d| d.unwrap()).collect()
}

#[test]
fn nvda_has_its_4_for_1_split_on_2021_07_20_and_every_bar() {
    let (f, dropped) = parse("NVDA", &fixture(NVDA), &request(&["NVDA"])).unwrap();
    assert_eq!(dropped, 0);
    assert_eq!(f.height(), 252);
    let names: Vec<&str> = f.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["date", "open", "high", "low", "close", "adj_close", "volume", "dividends", "splits"]);
    assert_eq!(f.column("date").unwrap().dtype(), &DataType::Date);
    for c in &names[1..] {
        assert_eq!(f.column(c).unwrap().dtype(), &DataType::Float64, "{c}");
    }
    // the values as the JSON has them (Yahoo's float32 prices widened to f64, not rounded)
    assert_eq!(
        row(&f, "2021-02-01"),
        [
            13.053250312805176,
            13.270750045776367,
            12.902750015258789,
            13.237000465393066,
            13.2034912109375,
            217204000.0,
            0.0,
            0.0
        ]
    );
    assert_eq!(
        row(&f, "2022-01-28"),
        [
            22.011999130249023,
            22.857999801635742,
            21.29599952697754,
            22.84000015258789,
            22.802078247070312,
            543774000.0,
            0.0,
            0.0
        ]
    );
    let splits = column_f64(&f, "splits");
    let days = dates(&f);
    let split_days: Vec<i32> = (0..f.height()).filter(|&i| splits[i] != 0.0).map(|i| days[i]).collect();
    assert_eq!(split_days, [date("2021-07-20")]);
    assert_eq!(row(&f, "2021-07-20")[7], 4.0);
    assert!(column_f64(&f, "dividends").iter().all(|d| *d == 0.0));
    assert_eq!((days[0], days[251]), (date("2021-02-01"), date("2022-01-28")));
    assert!(days.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn msft_has_its_four_dividends_on_their_local_dates() {
    let (f, _) = parse("MSFT", &fixture(MSFT), &request(&["MSFT"])).unwrap();
    assert_eq!(f.height(), 252);
    let div = column_f64(&f, "dividends");
    let days = dates(&f);
    let paid: Vec<(i32, f64)> = (0..f.height()).filter(|&i| div[i] != 0.0).map(|i| (days[i], div[i])).collect();
    assert_eq!(
        paid,
        [
            (date("2021-02-17"), 0.56),
            (date("2021-05-19"), 0.56),
            (date("2021-08-18"), 0.56),
            (date("2021-11-17"), 0.62)
        ]
    );
    assert!(column_f64(&f, "splits").iter().all(|s| *s == 0.0));
    assert_eq!(
        row(&f, "2021-02-01"),
        [235.05999755859375, 242.5, 232.42999267578125, 239.64999389648438, 231.1864776611328, 33314200.0, 0.0, 0.0]
    );
}

#[test]
fn aapl_has_both_a_split_and_a_dividend() {
    let (f, _) = parse("AAPL", &fixture(AAPL), &request(&["AAPL"])).unwrap();
    assert_eq!(f.height(), 49);
    assert_eq!(
        row(&f, "2020-08-31"),
        [127.58000183105469, 131.0, 126.0, 129.0399932861328, 125.82673645019531, 225702700.0, 0.0, 4.0]
    );
    assert_eq!(
        row(&f, "2020-11-06"),
        [
            118.31999969482422,
            119.19999694824219,
            116.12999725341797,
            118.69000244140625,
            115.93415069580078,
            114457900.0,
            0.205,
            0.0
        ]
    );
    assert_eq!(column_f64(&f, "dividends").iter().filter(|d| **d != 0.0).count(), 1);
    assert_eq!(column_f64(&f, "splits").iter().filter(|d| **d != 0.0).count(), 1);
}

#[test]
fn the_smallest_answer_is_one_bar() {
    let (f, _) = parse("AAPL", &fixture(AAPL_ONE), &request(&["AAPL"])).unwrap();
    assert_eq!(f.height(), 1);
    assert_eq!(
        row(&f, "2020-01-02"),
        [
            74.05999755859375,
            75.1500015258789,
            73.79750061035156,
            75.0875015258789,
            72.71607208251953,
            135480400.0,
            0.0,
            0.0
        ]
    );
}

#[test]
fn eurusd_has_a_bar_on_new_years_day_in_london() {
    let (f, _) = parse("EURUSD=X", &fixture(EURUSD), &request(&["EURUSD=X"])).unwrap();
    assert_eq!(dates(&f), [date("2020-01-01"), date("2020-01-02"), date("2020-01-03")]);
    assert_eq!(
        row(&f, "2020-01-01"),
        [
            1.1220825910568237,
            1.1228384971618652,
            1.115946888923645,
            1.1220825910568237,
            1.1220825910568237,
            0.0,
            0.0,
            0.0
        ]
    );
    assert_eq!(
        row(&f, "2020-01-03"),
        [
            1.1170812845230103,
            1.118067979812622,
            1.112569808959961,
            1.1171437501907349,
            1.1171437501907349,
            0.0,
            0.0,
            0.0
        ]
    );
}

#[test]
fn tsla_has_its_whole_history() {
    let (f, dropped) = parse("TSLA", &fixture(TSLA), &request(&["TSLA"])).unwrap();
    assert_eq!((f.height(), dropped), (3303, 0));
    let days = dates(&f);
    assert_eq!((days[0], days[3302]), (date("2010-06-29"), date("2023-08-11")));
    assert!(days.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        row(&f, "2010-06-29"),
        [
            1.2666670083999634,
            1.6666669845581055,
            1.1693329811096191,
            1.5926669836044312,
            1.5926669836044312,
            281494500.0,
            0.0,
            0.0
        ]
    );
    assert_eq!(
        row(&f, "2023-08-11"),
        [
            241.77000427246094,
            243.7899932861328,
            238.02000427246094,
            242.64999389648438,
            242.64999389648438,
            98866600.0,
            0.0,
            0.0
        ]
    );
}

/// `body` with its JSON changed by `edit`.
fn edited(body: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn daily_bars_are_dated_in_the_exchanges_zone_not_in_utc() {
    // 2020-06-30 23:00 UTC is midnight of 2020-07-01 in London (BST): the bar belongs to July 1st
    let body = edited(&fixture(EURUSD), |v| {
        v["chart"]["result"][0]["timestamp"] =
            serde_json::json!([1_593_471_600i64, 1_593_558_000i64, 1_593_644_400i64]);
    });
    let (f, _) = parse("EURUSD=X", &body, &request(&["EURUSD=X"])).unwrap();
    assert_eq!(dates(&f), [date("2020-06-30"), date("2020-07-01"), date("2020-07-02")]);
}

#[test]
fn bars_whose_values_are_all_null_are_dropped_and_counted() {
    let body = edited(&fixture(NVDA), |v| {
        let r = &mut v["chart"]["result"][0];
        for key in ["open", "high", "low", "close", "volume"] {
            r["indicators"]["quote"][0][key][3] = Value::Null;
            r["indicators"]["quote"][0][key][4] = Value::Null;
        }
        r["indicators"]["adjclose"][0]["adjclose"][3] = Value::Null;
        r["indicators"]["adjclose"][0]["adjclose"][4] = Value::Null;
        // bar 5 keeps its volume only: it stays, with null prices
        for key in ["open", "high", "low", "close"] {
            r["indicators"]["quote"][0][key][5] = Value::Null;
        }
    });
    let (f, dropped) = parse("NVDA", &body, &request(&["NVDA"])).unwrap();
    assert_eq!((f.height(), dropped), (250, 2));
    assert_eq!(f.column("open").unwrap().null_count(), 1);
}

fn serve_fixtures() -> Stub {
    Stub::start(|seen| {
        let name = match seen.path() {
            "/v8/finance/chart/NVDA" => NVDA,
            "/v8/finance/chart/MSFT" => MSFT,
            "/v8/finance/chart/AAPL" => AAPL,
            "/v8/finance/chart/EURUSD%3DX" => EURUSD,
            "/v8/finance/chart/TSLA" => TSLA,
            _ => {
                return Reply::json(
                    404,
                    r#"{"chart":{"result":null,"error":{"code":"Not Found","description":"No data found, symbol may be delisted"}}}"#,
                );
            }
        };
        Reply::json(200, fixture(name))
    })
}

fn fetch(req: &YahooRequest) -> Result<crate::source::http::stub::Collected, FetchError> {
    crate::source::http::stub::collect(req, fetch_yahoo)
}

#[test]
fn a_panel_is_one_page_per_symbol_with_the_same_columns() {
    let stub = serve_fixtures();
    let mut req = request(&["NVDA", "MSFT", "EURUSD=X"]);
    req.base_url = stub.url.clone();
    req.start = Some("2020-01-01".into());
    req.end = Some("2022-01-31".into());
    let (pages, summary, notes) = fetch(&req).unwrap();
    assert_eq!(pages.len(), 3);
    let schema = pages[0].schema();
    for p in &pages {
        assert_eq!(p.schema(), schema);
    }
    let names: Vec<&str> = pages[0].get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names[..2], ["symbol", "date"]);
    assert_eq!(pages[2].column("symbol").unwrap().str().unwrap().get(0), Some("EURUSD=X"));
    // every bar of the three answers is inside 2020-01-01 .. 2022-01-31
    assert_eq!(summary.rows, 252 + 252 + 3);
    assert_eq!(summary.pages, 3);
    assert_eq!(notes, ["NVDA: 252 bars", "MSFT: 252 bars", "EURUSD=X: 3 bars"]);
    assert_eq!(summary.notes, notes);
    let seen = stub.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].path(), "/v8/finance/chart/EURUSD%3DX");
    let q = |name: &str| seen[0].query(name).unwrap_or_default();
    assert_eq!(q("interval"), "1d");
    // a day of margin on either side of 2020-01-01 .. 2022-01-31
    assert_eq!(q("period1"), "1577750400");
    assert_eq!(q("period2"), "1643673600");
    assert_eq!(q("events"), "div,splits");
    assert_eq!(q("includeAdjustedClose"), "true");
    assert!(seen[0].header("User-Agent").unwrap().contains("kiln/"));
}

#[test]
fn start_and_end_are_local_dates_with_the_end_excluded() {
    let stub = serve_fixtures();
    let mut req = request(&["EURUSD=X"]);
    req.base_url = stub.url.clone();
    req.start = Some("2020-01-01".into());
    req.end = Some("2020-01-03".into());
    let (pages, summary, notes) = fetch(&req).unwrap();
    assert_eq!(dates(&pages[0]), [date("2020-01-01"), date("2020-01-02")]);
    assert_eq!(summary.rows, 2);
    assert_eq!(notes, ["EURUSD=X: 2 bars, 1 outside the dates left out"]);
    // one symbol: no symbol column
    assert!(pages[0].column("symbol").is_err());
}

#[test]
fn a_range_is_sent_as_yahoos_range() {
    let stub = serve_fixtures();
    let mut req = request(&["TSLA"]);
    req.base_url = stub.url.clone();
    req.range = Some("max".into());
    let (pages, summary, _) = fetch(&req).unwrap();
    assert_eq!((pages[0].height(), summary.rows), (3303, 3303));
    let seen = stub.requests();
    assert_eq!(seen[0].query("range").as_deref(), Some("max"));
    assert_eq!(seen[0].query("period1"), None);
}

#[test]
fn an_unknown_symbol_is_named_with_yahoos_message_from_a_404_or_a_200() {
    let stub = serve_fixtures();
    let mut req = request(&["NVDA", "NOPE"]);
    req.base_url = stub.url.clone();
    let err = fetch(&req).unwrap_err();
    assert!(matches!(err, FetchError::Service { .. }), "{err:?}");
    assert_eq!(err.to_string(), "Yahoo NOPE: Not Found: No data found, symbol may be delisted (HTTP 404)");
    // a 404 is not retried
    assert_eq!(stub.requests().len(), 2);

    let ok_envelope = Stub::start(|_| {
        Reply::json(200, r#"{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input"}}}"#)
    });
    req.base_url = ok_envelope.url.clone();
    req.symbols = vec!["X".into()];
    let err = fetch(&req).unwrap_err();
    assert_eq!(err.to_string(), "Yahoo X: Bad Request: Invalid input");
}

#[test]
fn an_empty_range_says_so_for_the_symbol() {
    let body = edited(&fixture(AAPL_ONE), |v| {
        let r = v["chart"]["result"][0].as_object_mut().unwrap();
        r.remove("timestamp");
        r["indicators"]["quote"][0] = serde_json::json!({});
        r["indicators"]["adjclose"][0] = serde_json::json!({});
    });
    let stub = Stub::start(move |_| Reply::json(200, body.clone()));
    let mut req = request(&["AAPL"]);
    req.base_url = stub.url.clone();
    req.start = Some("2020-01-04".into());
    req.end = Some("2020-01-06".into());
    let err = fetch(&req).unwrap_err();
    assert!(matches!(err, FetchError::Empty(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "Yahoo AAPL: no bars from 2020-01-04 to 2020-01-06 (excluded) at interval 1d (Yahoo sent no timestamps)"
    );
}

#[test]
fn a_malformed_answer_names_the_symbol_and_the_field() {
    let body = edited(&fixture(AAPL_ONE), |v| {
        v["chart"]["result"][0]["indicators"]["quote"][0]["close"] = serde_json::json!([1.0, 2.0]);
    });
    let err = parse("AAPL", &body, &request(&["AAPL"])).unwrap_err();
    assert_eq!(err.to_string(), "Yahoo AAPL: malformed answer: `indicators.quote.close` has 2 values for 1 timestamps");
    let err = parse("AAPL", b"<html>", &request(&["AAPL"])).unwrap_err();
    assert!(err.to_string().starts_with("Yahoo AAPL: malformed answer: not JSON"), "{err}");
}

#[test]
fn intraday_bars_are_instants_in_the_exchanges_zone() {
    let stub = serve_fixtures();
    let mut req = request(&["AAPL"]);
    req.base_url = stub.url.clone();
    req.interval = "1h".into();
    req.range = Some("5d".into());
    let (pages, _, _) = fetch(&req).unwrap();
    let f = &pages[0];
    let names: Vec<&str> = f.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["time", "open", "high", "low", "close", "volume", "dividends", "splits"]);
    match f.column("time").unwrap().dtype() {
        DataType::Datetime(TimeUnit::Milliseconds, Some(tz)) => assert_eq!(tz.as_str(), "America/New_York"),
        other => panic!("time is {other:?}"),
    }
    // 2020-08-31 09:30 New York = 13:30 UTC
    assert_eq!(f.column("time").unwrap().datetime().unwrap().physical().get(0), Some(1_598_880_600_000));
}

#[test]
fn bad_requests_are_refused_before_anything_is_sent() {
    let mut req = request(&["NVDA"]);
    req.interval = "2d".into();
    assert!(check(&req).unwrap_err().to_string().starts_with("Yahoo: unknown interval \"2d\""));
    let mut req = request(&["NVDA"]);
    req.range = Some("1y".into());
    req.start = Some("2020-01-01".into());
    assert_eq!(check(&req).unwrap_err().to_string(), "Yahoo: give either a range or start/end dates, not both");
    let mut req = request(&["NVDA"]);
    req.start = Some("2020-02-01".into());
    req.end = Some("2020-01-01".into());
    assert_eq!(
        check(&req).unwrap_err().to_string(),
        "Yahoo: end 2020-01-01 is not after start 2020-02-01 (the end date is excluded)"
    );
    let mut req = request(&["NVDA"]);
    req.start = Some("01/02/2020".into());
    assert_eq!(check(&req).unwrap_err().to_string(), "Yahoo: start \"01/02/2020\" is not a date like 2021-02-01");
    assert!(check(&request(&[])).is_err());
    assert_eq!(check(&request(&["A", "A"])).unwrap_err().to_string(), "Yahoo: symbol A is asked for twice");
    let mut req = request(&["NVDA"]);
    req.range = Some("7y".into());
    assert!(check(&req).unwrap_err().to_string().starts_with("Yahoo: unknown range \"7y\""));
}

#[test]
fn a_429_from_yahoo_is_waited_out_and_noted() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let stub = Stub::start(move |_| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(429, "Too Many Requests").with_header("Retry-After", "0")
        } else {
            Reply::json(200, fixture(AAPL_ONE))
        }
    });
    let mut req = request(&["AAPL"]);
    req.base_url = stub.url.clone();
    let (pages, summary, notes) = fetch(&req).unwrap();
    assert_eq!((pages.len(), summary.rows, stub.requests().len()), (1, 1, 2));
    assert_eq!(notes.len(), 2);
    assert!(
        notes[0].starts_with(&format!("HTTP 429 from {}/v8/finance/chart/AAPL?interval=1d&range=max", stub.url)),
        "{}",
        notes[0]
    );
    assert!(notes[0].ends_with(", retrying in 0.0 s (attempt 2 of 3)"), "{}", notes[0]);
    assert_eq!(notes[1], "AAPL: 1 bar");
    assert_eq!(summary.notes, notes);
}

#[test]
fn yahoo_gives_up_after_its_retries_naming_the_url() {
    let stub = Stub::start(|_| Reply::json(503, "Service Unavailable"));
    let mut req = request(&["AAPL"]);
    req.base_url = stub.url.clone();
    let err = fetch(&req).unwrap_err();
    assert_eq!(stub.requests().len(), 3);
    assert!(matches!(err, FetchError::Http { status: 503, .. }), "{err:?}");
    assert!(err.to_string().ends_with(": HTTP 503: Service Unavailable (gave up after 3 attempts)"), "{err}");
}

#[test]
fn an_event_between_bars_goes_to_the_bar_whose_period_holds_it() {
    // MSFT's answer thinned to every 5th bar, as a weekly answer: each dividend lands on the bar before it
    let body = edited(&fixture(MSFT), |v| {
        let r = &mut v["chart"]["result"][0];
        let keep = |a: &Value| Value::Array(a.as_array().unwrap().iter().step_by(5).cloned().collect());
        r["timestamp"] = keep(&r["timestamp"]);
        for key in ["open", "high", "low", "close", "volume"] {
            r["indicators"]["quote"][0][key] = keep(&r["indicators"]["quote"][0][key]);
        }
        r["indicators"]["adjclose"][0]["adjclose"] = keep(&r["indicators"]["adjclose"][0]["adjclose"]);
    });
    let mut req = request(&["MSFT"]);
    req.interval = "1wk".into();
    let (f, _) = parse("MSFT", &body, &req).unwrap();
    assert_eq!(f.height(), 51);
    let div = column_f64(&f, "dividends");
    let days = dates(&f);
    let paid: Vec<(i32, f64)> = (0..f.height()).filter(|&i| div[i] != 0.0).map(|i| (days[i], div[i])).collect();
    // bars 10, 75, 135 and 200 of the daily answer (computed with Python's zoneinfo); the second is the day itself
    assert_eq!(
        paid,
        [
            (date("2021-02-16"), 0.56),
            (date("2021-05-19"), 0.56),
            (date("2021-08-13"), 0.56),
            (date("2021-11-15"), 0.62)
        ]
    );
}

#[test]
fn an_intraday_panel_shows_every_symbol_in_its_first_symbols_zone() {
    let stub = serve_fixtures();
    let mut req = request(&["AAPL", "EURUSD=X"]);
    req.base_url = stub.url.clone();
    req.interval = "1h".into();
    req.range = Some("5d".into());
    let (pages, _, notes) = fetch(&req).unwrap();
    assert_eq!(pages[0].schema(), pages[1].schema());
    match pages[1].column("time").unwrap().dtype() {
        DataType::Datetime(TimeUnit::Milliseconds, Some(tz)) => assert_eq!(tz.as_str(), "America/New_York"),
        other => panic!("time is {other:?}"),
    }
    // the instants are kept: 2020-01-01 00:00 UTC
    assert_eq!(pages[1].column("time").unwrap().datetime().unwrap().physical().get(0), Some(1_577_836_800_000));
    assert_eq!(notes.len(), 3);
    assert_eq!(
        notes[1],
        "EURUSD=X: exchange zone Europe/London differs from the panel's America/New_York; its times are shown in America/New_York"
    );
}
