//! The installation-token cache: one token per (installation, repository, permissions), reused until
//! [`crate::TOKEN_REFRESH_MARGIN`] before it expires, and one mint in flight per key (the single flight:
//! callers that find a mint under way wait for its outcome, error included, instead of minting again).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::config::Permissions;
use crate::error::Error;
use crate::names::{InstallationId, Repository};
use crate::secret::Token;

/// What a token is cached under: GitHub narrows a token to these, so two keys never share one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) installation: InstallationId,
    /// The one repository the token is narrowed to; `None` for a token over the whole installation (an
    /// organization's webhooks).
    pub(crate) repository: Option<Repository>,
    pub(crate) permissions: Permissions,
}

/// A minted token and when, by the client's clock, it was minted and must be replaced.
#[derive(Clone, Debug)]
pub(crate) struct Minted {
    pub(crate) token: Token,
    pub(crate) issued_at: SystemTime,
    pub(crate) refresh_at: SystemTime,
}

type Outcome = Option<Result<Minted, Error>>;

enum Slot {
    Ready(Minted),
    /// A mint under way; its caller sends the outcome. A closed channel without an outcome means that
    /// caller was cancelled, and the next caller mints instead.
    Minting(watch::Receiver<Outcome>),
}

/// The cache. Its lock is a plain mutex held only to read or change the map, never across an `.await`.
#[derive(Default)]
pub(crate) struct TokenCache {
    by_key: Mutex<HashMap<TokenKey, Slot>>,
}

impl TokenCache {
    /// A token for `key` that is good until its refresh time: the cached one, the outcome of the mint under
    /// way, or the outcome of `mint`, which this caller then runs.
    pub(crate) async fn get<M, F>(
        &self,
        key: &TokenKey,
        now: impl Fn() -> SystemTime,
        mint: M,
    ) -> Result<Minted, Error>
    where
        M: FnOnce() -> F,
        F: Future<Output = Result<Minted, Error>>,
    {
        enum Next {
            Wait(watch::Receiver<Outcome>),
            Mint(watch::Sender<Outcome>),
        }
        let mut mint = Some(mint);
        loop {
            // The lock is taken and released in this block, never held across an `.await`.
            let next = {
                let mut slots = self.lock();
                match slots.get(key) {
                    Some(Slot::Ready(minted)) if now() < minted.refresh_at => {
                        return Ok(minted.clone());
                    }
                    // `has_changed` fails once the minting caller is gone.
                    Some(Slot::Minting(outcome)) if outcome.has_changed().is_ok() => {
                        Next::Wait(outcome.clone())
                    }
                    _ => {
                        let (sender, receiver) = watch::channel(None);
                        slots.insert(key.clone(), Slot::Minting(receiver));
                        Next::Mint(sender)
                    }
                }
            };
            match next {
                Next::Mint(sender) => {
                    let mint = mint
                        .take()
                        .expect("a caller mints at most once: it returns right after");
                    let outcome = mint().await;
                    self.settle(key, &outcome, &now);
                    sender.send_replace(Some(outcome.clone()));
                    return outcome;
                }
                Next::Wait(mut outcome) => {
                    let settled = outcome
                        .wait_for(Option::is_some)
                        .await
                        .map(|outcome| outcome.clone());
                    if let Ok(Some(outcome)) = settled {
                        return outcome;
                    }
                    // The minting caller was cancelled: go round, and mint if nobody else has started.
                }
            }
        }
    }

    /// Stores a mint's outcome (a failure is not cached) and drops tokens that have expired for good.
    fn settle(
        &self,
        key: &TokenKey,
        outcome: &Result<Minted, Error>,
        now: impl Fn() -> SystemTime,
    ) {
        let mut slots = self.lock();
        match outcome {
            Ok(minted) => {
                let now = now();
                slots.retain(|_, slot| match slot {
                    Slot::Ready(other) => other.refresh_at > now,
                    Slot::Minting(_) => true,
                });
                slots.insert(key.clone(), Slot::Ready(minted.clone()));
            }
            Err(_) => {
                slots.remove(key);
            }
        }
    }

