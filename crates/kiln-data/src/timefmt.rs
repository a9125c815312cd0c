//! Parsing and printing timestamps in data files. A user format is strftime-like (`%Y %m %d %H %M %S %%` and
//! literal characters); without one, the column's first value picks one of the ISO shapes and every other value
//! must have that same shape, so a column that mixes shapes is reported instead of half-guessed.

use kiln_domain::{civil_from_millis, millis_from_civil};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// a UTC offset: `Z`, `+HH:MM`, `+HHMM` or `+HH` (strftime's `%z`)
    Offset,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Field(Field),
    Literal(char),
}

/// The ISO shapes recognised without a format; each accepts optional fractional seconds and a UTC offset (`Z`,
/// `+00:00`, `-0500`, `+01`), the time being converted to UTC (as yfinance writes `2006-05-15 23:00:00+00:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsoShape {
    Date,
    SpaceTime,
    TTime,
}

impl IsoShape {
    const ALL: [IsoShape; 3] = [IsoShape::Date, IsoShape::SpaceTime, IsoShape::TTime];

    fn label(self) -> &'static str {
        match self {
            IsoShape::Date => "YYYY-MM-DD",
            IsoShape::SpaceTime => "YYYY-MM-DD HH:MM:SS",
            IsoShape::TTime => "YYYY-MM-DDTHH:MM:SS",
        }
    }
}

/// Checks a `time_format` (strftime-like: `%Y %m %d %H %M %S %%`) before any file is read.
///
/// # Errors
/// Why the format cannot be used (an unsupported directive, no year/month/day).
pub fn check_time_format(text: &str) -> Result<(), String> {
    TimeParser::with_format(text).map(|_| ())
}

/// Turns the text of one time column into UTC milliseconds.
#[derive(Debug, Clone)]
pub(crate) enum TimeParser {
    /// a user format, with the format text for messages
    Format { pieces: Vec<Piece>, text: String },
    /// ISO shapes; `None` until the first value was seen
    Auto(Option<IsoShape>),
}

impl TimeParser {
    /// A parser for a user format.
    ///
    /// # Errors
    /// The reason the format is invalid (an unknown `%` directive, a trailing `%`, no date part).
    pub(crate) fn with_format(text: &str) -> Result<TimeParser, String> {
        let mut pieces = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                pieces.push(Piece::Literal(c));
                continue;
            }
            let field = match chars.next() {
                Some('Y') => Field::Year,
                Some('m') => Field::Month,
                Some('d') => Field::Day,
                Some('H') => Field::Hour,
                Some('M') => Field::Minute,
                Some('S') => Field::Second,
                Some('z') => Field::Offset,
                Some('%') => {
                    pieces.push(Piece::Literal('%'));
                    continue;
                }
                Some(other) => {
                    return Err(format!("unsupported directive '%{other}' (supported: %Y %m %d %H %M %S %z %%)"));
                }
                None => return Err("it ends with a lone '%'".to_string()),
            };
            if pieces.contains(&Piece::Field(field)) {
                return Err(format!("{} appears twice", directive(field)));
            }
            pieces.push(Piece::Field(field));
        }
        for needed in [Field::Year, Field::Month, Field::Day] {
            if !pieces.contains(&Piece::Field(needed)) {
                return Err(format!("it has no {}", directive(needed)));
            }
        }
        Ok(TimeParser::Format { pieces, text: text.to_string() })
    }

    /// What the values must look like, for error messages.
    pub(crate) fn expected(&self) -> String {
        match self {
            TimeParser::Format { text, .. } => text.clone(),
            TimeParser::Auto(Some(shape)) => shape.label().to_string(),
            TimeParser::Auto(None) => {
                IsoShape::ALL.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
                    + " (optionally with Z or a UTC offset like +01:00)"
            }
        }
    }

    /// Milliseconds since the epoch for `text`, or `None` when it does not match or is no real date.
    pub(crate) fn parse(&mut self, text: &str) -> Option<i64> {
        match self {
            TimeParser::Format { pieces, .. } => parse_with(pieces, text),
            TimeParser::Auto(Some(shape)) => parse_iso(*shape, text),
            TimeParser::Auto(slot @ None) => {
                for shape in IsoShape::ALL {
                    if let Some(ms) = parse_iso(shape, text) {
                        *slot = Some(shape);
                        return Some(ms);
                    }
                }
                None
            }
        }
    }
}

fn directive(field: Field) -> &'static str {
    match field {
        Field::Year => "%Y",
        Field::Month => "%m",
        Field::Day => "%d",
        Field::Hour => "%H",
        Field::Minute => "%M",
        Field::Second => "%S",
        Field::Offset => "%z",
    }
}

/// Reads between `min` and `max` ASCII digits at `pos`.
fn digits(bytes: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let mut value: u32 = 0;
    while *pos < bytes.len() && *pos - start < max && bytes[*pos].is_ascii_digit() {
        value = value * 10 + u32::from(bytes[*pos] - b'0');
        *pos += 1;
    }
    (*pos - start >= min).then_some(value)
}

