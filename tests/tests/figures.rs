//! Every firmware figure is taken from one place: the "Current figures" table of BENCHMARKS.md.
//!
//! The README and the crate docs quote flash, RAM and stack figures of the example firmware.
//! This test reads the table, then checks every byte or KiB quantity in each paragraph (or table
//! row) of the quoting documents that talks about flash, static RAM or stack depth: each must be
//! a current figure (as `15,704 B`, `15,704 bytes` or `15.3 KiB`), the budget's remainder, or a
//! buffer size named below. A figure that changes in BENCHMARKS.md makes every stale quote fail
//! here, with its file and the figures it should be one of; and each quoting document must quote
//! the figures it is about.

use std::fs;
use std::path::{Path, PathBuf};

/// The documents that quote firmware figures, and the figures (by table row name) each must
/// quote at least once.
const QUOTING: &[(&str, &[&str])] = &[
    ("README.md", &[FLASH, FLASH_KEEP_ALIVE, RAM, STACK]),
    ("adapters/nal/src/lib.rs", &[FLASH, FLASH_KEEP_ALIVE, RAM]),
    ("core/README.md", &[]),
    ("core/src/lib.rs", &[]),
    ("adapters/ureq/src/lib.rs", &[]),
];

/// Row names of the table, as written in BENCHMARKS.md.
const FLASH: &str = "flash added, public client";
const FLASH_KEEP_ALIVE: &str = "flash added, public client, `keep-alive`";
const BUDGET: &str = "flash budget";
const RAM: &str = "client state (static RAM)";
const STACK: &str = "worst-case stack, `keep-alive`";

/// Quantities in those paragraphs that are not the firmware's footprint: sizes of the protocol
/// (the `Authorization` line's overhead, response heads, the refresh request's head, the token
/// answer), the example's 1 KiB response buffers, and a one-off comparison kept in
/// BENCHMARKS.md's history (httparse's extra flash).
const NOT_FIGURES: &[&str] =
    &["24 bytes", "150 bytes", "200 bytes", "500 bytes", "1 KiB", "1.8 KiB"];

/// Words that mark a paragraph as one about the firmware's footprint.
const TOPICS: &[&str] =
    &["flash", ".bss", "static RAM", "deepest stack", "worst-case stack", "stack depth"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The rows of BENCHMARKS.md's table between `<!-- figures: begin -->` and
/// `<!-- figures: end -->`: name and bytes.
fn current_figures() -> Vec<(String, u64)> {
    let text = fs::read_to_string(root().join("BENCHMARKS.md")).unwrap();
    let start = text.find("<!-- figures: begin -->").expect("no figures table in BENCHMARKS.md");
    let end = text.find("<!-- figures: end -->").expect("figures table not closed");
    let rows = text[start..end].lines().filter(|line| line.starts_with("| ")).skip(1);
    rows.filter(|row| !row.starts_with("|--") && !row.starts_with("|---"))
        .map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            let bytes = cells[1].strip_suffix(" B").unwrap_or_else(|| panic!("not in B: {row}"));
            (cells[0].to_owned(), bytes.replace(',', "").parse().unwrap())
        })
        .collect()
}

/// `15704` as `15,704`.
fn with_commas(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The ways a figure may be written.
fn spellings(bytes: u64) -> Vec<String> {
    let exact = with_commas(bytes);
    #[allow(clippy::cast_precision_loss)] // figures are far below 2^52
    let kib = bytes as f64 / 1024.0;
    let mut out = vec![format!("{exact} B"), format!("{exact} bytes"), format!("{kib:.1} KiB")];
    if bytes.is_multiple_of(1024) {
        out.push(format!("{} KiB", bytes / 1024));
    }
    out
}

/// Every `N B`, `N bytes` or `N KiB` in `text`, as written.
fn quantities(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < bytes.len()
            && (bytes[j].is_ascii_digit()
                || (matches!(bytes[j], b',' | b'.')
                    && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)))
        {
            j += 1;
        }
        let rest = &text[j..];
        let unit = [" bytes", " KiB", " B"].into_iter().find(|unit| {
            rest.starts_with(unit)
                && !rest[unit.len()..].chars().next().is_some_and(char::is_alphanumeric)
        });
        if let Some(unit) = unit {
            found.push(format!("{}{unit}", &text[i..j]));
        }
        i = j.max(i + 1);
    }
    found
}

