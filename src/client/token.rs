//! Where `listen` and `publish` get their token: `--token` (or
//! `TAILCAST_TOKEN`), `--token-file` (read before each connection, so a
//! renewed file is picked up), or `listen --token-command` (run before each
//! connection; its trimmed stdout is the token). The token is sent as
//! `Authorization: Bearer` and never printed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::ClientError;

/// Longest a `--token-command` may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest token read from a file or a command.
const MAX_TOKEN: u64 = 64 * 1024;

/// A source of bearer tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A fixed token.
    Fixed(String),
    /// A file holding the token.
    File(PathBuf),
    /// A shell command printing the token.
    Command(String),
}

impl std::fmt::Debug for TokenSource {
    /// Never shows a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(REDACTED)"),
            TokenSource::File(path) => f.debug_tuple("File").field(path).finish(),
            TokenSource::Command(cmd) => f.debug_tuple("Command").field(cmd).finish(),
        }
    }
}

impl TokenSource {
    /// Whether each connection may get a new token (file or command), so a
    /// 401 is worth another try.
    pub fn renews(&self) -> bool {
        !matches!(self, TokenSource::Fixed(_))
    }

    /// The current token.
    ///
    /// # Errors
    /// [`ClientError::Token`]: the file cannot be read, the command fails,
    /// or the token is empty.
    pub async fn get(&self) -> Result<String, ClientError> {
        let fail = |message: String| ClientError::Token { message };
        let token = match self {
            TokenSource::Fixed(token) => token.clone(),
            TokenSource::File(path) => {
                let mut text = String::new();
                tokio::fs::File::open(path)
                    .await
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
                    .take(MAX_TOKEN)
                    .read_to_string(&mut text)
                    .await
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                text
            }
            TokenSource::Command(command) => run_command(command).await.map_err(fail)?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(fail(match self {
                TokenSource::Fixed(_) => "the token is empty".into(),
                TokenSource::File(path) => format!("{} is empty", path.display()),
                TokenSource::Command(cmd) => format!("--token-command {cmd:?} printed nothing"),
            }));
        }
        if token.contains(|c: char| c.is_ascii_control() || c == ' ') {
            return Err(fail(
                "the token contains spaces or control characters".into(),
            ));
        }
        Ok(token.to_string())
    }
}

/// Runs `command` with `sh -c` and returns its stdout.
async fn run_command(command: &str) -> Result<String, String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run --token-command {command:?}: {e}"))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let run = async {
        let mut out = String::new();
        (&mut stdout)
            .take(MAX_TOKEN)
            .read_to_string(&mut out)
            .await
            .map_err(|e| format!("reading the output of --token-command failed: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("--token-command {command:?} failed: {e}"))?;
        if !status.success() {
            return Err(format!("--token-command {command:?} exited with {status}"));
        }
        Ok(out)
    };
    tokio::time::timeout(COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| format!("--token-command {command:?} took longer than {COMMAND_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_come_trimmed_from_each_source() {
        assert_eq!(
            TokenSource::Fixed(" a.b.c\n".into()).get().await.unwrap(),
            "a.b.c"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "x.y.z\n").unwrap();
        assert_eq!(
            TokenSource::File(path.clone()).get().await.unwrap(),
            "x.y.z"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(TokenSource::File(path).get().await.is_err());
        assert_eq!(
            TokenSource::Command("echo '  c.m.d  '".into())
                .get()
                .await
                .unwrap(),
            "c.m.d"
        );
        let e = TokenSource::Command("exit 3".into())
            .get()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exited"), "{e}");
        assert!(TokenSource::Fixed("a b".into()).get().await.is_err());
        assert_eq!(
            format!("{:?}", TokenSource::Fixed("secret".into())),
            "Fixed(REDACTED)"
        );
    }
}