    /// Forgets `token` (GitHub refused it), unless a newer one has replaced it already.
    pub(crate) fn forget(&self, key: &TokenKey, token: &Token) {
        let mut slots = self.lock();
        if let Some(Slot::Ready(minted)) = slots.get(key)
            && minted.token.same(token)
        {
            slots.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Slot>> {
        // The map is consistent after every statement, so a panic elsewhere leaves nothing half-done.
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::error::ErrorKind;

    fn key() -> TokenKey {
        TokenKey {
            installation: InstallationId(1),
            repository: Some("octo/hello".parse().unwrap()),
            permissions: Permissions::booty(),
        }
    }

    fn minted(secret: &str, refresh_after: u64) -> Minted {
        Minted {
            token: Token::new(secret),
            issued_at: UNIX_EPOCH,
            refresh_at: UNIX_EPOCH + Duration::from_secs(refresh_after),
        }
    }

    #[tokio::test]
    async fn a_fresh_token_is_reused_and_a_stale_one_replaced() {
        let cache = TokenCache::default();
        let at = |secs| move || UNIX_EPOCH + Duration::from_secs(secs);
        let first = cache
            .get(&key(), at(0), || async { Ok(minted("a", 100)) })
            .await
            .unwrap();
        let again = cache
            .get(&key(), at(99), || async { Ok(minted("b", 200)) })
            .await
            .unwrap();
        assert!(again.token.same(&first.token));
        let replaced = cache
            .get(&key(), at(100), || async { Ok(minted("c", 200)) })
            .await
            .unwrap();
        assert_eq!(replaced.token.expose(), "c");
        cache.forget(&key(), &first.token);
        let kept = cache
            .get(&key(), at(101), || async { Ok(minted("d", 300)) })
            .await
            .unwrap();
        assert_eq!(
            kept.token.expose(),
            "c",
            "forgetting an old token keeps the new one"
        );
        cache.forget(&key(), &kept.token);
        let remint = cache
            .get(&key(), at(101), || async { Ok(minted("e", 300)) })
            .await
            .unwrap();
        assert_eq!(remint.token.expose(), "e");
    }

    #[tokio::test]
    async fn waiters_share_one_mint_and_its_error() {
        let cache = Arc::new(TokenCache::default());
        let mints = Arc::new(AtomicU32::new(0));
        let (release, released) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (cache, mints, mut released) = (cache.clone(), mints.clone(), released.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(
                        &key(),
                        || UNIX_EPOCH,
                        || async move {
                            mints.fetch_add(1, Ordering::SeqCst);
                            released.wait_for(|go| *go).await.unwrap();
                            Err(Error::new(
                                "POST /app/installations/1/access_tokens",
                                ErrorKind::Server {
                                    status: 502,
                                    message: "bad gateway".into(),
                                },
                            ))
                        },
                    )
                    .await
            }));
        }
        // On this single-threaded runtime, yielding runs every spawned task up to where it waits.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        for task in tasks {
            let err = task.await.unwrap().unwrap_err();
            assert_eq!(err.status(), Some(502));
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
        // The failure was not cached.
        let ok = cache
            .get(&key(), || UNIX_EPOCH, || async { Ok(minted("x", 10)) })
            .await
            .unwrap();
        assert_eq!(ok.token.expose(), "x");
    }

    #[tokio::test]
    async fn a_cancelled_minter_hands_over_to_the_next_caller() {
        let cache = TokenCache::default();
        let key = key();
        let stuck = cache.get(&key, || UNIX_EPOCH, std::future::pending);
        // Poll it once so it takes the slot, then drop it.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), stuck)
                .await
                .is_err()
        );
        let next = cache
            .get(&key, || UNIX_EPOCH, || async { Ok(minted("n", 10)) })
            .await
            .unwrap();
        assert_eq!(next.token.expose(), "n");
    }
}
