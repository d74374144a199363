//! Rollouts end to end: the swe-tools plugin over a real workspace, the OpenAI client against
//! the scripted teacher on loopback HTTP (with injected faults), record and replay through a
//! real corpus file, and patches checked with real git.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sera_host::corpus::{ingest, Corpus, Entry, IngestOptions, Source};
use sera_host::plugin::{Limits, ToolsPlugin};
use sera_host::rollout::job::{find_function, function_vars, SharedCorpus};
use sera_host::rollout::patch::{pin_mtimes, workspace_patch};
use sera_host::rollout::trajectory::Role;
use sera_host::rollout::{run, Outcome, Rollout, RolloutSpec};
use sera_host::teacher::serve::{Fault, LoopbackTeacher};
use sera_host::teacher::{
    BoxFuture, ChatRequest, Completion, OpenAiTeacher, RecordingTeacher, ReplayTeacher,
    RetryPolicy, Teacher, TeacherError,
};

fn swe_tools() -> ToolsPlugin {
    let engine = engine();
    ToolsPlugin::new(
        &engine,
        &load(&engine, "builtin:swe-tools"),
        "{}",
        Limits::default(),
    )
    .unwrap()
}

/// A corpus in `dir` holding `source`; returns it shared, with the snapshot id.
fn corpus_with(dir: &Path, source: &str) -> (SharedCorpus, String) {
    let corpus = Corpus::open(&dir.join("c.sqlite")).unwrap();
    let opts = IngestOptions {
        pip_cache: test_cache_dir().join("pip"),
        ..IngestOptions::default()
    };
    let report = ingest(&corpus, &Source::parse(source).unwrap(), &opts).unwrap();
    (Arc::new(Mutex::new(corpus)), report.snapshot)
}

/// A directory holding CPython's textwrap.py, as a small repository.
fn textwrap_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (_, text) = python_stdlib_file("textwrap");
    std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/textwrap.py"), text).unwrap();
    dir
}

/// A workspace materialised from the snapshot, kept for inspection.
fn materialise(corpus: &SharedCorpus, snapshot: &str, dir: &Path) -> Vec<Entry> {
    let c = corpus.lock().unwrap();
    c.export(snapshot, dir).unwrap();
    let base = c.entries(snapshot).unwrap();
    pin_mtimes(&base, dir).unwrap();
    base
}

async fn rollout_in(
    corpus: &SharedCorpus,
    snapshot: &str,
    qualname: &str,
    teacher: &dyn Teacher,
    workspace: &Path,
) -> Rollout {
    rollout_with(corpus, snapshot, qualname, teacher, workspace, |_| {}).await
}

async fn rollout_with(
    corpus: &SharedCorpus,
    snapshot: &str,
    qualname: &str,
    teacher: &dyn Teacher,
    workspace: &Path,
    tweak: impl FnOnce(&mut RolloutSpec),
) -> Rollout {
    let function = find_function(&corpus.lock().unwrap(), snapshot, qualname, None).unwrap();
    let base = materialise(corpus, snapshot, workspace);
    let tools = swe_tools();
    let mut session = tokio::task::block_in_place(|| tools.open("test", workspace)).unwrap();
    let mut spec = RolloutSpec::new("scripted", function_vars(&function));
    tweak(&mut spec);
    let blob = |b: &str| corpus.lock().unwrap().blob(b);
    run(
        &spec,
        teacher,
        &mut session,
        "test",
        workspace,
        &base,
        &blob,
    )
    .await
    .unwrap()
}

fn fast_retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A loopback server answering at once, with `faults`, and a client of it: `connections` at
/// once, `timeout` per request, `attempts` quick retries.
async fn loopback(
    faults: Vec<Fault>,
    connections: usize,
    timeout: Duration,
    attempts: u32,
) -> (LoopbackTeacher, OpenAiTeacher) {
    let server = LoopbackTeacher::start(faults, Duration::ZERO)
        .await
        .unwrap();
    let teacher = OpenAiTeacher::new(
        &server.url(),
        None,
        connections,
        timeout,
        fast_retries(attempts),
    )
    .unwrap();
    (server, teacher)
}

