//! The hostile-guest suite: one attack per test, each followed by correct verdicts from the same
//! host process (the same engine, and the same `Verifier`, which must recycle its instance).

mod common;

use std::time::{Duration, Instant};

use common::*;
use sera_host::plugin::{FailureKind, Limits, PatchPair, PluginFailure, Verifier};

const P1: &str =
    "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x\n+    return x + 1\n";
const P2: &str = "--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,3 @@\n def f(x):\n-    return x\n+    y = x + 1\n+    return y\n";

fn attack_pair() -> PatchPair {
    PatchPair {
        reference: "attack".to_string(),
        candidate: String::new(),
    }
}

fn honest_pair() -> PatchPair {
    PatchPair {
        reference: P1.to_string(),
        candidate: P1.to_string(),
    }
}

/// After an attack: the hostile verifier answers an honest pair correctly (a fresh instance if
/// the attack trapped), and line-recall in the same engine scores a real pair correctly.
fn assert_recovers(engine: &sera_host::plugin::PluginEngine, hostile: &mut Verifier) {
    let v = hostile
        .verify("next", &honest_pair())
        .expect("hostile verifier recovered");
    assert_eq!((v.score, v.matched), (Some(1.0), 1));
    let mut lr = line_recall(engine, "{}");
    let v = lr
        .verify(
            "next",
            &PatchPair {
                reference: P1.to_string(),
                candidate: P2.to_string(),
            },
        )
        .unwrap();
    assert_eq!((v.score, v.matched, v.total), (Some(0.5), 1, 2));
}

fn run_attack(
    attack: &str,
    limits: Limits,
) -> (PluginFailure, Verifier, sera_host::plugin::PluginEngine) {
    let engine = engine();
    let mut v = hostile(&engine, attack, limits);
    let err = v
        .verify("attack-item", &attack_pair())
        .expect_err("attack must fail its item");
    assert_eq!(err.item, "attack-item");
    assert_eq!(&*err.plugin, "hostile");
    assert_eq!(err.sha256.len(), 64);
    (err, v, engine)
}

#[test]
fn infinite_loop_runs_out_of_fuel_within_two_seconds() {
    let engine = engine();
    let mut v = hostile(&engine, "loop", Limits::default());
    let start = Instant::now();
    let err = v.verify("spin", &attack_pair()).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind, FailureKind::Fuel, "{err}");
    assert!(took < Duration::from_secs(2), "fuel error took {took:?}");
    assert!(
        err.backtrace.is_some(),
        "a trap carries the guest backtrace"
    );
    assert_recovers(&engine, &mut v);
    assert_eq!(v.instantiations(), 2, "the trapped instance was replaced");
}

#[test]
fn allocation_past_the_limit_is_a_memory_error() {
    let (err, mut v, engine) = run_attack("alloc", Limits::default());
    assert_eq!(err.kind, FailureKind::Memory, "{err}");
    assert!(
        err.message
            .contains(&format!("limit is {} bytes", 256 << 20)),
        "{err}"
    );
    assert_recovers(&engine, &mut v);
}

#[test]
fn a_smaller_memory_limit_is_enforced_too() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let (err, mut v, engine) = run_attack("alloc", limits);
    assert_eq!(err.kind, FailureKind::Memory, "{err}");
    assert!(err.message.contains("limit is 16777216 bytes"), "{err}");
    assert_recovers(&engine, &mut v);
}

#[test]
fn reading_host_files_is_denied() {
    for attack in ["read-passwd", "read-dotdot", "read-parent-of-root"] {
        let (err, mut v, engine) = run_attack(attack, Limits::default());
        assert_eq!(err.kind, FailureKind::GuestError, "{attack}: {err}");
        assert!(err.message.starts_with("cannot read"), "{attack}: {err}");
        assert!(
            !err.message.contains("root:"),
            "{attack} leaked /etc/passwd: {err}"
        );
        assert_recovers(&engine, &mut v);
    }
    // The files exist on the host: the denial is the sandbox, not a missing file.
    assert!(std::path::Path::new("/etc/passwd").exists());
    assert!(std::path::Path::new("../Cargo.toml").exists());
}

