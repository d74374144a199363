use std::process::ExitCode;

// Parsing Python builds and drops a syntax tree per file; glibc's malloc spent 13% of a
// CPython-stdlib ingest on it, mimalloc a third of that (benches/corpus_ingest.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `sera-host ... | head` would panic in `println!` once `head`
    // exits; like other command-line tools, end quietly instead.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The command sandbox re-executes this binary; that process must not parse a command line.
    sera_host::sandbox::run_if_requested();
    sera_host::cli::main()
}
