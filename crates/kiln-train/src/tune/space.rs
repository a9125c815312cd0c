//! Search-space distributions with Optuna's semantics: validation (and Optuna's adjustment of a `high` that a
//! `step` does not reach), the internal representation Optuna stores in `trial_params.param_value` (the float, an
//! int as a float, a categorical's index into its choices), and the exact `distribution_json` text Optuna writes
//! and reads. The YAML form (`{float: {low, high, log}}`, `{int: {..}}`, `{categorical: [..]}`) deserializes
//! straight into a checked [`Distribution`]. No sampling here.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::TuneError;

/// One parameter's value as the objective sees it (Optuna's "external representation"); a categorical choice is
/// one of these, as Optuna's `CategoricalChoiceType` (`None`, `bool`, `int`, `float`, `str`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    /// The number Python's `float(v)` gives, for the kinds that have one.
    fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Bool(b) => Some(f64::from(u8::from(*b))),
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => Some(*f),
            ParamValue::Null | ParamValue::Str(_) => None,
        }
    }

    /// Python's `==` between choices (`True == 1 == 1.0`), with NaN equal to NaN as Optuna's
    /// `_categorical_choice_equal`.
    pub(crate) fn same_choice(&self, other: &ParamValue) -> bool {
        match (self, other) {
            (ParamValue::Null, ParamValue::Null) => true,
            (ParamValue::Str(a), ParamValue::Str(b)) => a == b,
            _ => match (self.as_f64(), other.as_f64()) {
                (Some(a), Some(b)) => a == b || (a.is_nan() && b.is_nan()),
                _ => false,
            },
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        json_value(&mut s, self);
        f.write_str(&s)
    }
}

/// One parameter's distribution, as Optuna's `FloatDistribution`, `IntDistribution` and
/// `CategoricalDistribution`. Build it with [`Distribution::float`], [`Distribution::int`],
/// [`Distribution::categorical`], by deserializing, or with [`Distribution::from_distribution_json`]: all check it
/// (the samplers rely on it being valid).
#[derive(Clone, Debug, PartialEq)]
pub enum Distribution {
    /// `low <= x <= high`; `log` samples in log space (then `low > 0` and no step); `step` discretises from `low`.
    Float { low: f64, high: f64, log: bool, step: Option<f64> },
    /// `low <= x <= high` in steps of `step` from `low`; `log` needs `low >= 1` and `step == 1`.
    Int { low: i64, high: i64, log: bool, step: i64 },
    /// one of `choices`, stored as its index.
    Categorical { choices: Vec<ParamValue> },
}

fn invalid(msg: String) -> TuneError {
    TuneError::Space(msg)
}

impl Distribution {
    /// A float distribution with Optuna's checks; a `high` that `low + k * step` does not reach is lowered to the
    /// last value it does reach (Optuna does the same and warns).
    ///
    /// # Errors
    /// A NaN bound, `low > high`, `log` with `low <= 0` or with a step, a step that is not positive.
    pub fn float(low: f64, high: f64, log: bool, step: Option<f64>) -> Result<Self, TuneError> {
        if low.is_nan() || high.is_nan() || step.is_some_and(f64::is_nan) {
            return Err(invalid(format!("a float distribution cannot have NaN bounds or step ({low}, {high})")));
        }
        if log && step.is_some() {
            return Err(invalid("a float distribution cannot have both `log: true` and a `step`".into()));
        }
        if low > high {
            return Err(invalid(format!("`low <= high` must hold, but got low = {low}, high = {high}")));
        }
        if log && low <= 0.0 {
            return Err(invalid(format!("`low > 0` must hold with `log: true`, but got low = {low}")));
        }
        let high = match step {
            Some(s) if s <= 0.0 => return Err(invalid(format!("`step > 0` must hold, but got step = {s}"))),
            Some(s) => adjust_float_high(low, high, s),
            None => high,
        };
        Ok(Distribution::Float { low, high, log, step })
    }

