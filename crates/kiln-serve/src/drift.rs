//! Live drift: the population stability index (PSI) of each numeric model feature over a sliding window of the
//! most recent records the primary variant answered, against the reference profile in its bundle
//! (`kiln/profile.json`), exported in `/metrics` as `kiln_feature_drift_psi{feature}`.
//!
//! Key decision: the request path does no binning, takes no lock and allocates nothing. It reserves slots in a
//! fixed ring of rows with one `fetch_add` and stores the monitored features' values (what the model was given)
//! there as atomics, each slot guarded by a sequence number (a seqlock: `WRITING` while it is written, then the
//! row's number). A background thread drains the ring every [`DRAIN_EVERY`] in order: a row not written yet is
//! waited for, a row already overwritten by a later lap (the reader fell more than the ring behind) or torn is
//! dropped and counted. It bins each value with the profile's edges into a second ring of bin indices (the window:
//! the last N records), keeps per-bin counts incrementally (a record leaving the window takes its bins out), and
//! every interval recomputes each feature's PSI into atomics that `/metrics` reads. A missing value (NaN) is not
//! binned: each feature's PSI is over its own non-missing values in the window.
//!
//! Not here: the statistics themselves (`kiln_eval::drift`: edges, `bin_index`, `psi`) or the profile's making.

use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, fence};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::model::LoadedModel;
use crate::state::{DriftConfig, WeakState};

use kiln_eval::drift::{Profile, bin_index, psi};

/// A value the window has no bin for (a missing value).
const NO_BIN: u16 = u16::MAX;
/// The fewest rows the request ring holds: at one drain every [`DRAIN_EVERY`], 160,000 records a second.
const MIN_RING_ROWS: usize = 16_384;
/// How often the background thread drains the request ring.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// A slot's sequence number while a request writes it.
const WRITING: u64 = u64::MAX;

/// The lock-free ring the request path writes rows into: slot `j % rows` holds row `j` once its sequence number
/// is `j + 1`.
struct Ring {
    rows: usize,
    width: usize,
    seq: Box<[AtomicU64]>,
    values: Box<[AtomicU64]>,
    head: AtomicU64,
}

impl Ring {
    fn new(rows: usize, width: usize) -> Ring {
        let zeros = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[AtomicU64]>>();
        Ring { rows, width, seq: zeros(rows), values: zeros(rows * width), head: AtomicU64::new(0) }
    }

    /// Writes `n` rows, `value(r, k)` being row r's k-th value.
    fn write(&self, n: usize, value: impl Fn(usize, usize) -> f64) {
        let first = self.head.fetch_add(n as u64, Relaxed);
        for r in 0..n {
            let j = first + r as u64;
            let slot = (j % self.rows as u64) as usize;
            self.seq[slot].store(WRITING, Relaxed);
            fence(Release);
            for k in 0..self.width {
                self.values[slot * self.width + k].store(value(r, k).to_bits(), Relaxed);
            }
            self.seq[slot].store(j + 1, Release);
        }
    }

    /// Reads row `j` into `out`: `Some(true)` when read, `Some(false)` when it was overwritten or torn (lost),
    /// `None` when it is not written yet.
    fn read(&self, j: u64, out: &mut [f64]) -> Option<bool> {
        let slot = (j % self.rows as u64) as usize;
        let before = self.seq[slot].load(Acquire);
        if before == WRITING || before < j + 1 {
            return None;
        }
        if before > j + 1 {
            return Some(false);
        }
        for (k, v) in out.iter_mut().enumerate() {
            *v = f64::from_bits(self.values[slot * self.width + k].load(Relaxed));
        }
        fence(Acquire);
        Some(self.seq[slot].load(Relaxed) == before)
    }
}

/// One monitored feature: its position in the model's feature row and its reference bins.
#[derive(Debug)]
pub(crate) struct Monitored {
    pub(crate) column: usize,
    pub(crate) name: String,
    edges: Vec<f64>,
    fractions: Vec<f64>,
}

/// The ring of the last `capacity` records' bin indices, one per monitored feature, and the counts per bin.
#[derive(Debug)]
pub(crate) struct WindowState {
    capacity: usize,
    features: usize,
    bins: Vec<u16>,
    head: usize,
    len: usize,
    counts: Vec<Vec<u64>>,
}

impl WindowState {
    pub(crate) fn new(capacity: usize, bins_per_feature: &[usize]) -> WindowState {
        let features = bins_per_feature.len();
        WindowState {
            capacity,
            features,
            bins: vec![NO_BIN; capacity * features],
            head: 0,
            len: 0,
            counts: bins_per_feature.iter().map(|n| vec![0; *n]).collect(),
        }
    }

