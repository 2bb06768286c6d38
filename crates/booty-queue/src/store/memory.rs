//! The in-memory store: fast, bounded, and gone with the process.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::job::{Job, JobId, JobOutput, JobSnapshot, JobState, Submitted};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::{
    Claim, LEASE_EXPIRED, Lease, Outcome, RESTARTED, Renewal, Retention, Store, StoreError,
};
use crate::time::Timestamp;

/// Sizes of a [`MemoryStore`]'s collections, to watch memory stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Jobs held, in any state (at most the waiting capacity plus running jobs plus `retained_finished`).
    pub jobs: usize,
    /// Of those, jobs in a final state (at most `retained_finished`).
    pub finished: usize,
    /// Jobs `queued` or `retrying`.
    pub waiting: usize,
    /// Dedupe keys remembered (at most `dedupe_capacity`).
    pub remembered_dedupe_keys: usize,
    /// Lanes with unfinished jobs.
    pub lanes: usize,
}

/// Keeps jobs in the process's memory: no serialisation (the payload `Arc` is kept as given), no I/O, and
/// everything bounded by its [`Retention`] and the queue's capacity.
///
/// Jobs do not survive the process: at shutdown, unfinished ones are `abandoned` and reported. Use it for
/// tests, for embedders that can afford to lose work, and as the yardstick the durable stores are measured
/// against.
#[derive(Debug)]
pub struct MemoryStore<P> {
    retention: Retention,
    state: Mutex<State<P>>,
    /// What [`Store::set_bookmark`] recorded, by name (a handful of names, set by the embedder).
    bookmarks: Mutex<HashMap<String, Timestamp>>,
}

impl<P> MemoryStore<P> {
    /// An empty store keeping what `retention` says.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            state: Mutex::new(State::default()),
            bookmarks: Mutex::new(HashMap::new()),
        }
    }

    /// The current sizes of the store's collections.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if an earlier panic left the store's lock poisoned.
    pub fn stats(&self) -> Result<MemoryStats, StoreError> {
        let state = self.lock("stats")?;
        Ok(MemoryStats {
            jobs: state.jobs.len(),
            finished: state.finished.len(),
            waiting: state.waiting,
            remembered_dedupe_keys: state.dedupe_keys.len(),
            lanes: state.lanes.len(),
        })
    }

    fn lock(&self, operation: &'static str) -> Result<MutexGuard<'_, State<P>>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Backend {
            store: "memory",
            operation,
            source: "the store's lock was poisoned by a panic in an earlier operation".into(),
        })
    }
}

impl<P> Default for MemoryStore<P> {
    fn default() -> Self {
        Self::new(Retention::default())
    }
}

