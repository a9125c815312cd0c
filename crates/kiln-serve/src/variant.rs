//! Several models behind one service: canary variants that share the traffic by weight, and shadow variants that
//! score a copy of each request off the response path and are never returned.
//!
//! Key decisions: weights are whole basis points (0.01 %) that must sum to 10,000, so the split is exact integer
//! arithmetic. A request goes to the canary whose cumulative weight range holds `FNV-1a-64(key) mod 10,000`, the key
//! being the configured header's value or record field's text ([`StickyKey`]): the same key always lands on the same
//! variant, in every replica and after a restart (as long as the weights stay). A request without a key (none
//! configured, or the header or field absent or null) gets a fresh uniform draw from a per-thread generator.
//! Variants must take the same input ([`schema_difference`]), so a request is parsed once and any variant can score
//! it; a hot reload that would change one variant's input is refused like a corrupted bundle.
//!
//! Not here: loading models (the CLI), or dynamic weights (a restart changes them).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::http::HeaderName;

use crate::model::InputSchema;

/// The whole of the traffic, in basis points.
pub const TOTAL_BASIS_POINTS: u32 = 10_000;

/// What a variant does with the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// answers this share of the requests, in basis points (1 % = 100)
    Canary { basis_points: u32 },
    /// scores a copy of every request after it was answered; its answers are logged and counted, never returned
    Shadow,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Canary { .. } => "canary",
            Role::Shadow => "shadow",
        }
    }
}

/// What a request is assigned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// the value of this request header
    Header(HeaderName),
    /// the text of this field of the (first) record: a string as it is, a number as JSON writes it
    Field(String),
}

impl StickyKey {
    /// `header:<name>` or `field:<name>`.
    ///
    /// # Errors
    /// [`RolloutError::StickyKey`] for another form, an empty name or an invalid header name.
    pub fn parse(text: &str) -> Result<StickyKey, RolloutError> {
        let bad = || RolloutError::StickyKey(text.to_string());
        match text.split_once(':') {
            Some(("header", name)) if !name.trim().is_empty() => {
                HeaderName::try_from(name.trim()).map(StickyKey::Header).map_err(|_| bad())
            }
            Some(("field", name)) if !name.trim().is_empty() => Ok(StickyKey::Field(name.trim().to_string())),
            _ => Err(bad()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StickyKey::Header(h) => format!("header:{h}"),
            StickyKey::Field(f) => format!("field:{f}"),
        }
    }
}

/// Why a set of variants cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("no canary variant: at least one variant must answer requests")]
    NoCanary,
    #[error("the variant name '{0}' is used twice; every variant needs its own name")]
    DuplicateName(String),
    #[error("'{0}' is not a variant name: use letters, digits, '_', '-' or '.', at most 64")]
    BadName(String),
    #[error("the canary weights sum to {sum}% ({detail}), not 100%")]
    WeightSum { sum: String, detail: String },
    #[error("variant '{0}' has weight 0: a canary must get some traffic (drop it, or make it a shadow)")]
    ZeroWeight(String),
    #[error(
        "'{0}' is not a sticky key: use header:<name> (e.g. header:X-User-Id) or field:<name> (e.g. field:customerID)"
    )]
    StickyKey(String),
    #[error("variant '{b}' takes another input than '{a}': {difference}; variants must take the same records")]
    SchemaDiffers { a: String, b: String, difference: String },
    #[error("the sticky key field '{field}' is not a field of the records; they have {fields}")]
    UnknownField { field: String, fields: String },
}

