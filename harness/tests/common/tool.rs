//! The static test tool, `tests/fixtures/tool/tool.c`: each argument is an
//! operation (`echo X`, `env NAME`, `exit N`, `register LINE`, ...), so
//! one binary in a `FROM scratch` image serves every engine test.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The tool, compiled with `gcc -static` once per process; `Err` says why
/// it cannot be (no gcc, no static libc).
pub fn tool_binary() -> Result<&'static [u8], String> {
    static BINARY: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tool/tool.c");
            let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
            let binary = dir.path().join("tool");
            let output = Command::new("gcc")
                .args(["-static", "-Os", "-o"])
                .arg(&binary)
                .arg(&source)
                .output()
                .map_err(|e| format!("gcc is unavailable: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "gcc -static failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            std::fs::read(&binary).map_err(|e| format!("cannot read the compiled tool: {e}"))
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}
