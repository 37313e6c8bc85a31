//! What operators ship and run, checked on the real binary: shell
//! completions (parsed and driven by the real shells), the man page
//! (rendered by groff and man), `tailcast health` against a real server and
//! against fake ones that answer badly, and `--log-format json` on stderr.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{append, Server, DEADLINE};

fn tailcast() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailcast"));
    // A TAILCAST_ADDR or TAILCAST_LOG_FORMAT of the developer's shell must
    // not change what the tests see.
    cmd.env_remove("TAILCAST_ADDR")
        .env_remove("TAILCAST_TLS_CERT")
        .env_remove("TAILCAST_LOG_FORMAT")
        .env_remove("TAILCAST_LOG");
    cmd
}

/// Runs the binary with `args` and a watchdog of [`DEADLINE`].
fn run(args: &[&str]) -> Output {
    run_cmd(tailcast().args(args))
}

fn run_cmd(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).unwrap();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).unwrap();
        buf
    });
    let status = wait_with_deadline(&mut child);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the command did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails with a clear message when a tool the test drives is missing.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(
        found,
        "`{tool}` is needed by this test: apt-get install {package} (bash .ci/run installs it)"
    );
}

// --- completions ------------------------------------------------------------

fn completions(shell: &str, dir: &Path) -> std::path::PathBuf {
    let out = run(&["completions", shell]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    for word in ["serve", "listen", "publish", "health", "log-format"] {
        assert!(script.contains(word), "{shell} script lacks {word}");
    }
    let path = dir.join(format!("tailcast.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// Runs bash's completion function as the shell would on `words` (the last
/// one being completed) and returns the candidates.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}' && COMP_WORDS=({}) && COMP_CWORD={cword} && \
         _tailcast tailcast '{}' '{}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words[cword],
        words[cword - 1],
    );
    let out = run_cmd(Command::new("bash").arg("-c").arg(program));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_parses_and_completes_subcommands_flags_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let script = completions("bash", dir.path());
    let check = run_cmd(Command::new("bash").arg("-n").arg(&script));
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
    assert_eq!(bash_complete(&script, &["tailcast", "se"]), ["serve"]);
    assert_eq!(
        bash_complete(&script, &["tailcast", "comp"]),
        ["completions"]
    );
    assert_eq!(
        bash_complete(&script, &["tailcast", "serve", "--log-f"]),
        ["--log-format"]
    );
    assert_eq!(
        bash_complete(&script, &["tailcast", "serve", "--log-format", ""]),
        ["text", "json"]
    );
    assert_eq!(
        bash_complete(&script, &["tailcast", "completions", "z"]),
        ["zsh"]
    );
}

#[test]
fn zsh_and_fish_completions_parse_and_fish_completes() {
    require("zsh", "zsh");
    require("fish", "fish");
    let dir = tempfile::tempdir().unwrap();
    let zsh = completions("zsh", dir.path());
    let check = run_cmd(Command::new("zsh").arg("-n").arg(&zsh));
    assert!(check.status.success(), "zsh -n: {}", text(&check.stderr));
    let fish = completions("fish", dir.path());
    let check = run_cmd(Command::new("fish").arg("--no-execute").arg(&fish));
    assert!(check.status.success(), "fish -n: {}", text(&check.stderr));
    let out = run_cmd(Command::new("fish").arg("-c").arg(format!(
        "source '{}'; complete -C 'tailcast serve --log-format '",
        fish.display()
    )));
    let offered: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(offered, ["json", "text"], "{}", text(&out.stderr));
}

#[test]
fn powershell_and_elvish_completions_register_a_completer() {
    let dir = tempfile::tempdir().unwrap();
    let ps = std::fs::read_to_string(completions("powershell", dir.path())).unwrap();
    assert!(ps.contains("Register-ArgumentCompleter -Native -CommandName 'tailcast'"));
    let elvish = std::fs::read_to_string(completions("elvish", dir.path())).unwrap();
    assert!(elvish.contains("set edit:completion:arg-completer[tailcast]"));
}

#[test]
fn unknown_shell_is_refused_with_the_list_of_shells() {
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "error: invalid value 'tcsh' for '<SHELL>' \
         (possible values: bash, elvish, fish, powershell, zsh)\n"
    );
}

/// Runs `tailcast ARGS` with stdout on a pipe whose reader is already
/// closed, so its first write fails with EPIPE, and returns its exit
/// status and stderr.
fn run_into_closed_pipe(args: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    // Open the FIFO for reading and writing (so the writer's open does not
    // block), add a write-only descriptor, then close the reading one.
    let program = format!(
        "mkfifo '{f}' && exec 3<>'{f}' && exec 4>'{f}' && exec 3<&- && \
         '{bin}' {args} >&4 2>'{d}/err'; echo $?",
        f = fifo.display(),
        d = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_tailcast"),
    );
    let out = run_cmd(Command::new("bash").arg("-c").arg(program));
    let status = text(&out.stdout).trim().parse().unwrap();
    (
        status,
        std::fs::read_to_string(dir.path().join("err")).unwrap(),
    )
}

#[test]
fn completions_and_man_into_a_closed_pipe_exit_0_quietly() {
    for args in ["completions bash", "man"] {
        let (status, err) = run_into_closed_pipe(args);
        assert_eq!((status, err.as_str()), (0, ""), "tailcast {args}");
    }
}

// --- man page ---------------------------------------------------------------

#[test]
fn man_page_is_roff_that_groff_and_man_render_with_every_subcommand() {
    require("groff", "groff-base");
    require("man", "man-db");
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let roff = text(&out.stdout);
    assert!(roff.contains(".TH tailcast 1"), "{roff}");
    // groff with every warning on, output discarded: it must not complain.
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    groff.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let groff = groff.wait_with_output().unwrap();
    assert!(groff.status.success());
    assert_eq!(text(&groff.stderr), "", "groff warnings");

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("tailcast.1");
    std::fs::write(&page, &out.stdout).unwrap();
    let rendered = run_cmd(
        Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "200")
            .env("MAN_KEEP_FORMATTING", "0")
            .env("PAGER", "cat"),
    );
    assert!(rendered.status.success(), "{}", text(&rendered.stderr));
    let rendered = without_overstrike(&text(&rendered.stdout));
    for section in [
        "NAME",
        "SYNOPSIS",
        "COMMANDS",
        "TAILCAST SERVE",
        "TAILCAST LISTEN",
        "TAILCAST PUBLISH",
        "TAILCAST GENERATE",
        "TAILCAST HEALTH",
        "TAILCAST COMPLETIONS",
        "ENVIRONMENT",
        "EXIT STATUS",
        "VERSION",
    ] {
        assert!(
            rendered.lines().any(|l| l.trim() == section),
            "no {section} heading in:\n{rendered}"
        );
    }
    for flag in [
        "--log-format <FORMAT>",
        "--addr <HOST:PORT>",
        "TAILCAST_LOG_FORMAT",
        "--last-event-id <ID>",
        "json: One JSON object per line",
    ] {
        assert!(rendered.contains(flag), "{flag} missing from:\n{rendered}");
    }
}