/// Applies `patch` with `git apply` to a fresh export and compares with `workspace`.
fn assert_patch_reproduces(corpus: &SharedCorpus, snapshot: &str, patch: &str, workspace: &Path) {
    let fresh = tempfile::tempdir().unwrap();
    corpus
        .lock()
        .unwrap()
        .export(snapshot, fresh.path())
        .unwrap();
    let patch_file = fresh.path().join("..").join(format!(
        "{}.patch",
        fresh.path().file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&patch_file, patch).unwrap();
    for args in [&["apply", "--check"][..], &["apply"][..]] {
        let out = Command::new("git")
            .args(args)
            .arg(&patch_file)
            .current_dir(fresh.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}\n{patch}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_file(&patch_file).unwrap();
    let diff = Command::new("diff")
        .arg("-r")
        .arg(workspace)
        .arg(fresh.path())
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

/// The scripted teacher over real HTTP edits a method of the requests sdist; the patch applies
/// with git and reproduces the workspace; a replay from the corpus is byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_on_an_sdist_applies_with_git_and_replays_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, snapshot) = corpus_with(dir.path(), "pip:requests==2.31.0");
    let (server, live) = loopback(Vec::new(), 4, Duration::from_secs(30), 3).await;
    let recording = RecordingTeacher::new(Box::new(live), corpus.clone());
    let ws = tempfile::tempdir().unwrap();
    let first = rollout_in(&corpus, &snapshot, "Session.send", &recording, ws.path()).await;
    assert_eq!(first.outcome, Outcome::Submitted, "{:?}", first.reason);
    assert!(first
        .patch
        .starts_with("diff --git a/requests/sessions.py b/requests/sessions.py\n"));
    assert!(
        first
            .patch
            .contains("+        # NOTE(scripted-teacher): reviewed `Session.send`"),
        "{}",
        first.patch
    );
    // search, view, str_replace, submit (review), submit.
    assert_eq!(first.steps, 5);
    assert_eq!(server.requests(), 5);
    assert_eq!(corpus.lock().unwrap().exchange_count().unwrap(), 5);
    let roles: Vec<String> = first
        .trajectory
        .messages
        .iter()
        .map(|m| format!("{:?}", m.role))
        .collect();
    assert_eq!(roles[..4], ["System", "User", "Assistant", "Tool"]);
    let review = &first.trajectory.messages[first.trajectory.messages.len() - 3];
    assert!(
        review
            .content
            .contains("Run the submit command again to confirm"),
        "{}",
        review.content
    );
    assert!(review.content.contains(&first.patch));
    assert_patch_reproduces(&corpus, &snapshot, &first.patch, ws.path());

    // Replay: same bytes, and the server is never asked again.
    let replay = ReplayTeacher::new(corpus.clone());
    let ws2 = tempfile::tempdir().unwrap();
    let again = rollout_in(&corpus, &snapshot, "Session.send", &replay, ws2.path()).await;
    assert_eq!(
        serde_json::to_vec(&again.trajectory).unwrap(),
        serde_json::to_vec(&first.trajectory).unwrap()
    );
    assert_eq!(again.patch, first.patch);
    assert_eq!(server.requests(), 5);

    // Something never recorded: "not recorded" with the request hash, no network.
    let ws3 = tempfile::tempdir().unwrap();
    let missing = rollout_in(
        &corpus,
        &snapshot,
        "should_bypass_proxies.<locals>.get_proxy",
        &replay,
        ws3.path(),
    )
    .await;
    assert_eq!(missing.outcome, Outcome::TeacherError);
    let reason = missing.reason.unwrap();
    assert!(
        reason.starts_with("not recorded: request ") && reason.contains(" sample 0 "),
        "{reason}"
    );
    assert_eq!(server.requests(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_are_retried_and_a_context_error_ends_only_its_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let repo = textwrap_repo();
    let (corpus, snapshot) = corpus_with(dir.path(), repo.path().to_str().unwrap());
    let faults = vec![
        Fault::ServerError,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::Stall(Duration::from_secs(10)),
        Fault::MalformedJson,
        Fault::DropConnection,
    ];
    let (server, teacher) = loopback(faults, 2, Duration::from_secs(2), 8).await;
    let ws = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let r = rollout_in(
        &corpus,
        &snapshot,
        "TextWrapper._wrap_chunks",
        &teacher,
        ws.path(),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);
    assert_eq!(server.requests(), u64::from(r.steps) + 5);
    // Retry-After (1 s) was honoured; the 10 s stall was cut by the 2 s timeout.
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(9),
        "{took:?}"
    );
    assert_patch_reproduces(&corpus, &snapshot, &r.patch, ws.path());

    // A context-length 400 is not retried: that rollout ends with its own outcome and the
    // server's reason.
    let (server, teacher) =
        loopback(vec![Fault::ContextLength], 2, Duration::from_secs(2), 8).await;
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_in(&corpus, &snapshot, "TextWrapper.wrap", &teacher, ws.path()).await;
    assert_eq!(r.outcome, Outcome::ContextLength);
    assert_eq!(r.outcome.as_str(), "context-length");
    let reason = r.reason.unwrap();
    assert!(
        reason.contains("HTTP 400") && reason.contains("maximum context length"),
        "{reason}"
    );
    assert_eq!(server.requests(), 1);
    // The next rollout on the same server goes through.
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_in(&corpus, &snapshot, "TextWrapper.wrap", &teacher, ws.path()).await;
    assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);

    // Retries run out: the rollout says how often it tried and why.
    let (_server, teacher) =
        loopback(vec![Fault::ServerError; 3], 2, Duration::from_secs(2), 3).await;
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_in(&corpus, &snapshot, "dedent", &teacher, ws.path()).await;
    assert_eq!(r.outcome, Outcome::TeacherError);
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .starts_with("teacher unavailable after 3 attempts: HTTP 500"),
        "{:?}",
        r.reason
    );
}

/// A teacher that says what the test tells it to, to exercise the loop's error paths.
struct Canned(Mutex<Vec<serde_json::Value>>);

impl Teacher for Canned {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>> {
        Box::pin(async move {
            let message = self.0.lock().unwrap().remove(0);
            let body =
                serde_json::json!({"choices": [{"message": message, "finish_reason": "stop"}]});
            let raw = serde_json::to_vec(&body).unwrap();
            let (message, finish_reason, usage) = sera_host::teacher::parse_response(&raw).unwrap();
            Ok(Completion {
                message,
                finish_reason,
                usage,
                latency_ms: 0,
                request_sha256: request.sha256().to_string(),
                sample,
                raw_body: raw,
            })
        })
    }

    fn describe(&self) -> String {
        "canned".into()
    }
}

fn call(id: &str, name: &str, args: &str) -> serde_json::Value {
    serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": id, "type": "function", "function": {"name": name, "arguments": args}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_calls_get_observations_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = textwrap_repo();
    std::os::unix::fs::symlink("/etc", repo.path().join("etc")).unwrap();
    let (corpus, snapshot) = corpus_with(dir.path(), repo.path().to_str().unwrap());
    let teacher = Canned(Mutex::new(vec![
        call("a", "rm_rf", "{}"),
        call("b", "str_replace_editor", "{not json"),
        serde_json::json!({"role": "assistant", "content": "I think I am done."}),
        call(
            "c",
            "str_replace_editor",
            r#"{"command":"view","path":"/workspace/etc/passwd"}"#,
        ),
        call(
            "d",
            "str_replace_editor",
            r#"{"command":"view","path":"/etc/passwd"}"#,
        ),
        call(
            "e",
            "str_replace_editor",
            r#"{"command":"view","path":"pkg/../../x"}"#,
        ),
        call("f", "submit", "{}"),
        call("g", "submit", "{}"),
    ]));
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_in(&corpus, &snapshot, "dedent", &teacher, ws.path()).await;
    assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);
    let m = &r.trajectory.messages;
    let answer = |id: &str| {
        m.iter()
            .find(|x| x.tool_call_id.as_deref() == Some(id))
            .unwrap()
            .content
            .clone()
    };
    assert!(answer("a").starts_with("Unknown tool `rm_rf`. Available tools: str_replace_editor, find_file, search_dir, search_file, submit"));
    assert!(answer("b")
        .starts_with("The arguments of `str_replace_editor` are not a valid JSON object"));
    assert!(m.iter().any(|x| x
        .content
        .starts_with("Your last output did not use any tool calls!")));
    assert!(
        answer("c").contains("symbolic link") && answer("c").contains("outside the workspace"),
        "{}",
        answer("c")
    );
    assert!(
        answer("d").contains("outside the workspace"),
        "{}",
        answer("d")
    );
    assert!(
        answer("e").contains("climbs out of the workspace"),
        "{}",
        answer("e")
    );
    assert_eq!(answer("g"), "Submitted with no changes.");
    assert_eq!(r.patch, "");
}

