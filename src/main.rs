//! The `tailcast` binary: parses the command line and calls the library.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;
use tailcast::cli_tools::{self, HealthCheck};
use tailcast::client::{ListenConfig, PublishConfig};
use tailcast::config::{Cli, CliError, Command, GenerateArgs, ServeConfig};
use tailcast::logging;
use tailcast::logging::LogFormat;
use tokio_util::sync::CancellationToken;

/// After a shutdown signal, the process exits by this deadline even if a
/// stalled client keeps its connection open.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(4500);

/// How long a cancelled `listen` or `publish` gets to return by itself.
const CLIENT_STOP_GRACE: Duration = Duration::from_millis(200);

/// A command whose options are resolved and checked, ready to run.
enum Job {
    Serve(Box<ServeConfig>),
    Generate(GenerateArgs),
    Listen(ListenConfig),
    Publish(PublishConfig),
    Health(HealthCheck),
    Token(std::path::PathBuf, tailcast::auth::mint::TokenSpec),
}

fn main() -> ExitCode {
    let cli = match tailcast::config::parse_cli() {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => return command_line_error(e),
        Err(CliError::Config(e)) => return fail(e.to_string()),
    };
    let job = match cli.command {
        Command::Completions(args) => {
            return print(&cli_tools::completions(Cli::command(), args.shell))
        }
        Command::Man => return print(&cli_tools::man_page(Cli::command())),
        Command::Serve(config) => Ok(Job::Serve(config)),
        Command::Generate(args) => Ok(Job::Generate(args)),
        Command::Listen(args) => args.resolve().map(Job::Listen),
        Command::Publish(args) => args.resolve().map(Job::Publish),
        Command::Health(args) => args.resolve().map(Job::Health),
        Command::Token(args) => args
            .resolve()
            .map(|(secret_file, spec)| Job::Token(secret_file, spec)),
    };
    let job = match job {
        Ok(job) => job,
        Err(e) => return fail(e.to_string()),
    };
    // The config is resolved before anything logs, so `serve` can choose
    // the format; the other commands log as text.
    logging::init(match &job {
        Job::Serve(config) => config.log_format,
        _ => LogFormat::Text,
    });
    raise_open_files_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match job {
            Job::Serve(config) => serve(*config).await,
            Job::Generate(args) => {
                let token = CancellationToken::new();
                tailcast::shutdown::cancel_on_signal(token.clone());
                tailcast::generate::run(&args.path, args.interval, args.count, token)
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot write {}: {e}", args.path.display()))
            }
            Job::Listen(config) => {
                run_client(|token| async move {
                    tailcast::client::listen::run(&config, &mut std::io::stdout(), token).await
                })
                .await
            }
            Job::Token(secret_file, spec) => {
                let token = tailcast::auth::mint::mint_with_file(&secret_file, &spec)
                    .map_err(|e| e.to_string())?;
                println!("{token}");
                Ok(())
            }
            Job::Publish(config) => {
                run_client(|token| async move {
                    let stdin = tokio::io::BufReader::with_capacity(64 * 1024, tokio::io::stdin());
                    tailcast::client::publish::run(&config, stdin, &mut std::io::stdout(), token)
                        .await
                        .map(drop)
                })
                .await
            }
            Job::Health(check) => cli_tools::check_health(&check)
                .await
                .map(|report| println!("{report}"))
                .map_err(|e| e.to_string()),
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

/// Writes generated text (completions, the man page) to stdout. A reader
/// that stops early (`tailcast man | head`) is not an error.
fn print(text: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(format!("cannot write to stdout: {e}")),
    }
}

/// Runs a client command until it ends or a signal arrives. On SIGINT or
/// SIGTERM the command is cancelled and the process exits with status 0 at
/// once: if the command does not return promptly (stuck writing to a full
/// pipe, say), it is abandoned.
async fn run_client<F, Fut>(command: F) -> Result<(), String>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), tailcast::client::ClientError>> + Send + 'static,
{
    let token = CancellationToken::new();
    let mut task = tokio::spawn(command(token.clone()));
    let result = tokio::select! {
        result = &mut task => result,
        _ = tailcast::shutdown::signal() => {
            token.cancel();
            match tokio::time::timeout(CLIENT_STOP_GRACE, task).await {
                Ok(result) => result,
                Err(_) => return Ok(()),
            }
        }
    };
    match result {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("client task failed: {e}")),
    }
}

/// Raises the soft limit on open files to the hard limit: every SSE
/// subscriber holds a socket, and the usual soft limit of 1024 would cap a
/// server at about a thousand streams.
fn raise_open_files_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open files limit: {e}");
    }
}

/// `--help` and `--version` print their answer and succeed; no command at
/// all prints the usage and fails; any other mistake (an unknown flag, a
/// bad value in a flag or an environment variable) is a startup error like
/// the others: one `error: ...` line and status 1.
fn command_line_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::FAILURE
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let mut message = first.strip_prefix("error: ").unwrap_or(first).to_string();
            // clap's own hint line would be lost: keep the choices on this one.
            if let Some(ContextValue::Strings(values)) = e.get(ContextKind::ValidValue) {
                message.push_str(&format!(" (possible values: {})", values.join(", ")));
            }
            fail(message)
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn serve(config: ServeConfig) -> Result<(), String> {
    // Key files and patterns are checked before listening, so a bad one is
    // one error line, not a server that refuses everyone.
    config.auth_settings().check().map_err(|e| e.to_string())?;
    // So is a bad alerts file.
    if let Some(path) = &config.alerts {
        tailcast::alerts::rules::load(path).map_err(|e| e.to_string())?;
    }
    // So is a bad certificate or key.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(tailcast::server::tls::prepare(cert, key).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let demo = config.files.is_empty();
    // Said once the server has started, so that a refusal at start (a log
    // stream claimed by another node, Redis unreachable) is never preceded
    // by a "listening" line.
    let banner = move |started: &tailcast::server::Started| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tailcast listening on {scheme}://{addr}");
        if let Some(tcp) = started.syslog_tcp {
            let _ = writeln!(out, "syslog listening on tcp://{tcp}");
        }
        if let Some(udp) = started.syslog_udp {
            let _ = writeln!(out, "syslog listening on udp://{udp}");
        }
        if demo {
            let _ = writeln!(out, "demo mode: a generated log is served as stream `demo`");
            let _ = writeln!(
                out,
                "  open {scheme}://{addr}/ or run: curl -N {scheme}://{addr}/stream-logs"
            );
        }
        let _ = out.flush();
    };
    let token = CancellationToken::new();
    tailcast::shutdown::cancel_on_signal(token.clone());
    let mut server = tokio::spawn(tailcast::server::run(
        listener,
        config,
        tls,
        token.clone(),
        banner,
    ));
    tokio::select! {
        _ = token.cancelled() => {}
        result = &mut server => {
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("server failed: {e}")),
                Err(e) => Err(format!("server task failed: {e}")),
            };
        }
    }
    match tokio::time::timeout(SHUTDOWN_DEADLINE, server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("server failed: {e}")),
        Ok(Err(e)) => Err(format!("server task failed: {e}")),
        Err(_) => {
            tracing::warn!("some connections did not close in time; exiting anyway");
            Ok(())
        }
    }
}