/// man's output for a pager: bold is `X\x08X`, underline `_\x08X`; keeps
/// the visible characters.
fn without_overstrike(text: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

// --- health -----------------------------------------------------------------

#[test]
fn health_exits_0_and_prints_the_report_of_a_running_server() {
    let server = Server::start(&[]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let base = server.url("");
    let by_flag = format!("0.0.0.0:{port}");
    for (how, args, env) in [
        ("health URL", vec![server.url("/health")], vec![]),
        ("base URL", vec![base], vec![]),
        ("--addr 0.0.0.0", vec!["--addr".into(), by_flag], vec![]),
        (
            "TAILCAST_ADDR",
            vec![],
            vec![("TAILCAST_ADDR", format!("0.0.0.0:{port}"))],
        ),
    ] {
        let out = run_cmd(tailcast().arg("health").args(&args).envs(env));
        assert!(out.status.success(), "{how}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{how}: {}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["status"], "ok", "{how}");
        assert_eq!(report["version"], env!("CARGO_PKG_VERSION"), "{how}");
    }
}

/// A `tailcast serve` over HTTPS with a self-signed certificate for a
/// name that is not loopback (as a real deployment's would be); killed
/// when dropped.
struct TlsServer {
    child: Child,
    port: String,
    cert: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let pair =
            rcgen::generate_simple_self_signed(vec!["tailcast.example".to_string()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, pair.cert.pem()).unwrap();
        std::fs::write(&key, pair.key_pair.serialize_pem()).unwrap();
        let mut child = tailcast()
            .args(["serve", "--addr", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let port = common::listening_address(&mut child, "https")
            .strip_prefix("127.0.0.1:")
            .expect("listening on 127.0.0.1")
            .to_string();
        TlsServer {
            child,
            port,
            cert,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn health_asks_https_when_the_server_has_a_certificate_and_verifies_given_urls() {
    let server = TlsServer::start();
    let port = &server.port;
    let cert = server.cert.to_str().unwrap();
    // As the container's HEALTHCHECK runs it: everything from the
    // server's own environment.
    let out = run_cmd(
        tailcast()
            .arg("health")
            .env("TAILCAST_ADDR", format!("0.0.0.0:{port}"))
            .env("TAILCAST_TLS_CERT", cert),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "ok");
    let out = run(&[
        "health",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--tls-cert",
        cert,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Plain HTTP to the HTTPS port is not healthy.
    let out = run(&["health", "--addr", &format!("127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: "),
        "{}",
        text(&out.stderr)
    );
    // A URL the user gives is verified: this certificate names
    // tailcast.example and no CA vouches for it.
    let url = format!("https://127.0.0.1:{port}/health");
    let out = run(&["health", &url, "--tls-cert", cert]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("error: cannot reach {url}: ")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn health_fails_with_one_error_line_when_nothing_listens() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = run(&["health", &format!("http://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: cannot reach http://127.0.0.1:{port}/health: "
        )),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}

/// A one-shot fake server on loopback: reads one request head, writes
/// `response` (or nothing and holds the socket when `None`), and returns
/// the request head it got.
fn fake_server(response: Option<Vec<u8>>) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut stream = stream;
        match response {
            Some(bytes) => {
                let _ = stream.write_all(&bytes);
            }
            // Hold the connection until the client gives up.
            None => {
                let _ = reader.read(&mut [0; 1]);
            }
        }
        head
    });
    (url, handle)
}

fn http_response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn health_fails_unless_the_answer_is_200_with_status_ok() {
    let huge = format!("{{\"status\":\"ok\",\"pad\":\"{}\"}}", "x".repeat(100_000));
    for (what, response, expected) in [
        (
            "degraded",
            http_response(
                "503 Service Unavailable",
                "",
                r#"{"status":"degraded","version":"0.1.0"}"#,
            ),
            "answered 503 Service Unavailable: status \"degraded\"",
        ),
        (
            "ok but not 200",
            http_response("500 Internal Server Error", "", r#"{"status":"ok"}"#),
            "answered 500 Internal Server Error: status \"ok\"",
        ),
        (
            "not JSON",
            http_response("200 OK", "", "<html>proxy error</html>"),
            "answered 200 OK: not a JSON health report",
        ),
        (
            "no status",
            http_response("200 OK", "", r#"{"version":"0.1.0"}"#),
            "answered 200 OK: no \"status\"",
        ),
        (
            "redirect (not followed)",
            http_response("302 Found", "location: http://127.0.0.1:9/health\r\n", "{}"),
            "answered 302 Found: no \"status\"",
        ),
        (
            "too large",
            http_response("200 OK", "", &huge),
            "answer larger than 65536 bytes",
        ),
    ] {
        let (url, server) = fake_server(Some(response));
        let out = run(&["health", &url]);
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.starts_with("error: "), "{what}: {err}");
        assert!(err.contains(expected), "{what}: {err}");
        let head = server.join().unwrap();
        assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    }
    // The same fake server, answering well, passes: the checks above fail
    // for what they name, not for the fake.
    let (url, server) = fake_server(Some(http_response("200 OK", "", r#"{"status":"ok"}"#)));
    let out = run(&["health", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"status\":\"ok\"}\n");
    server.join().unwrap();
}

#[test]
fn health_gives_up_after_its_timeout_on_a_server_that_never_answers() {
    let (url, server) = fake_server(None);
    let start = Instant::now();
    let out = run(&["health", "--timeout", "300ms", &url]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: cannot reach "), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    server.join().unwrap();
}

#[test]
fn health_refuses_bad_urls_and_addresses_before_connecting() {
    for (args, expected) in [
        (&["health", "ftp://127.0.0.1/"][..], "error: invalid URL: "),
        (&["health", "not a url"], "error: invalid URL: "),
        (&["health", "--addr", "no-port"], "error: invalid --addr: "),
        (&["health", "--timeout", "0s"], "error: invalid --timeout: "),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with(expected), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

// --- log format ---------------------------------------------------------------

/// A `tailcast serve` whose stderr lines are collected as they come.
struct LoggingServer {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl LoggingServer {
    fn start(cmd: &mut Command) -> LoggingServer {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailcast");
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let mut reader = BufReader::new(stdout);
            while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                sink.clear();
            }
        });
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LoggingServer {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits until a stderr line contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.seen.iter().any(|l| l.contains(needle)) {
            let left = DEADLINE
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("no log line with {needle:?}: {:?}", self.seen));
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no log line with {needle:?}: {:?}", self.seen),
            }
        }
    }

    /// SIGTERM, then every stderr line up to the exit.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let status = wait_with_deadline(&mut self.child);
        assert!(status.success(), "{status}");
        // The reader thread ends at EOF, which the exit brings.
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            self.seen.push(line);
        }
        self.seen
    }
}

/// Environment variables set for one run.
type Env = Vec<(&'static str, &'static str)>;

/// The JSON objects of `lines`, failing on any line that is not one.
fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

#[test]
fn log_format_json_writes_one_object_per_line_from_flag_env_or_config() {
    let dir = tempfile::tempdir().unwrap();
    // A path that JSON must escape: a quote, a backslash, a tab.
    let odd = dir.path().join("we\"ird\\na\tme.log");
    append(&odd, "one\n");
    let missing = dir.path().join("later.log");
    let config = dir.path().join("tailcast.toml");
    std::fs::write(&config, "log-format = \"json\"\n").unwrap();
    let files = [
        format!("odd={}", odd.display()),
        missing.display().to_string(),
    ];
    let ways: [(&str, Vec<String>, Env); 3] = [
        (
            "--log-format json",
            vec!["--log-format".into(), "json".into()],
            vec![],
        ),
        (
            "TAILCAST_LOG_FORMAT",
            vec![],
            vec![("TAILCAST_LOG_FORMAT", "json")],
        ),
        (
            "config file",
            vec!["--config".into(), config.display().to_string()],
            vec![],
        ),
    ];
    for (how, args, env) in ways {
        let mut server = LoggingServer::start(
            tailcast()
                .args(["serve", "--addr", "127.0.0.1:0"])
                .args(&args)
                .args(&files)
                .envs(env),
        );
        server.wait_for("following");
        server.wait_for("waiting for file");
        let lines = server.stop();
        let objects = json_lines(&lines);
        for object in &objects {
            for field in ["timestamp", "level", "target", "fields"] {
                assert!(object.get(field).is_some(), "{how}: no {field} in {object}");
            }
            assert!(object["fields"]["message"].is_string(), "{how}: {object}");
            assert!(
                chrono::DateTime::parse_from_rfc3339(object["timestamp"].as_str().unwrap()).is_ok(),
                "{how}: {object}"
            );
        }
        let following = objects
            .iter()
            .find(|o| o["fields"]["message"] == "following")
            .unwrap_or_else(|| panic!("{how}: {lines:?}"));
        assert_eq!(following["level"], "INFO");
        assert_eq!(following["target"], "tailcast::streams");
        assert_eq!(following["fields"]["path"], odd.display().to_string());
        let waiting = objects
            .iter()
            .find(|o| o["fields"]["message"] == "waiting for file")
            .unwrap();
        assert_eq!(waiting["fields"]["path"], missing.display().to_string());
        assert!(
            objects
                .iter()
                .any(|o| o["target"] == "tailcast::shutdown" && o["level"] == "INFO"),
            "{how}: the shutdown line is JSON too: {lines:?}"
        );
    }
}

#[test]
fn log_format_text_is_the_default_and_a_flag_beats_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, "one\n");
    for (how, args, env) in [
        ("default", vec![], vec![]),
        (
            "flag over env",
            vec!["--log-format", "text"],
            vec![("TAILCAST_LOG_FORMAT", "json")],
        ),
    ] {
        let mut server = LoggingServer::start(
            tailcast()
                .args(["serve", "--addr", "127.0.0.1:0"])
                .args(&args)
                .arg(&log)
                .envs(env),
        );
        server.wait_for("following");
        let lines = server.stop();
        let following = lines.iter().find(|l| l.contains("following")).unwrap();
        assert!(
            following.contains(" INFO tailcast::streams: following path="),
            "{how}: {following:?}"
        );
        assert!(
            lines.iter().all(|l| !l.starts_with('{')),
            "{how}: {lines:?}"
        );
    }
}

#[test]
fn bad_log_format_is_one_error_line_naming_the_choices() {
    let out = run(&["serve", "--addr", "127.0.0.1:0", "--log-format", "yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: invalid value 'yaml' for '--log-format <FORMAT>' (possible values: text, json)\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "log-format = \"yaml\"\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: config file "), "{err}");
    assert!(err.contains("`log-format`"), "{err}");
}
