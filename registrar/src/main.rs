//! `qus-register`: parse, run, exit code.

fn main() -> std::process::ExitCode {
    qus_registrar::cli::main()
}
