//! Command-line arguments, the TOML config file, and the validated
//! [`ServeConfig`] the rest of the server uses.
//!
//! Raw values come from flags, `TAILCAST_*` environment variables (clap's
//! `env`) and the file given with `--config`; [`parse_cli`] merges
//! them once (flags over environment over file over defaults) and checks
//! them. Nothing else reads flags or the environment.
//!
//! One file per concept: `serve.rs` declares `tailcast serve`'s options
//! ([`ServeConfig`]) and their value parsers, `check.rs` the rules the
//! parsers cannot check, `file.rs` the `--config` file and the merge of
//! all sources ([`parse_cli`]), `client.rs` the options of the other
//! commands (`listen`, `publish`, `token`, `health`, ...), and
//! `settings.rs` the settings other modules take (`HubLimits`,
//! `AuthSettings`), built from a [`ServeConfig`].

mod check;
mod client;
mod file;
mod serve;
mod settings;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::{CompletionsArgs, GenerateArgs, HealthArgs, ListenArgs, PublishArgs, TokenArgs};
pub use file::parse_cli;
pub(crate) use file::parse_cli_from;
pub use serve::{FileSpec, ServeConfig};

/// Where `serve` listens unless told otherwise, and where `health` asks.
pub(crate) const DEFAULT_ADDR: &str = "127.0.0.1:8000";

/// `tailcast`: stream log files and events to browsers over Server-Sent Events.
#[derive(Debug, Parser)]
#[command(name = "tailcast", version, about, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve log files and channels over SSE (no PATH: run the demo).
    Serve(Box<ServeConfig>),
    /// Write a demo log file, a line at a time, like the tutorial's generator.
    Generate(GenerateArgs),
    /// Print the events of an SSE stream (any server), reconnecting by itself.
    Listen(ListenArgs),
    /// Publish an event, or every stdin line, to a tailcast channel.
    Publish(PublishArgs),
    /// Print an HS256 token signed with the server's --jwt-secret-file.
    Token(TokenArgs),
    /// Exit 0 if a tailcast server answers /health with status ok (for
    /// container health checks; no curl needed).
    Health(HealthArgs),
    /// Print a shell completion script on stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `tailcast man | man -l -`.
    Man,
}

/// A configuration that cannot be used; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a bad value.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value outside its range.
    #[error("invalid {setting}: {message}")]
    Invalid {
        /// The option name.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Why the command line could not be turned into a [`Cli`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad flag, `--help` or `--version`: clap prints it and exits.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The merged serve settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}