impl<P: Send + Sync + 'static> Store<P> for MemoryStore<P> {
    async fn insert(&self, job: Job<P>, capacity: usize) -> Result<Submitted, StoreError> {
        let mut state = self.lock("insert")?;
        if let Some(id) = state.dedupe_keys.get(&job.dedupe_key) {
            return Ok(Submitted::Duplicate(id.clone()));
        }
        if state.ids.contains_key(&job.id) {
            return Ok(Submitted::Duplicate(job.id));
        }
        if state.waiting >= capacity {
            return Ok(Submitted::Busy);
        }
        let id = job.id.clone();
        state.insert(job, self.retention.dedupe_capacity);
        Ok(Submitted::Accepted(id))
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        Ok(self.lock("claim")?.claim(owner, now, lease_until))
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<Renewal, StoreError> {
        let mut state = self.lock("renew")?;
        let seq = state.held(lease)?;
        state.extend_lease(seq, until);
        Ok(match &state.jobs[&seq].cancel_reason {
            Some(reason) => Renewal::CancelRequested {
                reason: reason.clone(),
            },
            None => Renewal::Extended,
        })
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut state = self.lock("finish")?;
        let seq = state.held(lease)?;
        state.set_lease(seq, None);
        let entry = state.jobs.get_mut(&seq).expect("held() found the job");
        entry.snapshot.output = output.map(str::to_owned);
        let outcome = outcome.unless_cancelled(entry.cancel_reason.as_deref());
        state.apply(seq, &outcome, now);
        state.evict_finished(self.retention.retained_finished);
        Ok(())
    }

    async fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        let mut state = self.lock("reclaim_expired")?;
        let expired = state.leases_expiring_by(Some(now));
        let taken = state.take_back(&expired, now, max_attempts, LEASE_EXPIRED);
        state.evict_finished(self.retention.retained_finished);
        Ok(taken)
    }

    async fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        // One process owns this store, so every running job belongs to a run that is gone.
        let mut state = self.lock("recover")?;
        let running = state.leases_expiring_by(None);
        let taken = state.take_back(&running, now, max_attempts, RESTARTED);
        state.evict_finished(self.retention.retained_finished);
        Ok(taken)
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError> {
        let state = self.lock("get")?;
        Ok(state
            .ids
            .get(job_id)
            .map(|seq| state.jobs[seq].snapshot.clone()))
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, StoreError> {
        let state = self.lock("list")?;
        Ok(state
            .jobs
            .range(..query.before.unwrap_or(u64::MAX))
            .rev()
            .map(|(_, entry)| &entry.snapshot)
            .filter(|job| query.matches(job))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn count(&self) -> Result<JobCounts, StoreError> {
        let state = self.lock("count")?;
        let mut counts = JobCounts::default();
        for entry in state.jobs.values() {
            counts.add(entry.snapshot.state, 1);
        }
        Ok(counts)
    }

    async fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        let mut state = self.lock("cancel")?;
        let seqs: Vec<u64> = match target {
            CancelTarget::Job(id) => state
                .ids
                .get(id)
                .copied()
                .filter(|seq| !state.jobs[seq].snapshot.state.is_final())
                .into_iter()
                .collect(),
            CancelTarget::Lane(lane) => state
                .lanes
                .get(lane)
                .map(|jobs| jobs.iter().copied().collect())
                .unwrap_or_default(),
        };
        let mut changed = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let entry = state
                .jobs
                .get_mut(&seq)
                .expect("ids and lanes hold stored jobs");
            if entry.snapshot.state == JobState::Running {
                entry.cancel_reason = Some(reason.to_owned());
            } else {
                let cancelled = Outcome::Cancelled {
                    reason: reason.to_owned(),
                };
                state.apply(seq, &cancelled, now);
            }
            changed.push(state.jobs[&seq].snapshot.clone());
        }
        state.evict_finished(self.retention.retained_finished);
        Ok(changed)
    }

    async fn reopen(&self, job_id: &str, capacity: usize) -> Result<Retried, StoreError> {
        let mut state = self.lock("reopen")?;
        let Some(&seq) = state.ids.get(job_id) else {
            return Ok(Retried::NotFound);
        };
        let entry = &state.jobs[&seq];
        let found = Some(entry.snapshot.clone());
        match Retried::decide(found, entry.payload.is_some(), state.waiting, capacity) {
            Retried::Queued(_) => Ok(Retried::Queued(state.reopen(seq))),
            other => Ok(other),
        }
    }

    async fn close(&self, now: Timestamp) -> Result<Vec<JobSnapshot>, StoreError> {
        let mut state = self.lock("close")?;
        let unfinished: Vec<u64> = state
            .jobs
            .iter()
            .filter(|(_, entry)| !entry.snapshot.state.is_final())
            .map(|(&seq, _)| seq)
            .collect();
        let mut abandoned = Vec::with_capacity(unfinished.len());
        for seq in unfinished {
            state.set_lease(seq, None);
            let error = "the queue shut down first and the memory store does not keep jobs";
            state.finalize(seq, JobState::Abandoned, Some(error.to_owned()), now);
            abandoned.push(state.jobs[&seq].snapshot.clone());
        }
        state.evict_finished(self.retention.retained_finished);
        Ok(abandoned)
    }

    async fn dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, StoreError> {
        let state = self.lock("dedupe_key_job")?;
        if let Some(id) = state.dedupe_keys.get(dedupe_key) {
            return Ok(Some(id.clone()));
        }
        // A stored job whose key the bounded memory of keys already let go of.
        Ok(state
            .jobs
            .values()
            .find(|entry| entry.snapshot.dedupe_key == dedupe_key)
            .map(|entry| entry.snapshot.job_id.clone()))
    }

    async fn bookmark(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.bookmarks("bookmark")?.get(name).copied())
    }

    async fn set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        self.bookmarks("set_bookmark")?.insert(name.to_owned(), at);
        Ok(())
    }
}