    /// An int distribution with Optuna's checks; `high` is lowered to `low + k * step` as for floats.
    ///
    /// # Errors
    /// `low > high`, `log` with `low < 1` or a step other than 1, a step that is not positive.
    pub fn int(low: i64, high: i64, log: bool, step: i64) -> Result<Self, TuneError> {
        if log && step != 1 {
            return Err(invalid(format!("an int distribution with `log: true` must have step 1, but got {step}")));
        }
        if low > high {
            return Err(invalid(format!("`low <= high` must hold, but got low = {low}, high = {high}")));
        }
        if log && low < 1 {
            return Err(invalid(format!("`low >= 1` must hold with `log: true`, but got low = {low}")));
        }
        if step <= 0 {
            return Err(invalid(format!("`step > 0` must hold, but got step = {step}")));
        }
        let r = high - low;
        let high = if r % step != 0 { r / step * step + low } else { high };
        Ok(Distribution::Int { low, high, log, step })
    }

    /// A categorical distribution.
    ///
    /// # Errors
    /// No choices.
    pub fn categorical(choices: Vec<ParamValue>) -> Result<Self, TuneError> {
        if choices.is_empty() {
            return Err(invalid("a categorical distribution needs one or more choices".into()));
        }
        Ok(Distribution::Categorical { choices })
    }

    /// Whether the distribution holds one value only (Optuna's `single()`); samplers do not search such a
    /// parameter.
    pub fn single(&self) -> bool {
        match self {
            Distribution::Float { low, high, step: None, .. } => low == high,
            Distribution::Float { low, high, step: Some(step), .. } => {
                let exact = || {
                    let (r, s, _) = Dec::of(*high)?.sub(Dec::of(*low)?)?.align(Dec::of(*step)?)?;
                    Some(r < s)
                };
                low == high || exact().unwrap_or(high - low < *step)
            }
            Distribution::Int { low, high, log, step } => low == high || (!log && high - low < *step),
            Distribution::Categorical { choices } => choices.len() == 1,
        }
    }

    /// The internal value of an external one (Optuna's `to_internal_repr`).
    ///
    /// # Errors
    /// A value that is not a number (or NaN) for a numeric distribution, not positive under `log`, or not one of
    /// the choices.
    pub fn to_internal(&self, v: &ParamValue) -> Result<f64, TuneError> {
        match self {
            Distribution::Float { log, .. } | Distribution::Int { log, .. } => {
                let x = match v {
                    ParamValue::Str(s) => s.trim().parse::<f64>().ok(),
                    _ => v.as_f64(),
                }
                .ok_or_else(|| invalid(format!("'{v}' is not a valid type: a number is expected")))?;
                if x.is_nan() {
                    return Err(invalid(format!("`{v}` is an invalid value")));
                }
                if *log && x <= 0.0 {
                    return Err(invalid(format!("`{v}` is an invalid value for the case log=True")));
                }
                Ok(x)
            }
            Distribution::Categorical { choices } => choices
                .iter()
                .position(|c| c.same_choice(v))
                .map(|i| i as f64)
                .ok_or_else(|| invalid(format!("'{v}' is not one of the choices"))),
        }
    }

