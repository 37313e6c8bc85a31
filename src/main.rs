//! The `tailcast` binary: parses the command line and calls the library.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tailcast::config::{CliError, Command};
use tokio_util::sync::CancellationToken;

/// After a shutdown signal, the process exits by this deadline even if a
/// stalled client keeps its connection open.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(4500);

/// How long a cancelled `listen` or `publish` gets to return by itself.
const CLIENT_STOP_GRACE: Duration = Duration::from_millis(200);

fn main() -> ExitCode {
    let cli = match tailcast::config::parse_cli() {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::Config(e)) => return fail(e.to_string()),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAILCAST_LOG")
                .unwrap_or_else(|_| "tailcast=info".into()),
        )
        .init();
    raise_open_files_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(config) => serve(*config).await,
            Command::Generate(args) => {
                let token = CancellationToken::new();
                tailcast::shutdown::cancel_on_signal(token.clone());
                tailcast::generate::run(&args.path, args.interval, args.count, token)
                    .await
                    .map(drop)
                    .map_err(|e| format!("cannot write {}: {e}", args.path.display()))
            }
            Command::Listen(args) => {
                let config = args.resolve().map_err(|e| e.to_string())?;
                run_client(|token| async move {
                    tailcast::client::listen::run(&config, &mut std::io::stdout(), token).await
                })
                .await
            }
            Command::Publish(args) => {
                let config = args.resolve().map_err(|e| e.to_string())?;
                run_client(|token| async move {
                    let stdin = tokio::io::BufReader::with_capacity(64 * 1024, tokio::io::stdin());
                    tailcast::client::publish::run(&config, stdin, &mut std::io::stdout(), token)
                        .await
                        .map(drop)
                })
                .await
            }
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
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

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn serve(config: tailcast::config::ServeConfig) -> Result<(), String> {
    // A bad certificate or key is a startup error, before anything listens.
    let scheme = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            tailcast::server::tls::prepare(cert, key).map_err(|e| e.to_string())?;
            "https"
        }
        _ => "http",
    };
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let demo = config.files.is_empty();
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "tailcast listening on {scheme}://{addr}");
        if demo {
            let _ = writeln!(out, "demo mode: a generated log is served as stream `demo`");
            let _ = writeln!(
                out,
                "  open {scheme}://{addr}/ or run: curl -N {scheme}://{addr}/stream-logs"
            );
        }
        let _ = out.flush();
    }
    let token = CancellationToken::new();
    tailcast::shutdown::cancel_on_signal(token.clone());
    let mut server = tokio::spawn(tailcast::server::run(listener, config, token.clone()));
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