impl<P> MemoryStore<P> {
    fn bookmarks(
        &self,
        operation: &'static str,
    ) -> Result<MutexGuard<'_, HashMap<String, Timestamp>>, StoreError> {
        self.bookmarks.lock().map_err(|_| StoreError::Backend {
            store: "memory",
            operation,
            source: "the bookmarks' lock was poisoned by a panic in an earlier operation".into(),
        })
    }
}

/// One stored job.
#[derive(Debug)]
struct Entry<P> {
    snapshot: JobSnapshot,
    /// Dropped once the job is final: nothing will run it again.
    payload: Option<Arc<P>>,
    /// Set while `running`.
    lease: Option<Held>,
    /// Set on a running job whose cancellation was asked for.
    cancel_reason: Option<String>,
}

#[derive(Debug)]
struct Held {
    owner: String,
    until: Timestamp,
}

/// Everything behind the lock. Jobs are keyed by their arrival sequence number, so arrival order (for
/// claiming) and newest-first (for listing) are the map's own order.
#[derive(Debug)]
struct State<P> {
    next_seq: u64,
    jobs: BTreeMap<u64, Entry<P>>,
    ids: HashMap<JobId, u64>,
    /// Remembered dedupe keys, with the job each belongs to, and the order to forget them in.
    dedupe_keys: HashMap<String, JobId>,
    dedupe_order: VecDeque<String>,
    /// Unfinished jobs per lane, in arrival order; the front is the only one that may run.
    lanes: HashMap<String, VecDeque<u64>>,
    /// `queued` (or due `retrying`) jobs first in their lane: claimable now, earliest arrival first.
    ready: BTreeSet<u64>,
    /// `retrying` jobs first in their lane, by `retry_at`.
    delayed: BTreeSet<(Timestamp, u64)>,
    /// `running` jobs by lease expiry.
    leases: BTreeSet<(Timestamp, u64)>,
    /// Final jobs in the order they finished, oldest first.
    finished: VecDeque<u64>,
    /// How many jobs are `queued` or `retrying`.
    waiting: usize,
}

impl<P> Default for State<P> {
    fn default() -> Self {
        Self {
            next_seq: 0,
            jobs: BTreeMap::new(),
            ids: HashMap::new(),
            dedupe_keys: HashMap::new(),
            dedupe_order: VecDeque::new(),
            lanes: HashMap::new(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            leases: BTreeSet::new(),
            finished: VecDeque::new(),
            waiting: 0,
        }
    }
}

impl<P> State<P> {
    fn insert(&mut self, job: Job<P>, dedupe_capacity: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let first_in_lane = match &job.lane {
            Some(key) => {
                let queue = self.lanes.entry(key.clone()).or_default();
                queue.push_back(seq);
                queue.len() == 1
            }
            None => true,
        };
        if first_in_lane {
            self.ready.insert(seq);
        }
        self.remember(job.dedupe_key.clone(), job.id.clone(), dedupe_capacity);
        self.ids.insert(job.id.clone(), seq);
        self.waiting += 1;
        let entry = Entry {
            snapshot: JobSnapshot::queued(seq, &job),
            payload: Some(job.payload),
            lease: None,
            cancel_reason: None,
        };
        self.jobs.insert(seq, entry);
    }

    fn remember(&mut self, dedupe_key: String, job_id: JobId, capacity: usize) {
        if capacity == 0 {
            return;
        }
        if self.dedupe_order.len() >= capacity
            && let Some(oldest) = self.dedupe_order.pop_front()
        {
            self.dedupe_keys.remove(&oldest);
        }
        self.dedupe_order.push_back(dedupe_key.clone());
        self.dedupe_keys.insert(dedupe_key, job_id);
    }

