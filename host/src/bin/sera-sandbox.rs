//! The command sandbox's zygote as its own small binary: a few MiB resident instead of
//! `sera-host`'s (wasmtime and the builtin plugins inside), which makes each fork of a command
//! cheaper. `sera-host` uses this one when it sits next to it, and runs itself otherwise.

fn main() {
    sera_host::sandbox::run_if_requested();
    eprintln!(
        "sera-sandbox: the helper of sera-host's command sandbox; run by sera-host, not by hand"
    );
    std::process::exit(2);
}