/// Basis points as percent text: `9000` -> `90`, `1250` -> `12.5`.
pub fn percent(basis_points: u32) -> String {
    let (whole, frac) = (basis_points / 100, basis_points % 100);
    match frac {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// Checks names and weights: names unique and plain, at least one canary, canary weights summing to 100 %.
///
/// # Errors
/// The first [`RolloutError`] found.
pub fn check_variants<'a>(variants: impl IntoIterator<Item = (&'a str, Role)> + Clone) -> Result<(), RolloutError> {
    let mut seen = std::collections::HashSet::new();
    for (name, role) in variants.clone() {
        let plain = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !plain {
            return Err(RolloutError::BadName(name.to_string()));
        }
        if !seen.insert(name) {
            return Err(RolloutError::DuplicateName(name.to_string()));
        }
        if role == (Role::Canary { basis_points: 0 }) {
            return Err(RolloutError::ZeroWeight(name.to_string()));
        }
    }
    let canaries: Vec<(&str, u32)> = variants
        .into_iter()
        .filter_map(|(n, r)| match r {
            Role::Canary { basis_points } => Some((n, basis_points)),
            Role::Shadow => None,
        })
        .collect();
    if canaries.is_empty() {
        return Err(RolloutError::NoCanary);
    }
    let sum: u64 = canaries.iter().map(|(_, w)| u64::from(*w)).sum();
    if sum != u64::from(TOTAL_BASIS_POINTS) {
        let detail = canaries.iter().map(|(n, w)| format!("{n} {}", percent(*w))).collect::<Vec<_>>().join(" + ");
        return Err(RolloutError::WeightSum { sum: percent(u32::try_from(sum).unwrap_or(u32::MAX)), detail });
    }
    Ok(())
}

/// What differs between two variants' inputs, or `None` when a record for one is a record for the other.
pub(crate) fn schema_difference(a: &InputSchema, b: &InputSchema) -> Option<String> {
    let mut out = Vec::new();
    if a.windowed != b.windowed {
        let kind = |s: &InputSchema| if s.windowed { "forecast windows" } else { "tabular records" };
        out.push(format!("the first takes {}, the second {}", kind(a), kind(b)));
    }
    for f in &a.fields {
        match b.fields.iter().find(|g| g.name == f.name) {
            None => out.push(format!("'{}' ({}) only in the first", f.name, f.kind.as_str())),
            Some(g) if g.kind != f.kind => {
                out.push(format!(
                    "'{}' is {} in the first, {} in the second",
                    f.name,
                    f.kind.as_str(),
                    g.kind.as_str()
                ));
            }
            Some(_) => {}
        }
    }
    for g in &b.fields {
        if !a.fields.iter().any(|f| f.name == g.name) {
            out.push(format!("'{}' ({}) only in the second", g.name, g.kind.as_str()));
        }
    }
    if out.is_empty() && a.future_target != b.future_target {
        out.push("one reads known_in_advance future rows, the other does not".into());
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// FNV-1a, 64 bits: a fixed, documented hash, the same on every machine and in every version.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The slot `0..10_000` a key hashes to.
pub fn slot_of_key(key: &[u8]) -> u32 {
    (fnv1a64(key) % u64::from(TOTAL_BASIS_POINTS)) as u32
}

thread_local! {
    static DRAW: Cell<u64> = const { Cell::new(0) };
}

/// A uniform slot `0..10_000` from a per-thread SplitMix64 generator, seeded from the clock and the thread.
fn random_slot() -> u32 {
    DRAW.with(|state| {
        let mut s = state.get();
        if s == 0 {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            s = h.finish() | 1;
        }
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 10,000 does not divide 2^64: the bias is below 1e-15
        (z % u64::from(TOTAL_BASIS_POINTS)) as u32
    })
}

/// The canaries' cumulative ranges, for assignment.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    /// `(variant index, cumulative upper bound in basis points)`, in the order given
    ranges: Vec<(usize, u32)>,
}

impl Split {
    pub(crate) fn new(roles: &[Role]) -> Split {
        let mut upper = 0;
        let ranges = roles
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Role::Canary { basis_points } => {
                    upper += basis_points;
                    Some((i, upper))
                }
                Role::Shadow => None,
            })
            .collect();
        Split { ranges }
    }

    /// The variant answering slot `slot` (`0..10_000`).
    pub(crate) fn variant_of_slot(&self, slot: u32) -> usize {
        self.ranges.iter().find(|(_, upper)| slot < *upper).or(self.ranges.last()).map_or(0, |(i, _)| *i)
    }

    /// The variant for a request with `key` (a draw without one).
    pub(crate) fn assign(&self, key: Option<&[u8]>) -> usize {
        if self.ranges.len() == 1 {
            return self.ranges[0].0;
        }
        self.variant_of_slot(key.map_or_else(random_slot, slot_of_key))
    }
}

/// One variant's counters for `/metrics`: requests and errors, latency and predicted values.
pub(crate) struct VariantStats {
    pub(crate) requests: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) latency: crate::metrics::LatencyHistogram,
    /// set with the variant's first model, whose buckets it keeps
    pub(crate) predictions: std::sync::OnceLock<crate::metrics::ValueHistogram>,
}

