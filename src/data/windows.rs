//! Token windows: documents separated by end-of-text and packed into `block_size + 1` windows.
//!
//! The training stream walks row groups ("units") of the train shards in a seeded permutation
//! per epoch. A background thread reads and tokenizes a few units ahead (tokenization runs in
//! parallel there, off the training thread), packs each unit's documents into windows and
//! shuffles them with a seed derived from (seed, epoch, unit). Tokens left over after a unit's
//! last full window are carried into the next unit's first window, so within an epoch no token
//! is dropped; only each epoch's final partial window is, and the log says how many tokens that
//! was. The stream's position is a [`Cursor`] (epoch, unit position, window within the unit, the
//! carry into that unit): saving it in a checkpoint and restarting the producer there reproduces
//! the exact same batches after a resume.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::shards::{read_unit, RowGroupUnit};
use super::tokenizer::TextTokenizer;

/// How documents are read from the shards.
#[derive(Clone, Debug)]
pub struct TextSource {
    pub units: Vec<RowGroupUnit>,
    pub text_column: String,
    pub prepend_title: bool,
    /// Documents whose hash falls below this fraction are the validation set and are skipped by
    /// the training stream (0 when validation comes from separate shards).
    pub holdout_fraction: f64,
    /// [`doc_hash`]es of the validation shards' documents: train documents among them are
    /// reported as overlap while streaming (empty: no check).
    pub val_doc_hashes: std::collections::HashSet<u64>,
}

impl TextSource {
    fn read(&self, unit: &RowGroupUnit) -> Result<Vec<String>> {
        read_unit(unit, &self.text_column, self.prepend_title)
    }
}

/// Whether a document belongs to the held-out validation set: a stable hash of its text, so the
/// split is the same for every run, seed and resume.
pub fn is_held_out(text: &str, fraction: f64) -> bool {
    if fraction <= 0.0 {
        return false;
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_le_bytes(head) as f64 / u64::MAX as f64) < fraction
}

/// Concatenates documents, each followed by end-of-text, and cuts the stream into
/// non-overlapping windows of `window` tokens. A tail shorter than a window is dropped.
pub fn pack(docs: &[Vec<u32>], eot: u32, window: usize) -> Vec<Vec<u32>> {
    pack_from(&[], docs, eot, window).0
}

/// As [`pack`], starting with the tokens `carry` left over by the previous unit (fewer than a
/// window); returns the windows and the new leftover.
pub fn pack_from(
    carry: &[u32],
    docs: &[Vec<u32>],
    eot: u32,
    window: usize,
) -> (Vec<Vec<u32>>, Vec<u32>) {
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(window);
    cur.extend_from_slice(carry);
    for doc in docs {
        for &tok in doc.iter().chain(std::iter::once(&eot)) {
            cur.push(tok);
            if cur.len() == window {
                out.push(std::mem::replace(&mut cur, Vec::with_capacity(window)));
            }
        }
    }
    (out, cur)
}

/// Packing versions: 1 packed each row group alone and dropped its tail (lmtrain before the
/// carry; checkpoints without a `packing` key); 2 carries the tail into the next row group.
pub const PACKING: u32 = 2;

fn legacy_packing() -> u32 {
    1
}

/// Position in the training stream: the next window to hand out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub epoch: u64,
    /// Index into the epoch's unit permutation.
    pub unit: usize,
    /// Windows of that unit already handed out.
    pub window: usize,
    /// The tokens carried into that unit from the one before (packing 2).
    #[serde(default)]
    pub carry: Vec<u32>,
    /// How windows are packed ([`PACKING`]); absent in checkpoints from before the carry.
    #[serde(default = "legacy_packing")]
    pub packing: u32,
}

impl Default for Cursor {
    fn default() -> Self {
        Self {
            epoch: 0,
            unit: 0,
            window: 0,
            carry: Vec::new(),
            packing: PACKING,
        }
    }
}