    /// Adds one record's bin indices ([`NO_BIN`] for a missing value), evicting the oldest when full.
    pub(crate) fn push(&mut self, record: &[u16]) {
        let f = self.features;
        let slot = &mut self.bins[self.head * f..(self.head + 1) * f];
        if self.len == self.capacity {
            for (k, b) in slot.iter().enumerate() {
                if *b != NO_BIN {
                    self.counts[k][usize::from(*b)] -= 1;
                }
            }
        } else {
            self.len += 1;
        }
        slot.copy_from_slice(record);
        for (k, b) in record.iter().enumerate() {
            if *b != NO_BIN {
                self.counts[k][usize::from(*b)] += 1;
            }
        }
        self.head = (self.head + 1) % self.capacity;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn counts(&self, feature: usize) -> &[u64] {
        &self.counts[feature]
    }
}

/// One model's window: the ring the request path writes and what the background thread made of it.
pub(crate) struct DriftWindow {
    ring: Ring,
    /// the model's feature row length
    width: usize,
    pub(crate) monitored: Vec<Monitored>,
    /// the window, the next ring row to read, when the PSI was last computed, and whether the window changed since
    state: Mutex<(WindowState, u64, Option<Instant>, bool)>,
    /// each monitored feature's PSI (f64 bits; NaN before any record)
    psi: Box<[AtomicU64]>,
    pub(crate) rows: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

impl std::fmt::Debug for DriftWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftWindow").field("monitored", &self.monitored.len()).finish_non_exhaustive()
    }
}