impl VariantStats {
    pub(crate) fn new() -> VariantStats {
        VariantStats {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: crate::metrics::LatencyHistogram::default(),
            predictions: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn answered(&self, answers: &[crate::score::Answer], took: std::time::Duration) {
        self.requests.fetch_add(1, Relaxed);
        self.latency.record(took);
        if let Some(h) = self.predictions.get() {
            h.record(answers);
        }
    }

    pub(crate) fn failed(&self, took: std::time::Duration) {
        self.requests.fetch_add(1, Relaxed);
        self.errors.fetch_add(1, Relaxed);
        self.latency.record(took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, FieldKind};

    fn canary(bp: u32) -> Role {
        Role::Canary { basis_points: bp }
    }

    #[test]
    fn weights_must_sum_to_100_and_names_be_unique() {
        assert_eq!(check_variants([("a", canary(9000)), ("b", canary(1000)), ("s", Role::Shadow)]), Ok(()));
        let e = check_variants([("a", canary(9000)), ("b", canary(500))]).unwrap_err();
        assert_eq!(e.to_string(), "the canary weights sum to 95% (a 90 + b 5), not 100%");
        let e = check_variants([("a", canary(9000)), ("a", canary(1000))]).unwrap_err();
        assert_eq!(e, RolloutError::DuplicateName("a".into()));
        assert_eq!(check_variants([("s", Role::Shadow)]).unwrap_err(), RolloutError::NoCanary);
        assert_eq!(check_variants([("a b", canary(10000))]).unwrap_err(), RolloutError::BadName("a b".into()));
        assert_eq!(
            check_variants([("a", canary(10000)), ("z", canary(0))]).unwrap_err(),
            RolloutError::ZeroWeight("z".into())
        );
        assert_eq!(percent(1250), "12.5");
        assert_eq!(percent(1), "0.01");
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // the FNV-1a 64 test vectors (Fowler, Noll, Vo: "a" and "foobar")
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_key_always_lands_on_the_same_variant_and_the_split_follows_the_weights() {
        let split = Split::new(&[canary(9000), Role::Shadow, canary(1000)]);
        assert_eq!((split.variant_of_slot(0), split.variant_of_slot(8999)), (0, 0));
        assert_eq!((split.variant_of_slot(9000), split.variant_of_slot(9999)), (2, 2));
        let n = 100_000;
        let mut challenger = 0;
        for k in 0..n {
            let key = format!("user-{k}");
            let v = split.assign(Some(key.as_bytes()));
            assert_eq!(v, split.assign(Some(key.as_bytes())), "{key}");
            assert_ne!(v, 1, "a shadow is never assigned");
            challenger += usize::from(v == 2);
        }
        // binomial(100000, 0.1): sd 0.095 percentage points; 4 sd
        let share = challenger as f64 / f64::from(n);
        assert!((share - 0.1).abs() < 0.0038, "{share}");
        let drawn = (0..n).filter(|_| split.assign(None) == 2).count() as f64 / f64::from(n);
        assert!((drawn - 0.1).abs() < 0.0038, "{drawn}");
        assert_eq!(Split::new(&[canary(10000)]).assign(None), 0);
    }

    #[test]
    fn sticky_keys_parse() {
        assert_eq!(StickyKey::parse("header:X-User-Id").unwrap().describe(), "header:x-user-id");
        assert_eq!(StickyKey::parse("field:customerID").unwrap(), StickyKey::Field("customerID".into()));
        for bad in ["cookie:a", "header:", "field", "header:bad header"] {
            assert!(StickyKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn schema_differences_are_named() {
        let f = |name: &str, kind| Field { name: name.to_string(), kind };
        let a = InputSchema::new(vec![f("tenure", FieldKind::Numeric), f("plan", FieldKind::Categorical)], false);
        let b = InputSchema::new(vec![f("tenure", FieldKind::Categorical), f("age", FieldKind::Numeric)], false);
        assert_eq!(schema_difference(&a, &a.clone()), None);
        assert_eq!(
            schema_difference(&a, &b).unwrap(),
            "'tenure' is numeric in the first, categorical in the second; 'plan' (categorical) only in the first; \
             'age' (numeric) only in the second"
        );
    }
}