/// New, deleted, mode-changed and newline-less files: git applies the patch and gets the
/// workspace back.
#[test]
fn patches_of_every_kind_of_change_apply_with_git() {
    use std::os::unix::fs::PermissionsExt;
    let src = tempfile::tempdir().unwrap();
    let (_, textwrap) = python_stdlib_file("textwrap");
    std::fs::write(src.path().join("textwrap.py"), &textwrap).unwrap();
    std::fs::write(src.path().join("no_newline.py"), "x = 1\ny = 2").unwrap();
    std::fs::write(src.path().join("gone.txt"), "bye\n").unwrap();
    std::fs::write(src.path().join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        src.path().join("run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (corpus, snapshot) = corpus_with(dir.path(), src.path().to_str().unwrap());
    let ws = tempfile::tempdir().unwrap();
    let base = materialise(&corpus, &snapshot, ws.path());
    let w = ws.path();
    std::fs::write(
        w.join("textwrap.py"),
        textwrap.replacen("def dedent(text):", "def dedent(text, strict=False):", 1),
    )
    .unwrap();
    std::fs::write(w.join("no_newline.py"), "x = 1\ny = 3").unwrap();
    std::fs::remove_file(w.join("gone.txt")).unwrap();
    std::fs::create_dir_all(w.join("new")).unwrap();
    std::fs::write(w.join("new/mod.py"), "def added():\n    return 1\n").unwrap();
    std::fs::set_permissions(w.join("run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let patch = workspace_patch(&base, w, |b| corpus.lock().unwrap().blob(b)).unwrap();
    assert!(patch.contains("diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"), "{patch}");
    assert!(patch.contains("diff --git a/new/mod.py b/new/mod.py\nnew file mode 100644\n--- /dev/null\n+++ b/new/mod.py\n@@ -0,0 +1,2 @@\n"), "{patch}");
    assert!(
        patch.contains(
            "-y = 2\n\\ No newline at end of file\n+y = 3\n\\ No newline at end of file\n"
        ),
        "{patch}"
    );
    assert!(
        patch.contains("diff --git a/run.sh b/run.sh\nold mode 100755\nnew mode 100644\n"),
        "{patch}"
    );
    assert!(patch.contains("-def dedent(text):\n+def dedent(text, strict=False):\n"));
    assert_patch_reproduces(&corpus, &snapshot, &patch, w);
    // Nothing changed: no patch, and no file is read (they keep their pinned times).
    let ws2 = tempfile::tempdir().unwrap();
    let base = materialise(&corpus, &snapshot, ws2.path());
    assert_eq!(
        workspace_patch(&base, ws2.path(), |_| panic!("nothing to read")).unwrap(),
        ""
    );
}

/// The CLI: a scripted rollout, then its replay; both print the same patch, and a rollout
/// nobody recorded fails with "not recorded".
#[test]
fn cli_rollout_and_replay() {
    let repo = textwrap_repo();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let sera = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sera-host"))
            .args(args)
            .arg("--db")
            .arg(&db)
            .env("SERA_HOST_CACHE_DIR", test_cache_dir())
            .output()
            .unwrap()
    };
    let out = sera(&[
        "corpus",
        "ingest",
        repo.path().to_str().unwrap(),
        "--name",
        "tw",
    ]);
    assert!(out.status.success());
    let prompt = dir.path().join("prompt.j2");
    std::fs::write(
        &prompt,
        "Something is off in `{{ start_fn }}` of `{{ start_fn_file }}` under {{ working_dir }}.\n",
    )
    .unwrap();
    let roll = |teacher: &str, function: &str| {
        sera(&[
            "rollout",
            "--snapshot",
            "tw",
            "--function",
            function,
            "--teacher",
            teacher,
            "--prompt",
            prompt.to_str().unwrap(),
            "--json",
        ])
    };
    let first = roll("scripted", "TextWrapper._split");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["outcome"], "submitted");
    let replay = roll("replay", "TextWrapper._split");
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let replay: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(first["patch"], replay["patch"]);
    assert!(first["patch"]
        .as_str()
        .unwrap()
        .contains("reviewed `TextWrapper._split`"));
    let missing = roll("replay", "TextWrapper.fill");
    assert_eq!(missing.status.code(), Some(1));
    let missing: serde_json::Value = serde_json::from_slice(&missing.stdout).unwrap();
    assert!(missing["reason"]
        .as_str()
        .unwrap()
        .starts_with("not recorded: request "));
    let bad = sera(&[
        "rollout",
        "--snapshot",
        "tw",
        "--function",
        "nope",
        "--teacher",
        "scripted",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no function nope in snapshot"));
}

/// The API key goes out as a Bearer token, extra body fields are sent, and no more requests
/// are in flight than the concurrency limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_extra_fields_and_concurrency_limit() {
    let server = LoopbackTeacher::start(Vec::new(), Duration::from_millis(50))
        .await
        .unwrap();
    let teacher = Arc::new(
        OpenAiTeacher::new(
            &server.url(),
            Some("sk-test".into()),
            3,
            Duration::from_secs(10),
            fast_retries(2),
        )
        .unwrap(),
    );
    let mut handles = Vec::new();
    for i in 0..12 {
        let teacher = teacher.clone();
        handles.push(tokio::spawn(async move {
            let request = ChatRequest {
                model: "m".into(),
                messages: vec![sera_host::rollout::trajectory::Message::text(
                    Role::User,
                    format!("Look at `f{i}` in `m.py`."),
                )],
                // With tools: the scripted policy answers a request without tools in text.
                tools: vec![serde_json::json!({"type": "function", "function": {
                    "name": "search_file", "description": "", "parameters": {"type": "object"}}})]
                .into(),
                tool_choice: Some(serde_json::json!("required")),
                temperature: Some(0.6),
                top_p: Some(0.95),
                seed: Some(i),
                max_tokens: Some(512),
                extra: serde_json::Map::from_iter([("top_k".to_string(), serde_json::json!(20))]),
                prepared: Default::default(),
            };
            let body: serde_json::Value = serde_json::from_slice(request.canonical()).unwrap();
            assert_eq!(body["top_k"], 20);
            assert_eq!(body["tool_choice"], "required");
            teacher.complete(&request, 0).await.unwrap()
        }));
    }
    for h in handles {
        let c = h.await.unwrap();
        assert_eq!(c.message.tool_calls[0].function.name, "search_file");
        assert_eq!(c.finish_reason, "stop");
    }
    assert_eq!(server.requests(), 12);
    assert_eq!(server.max_in_flight(), 3);
    assert_eq!(
        server.last_authorization().as_deref(),
        Some("Bearer sk-test")
    );
}

/// The step limit and the token budget end a rollout with their reason; the patch of the work
/// done so far is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_limit_and_token_budget() {
    let dir = tempfile::tempdir().unwrap();
    let repo = textwrap_repo();
    let (corpus, snapshot) = corpus_with(dir.path(), repo.path().to_str().unwrap());
    let scripted = sera_host::teacher::ScriptedTeacher;
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_with(
        &corpus,
        &snapshot,
        "TextWrapper._split",
        &scripted,
        ws.path(),
        |s| s.step_limit = 3,
    )
    .await;
    assert_eq!(r.outcome, Outcome::StepLimit);
    assert_eq!(r.steps, 3);
    assert_eq!(r.reason.as_deref(), Some("step limit of 3 reached"));
    // Step 3 was the str_replace: the patch holds it.
    assert!(
        r.patch.contains("reviewed `TextWrapper._split`"),
        "{}",
        r.patch
    );

    let ws = tempfile::tempdir().unwrap();
    let r = rollout_with(
        &corpus,
        &snapshot,
        "TextWrapper._split",
        &scripted,
        ws.path(),
        |s| s.token_budget = Some(1),
    )
    .await;
    assert_eq!(r.outcome, Outcome::TokenBudget);
    assert_eq!(r.steps, 1);
    assert!(r
        .reason
        .as_deref()
        .unwrap()
        .starts_with("token budget of 1 spent"));
    assert_eq!(
        r.trajectory.steps[0].usage.total_tokens,
        r.trajectory
            .steps
            .iter()
            .map(|s| s.usage.total_tokens)
            .sum::<u64>()
    );
}

/// The write log of a tools session names every path a plugin changed, however it changed it
/// (so the patch reads only those), and gives up where it cannot follow (links, escapes).
#[test]
fn patch_from_the_write_log_equals_the_full_scan_for_every_kind_of_change() {
    use sera_host::rollout::patch::changed_patch;
    let out = Command::new("python3")
        .args([
            "-c",
            "import email, os; print(os.path.dirname(email.__file__))",
        ])
        .output()
        .unwrap();
    let email = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (corpus, snapshot) = corpus_with(dir.path(), &email);
    let ws = tempfile::tempdir().unwrap();
    let base = materialise(&corpus, &snapshot, ws.path());
    assert!(base.iter().any(|e| e.path.starts_with("mime/")));
    let engine = engine();
    let plugin = engine
        .load(&sera_host::plugin::PluginSource::File(dist("fs-ops.wasm")))
        .unwrap();
    let tools = ToolsPlugin::new(&engine, &plugin, "{}", Limits::default()).unwrap();
    let mut session = tools.open("t", ws.path()).unwrap();
    let blob = |b: &str| corpus.lock().unwrap().blob(b);
    let both = |session: &sera_host::plugin::ToolSession| {
        let full = workspace_patch(&base, ws.path(), blob).unwrap();
        let logged = session
            .changed_paths()
            .map(|c| changed_patch(&base, ws.path(), c, blob).unwrap())
            .map_err(str::to_string);
        (full, logged)
    };
    let ops = [
        r#"{"op":"write","path":"utils.py","text":"replaced\n"}"#,
        r#"{"op":"append","path":"charset.py","text":"\n# appended"}"#,
        r#"{"op":"mkdir","path":"extra/deep"}"#,
        r#"{"op":"write","path":"extra/deep/new.py","text":"x = 1\n"}"#,
        r#"{"op":"remove","path":"base64mime.py"}"#,
        r#"{"op":"rename","path":"mime","to":"mime2"}"#,
        r#"{"op":"rename","path":"quoprimime.py","to":"mime2/moved.py"}"#,
        r#"{"op":"mkdir","path":"empty"}"#,
        r#"{"op":"rmdir","path":"empty"}"#,
        r#"{"op":"write","path":"./extra/../header.py","text":"h\n"}"#,
    ];
    for op in ops {
        let r = session.call("t", "fs", op).unwrap();
        assert!(r.is_ok(), "{op}: {r:?}");
        let (full, logged) = both(&session);
        // Headers first: a whole differing patch is too long to read in a failure.
        let heads = |p: &str| -> Vec<String> {
            p.lines()
                .filter(|l| l.starts_with("diff --git"))
                .map(String::from)
                .collect()
        };
        let logged = logged.unwrap_or_else(|e| panic!("after {op}: log lost: {e}"));
        assert_eq!(heads(&logged), heads(&full), "after {op}");
        assert!(logged == full, "after {op}: same files, different patch");
    }
    let changed = session.changed_paths().unwrap().clone();
    for p in [
        "utils.py",
        "charset.py",
        "extra/deep/new.py",
        "base64mime.py",
        "mime",
        "mime2",
        "header.py",
    ] {
        assert!(changed.contains(p), "{p} not logged: {changed:?}");
    }
    assert!(!changed.contains("message.py"), "only read, never written");
    let full = both(&session).0;
    for needle in [
        "deleted file mode 100644\n",
        "diff --git a/mime/text.py b/mime/text.py\ndeleted",
        "diff --git a/mime2/text.py b/mime2/text.py\nnew file",
        "+++ b/extra/deep/new.py",
        "+# appended",
    ] {
        assert!(full.contains(needle), "{needle:?} missing from\n{full}");
    }
    // Beyond what the log can follow: it says so, and the caller scans instead.
    let r = session
        .call(
            "t",
            "fs",
            r#"{"op":"write","path":"../outside.py","text":"no"}"#,
        )
        .unwrap();
    assert!(r.is_err(), "escape refused by the sandbox: {r:?}");
    let why = session.changed_paths().unwrap_err();
    assert!(why.contains("leaves the workspace"), "{why}");
    let mut session = tools.open("t", ws.path()).unwrap();
    assert_eq!(session.changed_paths().map(|c| c.len()), Ok(0));
    let r = session
        .call(
            "t",
            "fs",
            r#"{"op":"symlink","path":"link.py","to":"utils.py"}"#,
        )
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(session.changed_paths().unwrap_err().contains("symlink"));
    let r = session
        .call(
            "t",
            "fs",
            r#"{"op":"hardlink","path":"header.py","to":"hard.py"}"#,
        )
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(workspace_patch(&base, ws.path(), blob)
        .unwrap()
        .contains("diff --git a/hard.py b/hard.py\nnew file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_real_servers_answer_empty_choices_cut_answers_reasoning_and_calls_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let repo = textwrap_repo();
    let (corpus, snapshot) = corpus_with(dir.path(), repo.path().to_str().unwrap());
    let mut faults = vec![Fault::EmptyChoices, Fault::Length, Fault::Reasoning];
    faults.extend(std::iter::repeat_n(Fault::ToolCallsAsText, 20));
    let (_server, teacher) = loopback(faults, 2, Duration::from_secs(5), 2).await;
    let ws = tempfile::tempdir().unwrap();
    let r = rollout_in(&corpus, &snapshot, "TextWrapper.wrap", &teacher, ws.path()).await;
    assert_eq!(r.outcome, Outcome::Submitted, "{:?}", r.reason);
    let steps = &r.trajectory.steps;
    assert_eq!(steps[0].finish_reason, "no-choices");
    assert_eq!(steps[0].usage.prompt_tokens, 7);
    assert_eq!(steps[1].finish_reason, "length");
    let answers: Vec<_> = r
        .trajectory
        .messages
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .collect();
    // An empty answer, then a cut one whose half call stays text: both told to call a tool.
    assert!(answers[0].content.is_empty() && answers[0].tool_calls.is_empty());
    assert!(answers[1].tool_calls.is_empty());
    assert!(
        answers[1].content.ends_with("\"argu"),
        "{}",
        answers[1].content
    );
    // Reasoning kept where the server put it: the field, and the <think> block in the text.
    assert_eq!(
        answers[2].reasoning_content.as_deref(),
        Some("First find the function, then edit it.")
    );
    assert!(answers[2].content.starts_with("<think>"));
    assert!(!answers[2].tool_calls.is_empty());
    // Calls written as text became calls, and the rollout went on to edit and submit.
    for a in &answers[3..] {
        assert!(!a.tool_calls.is_empty(), "{a:?}");
        assert!(!a.content.contains("<tool_call>"), "{a:?}");
    }
    assert!(!r.patch.is_empty());
    assert_patch_reproduces(&corpus, &snapshot, &r.patch, ws.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_counts_its_context_length_rollouts_in_the_summary() {
    // Every first request of the first three items is refused for its length (the requests
    // of one item's rollout 1 come in order; the rest are answered well).
    let server = LoopbackTeacher::start(vec![Fault::ContextLength; 3], Duration::ZERO)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let p = demo_pipeline(dir.path(), &|l| {
        if l.starts_with("kind = \"scripted\"") {
            format!("kind = \"openai\"\nurl = \"{url}\"")
        } else if l.starts_with("concurrency = ") {
            "concurrency = 1".into()
        } else if l.starts_with("functions_per_repo = ") {
            "functions_per_repo = 4".into()
        } else if l.starts_with("exec = ") {
            String::new()
        } else {
            l.to_string()
        }
    });
    let bin = env!("CARGO_BIN_EXE_sera-host");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .arg("run")
            .arg(&p)
            .arg("--json")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["items"], 4, "{summary:#}");
    // With one rollout at a time, the three refusals are the first three requests: item 1's
    // rollout 1 ends, then item 2's, then item 3's; item 4 goes through.
    assert_eq!(
        summary["stopped"]["rollout 1 ended with context-length"], 3,
        "{summary:#}"
    );
    assert_eq!(summary["rollout1_submitted"], 1, "{summary:#}");
}
