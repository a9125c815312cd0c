use kiln_domain::{Column, Frame, millis_from_civil};

use super::run::busday_count;
use super::*;

fn spec(yaml: &str) -> SchemaSpec {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::from_value(value).unwrap()
}

fn spec_err(yaml: &str) -> String {
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::from_value::<SchemaSpec>(value).unwrap_err().to_string()
}

fn text(values: &[&str]) -> Column {
    Column::Categorical(values.iter().map(|v| (!v.is_empty()).then(|| v.to_string())).collect())
}

/// ISO dates and `YYYY-MM-DD HH:MM` times, as a reader's parser would give them.
fn parse_time(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00"));
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 2 {
        return None;
    }
    millis_from_civil(
        d[0].parse().ok()?,
        d[1].parse().ok()?,
        d[2].parse().ok()?,
        t[0].parse().ok()?,
        t[1].parse().ok()?,
        0,
    )
}

fn parser() -> Box<dyn TimeParse> {
    Box::new(parse_time)
}

const REFERENCE: &str = "2024-01-10";

fn options() -> ValidateOptions {
    ValidateOptions { reference_ms: parse_time(REFERENCE).unwrap(), samples: 5 }
}

/// Validates `frame` in chunks of `chunk` rows (CSV lines = row + 2).
fn validate(spec: &SchemaSpec, frame: &Frame, chunk: usize) -> Report {
    let mut v = Validator::new(spec, frame.names(), options(), &parser).unwrap();
    let mut start = 0;
    loop {
        let end = (start + chunk).min(frame.n_rows());
        let lines: Vec<u64> = (start..end).map(|r| r as u64 + 2).collect();
        v.push(&frame.slice(start, end), Some(&lines)).unwrap();
        start = end;
        if start >= frame.n_rows() {
            break;
        }
    }
    v.finish()
}

fn failing(report: &Report, check: &str, column: &str) -> Vec<u64> {
    let c = report
        .checks
        .iter()
        .find(|c| c.check == check && c.column.as_deref() == Some(column))
        .unwrap_or_else(|| panic!("no check {check} on {column}"));
    c.samples.iter().map(|s| s.row).collect()
}

fn ohlc() -> Frame {
    Frame::new(vec![
        (
            "date".into(),
            text(&["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03", "2024-01-02", "2024-01-09", "x"]),
        ),
        ("symbol".into(), text(&["A", "A", "A", "B", "B", "B", "A"])),
        ("open".into(), text(&["10", "11", "12", "5", "6", "", "7"])),
        ("high".into(), text(&["11", "12", "11", "6", "7", "8", "8"])),
        ("low".into(), text(&["9", "10", "11.5", "4", "6.5", "7", "abc"])),
        ("close".into(), text(&["10.5", "11.5", "11", "5", "-1", "7.5", "7"])),
        ("volume".into(), text(&["100", "200", "200", "1.5", "50", "60", "70"])),
        ("id".into(), text(&["a1", "a2", "a3", "b1", "b1", "zz", "a7"])),
    ])
    .unwrap()
}

const OHLC_SCHEMA: &str = r#"
columns:
  open: {type: number, nullable: false}
  low: {type: number}
  close: {min: 0, max: 100}
  volume: {type: integer, unique: {value: true, severity: warning}}
  id: {regex: "[a-z][0-9]", unique: true}
  symbol: {allowed: [A, B], max_null_fraction: 0.0}
rows: {min: 10, severity: warning}
unique_key: [symbol, date]
time:
  column: date
  series_column: symbol
  max_gap: {business_days: 3}
  freshness: 2d
rules:
  - {name: low_high, expr: "low <= high"}
  - {expr: "low <= open <= high", severity: warning}
"#;