    /// The external value of an internal one (Optuna's `to_external_repr`: an int truncates, a categorical
    /// indexes its choices).
    ///
    /// # Errors
    /// A categorical index outside the choices.
    pub fn to_external(&self, x: f64) -> Result<ParamValue, TuneError> {
        match self {
            Distribution::Float { .. } => Ok(ParamValue::Float(x)),
            Distribution::Int { .. } => Ok(ParamValue::Int(x as i64)),
            Distribution::Categorical { choices } => {
                let i = x as i64;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| choices.get(i))
                    .cloned()
                    .ok_or_else(|| invalid(format!("categorical index {x} is outside the {} choices", choices.len())))
            }
        }
    }

    /// Whether an internal value lies in the distribution (Optuna's `_contains`).
    pub fn contains(&self, x: f64) -> bool {
        match self {
            Distribution::Float { low, high, step: None, .. } => *low <= x && x <= *high,
            Distribution::Float { low, high, step: Some(s), .. } => {
                let k = (x - low) / s;
                *low <= x && x <= *high && (k - k.round_ties_even()).abs() < 1e-8
            }
            Distribution::Int { low, high, step, .. } => {
                *low as f64 <= x && x <= *high as f64 && (x - *low as f64).rem_euclid(*step as f64) == 0.0
            }
            Distribution::Categorical { choices } => {
                let i = x as i64;
                0 <= i && (i as usize) < choices.len()
            }
        }
    }

    /// The text Optuna stores in `trial_params.distribution_json`: `json.dumps({"name": cls, "attributes":
    /// __dict__})`, attributes in the order Optuna's constructors set them (`step, low, high, log` for floats,
    /// `log, step, low, high` for ints).
    pub fn distribution_json(&self) -> String {
        let mut s = String::new();
        match self {
            Distribution::Float { low, high, log, step } => {
                let step = step.map_or_else(|| "null".to_string(), py_float);
                let _ = write!(
                    s,
                    r#"{{"name": "FloatDistribution", "attributes": {{"step": {step}, "low": {}, "high": {}, "log": {log}}}}}"#,
                    py_float(*low),
                    py_float(*high)
                );
            }
            Distribution::Int { low, high, log, step } => {
                let _ = write!(
                    s,
                    r#"{{"name": "IntDistribution", "attributes": {{"log": {log}, "step": {step}, "low": {low}, "high": {high}}}}}"#
                );
            }
            Distribution::Categorical { choices } => {
                s.push_str(r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["#);
                for (i, c) in choices.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    json_value(&mut s, c);
                }
                s.push_str("]}}");
            }
        }
        s
    }

    /// A distribution from Optuna's `distribution_json` text: the current classes, the deprecated ones Optuna
    /// still reads (`UniformDistribution`, `LogUniformDistribution`, `DiscreteUniformDistribution`,
    /// `IntUniformDistribution`, `IntLogUniformDistribution`, converted as Optuna converts them) and the abbreviated
    /// `{"type": "float", ...}` form; checked as the constructors check.
    ///
    /// # Errors
    /// Text that is not JSON, an unknown class or type, a missing, unknown or mistyped attribute, an invalid
    /// distribution.
    pub fn from_distribution_json(text: &str) -> Result<Self, TuneError> {
        let bad = |m: String| TuneError::DistributionJson(m);
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        if let Some(name) = obj.get("name") {
            let name = name.as_str().ok_or_else(|| bad("`name` is not a string".into()))?;
            let attrs = obj
                .get("attributes")
                .and_then(serde_json::Value::as_object)
                .ok_or_else(|| bad("`attributes` is missing or not an object".into()))?;
            let a = Attrs { name, attrs };
            let d = match name {
                "FloatDistribution" => {
                    a.only(&["low", "high", "log", "step"])?;
                    Distribution::float(a.f64("low")?, a.f64("high")?, a.bool_or("log", false)?, a.opt_f64("step")?)
                }
                "UniformDistribution" | "LogUniformDistribution" => {
                    a.only(&["low", "high"])?;
                    Distribution::float(a.f64("low")?, a.f64("high")?, name == "LogUniformDistribution", None)
                }
                "DiscreteUniformDistribution" => {
                    a.only(&["low", "high", "q"])?;
                    Distribution::float(a.f64("low")?, a.f64("high")?, false, Some(a.f64("q")?))
                }
                "IntDistribution" => {
                    a.only(&["low", "high", "log", "step"])?;
                    Distribution::int(a.i64("low")?, a.i64("high")?, a.bool_or("log", false)?, a.i64_or("step", 1)?)
                }
                "IntUniformDistribution" | "IntLogUniformDistribution" => {
                    a.only(&["low", "high", "step"])?;
                    let log = name == "IntLogUniformDistribution";
                    Distribution::int(a.i64("low")?, a.i64("high")?, log, a.i64_or("step", 1)?)
                }
                "CategoricalDistribution" => {
                    a.only(&["choices"])?;
                    let choices = attrs
                        .get("choices")
                        .ok_or_else(|| bad("CategoricalDistribution: `choices` is missing".into()))?;
                    let choices: Vec<ParamValue> = serde_json::from_value(choices.clone())
                        .map_err(|e| bad(format!("CategoricalDistribution: `choices`: {e}")))?;
                    Distribution::categorical(choices)
                }
                other => return Err(bad(format!("unknown distribution class `{other}`"))),
            };
            return d.map_err(|e| bad(format!("{name}: {e}")));
        }
        let kind = obj
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("neither `name` nor `type` is given".into()))?;
        let a = Attrs { name: kind, attrs: obj };
        let d = match kind {
            "categorical" => {
                let choices = obj.get("choices").ok_or_else(|| bad("categorical: `choices` is missing".into()))?;
                let choices: Vec<ParamValue> =
                    serde_json::from_value(choices.clone()).map_err(|e| bad(format!("categorical: `choices`: {e}")))?;
                Distribution::categorical(choices)
            }
            "float" => Distribution::float(a.f64("low")?, a.f64("high")?, a.bool_or("log", false)?, a.opt_f64("step")?),
            "int" => Distribution::int(a.i64("low")?, a.i64("high")?, a.bool_or("log", false)?, a.i64_or("step", 1)?),
            other => return Err(bad(format!("unknown distribution type `{other}`"))),
        };
        d.map_err(|e| bad(format!("{kind}: {e}")))
    }
}

