//! The `booty` binary: configuration, logging, composition of the crates, and the CLI.
//!
//! `main` parses the command line and calls [`run`]; an error is printed once, with its chain, and mapped to an
//! exit code: 0 ok, 1 runtime failure, 2 configuration error.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line program reports to its user"
)]

mod app;
mod check;
mod cli;
mod config;
mod jobs;
mod logging;
mod recover;
mod send;
mod serve;
mod supervise;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{AppCommand, Cli, Command};
use crate::config::ConfigError;

/// How long exit waits for blocking threads (clones, directory removal) still running after shutdown.
const BLOCKING_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long exit waits for the log lines still queued to be written.
const LOG_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("booty: error: {err:#}");
            if err.chain().any(<dyn std::error::Error>::is::<ConfigError>) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Supervise(args) => Ok(supervise::run(&args)),
        Command::App(AppCommand::Create(args)) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            // The GitHub host a configuration names, unless the command line names one.
            let configured = config::github_hosts(cli.config.as_deref())?;
            let created = runtime.block_on(app::create(&args, &configured))?;
            print!("{created}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let loaded = config::load(cli.config.as_deref())?;
            logging::init(loaded.config.log_format, &loaded.config.log_level)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let served = runtime.block_on(serve::serve(loaded.config));
            // A clone stuck on a silent server only notices cancellation at its HTTP deadline; dropping
            // the runtime would wait for that blocking thread. Its directory is swept at the next start.
            runtime.shutdown_timeout(BLOCKING_GRACE);
            logging::flush(LOG_FLUSH_GRACE);
            served?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let loaded = config::load(cli.config.as_deref())?;
            print!("{}", check::render(&loaded));
            Ok(ExitCode::SUCCESS)
        }
        Command::Recover(args) => {
            let loaded = config::load(cli.config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let report =
                runtime.block_on(recover::recover(&loaded.config, args.since, args.dry_run))?;
            print!("{}", recover::render(&report, args.dry_run));
            Ok(if report.stopped.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Jobs(args) => {
            let loaded = config::load(cli.config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let (ok, text) = runtime.block_on(jobs::run(&args, &loaded.config))?;
            print!("{text}");
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Send(args) => {
            // The configuration is only needed for what the command line leaves out.
            let loaded = if args.secret.is_some() && args.url.is_some() && !args.secret_from_config
            {
                None
            } else {
                Some(config::load(cli.config.as_deref())?)
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let defaults = send::Defaults {
                config: loaded.as_ref().map(|loaded| &loaded.config),
            };
            let answer = runtime.block_on(send::send(&args, defaults))?;
            println!("delivery {}", answer.delivery);
            println!("HTTP {}", answer.status);
            println!("{}", answer.body);
            Ok(if answer.status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