#[test]
fn every_check_finds_its_rows() {
    let r = validate(&spec(OHLC_SCHEMA), &ohlc(), 100);
    assert_eq!(r.rows, 7);
    assert_eq!(failing(&r, "not_null", "open"), [5]);
    assert_eq!(failing(&r, "type", "low"), [6]);
    assert_eq!(failing(&r, "min", "close"), [4]);
    assert_eq!(failing(&r, "type", "volume"), [3]);
    // 200 twice: both rows
    assert_eq!(failing(&r, "unique", "volume"), [1, 2]);
    assert_eq!(failing(&r, "regex", "id"), [5]);
    assert_eq!(failing(&r, "unique", "id"), [3, 4]);
    // an unparseable time fails the type check and is compared with nothing
    assert_eq!(failing(&r, "type", "date"), [6]);
    assert_eq!(failing(&r, "unique_key", "symbol,date"), Vec::<u64>::new());
    assert_eq!(failing(&r, "time_order", "date"), [4]);
    // B: 01-03 -> 01-02 is a step back (order); 01-02 -> 01-09 is 5 business days
    assert_eq!(failing(&r, "max_gap", "date"), [5]);
    assert_eq!(failing(&r, "rule", "low_high"), [2]);
    assert_eq!(failing(&r, "rule", "low <= open <= high"), [2, 4]);
    let rows = r.checks.iter().find(|c| c.check == "rows").unwrap();
    assert!(!rows.passed);
    assert_eq!(rows.severity, Severity::Warning);
    // the latest time, 01-09, is 1 day before the reference
    assert!(r.checks.iter().find(|c| c.check == "freshness").unwrap().passed);
    let unique_volume = r.checks.iter().find(|c| c.check == "unique" && c.column.as_deref() == Some("volume")).unwrap();
    assert_eq!(unique_volume.severity, Severity::Warning);
    assert_eq!(
        r.checks.iter().find(|c| c.check == "rule" && c.column.as_deref() == Some("low_high")).unwrap().samples[0].line,
        Some(4)
    );
    assert!(!r.passed());
}

#[test]
fn the_result_does_not_depend_on_the_chunk_size() {
    let s = spec(OHLC_SCHEMA);
    let whole = validate(&s, &ohlc(), 1000);
    for chunk in 1..=7 {
        assert_eq!(validate(&s, &ohlc(), chunk), whole, "chunks of {chunk}");
    }
}

#[test]
fn samples_are_the_first_rows_even_when_found_late() {
    // the first occurrence of a repeated value is reported when the repeat appears
    let values: Vec<String> = (0..20).map(|i| if i == 15 { "0".into() } else { i.to_string() }).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let frame = Frame::new(vec![("x".into(), text(&refs))]).unwrap();
    let s = spec("columns: {x: {type: integer, unique: true}}");
    for chunk in [1, 4, 20] {
        let r = validate(&s, &frame, chunk);
        assert_eq!(failing(&r, "unique", "x"), [0, 15]);
        assert_eq!(r.checks[1].failing_rows, 2);
    }
}

#[test]
fn freshness_and_null_fraction_are_table_checks() {
    let frame = Frame::new(vec![
        ("t".into(), text(&["2024-01-01", "2024-01-02", "2024-01-03"])),
        ("x".into(), text(&["1", "", ""])),
    ])
    .unwrap();
    let r = validate(&spec("time: {column: t, freshness: 5d}\ncolumns: {x: {max_null_fraction: 0.5}}"), &frame, 2);
    let fresh = r.checks.iter().find(|c| c.check == "freshness").unwrap();
    assert!(!fresh.passed, "{fresh:?}");
    let nulls = r.checks.iter().find(|c| c.check == "max_null_fraction").unwrap();
    assert!(!nulls.passed);
    assert_eq!(nulls.failing_rows, 2);
    let r = validate(
        &spec("time: {column: t, freshness: {business_days: 5}}\ncolumns: {x: {max_null_fraction: 0.7}}"),
        &frame,
        2,
    );
    assert!(r.passed(), "{r:?}");
    let nulls = r.checks.iter().find(|c| c.check == "max_null_fraction").unwrap();
    assert_eq!((nulls.failing_rows, nulls.samples.len()), (0, 0));
    assert!(nulls.detail.ends_with("2 of 3 (0.6667)"), "{}", nulls.detail);
}

#[test]
fn decreasing_order_and_fixed_gaps() {
    let frame = Frame::new(vec![(
        "t".into(),
        text(&["2024-01-03 10:00", "2024-01-03 08:00", "2024-01-03 09:00", "2024-01-02 09:00"]),
    )])
    .unwrap();
    let r = validate(&spec("time: {column: t, order: decreasing, max_gap: 2h}"), &frame, 3);
    assert_eq!(failing(&r, "time_order", "t"), [2]);
    assert_eq!(failing(&r, "max_gap", "t"), [3]);
}