/// One unit's shuffled windows, as produced by the background thread.
struct UnitWindows {
    epoch: u64,
    unit: usize,
    windows: Vec<Vec<u32>>,
    /// The tokens carried in from the previous unit.
    carry_in: Vec<u32>,
    /// The tokens left for the next unit.
    carry_out: Vec<u32>,
    /// Documents and tokens (with end-of-text separators) of this unit.
    docs: usize,
    tokens: usize,
    /// Documents of this unit that are also validation documents (first epoch only).
    overlap: usize,
    /// Lines for the run's log (token counts, dropped tails, overlaps).
    notes: Vec<String>,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(a.to_le_bytes());
    h.update(b.to_le_bytes());
    let d = h.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&d[..8]);
    u64::from_le_bytes(head)
}

/// The order in which units are visited in `epoch`.
pub fn unit_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(seed, epoch, u64::MAX));
    order.shuffle(&mut rng);
    order
}

#[allow(clippy::too_many_arguments)]
fn unit_windows(
    source: &TextSource,
    tokenizer: &TextTokenizer,
    window: usize,
    seed: u64,
    epoch: u64,
    pos: usize,
    carry_in: Vec<u32>,
    packing: u32,
) -> Result<UnitWindows> {
    let order = unit_order(source.units.len(), seed, epoch);
    let unit = &source.units[order[pos]];
    let docs: Vec<String> = source
        .read(unit)?
        .into_iter()
        .filter(|d| !is_held_out(d, source.holdout_fraction))
        .collect();
    let tokens = tokenizer.encode_batch(&docs).with_context(|| {
        format!(
            "tokenizing {} row group {}",
            unit.shard.display(),
            unit.row_group
        )
    })?;
    let carry = if packing >= 2 { carry_in } else { Vec::new() };
    let (mut windows, carry_out) = pack_from(&carry, &tokens, tokenizer.eot_id(), window);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(seed, epoch, pos as u64));
    windows.shuffle(&mut rng);
    // Checked during the first epoch only: later epochs read the same documents again.
    let overlap = if epoch > 0 || source.val_doc_hashes.is_empty() {
        0
    } else {
        docs.iter()
            .filter(|d| source.val_doc_hashes.contains(&doc_hash(d)))
            .count()
    };
    Ok(UnitWindows {
        epoch,
        unit: pos,
        windows,
        carry_in: carry,
        carry_out: if packing >= 2 { carry_out } else { Vec::new() },
        docs: docs.len(),
        tokens: tokens.iter().map(|t| t.len() + 1).sum(),
        overlap,
        notes: Vec::new(),
    })
}

/// A document's identity for the train/validation overlap check (first 8 bytes of its sha256).
pub fn doc_hash(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(head)
}

/// The training stream: windows in a deterministic order from a [`Cursor`] on.
pub struct TrainStream {
    rx: Receiver<Result<UnitWindows>>,
    current: Option<UnitWindows>,
    cursor: Cursor,
    notes: Vec<String>,
    _producer: JoinHandle<()>,
}

/// Units tokenized ahead of the trainer.
const PREFETCH_UNITS: usize = 2;

