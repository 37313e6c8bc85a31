//! Hardening, round 2, files and client: followed files that are symbolic
//! links, FIFOs or devices are refused unless allowed; `--data-dir` files
//! are owner-only and never written through a symbolic link; `tailcast
//! listen` escapes control characters and bounds what it buffers.

mod client_support;
mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The `state` of log stream `name` in `/api/streams`, once it is no
/// longer `waiting` (the follower has looked at its file).
async fn settled_state(server: &Server, name: &str) -> String {
    eventually(&format!("{name} looked at"), || async {
        let state = stream_info(server, name).await?["state"]
            .as_str()?
            .to_string();
        (state != "waiting").then_some(state)
    })
    .await
}

/// `dir/logs` with `real.log` (one line) and `dir/secret.txt`, linked to
/// as `logs/link.log`.
fn glob_dir_with_link(dir: &Path) {
    std::fs::create_dir(dir.join("logs")).unwrap();
    append(&dir.join("logs/real.log"), "real-0\n");
    append(&dir.join("secret.txt"), "SECRET-LINE\n");
    symlink(dir.join("secret.txt"), dir.join("logs/link.log")).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_symlink_to_a_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    glob_dir_with_link(dir.path());
    let server = Server::start_in(dir, &["{dir}/logs/*.log"], Stdio::null(), &[]);
    wait_following(&server, "log:real.log").await;
    let state = settled_state(&server, "log:link.log").await;
    assert!(
        state.starts_with("error: refused") && state.contains("symbolic link"),
        "a symlink matched by a glob must be refused, state: {state}"
    );
    append(&server.path("secret.txt"), "SECRET-2\n");
    append_and_wait_published(&server, "logs/real.log", "real.log", "sentinel").await;
    assert_eq!(newest_line(&server, "link.log").await, None);
    server.wait_stderr("symbolic link").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glob_symlink_is_followed_with_follow_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    glob_dir_with_link(dir.path());
    // As a config-file key (the device test below gives the flag).
    append(&dir.path().join("c.toml"), "follow-symlinks = true\n");
    let server = Server::start_in(
        dir,
        &["{dir}/logs/*.log", "--config", "{dir}/c.toml"],
        Stdio::null(),
        &[],
    );
    wait_published(&server, "link.log", "SECRET-LINE").await;
    append_and_wait_published(&server, "secret.txt", "link.log", "more").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_in_a_glob_dir_is_refused_and_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    append(&dir.path().join("logs/real.log"), "real-0\n");
    mkfifo(&dir.path().join("logs/pipe.log"));
    let mut server = Server::start_in(dir, &["{dir}/logs/*.log"], Stdio::null(), &[]);
    append_and_wait_published(&server, "logs/real.log", "real.log", "one").await;
    let state = settled_state(&server, "log:pipe.log").await;
    assert!(
        state.starts_with("error: refused") && state.contains("FIFO"),
        "a FIFO must be refused, state: {state}"
    );
    append_and_wait_published(&server, "logs/real.log", "real.log", "two").await;
    let status = server.terminate(Duration::from_secs(20)).await;
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_to_a_device_is_refused_even_with_follow_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    append(&dir.path().join("logs/real.log"), "real-0\n");
    symlink("/dev/zero", dir.path().join("logs/zero.log")).unwrap();
    let server = Server::start_in(
        dir,
        &["{dir}/logs/*.log", "--follow-symlinks"],
        Stdio::null(),
        &[],
    );
    let state = settled_state(&server, "log:zero.log").await;
    assert!(
        state.starts_with("error: refused") && state.contains("device"),
        "a link to a device must be refused, state: {state}"
    );
    append_and_wait_published(&server, "logs/real.log", "real.log", "one").await;
    assert_eq!(newest_line(&server, "zero.log").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_symlink_on_the_command_line_is_followed_but_not_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("target.txt"), "first\n");
    symlink(dir.path().join("target.txt"), dir.path().join("app.log")).unwrap();
    mkfifo(&dir.path().join("pipe.log"));
    let server = Server::start_in(
        dir,
        &["{dir}/app.log", "{dir}/pipe.log"],
        Stdio::null(),
        &[],
    );
    wait_published(&server, "app.log", "first").await;
    append_and_wait_published(&server, "target.txt", "app.log", "second").await;
    let state = settled_state(&server, "log:pipe.log").await;
    assert!(
        state.starts_with("error: refused") && state.contains("FIFO"),
        "a FIFO named on the command line must be refused, state: {state}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Starts a server with `--data-dir {dir}/data` following `{dir}/app.log`
/// and waits until its follower checkpoints were saved.
async fn data_dir_server(dir: tempfile::TempDir) -> Server {
    append(&dir.path().join("app.log"), "zero\n");
    let server = Server::start_in(
        dir,
        &["--data-dir", "{dir}/data", "{dir}/app.log"],
        Stdio::null(),
        &[],
    );
    append_and_wait_published(&server, "app.log", "app.log", "one").await;
    let saved = server.path("data/checkpoints.json");
    eventually("checkpoints.json saved", || async {
        let text = std::fs::read_to_string(&saved).ok()?;
        text.contains("app.log").then_some(())
    })
    .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_files_are_owner_only() {
    let server = data_dir_server(tempfile::tempdir().unwrap()).await;
    let data = server.path("data");
    let mut modes = vec![
        ("data".to_string(), mode(&data)),
        ("data/log".to_string(), mode(&data.join("log"))),
        ("data/LOCK".to_string(), mode(&data.join("LOCK"))),
        (
            "data/checkpoints.json".to_string(),
            mode(&data.join("checkpoints.json")),
        ),
    ];
    for entry in std::fs::read_dir(data.join("log")).unwrap() {
        let path = entry.unwrap().path();
        modes.push((path.display().to_string(), mode(&path)));
    }
    assert!(modes.len() > 4, "no segment in {modes:?}");
    let wrong: Vec<String> = modes
        .iter()
        .filter(|(name, m)| {
            let want = if name.ends_with("data") || name.ends_with("log") {
                0o700
            } else {
                0o600
            };
            *m != want
        })
        .map(|(name, m)| format!("{name} {m:o}"))
        .collect();
    assert!(wrong.is_empty(), "not owner-only: {wrong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_symlinks_at_checkpoint_paths_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let victim_tmp = dir.path().join("victim-tmp.txt");
    let victim_saved = dir.path().join("victim-saved.txt");
    append(&victim_tmp, "untouched\n");
    append(&victim_saved, "untouched\n");
    symlink(&victim_tmp, data.join("checkpoints.json.tmp")).unwrap();
    symlink(&victim_saved, data.join("checkpoints.json")).unwrap();
    let server = data_dir_server(dir).await;
    for victim in [&victim_tmp, &victim_saved] {
        assert_eq!(
            std::fs::read_to_string(victim).unwrap(),
            "untouched\n",
            "{} was written through a symbolic link",
            victim.display()
        );
    }
    let saved = server.path("data/checkpoints.json");
    assert!(!std::fs::symlink_metadata(&saved)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Answers one SSE request with `body` after the head, then 204s.
async fn scripted_stream(body: &str) -> client_support::Scripted {
    client_support::Scripted::start(vec![
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n\
             retry: 10\n\n{body}"
        ),
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".into(),
    ])
    .await
}

async fn listen_to_end(args: &[&str]) -> (std::process::ExitStatus, Vec<u8>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tailcast"))
        .arg("listen")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(client_support::WAIT, output)
        .await
        .expect("listen did not exit")
        .unwrap();
    (
        output.status,
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const NASTY: &str = "red \u{1b}[31mX\u{1b}[0m bell\u{7} del\u{7f} csi\u{9b}2J tab\tend";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_escapes_control_characters_unless_raw() {
    let server = scripted_stream(&format!("data: {NASTY}\ndata: second line\n\n")).await;
    let (status, stdout, stderr) = listen_to_end(&[&server.url("/x")]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(stdout).unwrap(),
        "red \\x1b[31mX\\x1b[0m bell\\x07 del\\x7f csi\\u{9b}2J tab\tend\nsecond line\n"
    );

    let server = scripted_stream(&format!("data: {NASTY}\n\n")).await;
    let (status, stdout, stderr) = listen_to_end(&["--raw", &server.url("/x")]).await;
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, format!("{NASTY}\n").as_bytes());

    let server = scripted_stream(&format!("data: {NASTY}\n\n")).await;
    let (status, stdout, stderr) = listen_to_end(&["--json", &server.url("/x")]).await;
    assert!(status.success(), "{stderr}");
    let text = String::from_utf8(stdout).unwrap();
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "raw control characters in --json output: {text:?}"
    );
    let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(value["data"], NASTY);
}

/// A server that sends one endless `data:` line of `len` bytes, then an
/// event `after`, then holds the connection open.
async fn endless_line_server(len: usize) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            use tokio::io::AsyncReadExt;
            match socket.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let chunk = vec![b'x'; 64 * 1024];
        let start = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ";
        if socket.write_all(start).await.is_err() {
            return;
        }
        let mut sent = 0;
        while sent < len {
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
            sent += chunk.len();
        }
        let _ = socket.write_all(b"\n\ndata: after\n\n").await;
        std::future::pending::<()>().await;
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_bounds_an_endless_line() {
    let (url, task) = endless_line_server(128 * 1024 * 1024).await;
    let mut listen = client_support::listen(&[&url]);
    let pid = listen.child.id().unwrap();
    let line = listen.next_line().await.unwrap();
    let peak_kib: u64 = proc_status_field(pid, "VmHWM:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(
        line == "after",
        "the first line printed has {} bytes, not the event after the long line",
        line.len()
    );
    assert!(
        peak_kib < 64 * 1024,
        "listen peaked at {peak_kib} KiB for a 128 MiB line"
    );
    listen.wait_stderr("longer than").await;
    task.abort();
}
