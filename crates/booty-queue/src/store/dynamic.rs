//! The store behind a `dyn`: how one `Queue<P>` type runs on any store.
//!
//! [`Store`] uses `async fn`-style methods, which cannot be called through a `dyn`. The engine holds its
//! store as `Arc<dyn DynStore<P>>` instead, so the queue's type does not name the store and the binary can
//! choose one at run time; the cost is one boxed future per store call.

use std::future::Future;
use std::pin::Pin;

use crate::job::{Job, JobId, JobSnapshot, Submitted};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::{Admission, Claim, Exclusive, Lease, Outcome, Renewal, Store, StoreError};
use crate::time::Timestamp;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Store`] with boxed futures, for the calls made after start-up; implemented for every store.
pub(crate) trait DynStore<P>: Send + Sync {
    fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> BoxFuture<'_, Result<Submitted, StoreError>>;
    fn claim<'a>(
        &'a self,
        owner: &'a str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> BoxFuture<'a, Result<Claim<P>, StoreError>>;
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        until: Timestamp,
    ) -> BoxFuture<'a, Result<Renewal, StoreError>>;
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        outcome: Outcome,
        output: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn cancel<'a>(
        &'a self,
        target: &'a CancelTarget,
        reason: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<JobSnapshot>, StoreError>>;
    fn reopen<'a>(
        &'a self,
        job_id: &'a str,
        capacity: usize,
    ) -> BoxFuture<'a, Result<Retried, StoreError>>;
    fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> BoxFuture<'_, Result<Vec<JobSnapshot>, StoreError>>;
    fn get<'a>(&'a self, job_id: &'a str)
    -> BoxFuture<'a, Result<Option<JobSnapshot>, StoreError>>;
    fn list<'a>(
        &'a self,
        query: &'a JobQuery,
    ) -> BoxFuture<'a, Result<Vec<JobSnapshot>, StoreError>>;
    fn count(&self) -> BoxFuture<'_, Result<JobCounts, StoreError>>;
    fn close(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<JobSnapshot>, StoreError>>;
    fn dedupe_key_job<'a>(
        &'a self,
        dedupe_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobId>, StoreError>>;
    fn bookmark<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Timestamp>, StoreError>>;
    fn set_bookmark<'a>(
        &'a self,
        name: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn try_exclusive<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Exclusive>, StoreError>>;
}

impl<P, S> DynStore<P> for S
where
    P: Send + Sync + 'static,
    S: Store<P>,
{
    fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> BoxFuture<'_, Result<Submitted, StoreError>> {
        Box::pin(Store::insert_admitted(self, job, capacity, admission))
    }

    fn claim<'a>(
        &'a self,
        owner: &'a str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> BoxFuture<'a, Result<Claim<P>, StoreError>> {
        Box::pin(Store::claim(self, owner, now, lease_until))
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        until: Timestamp,
    ) -> BoxFuture<'a, Result<Renewal, StoreError>> {
        Box::pin(Store::renew(self, lease, until))
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        outcome: Outcome,
        output: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::finish(self, lease, outcome, output, now))
    }

    fn cancel<'a>(
        &'a self,
        target: &'a CancelTarget,
        reason: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Vec<JobSnapshot>, StoreError>> {
        Box::pin(Store::cancel(self, target, reason, now))
    }

    fn reopen<'a>(
        &'a self,
        job_id: &'a str,
        capacity: usize,
    ) -> BoxFuture<'a, Result<Retried, StoreError>> {
        Box::pin(Store::reopen(self, job_id, capacity))
    }

    fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> BoxFuture<'_, Result<Vec<JobSnapshot>, StoreError>> {
        Box::pin(Store::reclaim_expired(self, now, max_attempts))
    }

    fn get<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobSnapshot>, StoreError>> {
        Box::pin(Store::get(self, job_id))
    }

    fn list<'a>(
        &'a self,
        query: &'a JobQuery,
    ) -> BoxFuture<'a, Result<Vec<JobSnapshot>, StoreError>> {
        Box::pin(Store::list(self, query))
    }

    fn count(&self) -> BoxFuture<'_, Result<JobCounts, StoreError>> {
        Box::pin(Store::count(self))
    }

    fn close(&self, now: Timestamp) -> BoxFuture<'_, Result<Vec<JobSnapshot>, StoreError>> {
        Box::pin(Store::close(self, now))
    }

    fn dedupe_key_job<'a>(
        &'a self,
        dedupe_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<JobId>, StoreError>> {
        Box::pin(Store::dedupe_key_job(self, dedupe_key))
    }

    fn bookmark<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Timestamp>, StoreError>> {
        Box::pin(Store::bookmark(self, name))
    }

    fn set_bookmark<'a>(
        &'a self,
        name: &'a str,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Store::set_bookmark(self, name, at))
    }

    fn try_exclusive<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Exclusive>, StoreError>> {
        Box::pin(Store::try_exclusive(self, name))
    }
}
