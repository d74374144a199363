//! The command sandbox through the real binary: `sera-host sandbox check` and `sandbox run`, and
//! a suite of hostile commands, each of which must fail only itself (an observation), never the
//! host, and leave nothing behind.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sera_host::sandbox::Prepare;
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sera-host")
}

struct Ws(tempfile::TempDir);

fn workspace() -> Ws {
    let d = tempfile::Builder::new()
        .prefix("sera-sbx-test-")
        .tempdir()
        .unwrap();
    std::fs::write(
        d.path().join("hello.py"),
        "print('hello from the workspace')\n",
    )
    .unwrap();
    Ws(d)
}

impl Ws {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// `sandbox run --json`: (the parsed result, the exit status, wall time).
fn run_in(ws: &Path, extra: &[&str], command: &str) -> (Value, i32, Duration) {
    let start = Instant::now();
    let out = Command::new(bin())
        .args(["sandbox", "run", "--json", "--workspace"])
        .arg(ws)
        .args(extra)
        .arg("--")
        .arg(command)
        .output()
        .expect("sera-host runs");
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout {stdout:?} stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, out.status.code().unwrap_or(-1), took)
}

/// Processes whose command line contains `marker` (the host's view: all of them).
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("sandbox run") {
                found.push(format!("{pid}: {cmd}"));
            }
        }
    }
    found
}

#[test]
fn check_reports_every_layer_enforced_here() {
    let out = Command::new(bin())
        .args(["sandbox", "check", "--json"])
        .output()
        .unwrap();
    let layers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    let names: Vec<&str> = layers
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["userns", "netns", "mountns", "pidns", "landlock", "seccomp", "rlimits", "pids"]
    );
    for l in &layers {
        assert_eq!(l["ok"], true, "layer not enforced on this machine: {l}");
    }
    assert!(out.status.success());
    let text = Command::new(bin())
        .args(["sandbox", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("landlock  enforced"), "{text}");
    assert!(text.contains("every layer holds"), "{text}");
}

#[test]
fn a_plain_command_sees_the_workspace_at_slash_workspace() {
    let ws = workspace();
    let (v, code, _) = run_in(
        ws.path(),
        &[],
        "pwd; python3 hello.py; echo oops >&2; exit 3",
    );
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(
        v["output"], "/workspace\nhello from the workspace\noops\n",
        "stdout and stderr interleave in one stream"
    );
    // The observation text, as the model would see it.
    let out = Command::new(bin())
        .args(["sandbox", "run", "--workspace"])
        .arg(ws.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Your command ran successfully and did not produce any output."
    );
    assert!(out.status.success());
}