impl TrainStream {
    pub fn start(
        source: Arc<TextSource>,
        tokenizer: Arc<TextTokenizer>,
        window: usize,
        seed: u64,
        cursor: Cursor,
    ) -> Result<Self> {
        if source.units.is_empty() {
            bail!("the training shards contain no row groups");
        }
        let (tx, rx) = bounded(PREFETCH_UNITS);
        let start = cursor.clone();
        let producer = std::thread::Builder::new()
            .name("lmtrain-data".into())
            .spawn(move || {
                let n = source.units.len();
                let mut epoch = start.epoch;
                let mut pos = start.unit;
                let mut carry = start.carry.clone();
                let packing = start.packing;
                // Per-shard totals of the first epoch this process streams from its start, for
                // one log line per shard once all of its row groups have been read.
                let first_epoch = (start.unit == 0).then_some(start.epoch);
                let mut shard_totals: std::collections::BTreeMap<PathBuf, (usize, usize, usize)> =
                    Default::default();
                let mut epoch_tokens = 0usize;
                let mut epoch_docs = 0usize;
                let mut epoch_overlap = 0usize;
                let mut overlap_announced = false;
                let mut empty_epoch = true;
                loop {
                    let item = unit_windows(&source, &tokenizer, window, seed, epoch, pos, carry.clone(), packing);
                    let failed = item.is_err();
                    let item = item.map(|mut u| {
                        empty_epoch &= u.windows.is_empty();
                        epoch_tokens += u.tokens;
                        epoch_docs += u.docs;
                        epoch_overlap += u.overlap;
                        if u.overlap > 0 && !overlap_announced {
                            overlap_announced = true;
                            u.notes.push(format!(
                                "warning: train documents that are also validation documents, first in {} (the epoch's total follows at its end)",
                                source.units[unit_order(n, seed, epoch)[pos]].shard.display()
                            ));
                        }
                        carry = u.carry_out.clone();
                        if first_epoch == Some(epoch) {
                            let shard = source.units[unit_order(n, seed, epoch)[pos]].shard.clone();
                            let units_of_shard = source.units.iter().filter(|x| x.shard == shard).count();
                            let e = shard_totals.entry(shard.clone()).or_default();
                            *e = (e.0 + 1, e.1 + u.docs, e.2 + u.tokens);
                            if e.0 == units_of_shard {
                                u.notes.push(format!(
                                    "train shard {}: {} documents, {} tokens (with end-of-text separators)",
                                    shard.display(),
                                    e.1,
                                    e.2
                                ));
                            }
                        }
                        if pos + 1 == n && epoch_overlap > 0 && first_epoch == Some(epoch) {
                            u.notes.push(format!(
                                "warning: {epoch_overlap} of the {epoch_docs} train documents of epoch {epoch} also appear in the validation shards: the validation loss is measured partly on trained-on text"
                            ));
                        }
                        if pos + 1 == n && packing >= 2 && !carry.is_empty() {
                            u.notes.push(format!(
                                "epoch {epoch} ends: its final partial window of {} tokens is dropped",
                                carry.len()
                            ));
                        }
                        u
                    });
                    if tx.send(item).is_err() || failed {
                        return; // the trainer is gone, or the error has been handed over
                    }
                    pos += 1;
                    if pos == n {
                        if empty_epoch {
                            let _ = tx.send(Err(anyhow!(
                                "a whole pass over the training shards holds {epoch_tokens} tokens (end-of-text separators included), fewer than one window of {window} (model.block_size + 1): add training data or lower model.block_size"
                            )));
                            return;
                        }
                        epoch += 1;
                        pos = 0;
                        carry.clear();
                        epoch_tokens = 0;
                        epoch_docs = 0;
                        epoch_overlap = 0;
                        empty_epoch = true;
                    }
                }
            })
            .context("cannot start the data thread")?;
        Ok(Self {
            rx,
            current: None,
            cursor,
            notes: Vec::new(),
            _producer: producer,
        })
    }

    /// Lines for the run's log gathered since the last call (shard token counts, dropped
    /// epoch tails, train/validation overlaps).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Where the stream stands: the next window it will hand out.
    pub fn cursor(&self) -> Cursor {
        self.cursor.clone()
    }

    /// The next window (block_size + 1 tokens).
    pub fn next_window(&mut self) -> Result<Vec<u32>> {
        loop {
            if let Some(u) = &mut self.current {
                if self.cursor.window < u.windows.len() {
                    let w = std::mem::take(&mut u.windows[self.cursor.window]);
                    self.cursor.window += 1;
                    return Ok(w);
                }
                self.current = None;
            }
            let mut next = self
                .rx
                .recv()
                .map_err(|_| anyhow!("the data thread stopped unexpectedly"))??;
            self.notes.append(&mut next.notes);
            // The producer starts at the cursor's unit, so the first unit received is the
            // current one (with `cursor.window` windows already consumed); later ones advance.
            if next.epoch != self.cursor.epoch || next.unit != self.cursor.unit {
                self.cursor = Cursor {
                    epoch: next.epoch,
                    unit: next.unit,
                    window: 0,
                    carry: next.carry_in.clone(),
                    packing: self.cursor.packing,
                };
            }
            self.current = Some(next);
        }
    }
}

