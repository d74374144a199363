use std::process::ExitCode;

// Parsing Python builds and drops a syntax tree per file; glibc's malloc spent 13% of a
// CPython-stdlib ingest on it, mimalloc a third of that (benches/corpus_ingest.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    sera_host::cli::main()
}
