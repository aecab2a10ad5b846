//! A generated section of a Markdown file: the text between two marker comments, replaced on
//! each run so that the hand-written text around it stays. `document.rs` (the side-by-side
//! tables) and `wasq-chaos` (the Reliability table) both write BENCHMARKS.md through it.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// Replaces the section between `begin` and `end` in the file at `path` (or appends it when
/// the markers are missing). `section` includes both markers.
pub(crate) fn update(path: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let updated = replace_section(&text, begin, end, section)?;
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

/// `text` with the section between `begin` and `end` replaced by `section`, or with `section`
/// appended when neither marker is there.
pub(crate) fn replace_section(text: &str, begin: &str, end: &str, section: &str) -> Result<String> {
    match (text.find(begin), text.find(end)) {
        (Some(start), Some(stop)) if stop > start => {
            let after = &text[stop + end.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            Ok(format!("{}{section}{after}", &text[..start]))
        }
        (None, None) => Ok(format!("{}\n\n{section}", text.trim_end())),
        _ => bail!(
            "the markers `{begin}` and `{end}` are out of order or one is missing; put them back"
        ),
    }
}
