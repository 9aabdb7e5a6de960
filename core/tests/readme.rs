//! Keeps the crate's README (`core/README.md`, the crate doc, whose example runs as a doctest)
//! in step with the workspace README, which shows the same sections. The workspace README is not
//! in the published package, so this test is not either (`exclude` in `Cargo.toml`).

use std::fs;
use std::path::Path;

/// The workspace README's sections that `core/README.md` repeats word for word: from the state
/// machine to the last section about the core.
const FIRST: &str = "## The state machine\n";
const AFTER_LAST: &str = "## Desktop quick start";

#[test]
fn crate_readme_repeats_the_core_sections_of_the_workspace_readme() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = fs::read_to_string(dir.join("../README.md")).expect("workspace README.md");
    let crate_readme = fs::read_to_string(dir.join("README.md")).expect("core/README.md");
    let start = workspace.find(FIRST).expect("the workspace README has a state machine section");
    let len = workspace[start..].find(AFTER_LAST).expect("and a desktop quick start after it");
    let sections = workspace[start..start + len].trim_end();
    assert!(
        crate_readme.contains(sections),
        "core/README.md no longer repeats README.md from {FIRST:?} to {AFTER_LAST:?}: copy the \
         changed section across (the crate README's copy is the one compiled as a doctest)"
    );
}
