use super::*;

/// 2024-01-01 00:00 UTC, a Monday.
const MONDAY: i64 = 1_704_067_200_000;
const HOUR: i64 = 3_600_000;

#[test]
fn an_hourly_series_steps_by_the_hour() {
    let times: Vec<i64> = (0..100).map(|i| MONDAY + i * HOUR).collect();
    let step = SeriesStep::learn(&times).unwrap();
    assert_eq!(step, SeriesStep::Fixed { ms: HOUR });
    assert_eq!(step.advance(times[99], 24), times[99] + 24 * HOUR);
    assert_eq!(step.describe(), "1h");
}

#[test]
fn a_weekday_series_steps_over_weekends() {
    // four weeks of weekdays, with one holiday (a 2-day gap) in the middle
    let times: Vec<i64> = (0..28).filter(|d| d % 7 < 5 && *d != 10).map(|d| MONDAY + d * DAY_MS + 15 * HOUR).collect();
    let step = SeriesStep::learn(&times).unwrap();
    assert_eq!(step, SeriesStep::BusinessDays);
    let friday = MONDAY + 4 * DAY_MS + 15 * HOUR;
    assert_eq!(step.advance(friday, 1), MONDAY + 7 * DAY_MS + 15 * HOUR, "Friday -> Monday");
    assert_eq!(step.advance(friday, 2), MONDAY + 8 * DAY_MS + 15 * HOUR);
    assert_eq!(step.advance(MONDAY, 5), MONDAY + 7 * DAY_MS, "a week of weekdays");
    assert_eq!(step.advance(MONDAY, 0), MONDAY);
}

#[test]
fn a_daily_series_with_weekends_steps_by_the_day() {
    let times: Vec<i64> = (0..30).map(|d| MONDAY + d * DAY_MS).collect();
    assert_eq!(SeriesStep::learn(&times), Some(SeriesStep::Fixed { ms: DAY_MS }));
    assert_eq!(SeriesStep::Fixed { ms: DAY_MS }.describe(), "1d");
}

#[test]
fn too_few_or_unordered_times_have_no_step() {
    assert_eq!(SeriesStep::learn(&[]), None);
    assert_eq!(SeriesStep::learn(&[MONDAY]), None);
    assert_eq!(SeriesStep::learn(&[MONDAY, MONDAY]), None);
    assert_eq!(SeriesStep::Fixed { ms: 1500 }.describe(), "1500ms");
}

#[test]
fn weekdays_are_right_around_the_epoch() {
    assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
    assert_eq!(weekday(MONDAY), 0);
    assert_eq!(weekday(-DAY_MS), 2, "1969-12-31 was a Wednesday");
}
