//! [`exec`]: run one command on the host with a timeout.
//!
//! `exec` steps use it on every runtime, and so do the host runtime's
//! `register` and `probe` steps; [`exec_with`] lets the caller start the
//! command in a private namespace or as another user. It captures output
//! and the exit status; it does not interpret them, and it never runs a
//! shell.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::error::{Operation, RuntimeError};
use super::spec::RunOutcome;

/// How long to keep reading output after the process exited.
///
/// A background grandchild can hold the pipes open long after the command
/// itself is gone; the command's own output has arrived by then.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs `command` (program and arguments) with `env` added to the
/// harness's environment, and kills it once `timeout` has passed.
///
/// Standard input is empty. A non-zero exit and a timeout are outcomes: a
/// process killed by signal `n` reports `128 + n`, a timed-out one is
/// killed with `SIGKILL` (137) and marked [`RunOutcome::timed_out`].
/// Dropping the returned future kills the process.
///
/// # Errors
///
/// [`RuntimeError::InvalidSpec`] for an empty command and
/// [`RuntimeError::Io`] when the program cannot be started (not found,
/// not executable).
pub async fn exec(
    command: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<RunOutcome, RuntimeError> {
    exec_with(command, env, timeout, |_| Ok(())).await
}

/// [`exec`], with `prepare` given the command before it is spawned: to
/// start it in a private namespace, as another user, or with variables
/// removed (see `sandbox::Launch`).
///
/// # Errors
///
/// As [`exec`]; an error of `prepare` is [`RuntimeError::Io`] too.
pub async fn exec_with(
    command: &[String],
    env: &[(String, String)],
    timeout: Duration,
    prepare: impl FnOnce(&mut Command) -> std::io::Result<()>,
) -> Result<RunOutcome, RuntimeError> {
    let Some((program, args)) = command.split_first() else {
        return Err(RuntimeError::InvalidSpec {
            reason: "the command line is empty".into(),
        });
    };
    let io_error = |source| RuntimeError::Io {
        operation: Operation::Exec,
        object: program.clone(),
        source,
    };
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + timeout);
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    prepare(&mut command).map_err(io_error)?;
    let mut child = command.spawn().map_err(io_error)?;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let (status, timed_out) = {
        // Read both pipes while waiting, or a chatty process fills a pipe
        // and blocks forever.
        let out_pipe = child.stdout.take();
        let err_pipe = child.stderr.take();
        let drain = async {
            tokio::join!(drain(out_pipe, &mut stdout), drain(err_pipe, &mut stderr));
        };
        tokio::pin!(drain);
        let mut drained = false;
        let exited = loop {
            tokio::select! {
                () = &mut drain, if !drained => drained = true,
                status = child.wait() => break Some(status),
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        let result = match exited {
            Some(status) => (status.map_err(io_error)?, false),
            None => {
                // Ignore a failed kill: the process may have exited just now.
                let _ = child.start_kill();
                (child.wait().await.map_err(io_error)?, true)
            }
        };
        if !drained {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut drain).await;
        }
        result
    };
    Ok(RunOutcome {
        exit_code: exit_code(status),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        duration: started.elapsed(),
        timed_out,
    })
}

/// Appends everything `pipe` yields to `buf`, stopping at the first error.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, buf: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    // Reading chunk by chunk (not `read_to_end`) keeps what arrived even if
    // the drain is abandoned at the grace deadline.
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The shell convention: the exit code, or `128 + n` for signal `n`.
pub(crate) fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn captures_stdout_stderr_and_exit_code() {
        let outcome = exec(
            &sh("echo out; echo err >&2; exit 3"),
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(outcome.exit_code, 3);
        assert_eq!(outcome.stdout, "out\n");
        assert_eq!(outcome.stderr, "err\n");
        assert!(!outcome.timed_out);
    }

    #[tokio::test]
    async fn passes_env() {
        let env = [("QUS_EXEC_TEST".to_owned(), "v a l".to_owned())];
        let outcome = exec(
            &sh("printf %s \"$QUS_EXEC_TEST\""),
            &env,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(outcome.stdout, "v a l");
        assert!(outcome.is_success());
    }

    #[tokio::test]
    async fn signal_maps_to_128_plus_n() {
        let outcome = exec(&sh("kill -TERM $$"), &[], Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(outcome.exit_code, 128 + 15);
    }

    #[tokio::test]
    async fn timeout_kills_and_keeps_output() {
        let started = Instant::now();
        let outcome = exec(
            &sh("echo before; exec sleep 30"),
            &[],
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        assert!(outcome.timed_out);
        assert_eq!(outcome.exit_code, 128 + 9);
        assert_eq!(outcome.stdout, "before\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn grandchild_holding_the_pipe_does_not_hang() {
        let started = Instant::now();
        let outcome = exec(&sh("echo done; sleep 30 &"), &[], Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(outcome.exit_code, 0);
        assert_eq!(outcome.stdout, "done\n");
        assert!(started.elapsed() < DRAIN_GRACE + Duration::from_secs(3));
    }

    #[tokio::test]
    async fn large_output_does_not_block() {
        let outcome = exec(
            &sh("head -c 1000000 /dev/zero | tr '\\0' x; head -c 200000 /dev/zero >&2"),
            &[],
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert_eq!(outcome.stdout.len(), 1_000_000);
        assert_eq!(outcome.stderr.len(), 200_000);
    }

    #[tokio::test]
    async fn missing_program_is_an_io_error() {
        let err = exec(&["/nonexistent/qus".into()], &[], Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Io { operation: Operation::Exec, object, source }
                if object == "/nonexistent/qus" && source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn empty_command_is_invalid() {
        let err = exec(&[], &[], Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, RuntimeError::InvalidSpec { .. }));
    }
}