/// The fixed validation set: the first `count` windows, in file order, of either the validation
/// shards or the held-out documents of the train shards. Identical across runs, seeds and resumes.
pub fn validation_windows(
    source: &TextSource,
    from_holdout: bool,
    tokenizer: &TextTokenizer,
    window: usize,
    count: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut pending: Vec<Vec<u32>> = Vec::new();
    for unit in &source.units {
        let docs: Vec<String> = source
            .read(unit)?
            .into_iter()
            .filter(|d| !from_holdout || is_held_out(d, source.holdout_fraction))
            .collect();
        pending.extend(tokenizer.encode_batch(&docs)?);
        let packed = pack(&pending, tokenizer.eot_id(), window);
        if packed.len() >= count {
            out = packed;
            break;
        }
        out = packed;
    }
    out.truncate(count);
    if out.is_empty() {
        let tokens: usize = pending.iter().map(|d| d.len() + 1).sum();
        bail!(
            "the validation data holds {tokens} tokens (end-of-text separators included), fewer than one window of {window} (model.block_size + 1); add data.val_glob shards, raise data.val_fraction or lower model.block_size"
        );
    }
    Ok(out)
}

/// Shard paths of a source, for fingerprints.
pub fn shard_paths(units: &[RowGroupUnit]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = units.iter().map(|u| u.shard.clone()).collect();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_separates_documents_and_drops_the_tail() {
        let docs = vec![vec![1, 2, 3], vec![4], vec![5, 6]];
        let w = pack(&docs, 0, 3);
        assert_eq!(w, vec![vec![1, 2, 3], vec![0, 4, 0], vec![5, 6, 0]]);
        let w = pack(&docs, 0, 4);
        assert_eq!(w, vec![vec![1, 2, 3, 0], vec![4, 0, 5, 6]]);
    }

    /// Packing unit by unit with the carry gives exactly the windows of packing all documents
    /// at once, whatever the split; only the final tail is left over.
    #[test]
    fn carry_makes_packing_independent_of_the_row_groups() {
        let docs: Vec<Vec<u32>> = (1..40u32)
            .map(|i| (0..(i % 7) + 1).map(|j| i * 10 + j).collect())
            .collect();
        let (whole, tail) = pack_from(&[], &docs, 0, 5);
        for split in [1, 2, 3, 11] {
            let mut carry = Vec::new();
            let mut windows = Vec::new();
            for chunk in docs.chunks(split) {
                let (w, c) = pack_from(&carry, chunk, 0, 5);
                windows.extend(w);
                carry = c;
            }
            assert_eq!(windows, whole, "split {split}");
            assert_eq!(carry, tail);
        }
        assert!(tail.len() < 5);
    }

    /// A cursor saved before the carry existed reads as packing 1, so such a run resumes on
    /// the packing it started with, never silently on different windows.
    #[test]
    fn old_cursors_keep_their_packing() {
        let old: Cursor = serde_json::from_str(r#"{"epoch":0,"unit":1,"window":2}"#).unwrap();
        assert_eq!((old.packing, old.carry.len()), (1, 0));
        let new = Cursor::default();
        let back: Cursor = serde_json::from_value(serde_json::to_value(&new).unwrap()).unwrap();
        assert_eq!(back.packing, PACKING);
    }

    #[test]
    fn holdout_is_stable_and_near_the_fraction() {
        let docs: Vec<String> = (0..20_000)
            .map(|i| format!("document number {i}"))
            .collect();
        let held = docs.iter().filter(|d| is_held_out(d, 0.1)).count();
        assert!((1_700..2_300).contains(&held), "{held}");
        assert!(docs
            .iter()
            .all(|d| is_held_out(d, 0.1) == is_held_out(d, 0.1)));
        assert!(!docs.iter().any(|d| is_held_out(d, 0.0)));
    }

    #[test]
    fn unit_order_is_a_seeded_permutation() {
        let a = unit_order(50, 7, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, unit_order(50, 7, 0));
        assert_ne!(a, unit_order(50, 7, 1));
        assert_ne!(a, unit_order(50, 8, 0));
    }
}
