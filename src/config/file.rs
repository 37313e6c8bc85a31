//! The `--config` TOML file and the merge of all sources: flags over
//! environment over file over defaults.

use std::path::PathBuf;

use super::{Cli, CliError, Command, ConfigError, FileSpec};

/// Parses the process's command line, merging the `--config` file into
/// `serve`'s settings (flags over environment over file over defaults) and
/// checking them.
///
/// # Errors
/// See `parse_cli_from`.
pub fn parse_cli() -> Result<Cli, CliError> {
    parse_cli_from(std::env::args_os())
}

/// [`parse_cli`] over the given arguments (the first is the program name).
///
/// How the file is merged: after a first parse, every file key names a
/// `serve` option by its long name; where that option came from neither a
/// flag nor the environment, the file's value is added to the arguments as
/// `--key=value`, and the whole line is parsed again. So the file goes
/// through the same value parsers as flags, and an option is declared once.
///
/// # Errors
/// [`CliError::Clap`] for what clap rejects; [`CliError::Config`] for an
/// unreadable or bad config file and out-of-range values.
pub(crate) fn parse_cli_from<I, T>(argv: I) -> Result<Cli, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    use clap::{CommandFactory, FromArgMatches};
    let mut argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    let mut matches = Cli::command().try_get_matches_from(&argv)?;
    if let Some(("serve", serve)) = matches.subcommand() {
        if let Some(path) = serve.get_one::<PathBuf>("config").cloned() {
            let extra = file_arguments(&path, serve)?;
            if !extra.is_empty() {
                let at = argv
                    .iter()
                    .position(|a| a == "serve")
                    .map_or(argv.len(), |i| i + 1);
                let after_dashdash = argv.iter().any(|a| a == "--");
                let (flags, files): (Vec<_>, Vec<_>) = extra.into_iter().partition(|a| a.is_flag);
                argv.splice(at..at, flags.into_iter().map(|a| a.text.into()));
                if !files.is_empty() && !after_dashdash {
                    argv.push("--".into());
                }
                argv.extend(files.into_iter().map(|a| a.text.into()));
                matches =
                    Cli::command()
                        .try_get_matches_from(&argv)
                        .map_err(|e| ConfigError::File {
                            path: path.clone(),
                            message: first_line(&e),
                        })?;
            }
        }
    }
    let cli = Cli::from_arg_matches(&matches)?;
    if let Command::Serve(config) = &cli.command {
        config.check()?;
    }
    Ok(cli)
}

/// One argument taken from the config file.
struct FileArgument {
    /// `--key=value`, `--flag`, or a `[NAME=]PATH` of `files`.
    text: String,
    /// An option rather than a file to follow.
    is_flag: bool,
}

/// clap's message without its `error: ` prefix and usage lines.
fn first_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// Reads the config file and returns, as arguments, the values of the
/// options that neither a flag nor the environment set.
fn file_arguments(
    path: &PathBuf,
    given: &clap::ArgMatches,
) -> Result<Vec<FileArgument>, ConfigError> {
    use clap::parser::ValueSource;
    use clap::{ArgAction, CommandFactory};

    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let bad = |message: String| ConfigError::File {
        path: path.clone(),
        message,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.message().trim().to_string()))?;
    let cli = Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("the serve subcommand exists");
    let mut out = Vec::new();
    for (raw_key, value) in table {
        let key = raw_key.replace('_', "-");
        let values: Vec<String> = match &value {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Integer(i) => vec![i.to_string()],
            toml::Value::Float(f) => vec![f.to_string()],
            toml::Value::Boolean(b) => vec![b.to_string()],
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => Some(s.clone()),
                    toml::Value::Integer(i) => Some(i.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("`{raw_key}` must be an array of strings")))?,
            other => return Err(bad(format!("`{raw_key}` has an unsupported value {other}"))),
        };
        if key == "files" {
            if given.get_many::<FileSpec>("files").is_none() {
                out.extend(values.into_iter().map(|text| FileArgument {
                    text,
                    is_flag: false,
                }));
            }
            continue;
        }
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| bad(format!("unknown key `{raw_key}`")))?;
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let many = matches!(arg.get_action(), ArgAction::Append);
        if values.len() != 1 && !many {
            return Err(bad(format!("`{raw_key}` takes one value, not an array")));
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            match values[0].as_str() {
                "true" => out.push(FileArgument {
                    text: format!("--{key}"),
                    is_flag: true,
                }),
                "false" => {}
                _ => return Err(bad(format!("`{raw_key}` must be true or false"))),
            }
            continue;
        }
        for v in values {
            let text = format!("--{key}={v}");
            // Checked alone first, so that the error names the file's key.
            serve
                .clone()
                .no_binary_name(true)
                .try_get_matches_from([&text])
                .map_err(|e| bad(format!("`{raw_key}`: {}", first_line(&e))))?;
            out.push(FileArgument {
                text,
                is_flag: true,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{FileSpec, ServeConfig};

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "addr = \"0.0.0.0:9\"\nheartbeat = \"2s\"\nmax_line = \"1KiB\"\nhistory = 5\nmetrics-public = true\ncors-origin = [\"http://a\", \"http://b\"]\nfiles = [\"a=/x.log\", \"/y/*.log\"]\n",
        )
        .unwrap();
        let path = path.to_str().unwrap();
        let c = ServeConfig::from_args(["--config", path, "--history", "7"]).unwrap();
        assert_eq!(c.addr, "0.0.0.0:9");
        assert_eq!(c.heartbeat, Duration::from_secs(2));
        assert_eq!(c.max_line, 1024);
        assert_eq!(c.history, 7);
        assert_eq!(c.backlog, 10);
        assert!(c.metrics_public);
        assert_eq!(c.cors_origins, ["http://a", "http://b"]);
        assert_eq!(c.files.len(), 2);
        assert_eq!(c.files[0].name.as_deref(), Some("a"));
        let c = ServeConfig::from_args(["--config", path, "/z.log"]).unwrap();
        assert_eq!(c.files, [FileSpec::parse("/z.log")]);
        let c = ServeConfig::from_args(["--config", path, "--cors-origin", "http://c"]).unwrap();
        assert_eq!(c.cors_origins, ["http://c"]);
    }

    #[test]
    fn bad_config_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        for (text, expected) in [
            ("nope = 1", "unknown key `nope`"),
            ("config = \"x\"", "unknown key `config`"),
            ("heartbeat = \"soon\"", "`heartbeat`"),
            ("history = \"many\"", "`history`"),
            (
                "metrics_public = \"yes\"",
                "`metrics_public` must be true or false",
            ),
            ("addr = [\"a\", \"b\"]", "takes one value"),
            ("addr = [", "config file"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = ServeConfig::from_args(["--config", path.to_str().unwrap()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let missing = dir.path().join("none.toml");
        assert!(
            ServeConfig::from_args(["--config", missing.to_str().unwrap()])
                .unwrap_err()
                .to_string()
                .starts_with("cannot read config file")
        );
    }
}
