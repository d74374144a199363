//! The command sandbox's helper as its own small binary: re-executing the 200 MB `sera-host`
//! (wasmtime and the builtin plugins inside) for every command cost ~4 ms of loading alone.
//! `sera-host` uses this one when it sits next to it, and re-executes itself otherwise.

fn main() {
    sera_host::sandbox::helper::run_if_requested();
    eprintln!(
        "sera-sandbox: the helper of sera-host's command sandbox; run by sera-host, not by hand"
    );
    std::process::exit(2);
}
