//! The client programs under tests/clients and the toolchains they need:
//! where each lives, a check that a toolchain runs (the tests do not skip
//! without one), and their one-time setup (dependencies fetched or built
//! once per test binary).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use super::run;

/// Bound on one setup step: the first run downloads the dependencies.
const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// tests/clients/NAME.
pub fn client_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Panics with a clear message unless `program --version`-like `args` runs
/// and exits 0: the test needs this toolchain and does not skip without it.
pub fn require_tool(program: &str, args: &[&str], needed_for: &str) {
    let status = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`{program} {}` exited with {status}: {program} is needed for {needed_for} \
             (scripts/test sets it up)",
            args.join(" ")
        ),
        Err(e) => panic!(
            "cannot run `{program}` ({e}): {program} is needed for {needed_for} \
             (scripts/test sets it up)"
        ),
    }
}

/// Runs a setup command in `dir` and panics (showing its output) unless it
/// succeeds within SETUP_TIMEOUT.
pub fn setup(dir: &Path, program: &str, args: &[&str]) {
    run(
        Command::new(program).args(args).current_dir(dir),
        b"",
        SETUP_TIMEOUT,
    )
    .assert_success();
}

/// tests/clients/java with kafka-clients and its runtime dependencies
/// (slf4j, lz4, snappy, zstd) copied to target/dependency: once per run of
/// these tests, offline and quick once they are fetched.
pub fn java_client() -> PathBuf {
    require_tool("java", &["-version"], "the Java client test");
    require_tool("mvn", &["-v"], "fetching the Java client's jars");
    let dir = client_dir("java");
    static SETUP: Once = Once::new();
    SETUP.call_once(|| {
        setup(
            &dir,
            "mvn",
            &["-q", "-B", "-ntp", "dependency:copy-dependencies"],
        )
    });
    dir
}

/// The lines a single-file Java program of tests/clients/java printed
/// (`java -cp 'target/dependency/*' PROGRAM ARGS...`), the client's own log
/// lines (which start with `[`) left out; it must succeed within 300 s.
pub fn java_program_lines(program: &str, args: &[&str]) -> Vec<String> {
    let dir = java_client();
    let out = run(
        Command::new("java")
            .arg("-cp")
            .arg(format!("{}/*", dir.join("target/dependency").display()))
            .arg(dir.join(program))
            .args(args),
        b"",
        Duration::from_secs(300),
    );
    out.assert_success();
    out.stdout_text()
        .lines()
        .filter(|l| !l.starts_with('['))
        .map(str::to_owned)
        .collect()
}