    fn claim(&mut self, owner: &str, now: Timestamp, lease_until: Timestamp) -> Claim<P> {
        while let Some(&(at, seq)) = self.delayed.first()
            && at <= now
        {
            self.delayed.pop_first();
            self.ready.insert(seq);
        }
        let Some(seq) = self.ready.pop_first() else {
            let next_retry_at = self.delayed.first().map(|&(at, _)| at);
            return Claim::Idle { next_retry_at };
        };
        self.set_state(seq, JobState::Running);
        let lease = Held {
            owner: owner.to_owned(),
            until: lease_until,
        };
        self.set_lease(seq, Some(lease));
        let entry = self.jobs.get_mut(&seq).expect("ready holds stored jobs");
        let snapshot = &mut entry.snapshot;
        snapshot.attempts += 1;
        snapshot.started_at = Some(now);
        snapshot.retry_at = None;
        Claim::Job(Job {
            id: snapshot.job_id.clone(),
            dedupe_key: snapshot.dedupe_key.clone(),
            lane: snapshot.lane.clone(),
            kind: snapshot.kind.clone(),
            metadata: snapshot.metadata.clone(),
            created_at: snapshot.created_at,
            attempt: snapshot.attempts,
            payload: Arc::clone(
                entry
                    .payload
                    .as_ref()
                    .expect("unfinished jobs keep their payload"),
            ),
            output: JobOutput::default(),
        })
    }

    /// The sequence number of the job `lease` holds, or `LeaseLost`.
    fn held(&self, lease: &Lease) -> Result<u64, StoreError> {
        let seq = *self
            .ids
            .get(&lease.job_id)
            .ok_or_else(|| StoreError::lease_lost(lease))?;
        let entry = &self.jobs[&seq];
        let holds = entry.snapshot.state == JobState::Running
            && entry.snapshot.attempts == lease.attempt
            && entry
                .lease
                .as_ref()
                .is_some_and(|held| held.owner == lease.owner);
        if holds {
            Ok(seq)
        } else {
            Err(StoreError::lease_lost(lease))
        }
    }

    /// Replaces the lease of `seq` (`None` drops it) and keeps `leases` in step.
    fn set_lease(&mut self, seq: u64, lease: Option<Held>) {
        let entry = self
            .jobs
            .get_mut(&seq)
            .expect("leases are set on stored jobs");
        if let Some(old) = entry.lease.take() {
            self.leases.remove(&(old.until, seq));
        }
        if let Some(new) = &lease {
            self.leases.insert((new.until, seq));
        }
        entry.lease = lease;
    }

    fn extend_lease(&mut self, seq: u64, until: Timestamp) {
        let entry = self.jobs.get_mut(&seq).expect("held() found the job");
        let held = entry.lease.as_mut().expect("held() checked the lease");
        self.leases.remove(&(held.until, seq));
        held.until = until;
        self.leases.insert((until, seq));
    }

    /// Running jobs whose lease expires by `now` (every running job with `None`), earliest first.
    fn leases_expiring_by(&self, now: Option<Timestamp>) -> Vec<u64> {
        self.leases
            .iter()
            .take_while(|&&(until, _)| now.is_none_or(|now| until <= now))
            .map(|&(_, seq)| seq)
            .collect()
    }

    /// Puts running jobs back in line, or fails those that had no attempt left.
    fn take_back(
        &mut self,
        seqs: &[u64],
        now: Timestamp,
        max_attempts: u32,
        why: &str,
    ) -> Vec<JobSnapshot> {
        let mut taken = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            self.set_lease(seq, None);
            let entry = &self.jobs[&seq];
            let outcome = Outcome::taken_back(entry.snapshot.attempts, max_attempts, why)
                .unless_cancelled(entry.cancel_reason.as_deref());
            self.apply(seq, &outcome, now);
            taken.push(self.jobs[&seq].snapshot.clone());
        }
        taken
    }

