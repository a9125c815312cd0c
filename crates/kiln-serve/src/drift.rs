//! Live drift: the population stability index (PSI) of each numeric model feature over a sliding window of the
//! most recent records the primary variant answered, against the reference profile in its bundle
//! (`kiln/profile.json`), exported in `/metrics` as `kiln_feature_drift_psi{feature}`.
//!
//! Key decision: the request path does no binning and takes no lock. It copies the records' feature rows (what the
//! model was given) into one `Vec` and offers it to a bounded queue (`try_send`); a full queue drops the rows and
//! counts them. A background thread wakes every interval, drains the queue, bins each value with the profile's
//! edges into a ring of bin indices (the window: the last N records), keeps per-bin counts incrementally (a record
//! leaving the window takes its bins out), and recomputes every feature's PSI into atomics that `/metrics` reads.
//! A missing value (NaN) is not binned: each feature's PSI is over its own non-missing values in the window.
//!
//! Not here: the statistics themselves (`kiln_eval::drift`: edges, `bin_index`, `psi`) or the profile's making.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::LoadedModel;
use crate::state::{DriftConfig, WeakState};

use kiln_eval::drift::{Profile, bin_index, psi};

/// A value the window has no bin for (a missing value).
const NO_BIN: u16 = u16::MAX;
/// How many request batches may wait for the background thread; beyond, rows are dropped (counted).
const QUEUE: usize = 65_536;

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

/// One model's window: the queue the request path feeds and what the background thread made of it.
pub(crate) struct DriftWindow {
    tx: SyncSender<Vec<f64>>,
    rx: Mutex<Receiver<Vec<f64>>>,
    /// the model's feature row length
    width: usize,
    pub(crate) monitored: Vec<Monitored>,
    state: Mutex<WindowState>,
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
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        Some(DriftWindow {
            tx,
            rx: Mutex::new(rx),
            width: feature_names.len(),
            psi: monitored.iter().map(|_| AtomicU64::new(f64::NAN.to_bits())).collect(),
            state: Mutex::new(WindowState::new(capacity, &bins)),
            monitored,
            rows: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// The request path: offers `n_rows` feature rows (row-major, the model's width) to the window. Never blocks.
    pub(crate) fn push(&self, data: &[f64], n_rows: usize) {
        if n_rows == 0 || data.len() != n_rows * self.width {
            return;
        }
        match self.tx.try_send(data.to_vec()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(n_rows as u64, Relaxed);
            }
        }
    }

    /// The background thread: drains the queue into the window and recomputes every PSI.
    pub(crate) fn update(&self) {
        let rx = self.rx.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut record = vec![NO_BIN; self.monitored.len()];
        let mut changed = false;
        while let Ok(rows) = rx.try_recv() {
            changed = true;
            for row in rows.chunks_exact(self.width) {
                for (slot, m) in record.iter_mut().zip(&self.monitored) {
                    let x = row[m.column];
                    *slot = if x.is_nan() {
                        NO_BIN
                    } else {
                        u16::try_from(bin_index(&m.edges, x).min(m.fractions.len() - 1)).unwrap_or(NO_BIN)
                    };
                }
                state.push(&record);
            }
        }
        if !changed {
            return;
        }
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

/// Updates the current window every `every`, on a thread of its own, while the service lives.
pub(crate) fn start(state: WeakState, every: std::time::Duration) {
    let spawned = std::thread::Builder::new().name("kiln-drift".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(state) = state.upgrade() else { return };
            if let Some(window) = state.drift().and_then(DriftMonitor::current) {
                window.update();
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