fn parse_with(pieces: &[Piece], text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let (mut y, mut mo, mut d, mut h, mut mi, mut s) = (0_i64, 0, 0, 0, 0, 0);
    let mut offset_ms = 0_i64;
    for piece in pieces {
        match piece {
            Piece::Literal(c) => {
                let mut buf = [0_u8; 4];
                let lit = c.encode_utf8(&mut buf).as_bytes();
                if !bytes[pos..].starts_with(lit) {
                    return None;
                }
                pos += lit.len();
            }
            Piece::Field(Field::Year) => y = i64::from(digits(bytes, &mut pos, 4, 4)?),
            Piece::Field(Field::Month) => mo = digits(bytes, &mut pos, 1, 2)?,
            Piece::Field(Field::Day) => d = digits(bytes, &mut pos, 1, 2)?,
            Piece::Field(Field::Hour) => h = digits(bytes, &mut pos, 1, 2)?,
            Piece::Field(Field::Minute) => mi = digits(bytes, &mut pos, 1, 2)?,
            Piece::Field(Field::Second) => s = digits(bytes, &mut pos, 1, 2)?,
            Piece::Field(Field::Offset) => offset_ms = utc_offset(bytes, &mut pos)?,
        }
    }
    if pos != bytes.len() {
        return None;
    }
    Some(millis_from_civil(y, mo, d, h, mi, s)? - offset_ms)
}

/// A UTC offset at `pos` in milliseconds east of UTC: `Z`, or a sign and `HH`, `HHMM` or `HH:MM` (at most 23:59).
fn utc_offset(bytes: &[u8], pos: &mut usize) -> Option<i64> {
    let sign = match bytes.get(*pos)? {
        b'Z' => {
            *pos += 1;
            return Some(0);
        }
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    *pos += 1;
    let hours = i64::from(digits(bytes, pos, 2, 2)?);
    let minutes = if *pos == bytes.len() {
        0
    } else {
        // `+01:00` or `+0100`
        let _ = expect(bytes, pos, b':');
        i64::from(digits(bytes, pos, 2, 2)?)
    };
    (hours < 24 && minutes < 60).then_some(sign * (hours * 3_600_000 + minutes * 60_000))
}

fn expect(bytes: &[u8], pos: &mut usize, c: u8) -> Option<()> {
    if bytes.get(*pos) == Some(&c) {
        *pos += 1;
        Some(())
    } else {
        None
    }
}

fn parse_iso(shape: IsoShape, text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let y = i64::from(digits(bytes, &mut pos, 4, 4)?);
    expect(bytes, &mut pos, b'-')?;
    let mo = digits(bytes, &mut pos, 2, 2)?;
    expect(bytes, &mut pos, b'-')?;
    let d = digits(bytes, &mut pos, 2, 2)?;
    let (mut h, mut mi, mut s, mut frac_ms) = (0, 0, 0, 0_i64);
    if shape != IsoShape::Date {
        expect(bytes, &mut pos, if shape == IsoShape::TTime { b'T' } else { b' ' })?;
        h = digits(bytes, &mut pos, 2, 2)?;
        expect(bytes, &mut pos, b':')?;
        mi = digits(bytes, &mut pos, 2, 2)?;
        expect(bytes, &mut pos, b':')?;
        s = digits(bytes, &mut pos, 2, 2)?;
        if expect(bytes, &mut pos, b'.').is_some() {
            let start = pos;
            let value = digits(bytes, &mut pos, 1, 9)?;
            let n = pos - start;
            // keep milliseconds, drop finer digits
            frac_ms = if n >= 3 {
                i64::from(value / 10_u32.pow((n - 3) as u32))
            } else {
                i64::from(value) * 10_i64.pow((3 - n) as u32)
            };
        }
    }
    let offset_ms = if pos < bytes.len() && shape != IsoShape::Date { utc_offset(bytes, &mut pos)? } else { 0 };
    if pos < bytes.len() {
        expect(bytes, &mut pos, b'Z')?;
    }
    if pos != bytes.len() {
        return None;
    }
    Some(millis_from_civil(y, mo, d, h, mi, s)? + frac_ms - offset_ms)
}

/// How a whole timestamp column is printed: dates only when every value is midnight, milliseconds only when some
/// value has them. Ordered from coarse to fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum IsoStyle {
    Date,
    Seconds,
    Millis,
}

impl IsoStyle {
    pub(crate) fn for_column(values: &[i64]) -> IsoStyle {
        if values.iter().any(|v| v.rem_euclid(1000) != 0) {
            IsoStyle::Millis
        } else if values.iter().all(|v| v.rem_euclid(86_400_000) == 0) {
            IsoStyle::Date
        } else {
            IsoStyle::Seconds
        }
    }
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DDTHH:MM:SS.mmm`.
pub(crate) fn format_iso(ms: i64, style: IsoStyle) -> String {
    let c = civil_from_millis(ms);
    let date = format!("{:04}-{:02}-{:02}", c.year, c.month, c.day);
    match style {
        IsoStyle::Date => date,
        IsoStyle::Seconds => format!("{date}T{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
        IsoStyle::Millis => {
            format!("{date}T{:02}:{:02}:{:02}.{:03}", c.hour, c.minute, c.second, ms.rem_euclid(1000))
        }
    }
}