#[test]
fn network_is_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let engine = engine();
    let mut v = hostile(&engine, "network", Limits::default());
    let pair = PatchPair {
        reference: "attack".to_string(),
        candidate: port.to_string(),
    };
    let err = v.verify("net", &pair).unwrap_err();
    assert_eq!(err.kind, FailureKind::GuestError, "{err}");
    assert!(
        err.message.starts_with(
            "network denied: create-tcp-socket: ErrorCode { code: 1, name: \"access-denied\""
        ),
        "{err}"
    );
    // Name lookups are switched off too: the resolver fails for good.
    assert!(
        err.message
            .contains("lookup: Err(ErrorCode { code: 20, name: \"permanent-resolver-failure\""),
        "{err}"
    );
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing connected to the listener"
    );
    assert_recovers(&engine, &mut v);
}

#[test]
fn panic_is_an_error_carrying_the_panic_message() {
    let (err, mut v, engine) = run_attack("panic", Limits::default());
    assert_eq!(err.kind, FailureKind::Panic, "{err}");
    assert!(
        err.message.contains("hostile verifier panicked on purpose"),
        "{err}"
    );
    assert!(
        err.message
            .starts_with("guest panicked at hostile/src/lib.rs:"),
        "{err}"
    );
    assert!(!err.message.contains("RUST_BACKTRACE"), "{err}");
    assert_recovers(&engine, &mut v);
}

#[test]
fn flooding_stdout_truncates_the_log() {
    let engine = engine();
    let mut v = hostile(&engine, "stdout-flood", Limits::default());
    let verdict = v
        .verify("flood", &attack_pair())
        .expect("the flood itself is not an error");
    assert_eq!(verdict.detail, "survived the flood");
    let log = v.take_log();
    let kept: usize = log
        .iter()
        .filter(|e| e.source == "stdout")
        .map(|e| e.text.len())
        .sum();
    assert_eq!(kept, 64 << 10, "stdout kept up to the cap");
    let note = log
        .iter()
        .find(|e| e.source == "host")
        .expect("truncation note");
    // The cap covers all output: the `log("flood done")` call after the flood is dropped too.
    let dropped = 100 * (1 << 20) + "flood done".len() - (64 << 10);
    assert!(
        note.text.contains(&format!("{dropped} more bytes dropped")),
        "{}",
        note.text
    );
    assert_recovers(&engine, &mut v);
    assert_eq!(v.instantiations(), 1, "no trap, no new instance");
}

#[test]
fn contract_breaking_verdict_is_a_malformed_return() {
    let (err, mut v, engine) = run_attack("bad-verdict", Limits::default());
    assert_eq!(err.kind, FailureKind::MalformedReturn, "{err}");
    assert!(err.message.contains("score Some(7.0)"), "{err}");
    assert_recovers(&engine, &mut v);
}

#[test]
fn clocks_and_randomness_are_deterministic() {
    let engine = engine();
    let detail = |seed: u64| {
        let limits = Limits {
            seed,
            ..Limits::default()
        };
        let mut v = hostile(&engine, "clock-random", limits);
        v.verify("clock", &attack_pair()).unwrap().detail
    };
    let first = detail(0);
    assert!(first.starts_with("now=946684800000000000 "), "{first}");
    assert_eq!(first, detail(0), "same seed, same bytes");
    assert_ne!(first, detail(1), "the seed reaches the guest's randomness");
}

#[test]
fn a_trapping_batch_fails_only_the_guilty_items() {
    let engine = engine();
    let mut v = hostile(&engine, "panic", Limits::default());
    let pairs = vec![honest_pair(), attack_pair(), honest_pair()];
    let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let results = v.verify_batch(&items, &pairs);
    assert_eq!(results[0].as_ref().unwrap().score, Some(1.0));
    let err = results[1].as_ref().unwrap_err();
    assert_eq!((err.item.as_str(), err.kind), ("b", FailureKind::Panic));
    assert_eq!(results[2].as_ref().unwrap().score, Some(1.0));
}

#[test]
fn failure_text_is_the_same_on_every_run() {
    let a = run_attack("loop", Limits::default()).0;
    let b = run_attack("loop", Limits::default()).0;
    assert_eq!(a, b);
    let a = run_attack("panic", Limits::default()).0;
    let b = run_attack("panic", Limits::default()).0;
    assert_eq!(a, b);
}
