//! No blocking filesystem call on a shard's thread after start-up.
//!
//! A `std::fs` call blocks the executor's thread for as long as the kernel
//! takes (a stat of a busy directory, a recursive removal: milliseconds),
//! and every connection and partition of the shard waits with it. The
//! crates that run on shard threads therefore call `std::fs` (and the
//! `Path` methods that stat) only inside `off_thread(..)` (the executor's
//! blocking-thread pool), or in start-up code listed here by file. This
//! test reads their sources and fails on any other use, so one cannot come
//! back unnoticed.

use std::path::Path;

/// Crates whose code runs on the shards' executors.
const SHARD_CRATES: &[&str] = &["log/src", "shard/src", "net/src", "quorum/src"];

/// Files whose `std::fs` calls run once, while a shard starts.
const START_UP: &[&str] = &["net/src/kafka/context.rs"];

/// How many lines above a call an `off_thread(` may open its closure.
const CLOSURE_LINES: usize = 4;

/// Blocking filesystem calls, as source text: `fs::` paths (`std::fs::`,
/// or `fs::` after `use std::fs`), `File::open`/`File::create` and the
/// `Path` methods that stat.
const BLOCKING: &[&str] = &[
    "fs::",
    "File::open",
    "File::create",
    ".is_dir()",
    ".is_file()",
    ".exists()",
];

/// True when `line` makes a blocking call: a [`BLOCKING`] pattern not
/// inside a longer name (`DmaFile::open` is io_uring's) nor a trait path
/// (`std::os::unix::fs::MetadataExt`).
fn blocking_call(line: &str) -> bool {
    BLOCKING.iter().any(|pattern| {
        line.match_indices(pattern).any(|(at, _)| {
            let before = &line[..at];
            let in_name = pattern.starts_with(|c: char| c.is_alphabetic())
                && before.ends_with(|c: char| c.is_alphanumeric() || c == '_');
            !in_name && !before.ends_with("unix::")
        })
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn shard_crates_call_std_fs_only_off_thread() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    let mut checked = 0;
    for krate in SHARD_CRATES {
        let mut files = Vec::new();
        rust_files(&root.join(krate), &mut files);
        for file in files {
            let relative = file.strip_prefix(root).expect("under the root");
            if START_UP.iter().any(|s| relative == Path::new(s)) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("readable source");
            // Unit tests run on the test's own thread, not a shard's.
            let code = text.split("mod tests {").next().unwrap_or_default();
            let lines: Vec<&str> = code.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") || !blocking_call(line) {
                    continue;
                }
                checked += 1;
                let from = i.saturating_sub(CLOSURE_LINES);
                if !lines[from..=i].iter().any(|l| l.contains("off_thread(")) {
                    offenders.push(format!("{}:{}: {line}", relative.display(), i + 1));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "blocking std::fs calls on a shard thread (wrap them in off_thread):\n{}",
        offenders.join("\n")
    );
    // The calls that exist are seen: the scan itself works.
    assert!(checked >= 7, "only {checked} blocking calls found");
}

#[test]
fn the_scan_tells_blocking_calls_from_io_uring_ones() {
    for blocking in [
        "std::fs::remove_dir(dir)",
        "let f = fs::read(path)?;",
        "std::fs::File::open(p)",
        "if dir.is_dir() {",
        "path.exists()",
    ] {
        assert!(blocking_call(blocking), "{blocking}");
    }
    for not_blocking in [
        "DmaFile::open(&probe).await",
        "use std::os::unix::fs::MetadataExt;",
        "S::File::slice(&chunk, from, n)",
        "self.shard.metadata()",
    ] {
        assert!(!blocking_call(not_blocking), "{not_blocking}");
    }
}
