//! Token windows: documents separated by end-of-text and packed into `block_size + 1` windows.
//!
//! The training stream walks row groups ("units") of the train shards in a seeded permutation
//! per epoch. A background thread reads and tokenizes a few units ahead (tokenization runs in
//! parallel there, off the training thread), packs each unit's documents into windows and
//! shuffles them with a seed derived from (seed, epoch, unit). The stream's position is a
//! [`Cursor`] (epoch, unit position, window within the unit): saving it in a checkpoint and
//! restarting the producer there reproduces the exact same batches after a resume.

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
    let mut out = Vec::new();
    let mut cur = Vec::with_capacity(window);
    for doc in docs {
        for &tok in doc.iter().chain(std::iter::once(&eot)) {
            cur.push(tok);
            if cur.len() == window {
                out.push(std::mem::replace(&mut cur, Vec::with_capacity(window)));
            }
        }
    }
    out
}

/// Position in the training stream: the next window to hand out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Cursor {
    pub epoch: u64,
    /// Index into the epoch's unit permutation.
    pub unit: usize,
    /// Windows of that unit already handed out.
    pub window: usize,
}

/// One unit's shuffled windows, as produced by the background thread.
struct UnitWindows {
    epoch: u64,
    unit: usize,
    windows: Vec<Vec<u32>>,
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

fn unit_windows(
    source: &TextSource,
    tokenizer: &TextTokenizer,
    window: usize,
    seed: u64,
    epoch: u64,
    pos: usize,
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
    let mut windows = pack(&tokens, tokenizer.eot_id(), window);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(seed, epoch, pos as u64));
    windows.shuffle(&mut rng);
    Ok(UnitWindows {
        epoch,
        unit: pos,
        windows,
    })
}

/// The training stream: windows in a deterministic order from a [`Cursor`] on.
pub struct TrainStream {
    rx: Receiver<Result<UnitWindows>>,
    current: Option<UnitWindows>,
    cursor: Cursor,
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
        let producer = std::thread::Builder::new()
            .name("lmtrain-data".into())
            .spawn(move || {
                let mut epoch = cursor.epoch;
                let mut pos = cursor.unit;
                let mut empty_epoch = true;
                loop {
                    let item = unit_windows(&source, &tokenizer, window, seed, epoch, pos);
                    let failed = item.is_err();
                    if let Ok(u) = &item {
                        empty_epoch &= u.windows.is_empty();
                    }
                    if tx.send(item).is_err() || failed {
                        return; // the trainer is gone, or the error has been handed over
                    }
                    pos += 1;
                    if pos == source.units.len() {
                        if empty_epoch {
                            let _ = tx.send(Err(anyhow!(
                                "a whole pass over the training shards produced no window of {window} tokens: the data is too small for model.block_size"
                            )));
                            return;
                        }
                        epoch += 1;
                        pos = 0;
                        empty_epoch = true;
                    }
                }
            })
            .context("cannot start the data thread")?;
        Ok(Self {
            rx,
            current: None,
            cursor,
            _producer: producer,
        })
    }

    /// Where the stream stands: the next window it will hand out.
    pub fn cursor(&self) -> Cursor {
        self.cursor
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
            let next = self
                .rx
                .recv()
                .map_err(|_| anyhow!("the data thread stopped unexpectedly"))??;
            // The producer starts at the cursor's unit, so the first unit received is the
            // current one (with `cursor.window` windows already consumed); later ones advance.
            if next.epoch != self.cursor.epoch || next.unit != self.cursor.unit {
                self.cursor = Cursor {
                    epoch: next.epoch,
                    unit: next.unit,
                    window: 0,
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
        bail!(
            "the validation data yields no window of {window} tokens; add data.val_glob shards, raise data.val_fraction or lower model.block_size"
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
