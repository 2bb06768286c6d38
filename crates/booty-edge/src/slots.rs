//! A listener's connection slots: how many connections it serves at once, which of them are idle (no
//! request in flight) and since when, and which one gives up its slot when a new client needs one.
//!
//! Every connection holds a [`Slot`] for its whole life. Requests are counted through [`InFlight`]
//! guards, so idleness means the same for both protocols: for HTTP/2 no stream being answered, for
//! HTTP/1.1 no request between its head and its answer. When every slot is taken and a client is
//! waiting, the connection idle the longest is asked to close ([`Slots::make_room`]); only when every
//! slot has a request in flight does the client wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The slots of one listener.
pub(crate) struct Slots {
    permits: Arc<Semaphore>,
    open: Mutex<Open>,
    /// Notified when a connection's last request in flight ends: a waiting client may evict it.
    went_idle: Arc<Notify>,
    /// What [`Activity`] timestamps count from.
    epoch: Instant,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    connections: HashMap<u64, Arc<Activity>>,
}

/// How the accept loop may make room for the next client.
pub(crate) enum Room {
    /// A free slot.
    Free(OwnedSemaphorePermit),
    /// Every slot is taken, but at least one connection is idle: accept, then [`Slots::make_room`].
    Idle,
}

impl Slots {
    /// Room for `max` connections (at least one).
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            open: Mutex::default(),
            went_idle: Arc::new(Notify::new()),
            epoch: Instant::now(),
        })
    }

    /// Waits until a slot is free or some connection is idle, so a client is accepted only when it can
    /// be served soon; while every slot has a request in flight, clients wait in the listen backlog.
    pub(crate) async fn room(&self) -> Room {
        loop {
            // Registered before looking, so a connection going idle in between is not missed.
            let went_idle = self.went_idle.notified();
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return Room::Free(permit);
            }
            if self.longest_idle().is_some() {
                return Room::Idle;
            }
            tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => {
                    return Room::Free(permit.expect("the slot semaphore is never closed"));
                }
                () = went_idle => {}
            }
        }
    }

    /// A slot for a client accepted while every slot was taken: asks the connection idle the longest to
    /// close, and another if that one turns out busy, until a slot is free.
    pub(crate) async fn make_room(&self) -> OwnedSemaphorePermit {
        let mut evicted: Option<Arc<Activity>> = None;
        loop {
            let went_idle = self.went_idle.notified();
            if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
                return permit;
            }
            // An evicted connection that is still idle frees its slot within the close linger; one that
            // took a request just before is only done after answering it, so find another meanwhile.
            if evicted.as_ref().is_none_or(|activity| !activity.is_idle())
                && let Some(victim) = self.longest_idle()
            {
                victim.close();
                evicted = Some(victim);
            }
            tokio::select! {
                permit = Arc::clone(&self.permits).acquire_owned() => {
                    return permit.expect("the slot semaphore is never closed");
                }
                () = went_idle => {}
            }
        }
    }

    /// Registers a connection in the slot `permit` gives it.
    pub(crate) fn open(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Slot {
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            had_request: AtomicBool::new(false),
            idle_since_nanos: AtomicU64::new(nanos_since(self.epoch, Instant::now())),
            closing: AtomicBool::new(false),
            changed: Notify::new(),
            went_idle: Arc::clone(&self.went_idle),
            epoch: self.epoch,
        });
        let id = {
            let mut open = self.lock();
            let id = open.next_id;
            open.next_id += 1;
            open.connections.insert(id, Arc::clone(&activity));
            id
        };
        Slot {
            slots: Arc::clone(self),
            id,
            activity,
            _permit: permit,
        }
    }

    /// The connection idle the longest that is not closing already, if any is idle.
    fn longest_idle(&self) -> Option<Arc<Activity>> {
        self.lock()
            .connections
            .values()
            .filter(|activity| !activity.is_closing())
            .filter_map(|activity| Some((activity.idle_since()?, activity)))
            .min_by_key(|(idle_since, _)| *idle_since)
            .map(|(_, activity)| Arc::clone(activity))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The table stays consistent whatever panicked while holding it: each change is one insert or
        // remove.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in [`Slots`], held for as long as the connection lives.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().connections.remove(&self.id);
    }
}