/// A document's prose: Markdown as is, a Rust file's `//!` lines without their prefix.
fn prose(path: &str) -> String {
    let text = fs::read_to_string(root().join(path)).unwrap();
    if !path.ends_with(".rs") {
        return text;
    }
    let docs = text.lines().filter_map(|line| line.trim_start().strip_prefix("//!"));
    docs.map(|line| line.strip_prefix(' ').unwrap_or(line)).collect::<Vec<_>>().join("\n")
}

/// Paragraphs, with every table row and list item on its own.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("- ") && !current.is_empty() {
            out.push(core::mem::take(&mut current));
        }
        if line.trim().is_empty() || line.starts_with('|') {
            if !current.is_empty() {
                out.push(core::mem::take(&mut current));
            }
            if line.starts_with('|') {
                out.push(line.to_owned());
            }
            continue;
        }
        current.push_str(line);
        current.push(' ');
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[test]
fn readme_and_crate_docs_quote_the_current_figures_of_benchmarks_md() {
    let figures = current_figures();
    let get = |name: &str| {
        figures.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no row {name:?}")).1
    };
    let mut allowed: Vec<String> = figures.iter().flat_map(|(_, b)| spellings(*b)).collect();
    // "N B under the 16 KiB budget".
    allowed.extend(spellings(get(BUDGET).saturating_sub(get(FLASH_KEEP_ALIVE))));
    allowed.extend(NOT_FIGURES.iter().map(|s| (*s).to_owned()));

    let mut stale = Vec::new();
    for (path, required) in QUOTING {
        let text = prose(path);
        for paragraph in paragraphs(&text) {
            if !TOPICS.iter().any(|topic| paragraph.contains(topic)) {
                continue;
            }
            for quantity in quantities(&paragraph) {
                if !allowed.contains(&quantity) {
                    stale.push(format!("{path}: {quantity:?} in {:?}", paragraph.trim()));
                }
            }
        }
        for name in *required {
            let spelled = spellings(get(name));
            if !spelled.iter().any(|s| text.contains(s.as_str())) {
                stale.push(format!("{path} does not quote {name:?} (as one of {spelled:?})"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "figures that are not BENCHMARKS.md's current ones ({figures:?}):\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_current_figures_paragraph_of_benchmarks_md_agrees_with_its_table() {
    let figures = current_figures();
    let mut allowed: Vec<String> = figures.iter().flat_map(|(_, b)| spellings(*b)).collect();
    let budget = figures.iter().find(|(n, _)| n == BUDGET).unwrap().1;
    let keep_alive = figures.iter().find(|(n, _)| n == FLASH_KEEP_ALIVE).unwrap().1;
    allowed.extend(spellings(budget.saturating_sub(keep_alive)));
    let text = fs::read_to_string(root().join("BENCHMARKS.md")).unwrap();
    let now = text.find("**Now:").expect("BENCHMARKS.md has no **Now: paragraph");
    let paragraph = text[now..].split("\n\n").next().unwrap();
    // Only the bold sentence states the current figures; what follows it is history.
    let bold = paragraph.split("**").nth(1).unwrap();
    for quantity in quantities(bold) {
        assert!(allowed.contains(&quantity), "{quantity:?} in {bold:?} is not in the table");
    }
}

#[test]
fn quantities_and_spellings() {
    assert_eq!(
        quantities("adds 15,704 B (15.3 KiB); 6,048 bytes of `.bss`, 16 KiB, 512-byte, A1 B"),
        ["15,704 B", "15.3 KiB", "6,048 bytes", "16 KiB"]
    );
    assert_eq!(spellings(16_384), ["16,384 B", "16,384 bytes", "16.0 KiB", "16 KiB"]);
    assert_eq!(with_commas(1_264), "1,264");
    assert_eq!(with_commas(268), "268");
}