#[test]
fn the_process_is_alone_uid_zero_and_has_no_network_interfaces() {
    let ws = workspace();
    let (v, _, _) = run_in(
        ws.path(),
        &[],
        "id -u; echo $$; ls /sys/class/net 2>/dev/null | tr '\\n' ' '; echo; ls /proc | grep -c '^[0-9]'",
    );
    let out = v["output"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert_eq!(lines[1], "1", "bash is pid 1 of its own namespace: {out}");
    assert!(!lines[2].contains("eth"), "no host interfaces: {out}");
    let procs: u32 = lines[3].trim().parse().unwrap();
    assert!(
        procs <= 4,
        "only the command's own processes are visible: {out}"
    );
}

#[test]
fn hostile_fork_bomb_is_contained_and_gone_afterwards() {
    let ws = workspace();
    let marker = format!("sera-forkbomb-{}", std::process::id());
    let (v, _, took) = run_in(
        ws.path(),
        &["--timeout-s", "5", "--max-processes", "64"],
        &format!("exec -a {marker} bash -c 'b(){{ b | b & }}; b'"),
    );
    assert!(took < Duration::from_secs(15), "{took:?} {v}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&marker), Vec::<String>::new());
}

#[test]
fn hostile_memory_hog_fails_its_call() {
    let ws = workspace();
    let (v, code, took) = run_in(
        ws.path(),
        &["--memory-mib", "256"],
        "python3 -c 'x = bytearray(2 << 30); print(len(x))'",
    );
    assert_ne!(code, 0, "{v}");
    assert!(v["output"].as_str().unwrap().contains("MemoryError"), "{v}");
    assert!(took < Duration::from_secs(20));
}

#[test]
fn hostile_disk_filler_stops_at_the_file_size_limit() {
    let ws = workspace();
    let (v, code, took) = run_in(
        ws.path(),
        &["--file-size-mib", "8", "--timeout-s", "20"],
        "yes > big",
    );
    assert_eq!(code, 128 + libc::SIGXFSZ, "{v}");
    assert_eq!(v["timed_out"], false);
    let size = std::fs::metadata(ws.path().join("big")).unwrap().len();
    assert_eq!(size, 8 << 20);
    assert!(took < Duration::from_secs(20));
}

#[test]
fn hostile_sleep_is_cancelled_at_the_timeout() {
    let ws = workspace();
    let (v, code, took) = run_in(ws.path(), &["--timeout-s", "1"], "sleep 1000");
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(code, 128 + libc::SIGKILL);
    assert!(took < Duration::from_secs(6), "{took:?}");
    let out = Command::new(bin())
        .args(["sandbox", "run", "--timeout-s", "1", "--workspace"])
        .arg(ws.path())
        .args(["--", "sleep 1000"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "The command 'sleep 1000' was cancelled because it took more than 1 seconds. Please try a different command that completes more quickly."
    );
}

#[test]
fn hostile_background_process_is_gone_when_the_call_returns() {
    let ws = workspace();
    let (v, code, took) = run_in(
        ws.path(),
        &[],
        "nohup sleep 1000.4321 > /dev/null 2>&1 & setsid sleep 1000.4322 & echo started",
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], "started\n");
    assert!(took < Duration::from_secs(5), "{took:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(processes_with("1000.432"), Vec::<String>::new());
}

#[test]
fn hostile_reads_of_the_corpus_other_workspaces_and_home_fail() {
    let ws = workspace();
    let other = workspace();
    std::fs::write(other.path().join("secret.txt"), "other workspace").unwrap();
    let corpus_dir = tempfile::tempdir().unwrap();
    let corpus = corpus_dir.path().join("corpus.sqlite");
    std::fs::write(&corpus, "SQLite format 3").unwrap();
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let home_secret = home.join(format!(".sera-sandbox-test-{}", std::process::id()));
    std::fs::write(&home_secret, "home secret").unwrap();
    let cmd = format!(
        "cat {c}; cat {o}/secret.txt; cat {h}; ls {hd} | grep -c sera-sandbox-test; cat /etc/hostname >/dev/null && echo system-readable",
        c = corpus.display(),
        o = other.path().display(),
        h = home_secret.display(),
        hd = home.display(),
    );
    let (v, _, _) = run_in(ws.path(), &[], &cmd);
    let _ = std::fs::remove_file(&home_secret);
    let out = v["output"].as_str().unwrap();
    assert!(!out.contains("SQLite"), "{out}");
    assert!(!out.contains("other workspace"), "{out}");
    assert!(!out.contains("home secret"), "{out}");
    assert!(out.contains("No such file or directory"), "{out}");
    assert!(out.contains("system-readable"), "{out}");
}

#[test]
fn hostile_writes_outside_the_workspace_fail() {
    let ws = workspace();
    let marker = format!("sera-evil-{}", std::process::id());
    let (v, _, _) = run_in(
        ws.path(),
        &[],
        &format!(
            "for d in /usr /etc /opt / /root /var; do echo x > $d/{marker} 2>/dev/null && echo wrote $d; done; echo ok > /tmp/mine && cat /tmp/mine; echo kept > inside.txt"
        ),
    );
    let out = v["output"].as_str().unwrap();
    assert!(!out.contains("wrote"), "{out}");
    assert!(out.contains("ok"), "{out}");
    for d in ["/usr", "/etc", "/opt", "/", "/root", "/var"] {
        assert!(!Path::new(d).join(&marker).exists(), "{d}");
    }
    assert_eq!(
        std::fs::read_to_string(ws.path().join("inside.txt")).unwrap(),
        "kept\n"
    );
}

#[test]
fn hostile_network_to_a_local_listener_and_dns_fail() {
    let ws = workspace();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (v, _, _) = run_in(
        ws.path(),
        &["--timeout-s", "20"],
        &format!(
            "python3 -c \"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); print('CONNECTED')\nexcept OSError as e:\n    print('refused', e)\ntry:\n    socket.getaddrinfo('localhost.localdomain', 80); print('RESOLVED')\nexcept OSError as e:\n    print('no dns', e)\"; (echo hi > /dev/tcp/127.0.0.1/{port}) 2>&1 || echo bash-refused"
        ),
    );
    let out = v["output"].as_str().unwrap();
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(out.contains("bash-refused"), "{out}");
    // Nothing reached the listener.
    assert!(listener.accept().is_err());
}

#[test]
fn hostile_huge_output_is_capped_and_counted() {
    let ws = workspace();
    let (v, code, took) = run_in(
        ws.path(),
        &["--timeout-s", "30"],
        "head -c 100000000 /dev/zero | tr '\\0' a",
    );
    assert_eq!(code, 0, "{}", &v.to_string()[..200]);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["output_bytes"], 100_000_000);
    assert_eq!(v["output"].as_str().unwrap().len(), 1 << 20);
    assert!(took < Duration::from_secs(30), "{took:?}");
    // The observation cuts it further, saying how much was left out.
    let out = Command::new(bin())
        .args(["sandbox", "run", "--workspace"])
        .arg(ws.path())
        .args(["--", "head -c 100000000 /dev/zero | tr '\\0' a"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.len() < 110_000, "{}", text.len());
    assert!(
        text.contains("99900000 characters were elided"),
        "{}",
        &text[49_000..51_000]
    );
}

#[test]
fn hostile_closed_stdout_and_still_running_ends_at_the_timeout() {
    let ws = workspace();
    let (v, _, took) = run_in(
        ws.path(),
        &["--timeout-s", "2"],
        "echo before; exec >&- 2>&-; sleep 1000",
    );
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(v["output"], "before\n");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[test]
fn hostile_binary_and_non_utf8_output_arrive_as_text() {
    let ws = workspace();
    let (v, code, _) = run_in(
        ws.path(),
        &[],
        "head -c 20000 /dev/urandom; printf '\\nla caf\\xe9 \\xff\\xfe end\\n'",
    );
    assert_eq!(code, 0);
    let out = v["output"].as_str().unwrap();
    assert!(
        out.ends_with("la caf\u{FFFD} \u{FFFD}\u{FFFD} end\n"),
        "{:?}",
        &out[out.len() - 40..]
    );
}

#[test]
fn a_weaker_layer_is_refused_unless_named_and_names_are_checked() {
    let ws = workspace();
    let out = Command::new(bin())
        .args(["sandbox", "run", "--allow-weaker", "chroot", "--workspace"])
        .arg(ws.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`chroot` is not a sandbox layer"), "{err}");
}

/// The same checks as a user that is not root: RLIMIT_NPROC is the process limit then.
#[test]
fn as_a_non_root_user_every_layer_holds_too() {
    // SAFETY: a plain getter.
    if unsafe { libc::getuid() } != 0 {
        // Already unprivileged: the other tests are this test.
        return;
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        panic!("setpriv (util-linux) is needed to run as another user");
    };
    // The binary must be reachable by `nobody`: copy it to a world-readable place.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sera-host");
    std::fs::copy(bin(), &copy).unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.path(), ws.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&copy)
            .args(args)
            .env("HOME", dir.path());
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (child.wait().unwrap().code(), out, err)
    };
    let (code, out, err) = as_nobody(&["sandbox", "check"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("(uid 65534)"), "{out}");
    assert!(out.contains("RLIMIT_NPROC"), "{out}");
    let marker = format!("sera-nobody-bomb-{}", std::process::id());
    let ws_s = ws.display().to_string();
    let (_, out, err) = as_nobody(&[
        "sandbox",
        "run",
        "--json",
        "--timeout-s",
        "4",
        "--max-processes",
        "32",
        "--workspace",
        &ws_s,
        "--",
        &format!("id -u; exec -a {marker} bash -c 'b(){{ b | b & }}; b'"),
    ]);
    assert!(out.contains("\"output\""), "{out}{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    let (code, out, _) = as_nobody(&[
        "sandbox",
        "run",
        "--workspace",
        &ws_s,
        "--",
        "echo hi > f; cat f; id -u",
    ]);
    assert_eq!(code, Some(0));
    assert_eq!(out, "hi\n0\n");
}

#[test]
fn a_command_starts_with_default_signals_so_a_broken_pipe_ends_quietly() {
    let ws = workspace();
    // The helpers are Rust programs, which ignore SIGPIPE; bash must not inherit that.
    let (v, code, _) = run_in(ws.path(), &[], "trap -p; yes | head -2; echo done");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["output"], "y\ny\ndone\n", "{v}");
}

fn library_sandbox() -> sera_host::sandbox::Sandbox {
    sera_host::sandbox::Sandbox::new(
        PathBuf::from(env!("CARGO_BIN_EXE_sera-sandbox")),
        sera_host::sandbox::SandboxConfig::default(),
    )
    .expect("every layer here")
}

fn sandbox_preparing(prepare: Prepare) -> sera_host::sandbox::Sandbox {
    sera_host::sandbox::Sandbox::new(
        PathBuf::from(env!("CARGO_BIN_EXE_sera-sandbox")),
        sera_host::sandbox::SandboxConfig {
            prepare,
            ..Default::default()
        },
    )
    .expect("every layer here")
}

/// Whether a call ran in a sandbox prepared ahead of it (its setup marks say so).
fn was_prepared(out: &sera_host::sandbox::ExecOutcome) -> bool {
    out.phases.iter().any(|(name, _)| name == "handoff")
}

#[test]
fn a_prepared_sandbox_gives_the_command_what_the_whole_setup_gives() {
    // Everything a command can see of its sandbox, the same whichever way it was made: root,
    // mounts, limits, filters, identity, /tmp, and what it may write.
    let view = "pwd; id; ls -a /; ls -a /tmp; awk '{print $5, $6}' /proc/self/mountinfo | sort; \
        grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; ulimit -v -t -f -c -n; \
        echo $$; touch /workspace/w && echo wrote-workspace; touch /tmp/t && echo wrote-tmp; \
        touch /etc/x 2>&1; cat /etc/hostname >/dev/null && echo read-etc; ls /.host 2>&1; \
        cat mine";
    let mut views = Vec::new();
    for prepare in [Prepare::Always, Prepare::Never] {
        let sandbox = sandbox_preparing(prepare);
        // Two workspaces in turn: a prepared sandbox learns its workspace with the call.
        for name in ["a", "b"] {
            let ws = workspace();
            std::fs::write(ws.path().join("mine"), name).unwrap();
            let out = sandbox.run(ws.path(), view, None).unwrap();
            assert_eq!(
                out.exit_code,
                Some(0),
                "{prepare:?}: {}",
                String::from_utf8_lossy(&out.output)
            );
            assert_eq!(
                was_prepared(&out),
                prepare == Prepare::Always,
                "{:?}",
                out.phases
            );
            let text = String::from_utf8_lossy(&out.output).into_owned();
            assert!(
                text.ends_with(name),
                "{prepare:?} saw another workspace: {text}"
            );
            assert!(text.contains("wrote-workspace\nwrote-tmp\n"), "{text}");
            assert!(
                text.contains("Permission denied") || text.contains("Read-only"),
                "{text}"
            );
            assert!(ws.path().join("w").exists());
            views.push(text);
        }
        let layers = sandbox.layers();
        assert!(layers.iter().all(|l| l.ok), "{prepare:?}: {layers:?}");
    }
    assert_eq!(
        views[0].replace("mine", ""),
        views[2].replace("mine", ""),
        "prepared vs whole, workspace a"
    );
    assert_eq!(views[1], views[3], "prepared vs whole, workspace b");
}

/// Children of `parent` (pids).
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_prepared_sandbox_that_dies_before_its_call_costs_no_command() {
    for prepare in [Prepare::WhenReady, Prepare::Always] {
        let sandbox = sandbox_preparing(prepare);
        let ws = workspace();
        let first = sandbox.run(ws.path(), "echo one", None).unwrap();
        assert_eq!(first.output, b"one\n");
        // The zygote's only child, once the first command's process is reaped, is the next
        // command's prepared process.
        let zygote = sandbox.zygote_pid().expect("a zygote") as i32;
        let t = Instant::now();
        let mut prepared = children_of(zygote);
        while prepared.len() != 1 && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
            prepared = children_of(zygote);
        }
        assert_eq!(prepared.len(), 1, "{prepared:?}");
        // SAFETY: a signal to a process of this test's own sandbox.
        unsafe { libc::kill(prepared[0], libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(50));
        for word in ["two", "three"] {
            let out = sandbox
                .run(ws.path(), &format!("echo {word}"), None)
                .unwrap();
            assert_eq!(out.output, format!("{word}\n").as_bytes(), "{prepare:?}");
            assert_eq!(out.exit_code, Some(0));
            assert!(
                !was_prepared(&out),
                "{prepare:?}: preparing goes off once it failed"
            );
        }
        drop(sandbox);
    }
}

#[test]
fn by_default_a_call_takes_the_prepared_sandbox_once_it_is_ready() {
    let sandbox = sandbox_preparing(Prepare::WhenReady);
    let ws = workspace();
    let mut prepared = 0;
    for _ in 0..10 {
        // The teacher's turn between two commands is when the next sandbox is made (a few ms
        // of work; the margin is for a machine busy with other tests).
        std::thread::sleep(Duration::from_millis(100));
        let out = sandbox.run(ws.path(), "echo ok", None).unwrap();
        assert_eq!(out.output, b"ok\n");
        prepared += was_prepared(&out) as usize;
    }
    assert!(
        prepared >= 6,
        "only {prepared} of 10 calls found a prepared sandbox"
    );
}

/// The zygotes that are children of this test process.
fn my_zygotes() -> Vec<i32> {
    children_of(std::process::id() as i32)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains("__sandbox-zygote")
        })
        .collect()
}

