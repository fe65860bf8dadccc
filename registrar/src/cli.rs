//! TODO: cli.

/// Entry point of `qus-register`.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
