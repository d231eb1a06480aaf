//! Fan-out snapshots: for each pushed track, which subscriber sessions live
//! on which media worker. The control thread builds a new immutable table
//! and swaps it in (read-copy-update); workers load it per packet without a
//! lock.
//!
//! Where it sits: step 2 of the data path — after the publisher's packet is
//! unprotected, its worker loads the track's table to know where to send it.
//! Recordings read a track through a [`tap::Tap`] on its fan-out.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::ids::{SessionKey, TrackKey};
pub mod tap;

use tap::Tap;

/// The recorders' taps on a track.
pub type Taps = Arc<Vec<Arc<Tap>>>;

/// Subscribers of one track, grouped by the worker that owns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanoutTable {
    /// `per_worker[w]`: the subscriber sessions whose transport worker `w` owns.
    pub per_worker: Vec<Vec<SessionKey>>,
}

/// A pushed track's fan-out, shared by the control thread (writer) and the
/// publisher's worker (reader).
#[derive(Debug)]
pub struct TrackFanout {
    /// The track.
    pub key: TrackKey,
    table: ArcSwap<FanoutTable>,
    /// Recorders' taps on the track (`None`: not recorded).
    taps: ArcSwapOption<Vec<Arc<Tap>>>,
    /// Whether `taps` has any: the common case, untapped, costs one relaxed
    /// load per run.
    tapped: std::sync::atomic::AtomicBool,
    /// Held while taps are added or removed (recorder and control threads;
    /// workers never take it), so that `tapped` follows `taps`.
    tap_changes: std::sync::Mutex<()>,
    /// The publisher closed the track (it never comes back: a new push is
    /// a new track).
    closed: std::sync::atomic::AtomicBool,
}

/// Track keys are unique in the process.
static NEXT_TRACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TrackFanout {
    /// A new track, with a fresh key and no subscribers.
    pub fn create() -> Arc<Self> {
        let key = TrackKey(NEXT_TRACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Arc::new(TrackFanout::new(key))
    }

    /// A track with no subscribers.
    pub fn new(key: TrackKey) -> Self {
        TrackFanout {
            key,
            table: ArcSwap::from_pointee(FanoutTable::default()),
            taps: ArcSwapOption::empty(),
            tapped: std::sync::atomic::AtomicBool::new(false),
            tap_changes: std::sync::Mutex::new(()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The current table; cheap, lock-free.
    pub fn load(&self) -> arc_swap::Guard<Arc<FanoutTable>> {
        self.table.load()
    }

    /// Marks the track closed by its publisher.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether its publisher closed it.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The recorders' taps, if any; lock-free, and one relaxed load when
    /// there are none.
    pub fn taps(&self) -> Option<arc_swap::Guard<Option<Taps>>> {
        self.tapped
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| self.taps.load())
    }

    /// Adds a recorder's tap.
    pub fn add_tap(&self, tap: Arc<Tap>) {
        let _changing = self.tap_changes.lock().unwrap_or_else(|e| e.into_inner());
        self.taps.rcu(|taps| {
            let mut list = taps.as_deref().cloned().unwrap_or_default();
            list.push(tap.clone());
            Some(Arc::new(list))
        });
        self.tapped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Removes a recorder's tap (by identity).
    pub fn remove_tap(&self, tap: &Arc<Tap>) {
        let _changing = self.tap_changes.lock().unwrap_or_else(|e| e.into_inner());
        self.taps.rcu(|taps| {
            let list: Vec<Arc<Tap>> = taps
                .as_deref()
                .into_iter()
                .flatten()
                .filter(|t| !Arc::ptr_eq(t, tap))
                .cloned()
                .collect();
            (!list.is_empty()).then(|| Arc::new(list))
        });
        let any = self.taps.load().is_some();
        self.tapped.store(any, std::sync::atomic::Ordering::Relaxed);
    }

    /// Swaps in a new table if it differs; returns whether it did.
    pub fn store(&self, table: FanoutTable) -> bool {
        if **self.table.load() == table {
            return false;
        }
        self.table.store(Arc::new(table));
        true
    }
}
