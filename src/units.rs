//! Units in option values: durations (`300ms`, `15s`, `2m`) and sizes
//! (`64KiB`, `1MiB`), parsed the same way for flags, the environment, the
//! config file. A leaf: it imports nothing of tailcast.

use std::time::Duration;

/// Parses `300ms`, `15s`, `2m`, `1h` (and bare numbers, as seconds).
///
/// # Errors
/// A message saying what format is expected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration such as 300ms, 15s or 2m)"))
}

/// Parses `64KiB`, `1MiB`, `500kB`, or a number of bytes.
///
/// # Errors
/// A message saying what format is expected.
pub(crate) fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let bytes = match text.parse::<u64>() {
        Ok(n) => n,
        Err(_) => text
            .parse::<bytesize::ByteSize>()
            .map_err(|e| format!("{e} (expected a size such as 64KiB or 1MiB)"))?
            .as_u64(),
    };
    usize::try_from(bytes).map_err(|_| "size too large".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("big").is_err());
    }
}
