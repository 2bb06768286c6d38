//! [`Exclusive`]: the right to do something alone across every process sharing a store, held until
//! released.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed future releasing what a store holds for an [`Exclusive`].
type Release = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Held while one process does something no other process sharing the store may do at the same time
/// ([`Store::try_exclusive`](crate::Store::try_exclusive)); [`Exclusive::release`] gives it up. Dropping it
/// gives it up too, as soon as the store can (a `PostgreSQL` store's connection rolls back its transaction
/// when next used).
pub struct Exclusive {
    release: Option<Box<dyn FnOnce() -> Release + Send>>,
}

impl Exclusive {
    /// The right for a store used by one process at a time: nothing to hold across processes.
    pub fn in_process() -> Self {
        Self { release: None }
    }

    /// The right held by `release`, which gives it up.
    pub fn held_until<F, Fut>(release: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self {
            release: Some(Box::new(move || Box::pin(release()))),
        }
    }

    /// Gives the right up, and waits until another process may have it.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release().await;
        }
    }
}

impl fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exclusive")
            .field("held_in_store", &self.release.is_some())
            .finish()
    }
}