    /// Puts a job whose lease was dropped in the state `outcome` leads to.
    fn apply(&mut self, seq: u64, outcome: &Outcome, now: Timestamp) {
        let state = outcome.state();
        let error = outcome.error_update().map(|error| error.map(str::to_owned));
        if state.is_final() {
            let error = error.unwrap_or_else(|| self.jobs[&seq].snapshot.error.clone());
            self.finalize(seq, state, error, now);
        } else if let Some(at) = outcome.retry_at() {
            self.retry(seq, at, error.flatten());
        } else {
            self.requeue(seq);
        }
    }

    /// A final job goes back to `queued` under a new sequence number, last in its lane, no longer
    /// counted as finished.
    fn reopen(&mut self, seq: u64) -> JobSnapshot {
        self.finished.retain(|&other| other != seq);
        let mut entry = self.jobs.remove(&seq).expect("reopened job is stored");
        let new = self.next_seq;
        self.next_seq += 1;
        entry.snapshot.seq = new;
        entry.snapshot.finished_at = None;
        entry.snapshot.retry_at = None;
        entry.cancel_reason = None;
        self.ids.insert(entry.snapshot.job_id.clone(), new);
        let first_in_lane = match &entry.snapshot.lane {
            Some(lane) => {
                let queue = self.lanes.entry(lane.clone()).or_default();
                queue.push_back(new);
                queue.len() == 1
            }
            None => true,
        };
        self.jobs.insert(new, entry);
        self.set_state(new, JobState::Queued);
        if first_in_lane {
            self.ready.insert(new);
        }
        self.jobs[&new].snapshot.clone()
    }

    /// A job that was first in its lane goes back to `queued`, still first.
    fn requeue(&mut self, seq: u64) {
        self.set_state(seq, JobState::Queued);
        self.ready.insert(seq);
    }

    fn retry(&mut self, seq: u64, at: Timestamp, error: Option<String>) {
        self.set_state(seq, JobState::Retrying);
        let snapshot = &mut self
            .jobs
            .get_mut(&seq)
            .expect("retried job is stored")
            .snapshot;
        snapshot.retry_at = Some(at);
        snapshot.error = error;
        self.delayed.insert((at, seq));
    }

    /// Makes a job final, takes it out of every line it stood in, and lets its lane move on.
    fn finalize(&mut self, seq: u64, state: JobState, error: Option<String>, now: Timestamp) {
        self.set_state(seq, state);
        self.ready.remove(&seq);
        let entry = self.jobs.get_mut(&seq).expect("finalized job is stored");
        if let Some(at) = entry.snapshot.retry_at.take() {
            self.delayed.remove(&(at, seq));
        }
        entry.snapshot.finished_at = Some(now);
        entry.snapshot.error = error;
        if !state.is_retryable() {
            entry.payload = None;
        }
        if let Some(key) = &entry.snapshot.lane {
            let lane = self
                .lanes
                .get_mut(key)
                .expect("unfinished jobs are in their lane");
            let was_first = lane.front() == Some(&seq);
            lane.retain(|&other| other != seq);
            match lane.front() {
                Some(&next) if was_first => {
                    self.ready.insert(next);
                }
                Some(_) => {}
                None => {
                    self.lanes.remove(key);
                }
            }
        }
        self.finished.push_back(seq);
    }

    /// Sets a job's state and keeps the count of waiting jobs in step.
    fn set_state(&mut self, seq: u64, state: JobState) {
        let snapshot = &mut self.jobs.get_mut(&seq).expect("job is stored").snapshot;
        if snapshot.state.is_waiting() {
            self.waiting -= 1;
        }
        if state.is_waiting() {
            self.waiting += 1;
        }
        snapshot.state = state;
    }

    fn evict_finished(&mut self, retained: usize) {
        while self.finished.len() > retained {
            let Some(seq) = self.finished.pop_front() else {
                break;
            };
            if let Some(entry) = self.jobs.remove(&seq) {
                self.ids.remove(&entry.snapshot.job_id);
            }
        }
    }
}