#[test]
fn numeric_columns_of_a_parquet_file_are_checked_as_numbers() {
    let frame = Frame::new(vec![
        ("x".into(), Column::Numeric(vec![1.0, f64::NAN, 2.5, 2.0])),
        ("s".into(), Column::Numeric(vec![1.0, 2.0, 1.0, 3.0])),
    ])
    .unwrap();
    let s = spec("columns: {x: {type: integer, nullable: false}, s: {allowed: [1, 2]}}");
    let mut v = Validator::new(&s, frame.names(), options(), &parser).unwrap();
    v.push(&frame, None).unwrap();
    let r = v.finish();
    assert_eq!(failing(&r, "type", "x"), [2]);
    assert_eq!(failing(&r, "not_null", "x"), [1]);
    let allowed = r.checks.iter().find(|c| c.check == "allowed").unwrap();
    assert_eq!(allowed.samples[0].location(), "row 4");
    assert_eq!(allowed.samples[0].values, vec![("s".to_string(), "3".to_string())]);
}

#[test]
fn rules_use_three_valued_logic() {
    let frame =
        Frame::new(vec![("a".into(), text(&["1", "", "3", "", "0"])), ("b".into(), text(&["2", "2", "1", "", "0"]))])
            .unwrap();
    let check = |rule: &str| {
        let s = spec(&format!("rules: [{{expr: \"{rule}\"}}]"));
        let r = validate(&s, &frame, 2);
        r.checks[0].samples.iter().map(|s| s.row).collect::<Vec<_>>()
    };
    assert_eq!(check("a < b"), [2, 4]);
    assert_eq!(check("is_null(a) or a < b"), [2, 4]);
    assert_eq!(check("not is_null(a)"), [1, 3]);
    assert_eq!(check("a < b or b > 1"), [2, 4]);
    assert_eq!(check("not (a >= b)"), [2, 4]);
    assert_eq!(check("(a + b) * 2 / 2 - b == a"), Vec::<u64>::new());
    // 0 / 0 is NaN: unknown, not a failure
    assert_eq!(check("a / b > -1"), Vec::<u64>::new());
    assert_eq!(check("-a > -2"), [2]);
    assert_eq!(check("a != 0 and b >= 1e0"), [4]);
}

#[test]
fn the_parser_reads_precedence_and_chains() {
    let e = Expr::parse("a + b * 2 > c or not d < 1 and is_null(`e f`)").unwrap();
    assert_eq!(e.columns(), ["a", "b", "c", "d", "e f"]);
    let Expr::Or(left, right) = e else { panic!("{e:?}") };
    assert!(matches!(*left, Expr::Compare(..)));
    assert!(matches!(*right, Expr::And(..)));
    let Expr::Compare(_, chain) = Expr::parse("low <= open <= high").unwrap() else { panic!() };
    assert_eq!(chain.len(), 2);
}

#[test]
fn parse_errors_say_where_and_what() {
    let cases = [
        ("", 1, "the rule is empty"),
        ("low <=", 7, "nothing on its right"),
        ("low = high", 5, "compare with '=='"),
        ("(low < high", 12, "expected ')' to close the '(' at character 1"),
        ("low < high)", 11, "unexpected ')'"),
        ("close", 1, "is a number, not a condition"),
        ("close + 1", 1, "is a number, not a condition"),
        ("a < b + (c > d)", 9, "takes a number, not a condition"),
        ("a and b > 1", 1, "'and' takes a condition"),
        ("mean(a) > 1", 1, "unknown function 'mean'"),
        ("a > 1 && b > 2", 7, "write 'and'"),
        ("a > $", 5, "unexpected character '$'"),
        ("a > `b", 5, "unclosed '`'"),
        ("is_null(1)", 9, "is_null takes a column name"),
        ("a > 1 or", 9, "the rule ends"),
    ];
    for (rule, position, message) in cases {
        let e = Expr::parse(rule).unwrap_err();
        assert_eq!(e.position, position, "{rule}: {e}");
        assert!(e.message.contains(message), "{rule}: {e}");
    }
}

