//! `qus-harness`: parse, run, exit code; nothing else.

use std::process::ExitCode;

use clap::Parser as _;
use qus_harness::{app, cli};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help and --version, 2 for usage errors.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(cli::exit::USAGE));
        }
    };
    // Doctor reports what the runtimes would log (a refused
    // `--privileged`) as checks of its own: only errors go to stderr.
    let quiet = matches!(cli.command, cli::Command::Doctor(_));
    init_logging(cli.verbose, quiet);
    ExitCode::from(app::main(cli))
}

/// Diagnostics go to stderr: warnings by default, more with `-v`/`-vv` or
/// `QUS_LOG` (an env-filter directive such as `qus_harness=debug`);
/// errors only by default when `quiet`.
fn init_logging(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
