use crate::*;

#[test]
fn civil_round_trip_and_weekday() {
    let ms = millis_from_civil(2026, 10, 30, 13, 5, 7).unwrap();
    let c = civil_from_millis(ms);
    assert_eq!((c.year, c.month, c.day, c.hour, c.minute, c.second), (2026, 10, 30, 13, 5, 7));
    assert_eq!(c.weekday, 4, "2026-10-30 is a Friday");
    assert_eq!(c.day_of_year, 303);
    assert_eq!(civil_from_millis(millis_from_civil(2024, 12, 31, 0, 0, 0).unwrap()).day_of_year, 366);
    assert_eq!(civil_from_millis(-1).year, 1969);
    assert!(millis_from_civil(2023, 2, 29, 0, 0, 0).is_none());
}

#[test]
fn model_refs_parse() {
    let r = ModelRef::parse("models:/eurusd@production").unwrap();
    assert_eq!(
        r,
        ModelRef::Registered { name: "eurusd".into(), selector: VersionSelector::Alias("production".into()) }
    );
    assert!(matches!(
        ModelRef::parse("models:/eurusd/Production").unwrap(),
        ModelRef::Registered { selector: VersionSelector::Stage(Stage::Production), .. }
    ));
    assert!(matches!(
        ModelRef::parse("models:/eurusd/latest").unwrap(),
        ModelRef::Registered { selector: VersionSelector::Latest, .. }
    ));
    assert!(matches!(
        ModelRef::parse("models:/eurusd/3").unwrap(),
        ModelRef::Registered { selector: VersionSelector::Number(3), .. }
    ));
    assert_eq!(
        ModelRef::parse("runs:/abc123/model").unwrap(),
        ModelRef::Run { run_id: RunId("abc123".into()), path: "model".into() }
    );
    assert_eq!(ModelRef::parse("out/bundle").unwrap(), ModelRef::Folder("out/bundle".into()));
    for bad in ["models:/eurusd", "models:/@x", "models:/m/Prod", "runs:/../x", "s3://bucket/x", "runs:/a/../b"] {
        let e = ModelRef::parse(bad).unwrap_err();
        assert_eq!(e.code(), Code::ModelRefInvalid, "{bad}");
        assert!(e.to_string().contains(bad), "{e}");
    }
}

#[test]
fn frame_checks_shape_and_sorts_by_time() {
    let f = Frame::new(vec![
        ("t".into(), Column::Timestamp(vec![3, 1, 2])),
        ("x".into(), Column::Numeric(vec![30.0, 10.0, 20.0])),
    ])
    .unwrap();
    let s = f.sorted_by_time("t").unwrap();
    assert_eq!(s.numeric("x").unwrap(), &[10.0, 20.0, 30.0]);
    let bad = Frame::new(vec![("a".into(), Column::Numeric(vec![1.0])), ("b".into(), Column::Numeric(vec![]))]);
    assert_eq!(bad.unwrap_err().code(), Code::DataShape);
    let dup = Frame::new(vec![("t".into(), Column::Timestamp(vec![1, 1]))]).unwrap();
    assert!(dup.sorted_by_time("t").unwrap_err().to_string().contains("repeats"));
    assert_eq!(f.numeric("t").unwrap_err().code(), Code::ColumnType);
    assert_eq!(f.numeric("nope").unwrap_err().code(), Code::MissingColumn);
}

#[test]
fn error_codes_are_unique_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for c in Code::ALL {
        assert!(seen.insert(c.as_str()), "duplicate {c}");
        assert!(c.as_str().chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
    }
}

#[test]
fn an_error_chain_says_each_cause_once() {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Leaf(&'static str);
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Wrap {
        message: &'static str,
        #[source]
        source: Box<dyn std::error::Error + 'static>,
    }
    let leaf = || Box::new(Leaf("disk full"));
    let quoting = Wrap { message: "cannot write x: disk full", source: leaf() };
    assert_eq!(chain_text(&quoting), "cannot write x: disk full");
    let plain = Wrap { message: "cannot write x", source: leaf() };
    assert_eq!(chain_text(&plain), "cannot write x: disk full");
    let outer = Wrap { message: "saving the run", source: Box::new(plain) };
    assert_eq!(chain_text(&outer), "saving the run: cannot write x: disk full");
    assert_eq!(chain_text(&Leaf("alone")), "alone");
}

#[test]
fn every_code_has_a_status_and_an_exit_status_from_its_kind() {
    for &c in Code::ALL {
        assert!((400..600).contains(&c.http_status()), "{c}");
        let expected = match c.kind() {
            ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
            ErrorKind::GateFailed => 3,
            ErrorKind::Integrity | ErrorKind::External | ErrorKind::Internal => 1,
        };
        assert_eq!(c.exit_code(), expected, "{c}");
    }
    assert!(Code::HTTP_API.iter().all(|c| Code::ALL.contains(c)));
    assert_eq!(Code::ALL.len(), Code::HTTP_API.len() + 20, "the libraries' 20 codes and the API's");
    assert_eq!((Code::GateFailed.exit_code(), Code::NotFound.exit_code(), Code::StoreIo.exit_code()), (3, 2, 1));
    assert_eq!(PortError::not_found("x").code(), Code::NotFound);
    let coded: &dyn HasCode = &DomainError::MissingColumn("x".into());
    assert_eq!(coded.code(), Code::MissingColumn);
}

#[test]
fn utc_datetime_text_is_pythons_datetime_text_with_microseconds() {
    // datetime.datetime.fromtimestamp(1700000000.123456, datetime.UTC) prints 2023-11-14 22:13:20.123456+00:00
    assert_eq!(crate::utc_datetime_text(1_700_000_000_123_456), "2023-11-14 22:13:20.123456");
    assert_eq!(crate::utc_datetime_text(0), "1970-01-01 00:00:00.000000");
    assert_eq!(crate::utc_datetime_text(-1), "1969-12-31 23:59:59.999999");
}
