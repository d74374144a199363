//! Reading patch files given on the command line, with errors that name the file and line.

use std::path::Path;

use anyhow::{bail, Result};

/// Reads a unified diff and checks it parses. `allow_empty` accepts an empty (or blank) file,
/// which stands for "no edit".
pub fn read_patch(path: &Path, allow_empty: bool) -> Result<String> {
    let shown = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => bail!("{shown}: cannot read: {e}"),
    };
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        bail!(
            "{shown}:{line}: binary file (NUL byte at byte offset {offset}); expected a text unified diff"
        );
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            bail!(
                "{shown}:{line}: not UTF-8 text (invalid byte at byte offset {offset}); expected a UTF-8 unified diff"
            );
        }
    };
    if text.trim().is_empty() {
        if allow_empty {
            return Ok(text);
        }
        bail!(
            "{shown}: empty file; expected a unified diff (use --allow-empty to score an empty candidate as 'no edit')"
        );
    }
    if let Err(e) = line_recall_core::change_lines(&text) {
        bail!(
            "{shown}:{}: expected {}, found {}",
            e.line,
            e.expected,
            e.found
        );
    }
    Ok(text)
}
