//! Rewinding a run's JSONL logs to the checkpoint a resume starts from.
//!
//! A run that crashes (killed, out of memory, power loss) has logged rows after its last
//! checkpoint; resuming replays those steps and logs them again. Without a rewind, metrics.jsonl
//! would hold two rows for those steps, and generations.jsonl two evaluations — and the
//! butterfly horizon would compare an evaluation with its own future. A graceful stop
//! checkpoints its last step, so there is nothing to drop.

use std::path::Path;

use anyhow::{Context, Result};

/// Drops the rows of the JSONL file at `path` whose `step` is after `step`, and a torn last line
/// (an interrupted write), rewriting the file atomically. Returns how many lines were dropped;
/// a missing file is zero.
pub fn rewind_jsonl(path: &Path, step: u64) -> Result<usize> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut kept = String::with_capacity(text.len());
    let mut dropped = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row_step = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        match row_step {
            Some(s) if s <= step => {
                kept.push_str(line);
                kept.push('\n');
            }
            _ => dropped += 1,
        }
    }
    if dropped > 0 {
        crate::fsutil::write_atomic(path, kept.as_bytes())
            .with_context(|| format!("rewinding {} to step {step}", path.display()))?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_rows_after_the_step_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.jsonl");
        std::fs::write(
            &p,
            "{\"step\":1,\"x\":1}\n{\"step\":4}\n{\"step\":5}\n{\"step\":8,\"y\":[1]}\n{\"ste",
        )
        .unwrap();
        assert_eq!(rewind_jsonl(&p, 4).unwrap(), 3);
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"step\":1,\"x\":1}\n{\"step\":4}\n"
        );
        // Nothing after the step: the file is left alone.
        assert_eq!(rewind_jsonl(&p, 4).unwrap(), 0);
        assert_eq!(
            rewind_jsonl(&dir.path().join("absent.jsonl"), 4).unwrap(),
            0
        );
    }
}
