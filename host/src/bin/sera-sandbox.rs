//! The command sandbox's helper as its own small binary: re-executing the 200 MB `sera-host`
//! (wasmtime and the builtin plugins inside) for every command cost ~4 ms of loading alone.
//! `sera-host` uses this one when it sits next to it, and re-executes itself otherwise.

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|a| a == "__sandbox-exec") {
        let spec = args
            .next()
            .and_then(|s| s.into_string().ok())
            .unwrap_or_default();
        sera_host::sandbox::helper::main(&spec);
    }
    eprintln!(
        "sera-sandbox: the helper of sera-host's command sandbox; run by sera-host, not by hand"
    );
    std::process::exit(2);
}
