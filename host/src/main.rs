use std::process::ExitCode;

fn main() -> ExitCode {
    sera_host::cli::main()
}
