//! A submission the submitter may still withdraw: the handshake that lets a request with a deadline
//! give up on a slow store without the store committing the job behind its back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

const WAITING: u8 = 0;
const ADMITTED: u8 = 1;
const WITHDRAWN: u8 = 2;

/// Decides, once, whether a submission is stored or withdrawn.
///
/// The store calls [`Admission::admit`] at the last moment before anything of the job can be committed
/// (holding whatever makes its answer final: the write lock, the insert lock); the submitter calls
/// [`Admission::withdraw`] when it stops waiting. Whichever comes first wins: after `admit` the
/// submitter must wait for the store's answer, which will be the truth; after `withdraw` the store must
/// store nothing and answer [`StoreError::Withdrawn`](super::StoreError::Withdrawn). So a request that
/// times out is never answered "not stored" for a job that was stored.
///
/// Cheap to clone; every clone is the same admission.
#[derive(Debug, Clone, Default)]
pub struct Admission(Arc<AtomicU8>);

impl Admission {
    /// A submission nobody has decided on yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store's side: `true` if the job may be stored (also when it was admitted before, so a store
    /// may try again), `false` if the submitter withdrew it.
    pub fn admit(&self) -> bool {
        match self
            .0
            .compare_exchange(WAITING, ADMITTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == ADMITTED,
        }
    }

    /// The submitter's side: `true` if the submission is withdrawn (also when it was before), `false`
    /// if the store admitted it first and its answer must be awaited.
    pub fn withdraw(&self) -> bool {
        match self
            .0
            .compare_exchange(WAITING, WITHDRAWN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == WITHDRAWN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_side_wins_and_stays_won() {
        let admitted = Admission::new();
        assert!(admitted.admit());
        assert!(!admitted.withdraw());
        assert!(admitted.clone().admit(), "a store may try again");

        let withdrawn = Admission::new();
        assert!(withdrawn.withdraw());
        assert!(!withdrawn.admit());
        assert!(withdrawn.clone().withdraw());
    }
}
