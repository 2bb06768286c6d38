//! The blocking part of preparing a workspace: a gix clone of one branch into an empty directory, checkout,
//! and the `agent/issue-{n}` branch. Runs on tokio's blocking pool; nothing here is async.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gix::protocol::transport::client::blocking_io::http;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::remote::fetch::{Shallow, Tags};

use crate::source::Source;

/// What to clone and how.
pub(crate) struct CloneSpec<'a> {
    pub(crate) source: &'a Source,
    /// `refs/heads/{base}`, already validated.
    pub(crate) base_ref: &'a gix::refs::FullName,
    /// `refs/heads/agent/issue-{n}`, already validated.
    pub(crate) agent_ref: &'a gix::refs::FullName,
    pub(crate) depth: u32,
    /// When the whole clone must be done; every HTTP request is given the time left until then.
    pub(crate) deadline: Instant,
}

/// A finished clone.
#[derive(Debug)]
pub(crate) struct Cloned {
    /// `agent/issue-{n}`.
    pub(crate) branch: String,
    pub(crate) head_commit: String,
}

/// Why a clone stopped: gix's error, or the interrupt flag.
#[derive(Debug)]
pub(crate) enum CloneFailure {
    Git(gix::Error),
    Interrupted,
}

impl From<gix::Error> for CloneFailure {
    fn from(err: gix::Error) -> Self {
        Self::Git(err)
    }
}

/// Clones `spec` into the empty directory `dir`, checks it out and puts HEAD on the agent branch.
///
/// `interrupt` is checked between reads of the pack and during checkout; the time limit of blocking reads is
/// `spec.deadline`. On failure gix removes what it wrote under `dir` itself; the caller removes `dir`.
pub(crate) fn clone_into(
    dir: &Path,
    spec: &CloneSpec<'_>,
    interrupt: &AtomicBool,
) -> Result<Cloned, CloneFailure> {
    // Isolated: the host's git configuration, credential helpers and environment are not consulted, and no
    // terminal prompt can block the thread.
    let open = gix::open::Options::isolated()
        .config_overrides(["gitoxide.credentials.terminalPrompt=false"]);
    let mut prepare = gix::clone::PrepareFetch::new(
        spec.source.url().clone(),
        dir,
        gix::create::Kind::WithWorktree,
        gix::create::Options::default(),
        open,
    )?
    .with_ref_name(Some(spec.base_ref.as_ref().as_partial_name()))?;
    if let Some(depth) = NonZeroU32::new(spec.depth) {
        prepare = prepare.with_shallow(Shallow::DepthAtRemote(depth));
    }
    // One branch and no tags, at any depth: the clone holds the base branch and nothing else.
    let refspec = format!(
        "+{base}:refs/remotes/origin/{short}",
        base = spec.base_ref.as_bstr(),
        short = spec.base_ref.shorten()
    );
    prepare = prepare.configure_remote(move |mut remote| {
        remote.replace_refspecs([refspec.as_str()], gix::remote::Direction::Fetch)?;
        Ok(remote.with_fetch_tags(Tags::None))
    });
    if spec.source.is_http() {
        let authorization = spec.source.authorization().map(str::to_owned);
        let url = spec.source.url().to_bstring();
        let deadline = spec.deadline;
        prepare = prepare.configure_connection(move |connection| {
            // Start from what gix derives from the (isolated) configuration, then add ours.
            let defaults = connection
                .remote()
                .repo()
                .transport_options(gix::bstr::BStr::new(&url), None)?;
            let mut options = defaults
                .and_then(|options| options.downcast::<http::Options>().ok())
                .map_or_else(http::Options::default, |options| *options);
            options.extra_headers.extend(authorization.clone());
            options.backend = Some(Arc::new(Mutex::new(reqwest_options(deadline))));
            connection.set_transport_options(Box::new(options));
            Ok(())
        });
    }

    let (mut checkout, _fetched) =
        prepare.fetch_then_checkout(gix::progress::Discard, interrupt)?;
    let (repo, _checked_out) = checkout.main_worktree(gix::progress::Discard, interrupt)?;
    // gix may return `Ok` after noticing the flag, with less fetched or checked out than asked for.
    if interrupt.load(Ordering::Relaxed) {
        return Err(CloneFailure::Interrupted);
    }

    let head = repo.head_id()?.detach();
    let base = spec.base_ref.shorten();
    let branch = spec.agent_ref.shorten().to_string();
    repo.reference(
        spec.agent_ref.clone(),
        head,
        PreviousValue::MustNotExist,
        format!("branch: Created from {base}"),
    )?;
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("checkout: moving from {base} to {branch}").into(),
            },
            expected: PreviousValue::Any,
            new: gix::refs::Target::Symbolic(spec.agent_ref.clone()),
        },
        name: "HEAD".try_into().expect("HEAD is a valid reference name"),
        deref: false,
    })?;
    Ok(Cloned {
        branch,
        head_commit: head.to_string(),
    })
}

/// reqwest's side of the transport: a ring-based TLS configuration, and a time limit on every request.
fn reqwest_options(deadline: Instant) -> http::reqwest::Options {
    http::reqwest::Options {
        configure_client: Some(Box::new(|builder| {
            let tls = tls_config().map_err(gix::Error::from_error)?;
            Ok(builder.tls_backend_preconfigured(tls))
        })),
        // A request's timeout covers connecting, waiting for the answer and reading the whole body, so no
        // blocking read outlives the deadline: this is what stops a server that accepts and never answers,
        // which the interrupt flag cannot reach.
        configure_request: Some(Box::new(move |request| {
            *request.timeout_mut() = Some(deadline.saturating_duration_since(Instant::now()));
            Ok(())
        })),
    }
}

/// rustls with the process-default crypto provider, checking certificates against the platform's roots (as
/// reqwest's default would).
///
/// rustls asks libraries to take the provider an application installed (`CryptoProvider::install_default`)
/// rather than pick one: `ClientConfig::builder` does that, and when none is installed it installs the one
/// rustls's crate features name. This crate enables only rustls's `ring` feature, so that is *ring* unless the
/// application chose otherwise. (`rustls::crypto::ring::default_provider`, which this used to call, is
/// deprecated from rustls 0.23.48 on, for its lack of post-quantum key exchange.)
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let builder = rustls::ClientConfig::builder();
    let verifier = rustls_platform_verifier::Verifier::new(builder.crypto_provider().clone())?;
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_configuration_builds_with_ring() {
        // No provider is installed in this test process, so rustls takes the one its features name: ring.
        let config = tls_config().unwrap();
        let provider = config.crypto_provider();
        let suites = |suites: &[rustls::SupportedCipherSuite]| {
            suites
                .iter()
                .map(rustls::SupportedCipherSuite::suite)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            suites(&provider.cipher_suites),
            suites(rustls::crypto::ring::DEFAULT_CIPHER_SUITES)
        );
        let groups = |groups: &[&dyn rustls::crypto::SupportedKxGroup]| {
            groups.iter().map(|g| g.name()).collect::<Vec<_>>()
        };
        assert_eq!(
            groups(&provider.kx_groups),
            groups(rustls::crypto::ring::DEFAULT_KX_GROUPS)
        );
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