/// What the accept loop and the connection's own task know about a connection.
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// Whether the connection ever had a request: one that never did has nothing to finish when closed.
    had_request: AtomicBool,
    /// When the last request in flight ended (or the connection opened), in nanoseconds since `epoch`.
    idle_since_nanos: AtomicU64,
    /// Set when the connection is asked to close (for a waiting client) or starts closing by itself.
    closing: AtomicBool,
    /// Wakes the connection's task: it is asked to close, or it went idle while closing.
    changed: Notify,
    went_idle: Arc<Notify>,
    epoch: Instant,
}

impl Activity {
    /// Counts a request as in flight until the guard is dropped.
    pub(crate) fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.had_request.store(true, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// Whether a request was ever started on the connection.
    pub(crate) fn had_request(&self) -> bool {
        self.had_request.load(Ordering::Acquire)
    }

    /// Since when the connection has had no request in flight; `None` while it has one.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(self.epoch + Duration::from_nanos(self.idle_since_nanos.load(Ordering::Acquire)))
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Asks the connection to close, or records that it is closing; either way it is no longer a
    /// candidate for eviction.
    pub(crate) fn close(&self) {
        // SeqCst, as the count in `InFlight::drop`: of a request ending and the connection starting to
        // close, at least one side sees the other, so a closing connection is always told it went idle.
        if !self.closing.swap(true, Ordering::SeqCst) {
            self.changed.notify_one();
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Completes when the connection was asked to close, or went idle while closing, since the last call
    /// (or at once, if that happened while nobody was waiting). Going idle while open wakes nobody: the
    /// connection's task looks at [`Activity::idle_since`] when its idle timer fires.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A request in flight on a connection; its end may make the connection idle.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        // Stored before the count drops, so whoever sees the connection idle sees when it became so.
        activity.idle_since_nanos.store(
            nanos_since(activity.epoch, Instant::now()),
            Ordering::Release,
        );
        if activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity.went_idle.notify_one();
            // Only a closing connection waits for its requests to end (its linger starts then); an open
            // one is not woken for every request it answers.
            if activity.closing.load(Ordering::SeqCst) {
                activity.changed.notify_one();
            }
        }
    }
}

fn nanos_since(epoch: Instant, now: Instant) -> u64 {
    // 2^64 ns is 584 years of uptime.
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_connection_idle_the_longest_is_asked_to_close_first() {
        let slots = Slots::new(3);
        let mut open = Vec::new();
        for _ in 0..3 {
            let Room::Free(permit) = slots.room().await else {
                panic!("a free slot was not offered");
            };
            open.push(slots.open(permit));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // The oldest is busy; of the idle ones, the second opened is idle the longest.
        let busy = open[0].activity().request_started();
        assert!(matches!(slots.room().await, Room::Idle));
        let evicting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.make_room().await }
        });
        open[1].activity().changed().await;
        assert!(open[1].activity().is_closing());
        assert!(!open[0].activity().is_closing() && !open[2].activity().is_closing());
        // Its slot goes to the waiting client once it is gone.
        drop(open.remove(1));
        let permit = evicting.await.unwrap();
        drop(busy);
        assert!(open[0].activity().idle_since().is_some());
        drop(permit);
    }

    #[tokio::test]
    async fn with_every_connection_busy_there_is_no_room_until_one_goes_idle() {
        let slots = Slots::new(1);
        let Room::Free(permit) = slots.room().await else {
            panic!("a free slot was not offered");
        };
        let slot = slots.open(permit);
        let busy = slot.activity().request_started();
        assert!(slot.activity().idle_since().is_none());
        let mut room = Box::pin(slots.room());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut room)
                .await
                .is_err()
        );
        drop(busy);
        assert!(matches!(room.await, Room::Idle));
    }
}
