//! `qus-register`: parse, run, exit code; nothing else.

use std::io::{self, Write as _};
use std::process::ExitCode;

use qus_registrar::cli::{self, Invocation};
use qus_registrar::{app, compat};

fn main() -> ExitCode {
    let invocation = match Invocation::parse(std::env::args_os()) {
        Ok(invocation) => invocation,
        Err(e) => {
            let _ = e.print();
            // 0 for --help and --version, 2 for usage errors.
            return ExitCode::from(e.exit_code());
        }
    };
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let ran = match &invocation {
        Invocation::Register(cli) => app::run(cli, &mut stdout.lock(), &mut stderr.lock()),
        Invocation::Binfmt(cli) => compat::run(cli, &mut stdout.lock(), &mut stderr.lock()),
    };
    match ran {
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
