//! `qus-register`: parse, run, exit code; nothing else.

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use qus_registrar::{app, cli};

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help and --version, 2 for usage errors.
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(cli::exit::USAGE));
        }
    };
    let (stdout, stderr) = (io::stdout(), io::stderr());
    match app::run(&cli, &mut stdout.lock(), &mut stderr.lock()) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`qus-register --status | head`): the
        // registry work, if any, is complete; leave quietly.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(cli::exit::OK),
        Err(e) => {
            let _ = writeln!(stderr.lock(), "error: failed to write output: {e}");
            ExitCode::from(cli::exit::FAILED)
        }
    }
}
