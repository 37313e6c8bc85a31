//! `tailcast generate`: the tutorial's log generator. Appends lines in
//! Python `logging`'s default format,
//! `2024-01-01 12:00:00,123 - log_app - INFO - log message num: 0`,
//! with a realistic mix of levels.

use std::path::Path;
use std::time::Duration;

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// Logger name written in every line.
const LOGGER: &str = "log_app";

/// Picks a level: mostly INFO, some DEBUG, fewer WARNING and ERROR.
fn level(rng: &mut impl Rng) -> &'static str {
    match rng.random_range(0..100) {
        0..=64 => "INFO",
        65..=84 => "DEBUG",
        85..=94 => "WARNING",
        _ => "ERROR",
    }
}

/// One log line (without its newline) for message number `n`.
pub(crate) fn line(n: u64, rng: &mut impl Rng) -> String {
    let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S,%3f");
    format!("{now} - {LOGGER} - {} - log message num: {n}", level(rng))
}

/// Appends a line to `path` every `interval` until `count` lines are
/// written or `shutdown` is cancelled. Returns how many were written.
///
/// # Errors
/// The file cannot be created or written.
pub async fn run(
    path: &Path,
    interval: Duration,
    count: Option<u64>,
    shutdown: CancellationToken,
) -> std::io::Result<u64> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let mut text = line(n, &mut rand::rng());
        text.push('\n');
        file.write_all(text.as_bytes()).await?;
        n += 1;
    }
    file.flush().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_python_logging_shape() {
        let re = regex::Regex::new(
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - log_app - (DEBUG|INFO|WARNING|ERROR) - log message num: 7$",
        )
        .unwrap();
        let l = line(7, &mut rand::rng());
        assert!(re.is_match(&l), "{l}");
    }

    #[test]
    fn level_mix_contains_every_level() {
        let mut rng = rand::rng();
        let levels: std::collections::HashSet<_> = (0..2000).map(|_| level(&mut rng)).collect();
        assert_eq!(levels.len(), 4);
    }

    #[tokio::test]
    async fn writes_count_lines_then_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen.log");
        let n = run(
            &path,
            Duration::from_millis(1),
            Some(5),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(n, 5);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[4].ends_with("log message num: 4"));
    }
}