impl DriftWindow {
    /// The window of `capacity` records over the numeric features of `profile` that the model takes, or `None`
    /// when none is.
    pub(crate) fn new(profile: &Profile, feature_names: &[String], capacity: usize) -> Option<DriftWindow> {
        let monitored: Vec<Monitored> = profile
            .features
            .iter()
            .filter_map(|c| {
                let numeric = c.numeric.as_ref()?;
                let column = feature_names.iter().position(|n| *n == c.name)?;
                (!numeric.fractions.is_empty() && numeric.fractions.len() < usize::from(NO_BIN)).then(|| Monitored {
                    column,
                    name: c.name.clone(),
                    edges: numeric.edges.clone(),
                    fractions: numeric.fractions.clone(),
                })
            })
            .collect();
        if monitored.is_empty() || capacity == 0 {
            return None;
        }
        let bins: Vec<usize> = monitored.iter().map(|m| m.fractions.len()).collect();
        Some(DriftWindow {
            ring: Ring::new(capacity.max(MIN_RING_ROWS), monitored.len()),
            width: feature_names.len(),
            psi: monitored.iter().map(|_| AtomicU64::new(f64::NAN.to_bits())).collect(),
            state: Mutex::new((WindowState::new(capacity, &bins), 0, None, false)),
            monitored,
            rows: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// The request path: writes `n_rows` feature rows (row-major, the model's width) into the ring. Never blocks,
    /// never allocates.
    pub(crate) fn push(&self, data: &[f64], n_rows: usize) {
        if n_rows == 0 || data.len() != n_rows * self.width {
            return;
        }
        // a batch larger than the ring keeps its last rows (the others would be overwritten unread)
        let skip = n_rows.saturating_sub(self.ring.rows);
        if skip > 0 {
            self.dropped.fetch_add(skip as u64, Relaxed);
        }
        let rows = &data[skip * self.width..];
        self.ring.write(n_rows - skip, |r, k| rows[r * self.width + self.monitored[k].column]);
    }

    /// The background thread: drains the ring into the window and, every `every`, recomputes every PSI.
    pub(crate) fn update(&self, every: Duration) {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, next, computed, dirty) = &mut *guard;
        let head = self.ring.head.load(Acquire);
        let lap = self.ring.rows as u64;
        if head.saturating_sub(*next) > lap {
            // the reader fell more than a lap behind: those rows are gone
            self.dropped.fetch_add(head - *next - lap, Relaxed);
            *next = head - lap;
        }
        let mut values = vec![0.0; self.monitored.len()];
        let mut record = vec![NO_BIN; self.monitored.len()];
        let mut changed = false;
        while *next < head {
            match self.ring.read(*next, &mut values) {
                // a request still writing it: wait for it, unless it has been stuck for half a lap
                None if head - *next < lap / 2 => break,
                None | Some(false) => {
                    self.dropped.fetch_add(1, Relaxed);
                }
                Some(true) => {
                    for ((slot, m), x) in record.iter_mut().zip(&self.monitored).zip(&values) {
                        *slot = if x.is_nan() {
                            NO_BIN
                        } else {
                            u16::try_from(bin_index(&m.edges, *x).min(m.fractions.len() - 1)).unwrap_or(NO_BIN)
                        };
                    }
                    state.push(&record);
                    changed = true;
                }
            }
            *next += 1;
        }
        *dirty |= changed;
        let due = computed.is_none_or(|at| at.elapsed() >= every);
        if !*dirty || !due {
            return;
        }
        *dirty = false;
        *computed = Some(Instant::now());
        for (k, m) in self.monitored.iter().enumerate() {
            let counts = state.counts(k);
            let value = if counts.iter().any(|c| *c > 0) { psi(&m.fractions, counts) } else { f64::NAN };
            self.psi[k].store(value.to_bits(), Relaxed);
        }
        self.rows.store(state.len() as u64, Relaxed);
    }

    pub(crate) fn psi(&self, k: usize) -> f64 {
        f64::from_bits(self.psi[k].load(Relaxed))
    }
}

/// The bundle's `kiln/profile.json` (none in a bundle written before profiles existed).
fn profile_bytes(model: &LoadedModel) -> Option<&[u8]> {
    model.bundle().profile.as_deref()
}

/// Live drift of the service: the settings and the window of the primary variant's current model.
pub(crate) struct DriftMonitor {
    config: DriftConfig,
    current: Mutex<Option<Arc<DriftWindow>>>,
    /// why the current model has no window (no profile, a profile that cannot be read, no numeric feature)
    pub(crate) off_reason: Mutex<Option<String>>,
}

impl DriftMonitor {
    pub(crate) fn new(config: DriftConfig) -> DriftMonitor {
        DriftMonitor { config, current: Mutex::new(None), off_reason: Mutex::new(None) }
    }

    pub(crate) fn config(&self) -> DriftConfig {
        self.config
    }

    /// A new window for a model becoming the primary variant's (before it answers anything).
    pub(crate) fn attach(&self, model: &LoadedModel) {
        let window = match profile_bytes(model).map(Profile::from_json) {
            None => Err("the bundle has no reference profile (kiln/profile.json)".to_string()),
            Some(Err(e)) => Err(format!("the bundle's reference profile cannot be read: {e}")),
            Some(Ok(profile)) => DriftWindow::new(&profile, &model.pipeline().feature_names, self.config.window)
                .ok_or_else(|| "no numeric model feature in the reference profile".to_string()),
        };
        let (window, reason) = match window {
            Ok(w) => (Some(Arc::new(w)), None),
            Err(reason) => (None, Some(reason)),
        };
        if let Some(w) = &window {
            let _ = model.drift.set(w.clone());
        }
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = window;
        *self.off_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    pub(crate) fn current(&self) -> Option<Arc<DriftWindow>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Drains the current window's ring every [`DRAIN_EVERY`] (or `every`, when shorter) and recomputes its PSI every
/// `every`, on a thread of its own, while the service lives.
pub(crate) fn start(state: WeakState, every: std::time::Duration) {
    let spawned = std::thread::Builder::new().name("kiln-drift".into()).spawn(move || {
        loop {
            std::thread::sleep(DRAIN_EVERY.min(every));
            let Some(state) = state.upgrade() else { return };
            if let Some(window) = state.drift().and_then(DriftMonitor::current) {
                window.update(every);
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("kiln serve: cannot start the live drift thread: {e}; live drift is off");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_gives_rows_in_order_and_counts_what_a_lap_overwrote() {
        let ring = Ring::new(4, 2);
        ring.write(3, |r, k| (10 * r + k) as f64);
        let mut out = [0.0; 2];
        assert_eq!((ring.read(0, &mut out), out), (Some(true), [0.0, 1.0]));
        assert_eq!((ring.read(2, &mut out), out), (Some(true), [20.0, 21.0]));
        assert_eq!(ring.read(3, &mut out), None, "not written yet");
        // rows 3..=8: row 4 takes row 0's slot, and so on
        ring.write(6, |r, _| (3 + r) as f64);
        assert_eq!(ring.read(0, &mut out), Some(false), "overwritten by a later lap");
        assert_eq!(ring.read(1, &mut out), Some(false));
        assert_eq!((ring.read(8, &mut out), out), (Some(true), [8.0, 8.0]));
        assert_eq!(ring.read(9, &mut out), None);
    }

    #[test]
    fn the_window_keeps_the_last_records_counts() {
        let mut w = WindowState::new(3, &[2, 3]);
        w.push(&[0, 2]);
        w.push(&[1, NO_BIN]);
        w.push(&[1, 0]);
        assert_eq!((w.len(), w.counts(0), w.counts(1)), (3, &[1, 2][..], &[1, 0, 1][..]));
        // the first record leaves
        w.push(&[0, 1]);
        assert_eq!((w.len(), w.counts(0), w.counts(1)), (3, &[1, 2][..], &[1, 1, 0][..]));
        w.push(&[0, 1]);
        w.push(&[0, 1]);
        assert_eq!((w.counts(0), w.counts(1)), (&[3, 0][..], &[0, 3, 0][..]));
    }
}