#[test]
fn schema_errors_name_the_key() {
    assert!(spec_err("columns: {x: {tpye: number}}").contains("unknown field `tpye`"));
    assert!(spec_err("colums: {}").contains("unknown field `colums`"));
    assert!(spec_err("time: {column: t, max_gap: 3x}").contains("'3x' is not a span of time"));
    assert!(spec_err("columns: {x: {min: {value: 0, severity: fatal}}}").contains("severity"));
    let check = |yaml: &str| spec(yaml).check().unwrap_err();
    assert_eq!(check("rules: [{expr: 'a <'}]").path, "rules[0].expr");
    assert!(check("rules: [{name: r1, expr: 'a <'}]").reason.starts_with("rule 'r1': at character"));
    assert_eq!(check("columns: {x: {regex: '('}}").path, "columns.x.regex");
    assert_eq!(check("columns: {x: {type: string, min: 0}}").path, "columns.x.min");
    assert_eq!(check("columns: {x: {min: 2, max: 1}}").path, "columns.x.min");
    assert_eq!(check("columns: {x: {max_null_fraction: 2}}").path, "columns.x.max_null_fraction");
    assert_eq!(check("columns: {s: {type: string}}\nrules: [{expr: 's > 1'}]").path, "rules[0].expr");
    assert_eq!(check("time: {column: t}\ncolumns: {t: {type: number}}").path, "columns.t.type");
    assert!(check("time: {column: t}\nrules: [{expr: 't > 0'}]").reason.contains("is the time column"));
    let s = spec("columns: {x: {}}\nrules: [{expr: 'y > 0'}]");
    let e = Validator::new(&s, &["x".to_string()], options(), &parser).unwrap_err();
    assert_eq!(e.path, "rules[0].expr");
    assert!(e.reason.contains("column 'y' is not in the file (its columns: x)"), "{e}");
}

#[test]
fn long_forms_and_round_trips() {
    let s = spec(
        "rows: {min: 3, severity: warning}\ncolumns: {x: {min: {value: 0, severity: warning}, severity: error}}\ntime: {column: t, max_gap: {business_days: 2}}",
    );
    assert_eq!(s.rows.as_ref().unwrap().severity, Some(Severity::Warning));
    assert_eq!(s.rows.as_ref().unwrap().value.min, Some(3));
    let x = s.column("x").unwrap();
    assert_eq!(x.min.as_ref().unwrap().severity, Some(Severity::Warning));
    let again: SchemaSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(again, s);
    assert_eq!(Span::parse_duration("90m"), Ok(Span::Millis(5_400_000)));
    assert_eq!(Span::Millis(5_400_000).text(), "90m");
    assert_eq!(Span::Millis(86_400_000).text(), "1d");
}

#[test]
fn business_days_count_as_numpy() {
    // 2024-01-05 is a Friday, 01-08 a Monday
    let day = |d: &str| parse_time(d).unwrap() / 86_400_000;
    assert_eq!(busday_count(day("2024-01-05"), day("2024-01-08")), 1);
    assert_eq!(busday_count(day("2024-01-01"), day("2024-01-15")), 10);
    assert_eq!(busday_count(day("2024-01-06"), day("2024-01-07")), 0);
    assert_eq!(busday_count(day("2024-01-08"), day("2024-01-05")), -1);
    // every begin within four weeks of the epoch and before it, every span up to three weeks, day by day
    for begin in -30..30 {
        for end in begin - 21..begin + 22 {
            let (lo, hi) = (begin.min(end), begin.max(end));
            let weekdays = (lo..hi).filter(|d: &i64| (d + 3).rem_euclid(7) < 5).count() as i64;
            assert_eq!(busday_count(begin, end), if end < begin { -weekdays } else { weekdays }, "{begin} {end}");
        }
    }
}

#[test]
fn a_drafted_schema_passes_its_own_file() {
    let frame = Frame::new(vec![
        ("date".into(), text(&["2024-01-05", "2024-01-04", "2024-01-02", "2023-12-29"])),
        ("code".into(), text(&["x1", "x2", "x3", "x4"])),
        ("kind".into(), text(&["a", "b", "a", "b"])),
        ("n".into(), text(&["1", "2", "", "3"])),
        ("rate".into(), text(&["1.5", "2.25", "0.125", "3"])),
    ])
    .unwrap();
    let mut draft = SchemaDraft::new(frame.names(), InferOptions::default(), Box::new(parser));
    draft.push(&frame.slice(0, 3));
    draft.push(&frame.slice(3, 4));
    let s = draft.finish();
    let time = s.time.as_ref().unwrap();
    assert_eq!(time.column, "date");
    assert_eq!(time.order.as_ref().unwrap().value, Order::Decreasing);
    assert_eq!(time.max_gap.as_ref().unwrap().value, Span::BusinessDays(2));
    assert_eq!(s.column("code").unwrap().unique.as_ref().map(|u| u.value), Some(true));
    assert_eq!(s.column("kind").unwrap().allowed.as_ref().unwrap().value.len(), 2);
    assert_eq!(s.column("n").unwrap().value_type(), ValueType::Integer);
    assert_eq!(s.column("n").unwrap().max_null_fraction.as_ref().unwrap().value, 0.25);
    assert_eq!(s.column("rate").unwrap().min.as_ref().unwrap().value, 0.125);
    let r = validate(&s, &frame, 2);
    assert!(r.passed() && r.warnings() == 0, "{r:#?}");
}

