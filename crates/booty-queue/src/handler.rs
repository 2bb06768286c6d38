//! The embedder's side: what runs a job, and how it says the job failed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use crate::job::Job;

/// Runs jobs. Called once per attempt, possibly on several workers at once.
///
/// `cancel` fires when the queue shuts down and the grace period is over, or when another process took
/// the job over (its lease was lost): stop soon, clean up, and return. A handler that returns an error
/// after `cancel` fired is not counted as failed; its job is released to run again. A handler that ignores
/// `cancel` is dropped after the queue's `cancel_grace`.
///
/// A panic fails that attempt only (like a retryable error); the worker lives on.
///
/// Any `Fn(Job<P>, CancellationToken) -> impl Future<Output = Result<(), HandlerError>>` closure is a
/// handler.
pub trait Handler<P>: Send + Sync + 'static {
    /// Runs one attempt of `job` (`job.attempt` says which, from 1).
    fn handle(
        &self,
        job: Job<P>,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<P, F, Fut> Handler<P> for F
where
    F: Fn(Job<P>, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send,
{
    fn handle(
        &self,
        job: Job<P>,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        self(job, cancel)
    }
}

/// Why an attempt failed. The message becomes the job's `error`, shown by the admin view and logged, so it
/// must not carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Worth another attempt (network trouble, a timeout): retried with backoff up to `max_attempts`.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way again (bad credentials, bad configuration, a command's non-zero exit): the
    /// job fails now.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    /// A retryable error with this message (`format!("{err:#}")` keeps an error's chain).
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::Retryable(message.to_string())
    }

    /// A permanent error with this message.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::Permanent(message.to_string())
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The message, as recorded in the job's `error`.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(message) | Self::Permanent(message) => message,
        }
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`Handler`] behind a `dyn`, so the engine's type does not name the handler (see `store::dynamic`).
pub(crate) trait DynHandler<P>: Send + Sync {
    fn handle(
        &self,
        job: Job<P>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<(), HandlerError>>;
}

impl<P: Send + Sync + 'static, H: Handler<P>> DynHandler<P> for H {
    fn handle(
        &self,
        job: Job<P>,
        cancel: CancellationToken,
    ) -> BoxFuture<'_, Result<(), HandlerError>> {
        Box::pin(Handler::handle(self, job, cancel))
    }
}
