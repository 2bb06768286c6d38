//! Running file-system and gix work off the async runtime, with the caller's tracing context.

use std::future::Future;

/// Runs `work` on tokio's blocking pool under the caller's tracing subscriber and span, so events from the
/// blocking thread land where the caller's would. A panic in `work` is resumed in the caller, as if `work`
/// had run inline. `None` means the runtime shut down before `work` ran to completion.
pub(crate) fn run<T, F>(work: F) -> impl Future<Output = Option<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();
    let handle = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(work))
    });
    async move {
        match handle.await {
            Ok(value) => Some(value),
            Err(err) => match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_cancelled) => None,
            },
        }
    }
}
