//! Replays every input of every fuzz target through the checks the target
//! runs (`caje::fuzzing`), so that plain `cargo test` keeps them passing
//! without a nightly toolchain: `fuzz/seeds/<target>/` (realistic inputs
//! and every crash a fuzzer found, under names that say what they are) and
//! `fuzz/corpus/<target>/` (what fuzzing grew, minimised).

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

// `caje::fuzzing::entry` measures what decoding allocates.
#[global_allocator]
static ALLOC: caje::fuzzing::CountingAllocator = caje::fuzzing::CountingAllocator;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("entry", caje::fuzzing::entry),
    ("config", caje::fuzzing::config),
    ("vary", caje::fuzzing::vary),
    ("cache_status", caje::fuzzing::cache_status),
    ("cache_control", caje::fuzzing::cache_control),
    ("range", caje::fuzzing::range),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every seed and corpus file of `target` and reports all that fail
/// at once.
fn replay(target: &str) {
    for kind in ["seeds", "corpus"] {
        replay_dir(target, &fuzz_dir().join(kind).join(target));
    }
}

fn replay_dir(target: &str, dir: &Path) {
    let Some((_, check)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        panic!("no check for fuzz target {target}");
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => panic!("corpus {} missing: {e}", dir.display()),
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn every_fuzz_target_is_replayed() {
    let dir = fuzz_dir().join("fuzz_targets");
    let targets: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .collect();
    let replayed: BTreeSet<String> = TARGETS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(targets, replayed);
}

#[test]
fn entry_corpus() {
    replay("entry");
}

#[test]
fn config_corpus() {
    replay("config");
}

#[test]
fn vary_corpus() {
    replay("vary");
}

#[test]
fn cache_status_corpus() {
    replay("cache_status");
}

#[test]
fn cache_control_corpus() {
    replay("cache_control");
}

#[test]
fn range_corpus() {
    replay("range");
}