#[test]
fn a_killed_helper_is_restarted_and_fails_no_later_command() {
    let sandbox = library_sandbox();
    let ws = workspace();
    let first = sandbox.run(ws.path(), "echo one", None).unwrap();
    assert_eq!(first.output, b"one\n");
    let zygotes = my_zygotes();
    assert!(
        !zygotes.is_empty(),
        "no zygote found among this process's children"
    );
    for z in &zygotes {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(*z, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(50));
    let second = sandbox.run(ws.path(), "echo two", None).unwrap();
    assert_eq!(second.output, b"two\n");
    assert_eq!(second.exit_code, Some(0));
}

#[test]
fn concurrent_commands_through_one_helper_keep_their_own_output_status_and_tmp() {
    for prepare in [Prepare::WhenReady, Prepare::Always, Prepare::Never] {
        concurrent_commands(sandbox_preparing(prepare));
    }
}

fn concurrent_commands(sandbox: sera_host::sandbox::Sandbox) {
    let sandbox = std::sync::Arc::new(sandbox);
    let ws = workspace();
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (sandbox, ws) = (sandbox.clone(), ws.path().to_path_buf());
            std::thread::spawn(move || {
                // Each writes a file to its /tmp and sleeps a little, so that they overlap;
                // another command's file must never be visible.
                let cmd = format!(
                    "echo {i} > /tmp/mine; sleep 0.{}; ls /tmp; cat /tmp/mine; exit {}",
                    i % 3,
                    i % 7
                );
                let out = sandbox.run(&ws, &cmd, None).unwrap();
                (i, out)
            })
        })
        .collect();
    for t in threads {
        let (i, out) = t.join().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.output),
            format!("mine\n{i}\n"),
            "command {i}"
        );
        assert_eq!(out.exit_code, Some(i % 7), "command {i}");
    }
}