/// The attributes of one distribution in JSON, read with Python's conversions (`float(x)`, `int(x)`).
struct Attrs<'a> {
    name: &'a str,
    attrs: &'a serde_json::Map<String, serde_json::Value>,
}

impl Attrs<'_> {
    fn err(&self, m: String) -> TuneError {
        TuneError::DistributionJson(format!("{}: {m}", self.name))
    }
    fn only(&self, keys: &[&str]) -> Result<(), TuneError> {
        match self.attrs.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(self.err(format!("unknown attribute `{k}` (expected {})", keys.join(", ")))),
            None => Ok(()),
        }
    }
    fn get(&self, key: &str) -> Result<&serde_json::Value, TuneError> {
        self.attrs.get(key).ok_or_else(|| self.err(format!("`{key}` is missing")))
    }
    fn f64(&self, key: &str) -> Result<f64, TuneError> {
        self.get(key)?.as_f64().ok_or_else(|| self.err(format!("`{key}` is not a number")))
    }
    fn opt_f64(&self, key: &str) -> Result<Option<f64>, TuneError> {
        match self.attrs.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(_) => self.f64(key).map(Some),
        }
    }
    fn i64(&self, key: &str) -> Result<i64, TuneError> {
        let v = self.get(key)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
            .ok_or_else(|| self.err(format!("`{key}` is not an integer")))
    }
    fn i64_or(&self, key: &str, default: i64) -> Result<i64, TuneError> {
        match self.attrs.get(key) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(_) => self.i64(key),
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool, TuneError> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(format!("`{key}` is not a boolean"))),
        }
    }
}

/// An f64 as Python's `repr` (and so `json.dumps`) writes it: `0.0`, `1e-05`, `1.5e+16`, `Infinity`, `NaN`.
pub(crate) fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sci = format!("{:e}", x.abs());
    let (mant, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes an integer exponent");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        let body = if exp < 0 {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        } else if exp + 1 >= n {
            format!("{digits}{}.0", "0".repeat((exp + 1 - n) as usize))
        } else {
            let (int, frac) = digits.split_at((exp + 1) as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let m = if n == 1 { digits } else { format!("{}.{}", &digits[..1], &digits[1..]) };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    }
}

/// A choice as Python's `json.dumps` writes it (`ensure_ascii`: non-ASCII as `\uXXXX`).
fn json_value(s: &mut String, v: &ParamValue) {
    match v {
        ParamValue::Null => s.push_str("null"),
        ParamValue::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
        ParamValue::Int(i) => {
            let _ = write!(s, "{i}");
        }
        ParamValue::Float(f) => s.push_str(&py_float(*f)),
        ParamValue::Str(t) => {
            s.push('"');
            for c in t.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    '\n' => s.push_str("\\n"),
                    '\r' => s.push_str("\\r"),
                    '\t' => s.push_str("\\t"),
                    '\u{8}' => s.push_str("\\b"),
                    '\u{c}' => s.push_str("\\f"),
                    c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            let _ = write!(s, "\\u{unit:04x}");
                        }
                    }
                    c => s.push(c),
                }
            }
            s.push('"');
        }
    }
}

