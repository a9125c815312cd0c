//! YAML and float text byte-for-byte as MLflow's Python file store writes them: PyYAML's `safe_dump` with
//! `default_flow_style=False, allow_unicode=True, sort_keys=True` (scalar style choice, quoting, escapes and line
//! folding at 80 columns), and Python's `repr` of a float for metric values.
//!
//! Only the value shapes MLflow's `meta.yaml` files use are supported: null, booleans, integers, strings, empty
//! lists and (nested) mappings.

use std::sync::OnceLock;

use regex::Regex;

/// A YAML value as kiln writes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// `[]`
    EmptyList,
    /// a mapping; written with sorted keys, `{}` when empty
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    pub(crate) fn str(s: impl Into<String>) -> Yaml {
        Yaml::Str(s.into())
    }
}

/// PyYAML's line width (`best_width`).
const BEST_WIDTH: usize = 80;
/// PyYAML's indentation step (`best_indent`).
const BEST_INDENT: usize = 2;

/// The text `yaml.safe_dump(mapping, default_flow_style=False, allow_unicode=True, sort_keys=True)` returns.
pub(crate) fn dump(entries: &[(String, Yaml)]) -> String {
    let mut e = Emitter { out: String::new(), column: 0, whitespace: true, indention: true };
    if entries.is_empty() {
        return "{}\n".to_string();
    }
    e.block_mapping(entries, 0);
    e.line_break();
    e.out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

struct Emitter {
    out: String,
    column: usize,
    whitespace: bool,
    indention: bool,
}

fn sorted(entries: &[(String, Yaml)]) -> Vec<&(String, Yaml)> {
    let mut v: Vec<&(String, Yaml)> = entries.iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Emitter {
    fn write(&mut self, data: &str) {
        self.column += data.chars().count();
        self.out.push_str(data);
    }

    fn line_break(&mut self) {
        self.out.push('\n');
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.line_break();
        }
        if self.column < indent {
            self.whitespace = true;
            let pad = " ".repeat(indent - self.column);
            self.out.push_str(&pad);
            self.column = indent;
        }
    }

    fn indicator(&mut self, indicator: &str, need_whitespace: bool, whitespace: bool) {
        let data = if self.whitespace || !need_whitespace { indicator.to_string() } else { format!(" {indicator}") };
        self.whitespace = whitespace;
        self.indention = false;
        self.write(&data);
    }

    /// A block mapping whose keys start at column `indent`.
    fn block_mapping(&mut self, entries: &[(String, Yaml)], indent: usize) {
        for (key, value) in sorted(entries) {
            self.write_indent(indent);
            // scalars are written with the indentation one step deeper (PyYAML's increase_indent(flow=True))
            self.scalar(key, true, indent + BEST_INDENT);
            self.indicator(":", false, false);
            match value {
                Yaml::Map(inner) if !inner.is_empty() => self.block_mapping(inner, indent + BEST_INDENT),
                Yaml::Map(_) => {
                    self.indicator("{", true, true);
                    self.indicator("}", false, false);
                }
                Yaml::EmptyList => {
                    self.indicator("[", true, true);
                    self.indicator("]", false, false);
                }
                Yaml::Null => self.plain("null", indent + BEST_INDENT),
                Yaml::Bool(b) => self.plain(if *b { "true" } else { "false" }, indent + BEST_INDENT),
                Yaml::Int(i) => self.plain(&i.to_string(), indent + BEST_INDENT),
                Yaml::Str(s) => self.scalar(s, false, indent + BEST_INDENT),
            }
        }
    }

    fn scalar(&mut self, text: &str, simple_key: bool, indent: usize) {
        match choose_style(text, simple_key) {
            Style::Plain => self.plain(text, indent),
            Style::Single => self.single_quoted(text, indent),
            Style::Double => self.double_quoted(text, indent),
        }
    }

    fn plain(&mut self, text: &str, indent: usize) {
        if text.is_empty() {
            return;
        }
        if !self.whitespace {
            self.write(" ");
        }
        self.whitespace = false;
        self.indention = false;
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let (mut start, mut end) = (0, 0);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH {
                        self.write_indent(indent);
                        self.whitespace = false;
                        self.indention = false;
                    } else {
                        self.write(&collect(&chars[start..end]));
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    if chars[start] == '\n' {
                        self.line_break();
                    }
                    for &br in &chars[start..end] {
                        if br == '\n' {
                            self.line_break();
                        } else {
                            self.out.push(br);
                            self.line_break_after_char();
                        }
                    }
                    self.write_indent(indent);
                    self.whitespace = false;
                    self.indention = false;
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c)) {
                self.write(&collect(&chars[start..end]));
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
    }

    /// After a line-break character other than `\n` was written.
    fn line_break_after_char(&mut self) {
        self.whitespace = true;
        self.indention = true;
        self.column = 0;
    }

    fn single_quoted(&mut self, text: &str, indent: usize) {
        self.indicator("'", true, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        let (mut start, mut end) = (0, 0);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > BEST_WIDTH && start != 0 && end != chars.len() {
                        self.write_indent(indent);
                    } else {
                        self.write(&collect(&chars[start..end]));
                    }
                    start = end;
                }
            } else if breaks {
                if ch.is_none_or(|c| !is_break(c)) {
                    if chars[start] == '\n' {
                        self.line_break();
                    }
                    for &br in &chars[start..end] {
                        if br == '\n' {
                            self.line_break();
                        } else {
                            self.out.push(br);
                            self.line_break_after_char();
                        }
                    }
                    self.write_indent(indent);
                    start = end;
                }
            } else if ch.is_none_or(|c| c == ' ' || is_break(c) || c == '\'') && start < end {
                self.write(&collect(&chars[start..end]));
                start = end;
            }
            if ch == Some('\'') {
                self.write("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
            end += 1;
        }
        self.indicator("'", false, false);
    }

    fn double_quoted(&mut self, text: &str, indent: usize) {
        self.indicator("\"", true, false);
        let chars: Vec<char> = text.chars().collect();
        let (mut start, mut end) = (0, 0);
        while end <= chars.len() {
            let ch = chars.get(end).copied();
            let escape = match ch {
                None => true,
                Some(c) => {
                    "\"\\\u{85}\u{2028}\u{2029}\u{FEFF}".contains(c)
                        || !(('\u{20}'..='\u{7E}').contains(&c)
                            || ('\u{A0}'..='\u{D7FF}').contains(&c)
                            || ('\u{E000}'..='\u{FFFD}').contains(&c))
                }
            };
            if escape {
                if start < end {
                    self.write(&collect(&chars[start..end]));
                    start = end;
                }
                if let Some(c) = ch {
                    self.write(&escape_char(c));
                    start = end + 1;
                }
            }
            if end > 0
                && end + 1 < chars.len()
                && (ch == Some(' ') || start >= end)
                && self.column as isize + (end as isize - start as isize) > BEST_WIDTH as isize
            {
                let mut data = collect(&chars[start.min(end)..end]);
                data.push('\\');
                if start < end {
                    start = end;
                }
                self.write(&data);
                self.write_indent(indent);
                self.whitespace = false;
                self.indention = false;
                if chars.get(start) == Some(&' ') {
                    self.write("\\");
                }
            }
            end += 1;
        }
        self.indicator("\"", false, false);
    }
}

fn collect(chars: &[char]) -> String {
    chars.iter().collect()
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank_or_end(c: Option<char>) -> bool {
    matches!(c, None | Some('\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}'))
}

fn escape_char(c: char) -> String {
    let named = match c {
        '\0' => Some('0'),
        '\u{07}' => Some('a'),
        '\u{08}' => Some('b'),
        '\t' => Some('t'),
        '\n' => Some('n'),
        '\u{0B}' => Some('v'),
        '\u{0C}' => Some('f'),
        '\r' => Some('r'),
        '\u{1B}' => Some('e'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        '\u{85}' => Some('N'),
        '\u{A0}' => Some('_'),
        '\u{2028}' => Some('L'),
        '\u{2029}' => Some('P'),
        _ => None,
    };
    match named {
        Some(n) => format!("\\{n}"),
        None if (c as u32) <= 0xFF => format!("\\x{:02X}", c as u32),
        None if (c as u32) <= 0xFFFF => format!("\\u{:04X}", c as u32),
        None => format!("\\U{:08X}", c as u32),
    }
}

/// PyYAML's implicit resolvers: a plain scalar matching one of these would read back as something other than a
/// string, so such strings are quoted.
fn resolves_to_non_string(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let patterns = [
            // bool
            r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            // float
            r"[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
            // int
            r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            // merge
            r"<<",
            // null
            r"~|null|Null|NULL|",
            // timestamp
            r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?",
            // value
            r"=",
            // yaml
            r"!|&|\*",
        ];
        let joined = patterns.iter().map(|p| format!("(?:{p})")).collect::<Vec<_>>().join("|");
        Regex::new(&format!("^(?:{joined})$")).expect("the resolver patterns are valid")
    });
    re.is_match(s)
}

struct Analysis {
    empty: bool,
    multiline: bool,
    allow_block_plain: bool,
    allow_single_quoted: bool,
}

/// PyYAML's `Emitter.analyze_scalar`, for block context with `allow_unicode=True`.
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis { empty: true, multiline: false, allow_block_plain: true, allow_single_quoted: true };
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) = (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let mut followed_by_whitespace = n == 1 || is_blank_or_end(chars.get(1).copied());
    for (index, &ch) in chars.iter().enumerate() {
        if index == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                block_indicators = true;
            }
            if (ch == '?' || ch == ':' || ch == '-') && followed_by_whitespace {
                block_indicators = true;
            }
        } else {
            if ch == ':' && followed_by_whitespace {
                block_indicators = true;
            }
            if ch == '#' && preceded_by_whitespace {
                block_indicators = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || ('\u{20}'..='\u{7E}').contains(&ch)) {
            let unicode = (ch == '\u{85}'
                || ('\u{A0}'..='\u{D7FF}').contains(&ch)
                || ('\u{E000}'..='\u{FFFD}').contains(&ch)
                || ('\u{10000}'..'\u{10FFFF}').contains(&ch))
                && ch != '\u{FEFF}';
            if !unicode {
                special = true;
            }
        }
        if ch == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == n - 1 {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(ch) {
            if index == 0 {
                leading_break = true;
            }
            if index == n - 1 {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank_or_end(Some(ch));
        followed_by_whitespace = index + 2 >= n || is_blank_or_end(chars.get(index + 2).copied());
    }
    let mut allow_block_plain = true;
    let mut allow_single_quoted = true;
    if leading_space || leading_break || trailing_space || trailing_break {
        allow_block_plain = false;
    }
    if break_space {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if space_break || special {
        allow_block_plain = false;
        allow_single_quoted = false;
    }
    if line_breaks || block_indicators {
        allow_block_plain = false;
    }
    Analysis { empty: false, multiline: line_breaks, allow_block_plain, allow_single_quoted }
}

/// PyYAML's `Emitter.choose_scalar_style` for a string in block context.
fn choose_style(s: &str, simple_key: bool) -> Style {
    let a = analyze(s);
    if !resolves_to_non_string(s) && !(simple_key && (a.empty || a.multiline)) && a.allow_block_plain {
        return Style::Plain;
    }
    if a.allow_single_quoted && !(simple_key && a.multiline) {
        return Style::Single;
    }
    Style::Double
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional form for exponents -5 < e < 16 and
/// `d.ddde+XX` otherwise; `nan`, `inf`, `-inf`. This is what MLflow's file store writes in metric files and what
/// its reader (`float(text)`) accepts.
pub(crate) fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let m = if digits.len() == 1 { digits } else { format!("{}.{}", &digits[..1], &digits[1..]) };
        format!("{sign}{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    }
}

/// Converts a parsed `meta.yaml` value (as MLflow or kiln wrote it) back to a [`Yaml`] for rewriting.
///
/// # Errors
/// A description of the first value kiln cannot rewrite faithfully (floats, non-empty lists, tagged values).
pub(crate) fn from_serde(value: &serde_yaml::Value) -> Result<Yaml, String> {
    Ok(match value {
        serde_yaml::Value::Null => Yaml::Null,
        serde_yaml::Value::Bool(b) => Yaml::Bool(*b),
        serde_yaml::Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Int(i),
            None => return Err(format!("the number {n} is not an integer")),
        },
        serde_yaml::Value::String(s) => Yaml::Str(s.clone()),
        serde_yaml::Value::Sequence(items) if items.is_empty() => Yaml::EmptyList,
        serde_yaml::Value::Sequence(_) => return Err("a non-empty list".to_string()),
        serde_yaml::Value::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    serde_yaml::Value::String(s) => s.clone(),
                    other => return Err(format!("a non-string key {other:?}")),
                };
                entries.push((key, from_serde(v)?));
            }
            Yaml::Map(entries)
        }
        serde_yaml::Value::Tagged(t) => return Err(format!("a tagged value {}", t.tag)),
    })
}