#[test]
fn key_hashes_keep_the_columns_apart() {
    let frame =
        Frame::new(vec![("a".into(), text(&["ab", "a", "ab"])), ("b".into(), text(&["c", "bc", "c"]))]).unwrap();
    let r = validate(&spec("unique_key: [a, b]"), &frame, 1);
    assert_eq!(failing(&r, "unique_key", "a,b"), [0, 2]);
    assert_eq!(
        r.checks[0].samples[0].values,
        vec![("a".to_string(), "ab".to_string()), ("b".to_string(), "c".to_string())]
    );
}

#[test]
fn numbers_parsed_by_the_reader_give_the_same_report() {
    let s = spec(OHLC_SCHEMA);
    let text_frame = ohlc();
    let expected = validate(&s, &text_frame, 3);
    let mut v = Validator::new(&s, text_frame.names(), options(), &parser).unwrap();
    let numeric = v.numeric_columns();
    assert_eq!(numeric, ["open", "low", "close", "volume", "high"]);
    for start in (0..7).step_by(3) {
        let end = (start + 3).min(7);
        let chunk = text_frame.slice(start, end);
        let mut columns = Vec::new();
        let mut bad: Vec<(String, usize, String)> = Vec::new();
        for (name, column) in chunk.columns() {
            let Column::Categorical(cells) = column else { panic!() };
            if !numeric.iter().any(|n| n == name) {
                columns.push((name.to_string(), column.clone()));
                continue;
            }
            let values = cells
                .iter()
                .enumerate()
                .map(|(row, cell)| match cell {
                    None => f64::NAN,
                    Some(t) => t.parse().unwrap_or_else(|_| {
                        bad.push((name.to_string(), row, t.clone()));
                        f64::NAN
                    }),
                })
                .collect();
            columns.push((name.to_string(), Column::Numeric(values)));
        }
        let cells: Vec<BadCell<'_>> = bad.iter().map(|(c, row, t)| BadCell { column: c, row: *row, text: t }).collect();
        let lines: Vec<u64> = (start..end).map(|r| r as u64 + 2).collect();
        v.push_read(&Frame::new(columns).unwrap(), Some(&lines), &cells).unwrap();
    }
    assert_eq!(v.finish(), expected);
}

/// The (series, time) key of a panel, checked per series, finds the rows that hashing every key finds: rows in and
/// out of time order, repeats of both, a series key missing, a time missing or unreadable, in chunks of any size.
#[test]
fn a_panel_key_checked_per_series_equals_the_hashed_key() {
    let mut state = 7u64;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let (mut dates, mut symbols) = (Vec::new(), Vec::new());
    let mut day = [1u64; 3];
    for _ in 0..400 {
        let s = next(3) as usize;
        // mostly forward, sometimes back or the same day again
        match next(10) {
            0 => day[s] = day[s].saturating_sub(next(4)).max(1),
            1 => {}
            _ => day[s] += 1 + next(2),
        }
        let date = match next(50) {
            0 => String::new(),
            1 => "not a date".to_string(),
            _ => format!("2024-{:02}-{:02}", 1 + (day[s] - 1) / 28, 1 + (day[s] - 1) % 28),
        };
        dates.push(date);
        symbols.push(if next(60) == 0 { String::new() } else { ["A", "B", "C"][s].to_string() });
    }
    let refs = |v: &[String]| text(&v.iter().map(String::as_str).collect::<Vec<_>>());
    let frame = Frame::new(vec![("date".into(), refs(&dates)), ("symbol".into(), refs(&symbols))]).unwrap();
    let panel = spec("unique_key: [symbol, date]\ntime: {column: date, series_column: symbol, order: any}");
    let hashed = spec("unique_key: [symbol, date]\ncolumns: {date: {type: timestamp}}");
    let key = |r: &Report| r.checks.iter().find(|c| c.check == "unique_key").unwrap().clone();
    let expected = key(&validate(&hashed, &frame, 1000));
    assert!(expected.failing_rows > 20, "the data repeats keys: {}", expected.failing_rows);
    for chunk in [1, 7, 64, 1000] {
        assert_eq!(key(&validate(&panel, &frame, chunk)), expected, "chunks of {chunk}");
    }
}