/// A finite f64 as an exact decimal (`digits * 10^exp`, from its shortest text, as Python's
/// `Decimal(str(x))`), for Optuna's decimal step arithmetic.
#[derive(Clone, Copy)]
struct Dec {
    digits: i128,
    exp: i32,
}

impl Dec {
    fn of(x: f64) -> Option<Dec> {
        if !x.is_finite() {
            return None;
        }
        let sci = format!("{x:e}");
        let (mant, exp) = sci.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let frac = mant.split_once('.').map_or(0, |(_, f)| f.len() as i32);
        let digits: i128 = mant.replace('.', "").parse().ok()?;
        Some(Dec { digits, exp: exp - frac })
    }

    /// Both at the smaller exponent, if that fits.
    fn align(self, other: Dec) -> Option<(i128, i128, i32)> {
        let e = self.exp.min(other.exp);
        let up = |d: Dec| 10i128.checked_pow((d.exp - e) as u32).and_then(|p| d.digits.checked_mul(p));
        Some((up(self)?, up(other)?, e))
    }

    fn sub(self, other: Dec) -> Option<Dec> {
        let (a, b, exp) = self.align(other)?;
        Some(Dec { digits: a.checked_sub(b)?, exp })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.digits, self.exp).parse().expect("digits and an exponent parse as an f64")
    }
}

/// Optuna's `_adjust_discrete_uniform_high`: in decimal, `high = (high - low) // step * step + low` when the step
/// does not divide the range (f64 arithmetic where the decimals do not fit 128 bits).
fn adjust_float_high(low: f64, high: f64, step: f64) -> f64 {
    let exact = || {
        let (l, h, s) = (Dec::of(low)?, Dec::of(high)?, Dec::of(step)?);
        let r = h.sub(l)?;
        let (r_d, s_d, e) = r.align(s)?;
        if r_d % s_d == 0 {
            return Some(high);
        }
        let k = r_d.div_euclid(s_d);
        let top =
            Dec { digits: k.checked_mul(s_d)?, exp: e }.align(l).map(|(a, b, e)| Dec { digits: a + b, exp: e })?;
        Some(top.to_f64())
    };
    exact().unwrap_or_else(|| {
        let r = high - low;
        if r % step == 0.0 { high } else { (r / step).floor() * step + low }
    })
}

/// The YAML form of a distribution: `{float: {low, high, log, step}}`, `{int: {low, high, log, step}}` or
/// `{categorical: [choices]}`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SpaceSpec {
    Float(FloatSpec),
    Int(IntSpec),
    Categorical(Vec<ParamValue>),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FloatSpec {
    low: f64,
    high: f64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<f64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntSpec {
    low: i64,
    high: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    log: bool,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    step: i64,
}

fn one() -> i64 {
    1
}

fn is_one(s: &i64) -> bool {
    *s == 1
}

impl<'de> Deserialize<'de> for Distribution {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spec = SpaceSpec::deserialize(d)?;
        match spec {
            SpaceSpec::Float(f) => Distribution::float(f.low, f.high, f.log, f.step),
            SpaceSpec::Int(i) => Distribution::int(i.low, i.high, i.log, i.step),
            SpaceSpec::Categorical(c) => Distribution::categorical(c),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Distribution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.clone() {
            Distribution::Float { low, high, log, step } => SpaceSpec::Float(FloatSpec { low, high, log, step }),
            Distribution::Int { low, high, log, step } => SpaceSpec::Int(IntSpec { low, high, log, step }),
            Distribution::Categorical { choices } => SpaceSpec::Categorical(choices),
        }
        .serialize(s)
    }
}