#[test]
fn the_helper_ends_with_the_host() {
    // A host process that starts a sandbox, runs a long command and is killed: the zygote and
    // the command must be gone soon after.
    let ws = workspace();
    let marker = format!("sleep 4{}", std::process::id() % 1000);
    let mut host = Command::new(bin())
        .args(["sandbox", "run", "--timeout-s", "60", "--workspace"])
        .arg(ws.path())
        .arg("--")
        .arg(format!("{marker}; echo never"))
        .spawn()
        .unwrap();
    let start = Instant::now();
    while processes_with(&marker).is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !processes_with(&marker).is_empty(),
        "the command never started"
    );
    host.kill().unwrap();
    host.wait().unwrap();
    let start = Instant::now();
    while !processes_with(&marker).is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        processes_with(&marker).is_empty(),
        "the command outlived its host"
    );
}

#[test]
fn a_program_that_is_not_a_helper_is_refused_not_left_running() {
    let ws = workspace();
    let out = Command::new(bin())
        .env("SERA_HOST_SANDBOX_HELPER", "/usr/bin/yes")
        .args(["sandbox", "run", "--workspace"])
        .arg(ws.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("/usr/bin/yes is not a working sandbox helper"),
        "{err}"
    );
    assert!(processes_with("__sandbox-zygote {")
        .iter()
        .all(|p| !p.contains("yes")));
}

#[test]
fn what_a_killed_host_left_behind_is_swept_by_the_next_one() {
    // A host killed with SIGKILL cleans nothing up; the next sandbox removes its scratch
    // directory (and its empty cgroups) once its pid is gone.
    let ws = workspace();
    let mut host = Command::new(bin())
        .args(["sandbox", "run", "--timeout-s", "60", "--workspace"])
        .arg(ws.path())
        .args(["--", "sleep 30"])
        .spawn()
        .unwrap();
    let prefix = format!("sera-sandbox-{}-", host.id());
    let tmp = std::env::temp_dir();
    let scratch = || -> Vec<PathBuf> {
        std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    let start = Instant::now();
    while scratch().is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    host.kill().unwrap();
    host.wait().unwrap();
    let left = scratch();
    assert!(
        !left.is_empty(),
        "the killed host left no scratch directory to sweep"
    );
    let _next = library_sandbox();
    for d in left {
        assert!(!d.exists(), "{} was not swept", d.display());
    }
}
