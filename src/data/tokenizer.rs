//! Hugging Face `tokenizers` byte-level BPE: training, loading, and the reuse/retrain policy.
//!
//! Conventions:
//! * `<|endoftext|>` ([`EOT`]) is a *special* added token. A tokenizer we train gives it id 0
//!   (the BPE trainer puts special tokens first, then the 256 byte tokens at ids 1..=256, then
//!   merges). Foreign files keep their own id (GPT-2: 50256); always ask [`TextTokenizer::eot_id`].
//! * The literal text `<|endoftext|>` inside a document IS recognised as the special token (one
//!   id), as in GPT-2's tokenizer. Documents are joined with EOT anyway, so a stray literal acts
//!   as one more document boundary instead of being spelled out in bytes.
//! * Encoding never adds special tokens and never truncates or pads (both are switched off on
//!   load, whatever the file says), and decoding keeps special tokens, so
//!   `decode(encode(s)) == s` for every UTF-8 `s`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    Tokenizer, TokenizerBuilder, TokenizerImpl,
};

/// The document separator, and the one special token of a tokenizer we train.
pub const EOT: &str = "<|endoftext|>";

/// Number of byte tokens of a byte-level alphabet; with EOT, the smallest usable vocabulary.
const BYTE_TOKENS: usize = 256;

/// A loaded or freshly trained tokenizer.
pub struct TextTokenizer {
    inner: Tokenizer,
    eot: u32,
    /// Largest id + 1: the embedding size this tokenizer needs.
    vocab_size: usize,
    /// The exact JSON that [`TextTokenizer::save`] writes (for a loaded file: its bytes as read),
    /// so the hash identifies the file on disk.
    json: String,
    hash: String,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The inner tokenizer's Debug dumps the whole vocabulary; keep logs readable.
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("eot_id", &self.eot)
            .field("content_hash", &self.hash)
            .finish()
    }
}

/// `tokenizers` errors are boxed `dyn Error`s; bring them into anyhow keeping their message.
fn tk_err(e: tokenizers::Error) -> anyhow::Error {
    anyhow!(e)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl TextTokenizer {
    /// Builds from tokenizer.json text; `origin` names where it came from in errors.
    fn from_json(json: String, origin: &str) -> Result<Self> {
        let mut inner = Tokenizer::from_str(&json)
            .map_err(tk_err)
            .with_context(|| {
                format!(
                    "{origin} is not a valid tokenizer.json; delete it to have it retrained, \
                 or point tokenizer.path elsewhere"
                )
            })?;
        // Token windows are cut by the data pipeline; a file's own truncation/padding settings
        // (foreign tokenizer.json files may carry some) would silently drop or add tokens.
        inner
            .with_truncation(None)
            .map_err(tk_err)
            .with_context(|| format!("{origin}: cannot disable truncation"))?;
        inner.with_padding(None);
        let eot = inner.token_to_id(EOT).ok_or_else(|| {
            anyhow!(
                "{origin} has no `{EOT}` token, which lmtrain uses as the document separator; \
                 use a tokenizer that has it (ours, or GPT-2's), or delete the file to train one"
            )
        })?;
        // Max id + 1 rather than the number of entries: equal for contiguous vocabularies
        // (ours, GPT-2's), and a sparse foreign one must still fit the embedding table.
        let vocab = inner.get_vocab(true);
        let vocab_size = vocab
            .values()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0)
            .max(vocab.len());
        let hash = sha256_hex(json.as_bytes());
        Ok(Self {
            inner,
            eot,
            vocab_size,
            json,
            hash,
        })
    }

    /// Loads any HF tokenizer.json (ours, or e.g. GPT-2's). Errors name the file and the fix if
    /// it is missing, unreadable or corrupt, or lacks an `<|endoftext|>` token.
    pub fn load(path: &Path) -> Result<Self> {
        let json = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read tokenizer {}; point tokenizer.path at an existing tokenizer.json \
                 (or, if the file is corrupt, delete it to have it retrained)",
                path.display()
            )
        })?;
        Self::from_json(json, &path.display().to_string())
    }

    /// Trains a byte-level BPE on `docs`: ByteLevel pre-tokenizer (no prefix space, GPT-2's
    /// regex), no normalizer, ByteLevel decoder and post-processor (trim_offsets), all 256 byte
    /// tokens in the initial alphabet (so any input is encodable, no unknown token), and
    /// `<|endoftext|>` as special token with id 0. `vocab_size` counts everything (EOT + 256
    /// bytes + merges); a corpus too small to produce that many merges yields a smaller
    /// vocabulary, so size the model by [`Self::vocab_size`], not by the request.
    pub fn train(docs: &[String], vocab_size: usize) -> Result<Self> {
        if vocab_size < BYTE_TOKENS + 1 {
            bail!(
                "tokenizer vocab_size {vocab_size} is too small: a byte-level BPE needs at least \
                 {} (256 byte tokens + `{EOT}`)",
                BYTE_TOKENS + 1
            );
        }
        if docs.is_empty() {
            bail!("no documents to train the tokenizer on");
        }
        let byte_level = ByteLevel::new(false, true, true);
        let mut tk: TokenizerImpl<
            BPE,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        > = TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(byte_level)))
            .with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)))
            .with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)))
            .build()
            .map_err(tk_err)
            .context("building the tokenizer pipeline")?;
        let eot = AddedToken::from(EOT, true);
        // Registered before training so that a literal `<|endoftext|>` in a training document is
        // split off as the special token, exactly as encoding will do, instead of feeding its
        // bytes into the merge statistics.
        tk.add_special_tokens(std::slice::from_ref(&eot));
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .show_progress(false)
            .special_tokens(vec![eot])
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        tk.train(&mut trainer, docs.iter())
            .map_err(tk_err)
            .context("training the BPE tokenizer")?;
        let json = Tokenizer::from(tk)
            .to_string(true)
            .map_err(tk_err)
            .context("serialising the trained tokenizer")?;
        // Re-parse the JSON so that a freshly trained tokenizer is exactly what load() of the
        // saved file gives, and its content_hash is that file's hash.
        Self::from_json(json, "the freshly trained tokenizer")
    }

    /// Atomic write (tmp file + fsync + rename), so a crash never leaves a half-written
    /// tokenizer that a later run would load.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_atomic(path, self.json.as_bytes())
    }

    /// Size the embedding must have: largest token id + 1 (== `get_vocab_size(true)` for
    /// contiguous vocabularies, which ours and GPT-2's are).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn eot_id(&self) -> u32 {
        self.eot
    }

    /// Encodes each doc without adding special tokens, in parallel over docs on rayon's global
    /// pool (RAYON_NUM_THREADS sets its size).
    pub fn encode_batch(&self, docs: &[String]) -> Result<Vec<Vec<u32>>> {
        docs.par_iter()
            .enumerate()
            .map(|(i, doc)| {
                self.encode(doc)
                    .with_context(|| format!("encoding document {i} of the batch"))
            })
            .collect()
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        // encode_fast: same ids, but skips converting offsets to char positions, which we never use.
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(tk_err)
            .context("tokenizer failed to encode text")?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes WITHOUT skipping special tokens and without cleanup, so that
    /// `decode(encode(s)) == s` exactly. Ids that cut a multi-byte character in half (a prefix
    /// of a sequence, say) decode to U+FFFD for the partial character. Unknown ids are an error
    /// (the library would silently drop them).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        if let Some(bad) = ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            bail!(
                "token id {bad} is not in the tokenizer's vocabulary (size {})",
                self.vocab_size
            );
        }
        self.inner
            .decode(ids, false)
            .map_err(tk_err)
            .context("tokenizer failed to decode ids")
    }

    /// sha256 of the tokenizer.json bytes as saved (hex): identifies the tokenizer in checkpoints.
    pub fn content_hash(&self) -> String {
        self.hash.clone()
    }
}

/// Sidecar `<tokenizer path>.meta.json`: what a tokenizer we trained was trained for.
/// `vocab_size` is the *requested* size (the config value it is compared against), which a tiny
/// corpus may not reach; the real size is in the tokenizer itself.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TokenizerMeta {
    pub vocab_size: usize,
    pub data_fingerprint: String,
    pub docs: usize,
    pub trained_by: String,
}

/// Where [`ensure_tokenizer`] keeps the sidecar of the tokenizer at `path`.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".meta.json");
    PathBuf::from(s)
}

/// How [`ensure_tokenizer`] obtained its tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerSource {
    Loaded,
    /// `reason` says why (no file, or what differed, old → new), for the caller to log.
    Trained {
        reason: String,
    },
}

/// The policy the trainer uses.
/// * `path` exists with a sidecar whose vocab_size and data_fingerprint match → load it.
/// * `path` exists with a sidecar that doesn't match (or can't be read) → retrain, overwrite,
///   and return `Trained { reason }` naming what differed (old vs new); never reuse silently.
/// * `path` exists without a sidecar (a foreign file such as GPT-2's tokenizer.json) → load it
///   as is; its vocabulary then sets the model's, whatever `vocab_size` says.
/// * `path` doesn't exist → train on `collect_docs()` and save it with its sidecar.
///
/// `collect_docs` is called only when training is needed (reading documents is the slow part).
/// The tokenizer is written before the sidecar: a crash in between leaves either no sidecar
/// on a fresh tokenizer (loaded as is next time, which is right) or a stale sidecar (retrained
/// next time), never a sidecar vouching for the wrong tokenizer.
pub fn ensure_tokenizer(
    path: &Path,
    vocab_size: usize,
    data_fingerprint: &str,
    collect_docs: impl FnOnce() -> Result<Vec<String>>,
) -> Result<(TextTokenizer, TokenizerSource, PathBuf)> {
    // A tokenizer file is never overwritten: checkpoints may have been trained with it. One for
    // other settings goes beside it, named by its settings' fingerprint.
    let settings = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(format!("{data_fingerprint}|{vocab_size}").as_bytes());
        d.iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let path = path.to_path_buf();
    if path.exists() && meta_path(&path).exists() {
        if let Ok(meta) = read_meta(&meta_path(&path)) {
            if meta.vocab_size != vocab_size || meta.data_fingerprint != data_fingerprint {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let alt = path.with_file_name(format!("{stem}.{settings}.json"));
                let (tok, source, alt) =
                    ensure_exact(&alt, vocab_size, data_fingerprint, collect_docs)?;
                let source = match source {
                    TokenizerSource::Loaded => TokenizerSource::Loaded,
                    TokenizerSource::Trained { reason } => TokenizerSource::Trained {
                        reason: format!(
                            "{} was trained for other data or settings ({}) and is kept unchanged for the runs that use it; {reason}",
                            path.display(),
                            describe_diff(&meta, vocab_size, data_fingerprint)
                        ),
                    },
                };
                return Ok((tok, source, alt));
            }
        }
    }
    ensure_exact(&path, vocab_size, data_fingerprint, collect_docs)
}

fn describe_diff(meta: &TokenizerMeta, vocab_size: usize, data_fingerprint: &str) -> String {
    let mut diffs = Vec::new();
    if meta.vocab_size != vocab_size {
        diffs.push(format!("vocab_size {} → {vocab_size}", meta.vocab_size));
    }
    if meta.data_fingerprint != data_fingerprint {
        diffs.push("data fingerprint changed".to_string());
    }
    diffs.join(", ")
}

/// Loads the tokenizer at `path` when it was trained for these settings, else trains one there
/// (only where no file with other settings exists: the caller picks another path for those).
fn ensure_exact(
    path: &Path,
    vocab_size: usize,
    data_fingerprint: &str,
    collect_docs: impl FnOnce() -> Result<Vec<String>>,
) -> Result<(TextTokenizer, TokenizerSource, PathBuf)> {
    let meta_file = meta_path(path);
    let reason = if path.exists() {
        if !meta_file.exists() {
            return Ok((
                TextTokenizer::load(path)?,
                TokenizerSource::Loaded,
                path.to_path_buf(),
            ));
        }
        match read_meta(&meta_file) {
            Ok(meta) => {
                let mut diffs = Vec::new();
                if meta.vocab_size != vocab_size {
                    diffs.push(format!("vocab_size {} → {vocab_size}", meta.vocab_size));
                }
                if meta.data_fingerprint != data_fingerprint {
                    diffs.push(format!(
                        "data fingerprint {} → {data_fingerprint}",
                        meta.data_fingerprint
                    ));
                }
                if diffs.is_empty() {
                    return Ok((TextTokenizer::load(path)?, TokenizerSource::Loaded, path.to_path_buf()));
                }
                bail!(
                    "{} was trained for different settings ({}) and is not replaced, since checkpoints may use it; delete it yourself to retrain",
                    path.display(),
                    diffs.join(", ")
                )
            }
            Err(e) => bail!("{e:#}; the tokenizer {} is kept unchanged: delete its sidecar and the file yourself to retrain", path.display()),
        }
    } else {
        format!("no tokenizer at {}", path.display())
    };

    let docs = collect_docs().context("collecting documents to train the tokenizer")?;
    let tok = TextTokenizer::train(&docs, vocab_size)?;
    tok.save(path)?;
    let meta = TokenizerMeta {
        vocab_size,
        data_fingerprint: data_fingerprint.to_string(),
        docs: docs.len(),
        trained_by: format!("lmtrain {}", env!("CARGO_PKG_VERSION")),
    };
    let meta_json = serde_json::to_string_pretty(&meta).context("serialising tokenizer meta")?;
    crate::fsutil::write_atomic(&meta_file, meta_json.as_bytes())?;
    Ok((tok, TokenizerSource::Trained { reason }, path.to_path_buf()))
}

fn read_meta(meta_file: &Path) -> Result<TokenizerMeta> {
    let text = std::fs::read_to_string(meta_file)
        .with_context(|| format!("cannot read tokenizer sidecar {}", meta_file.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("tokenizer sidecar {} is corrupt", meta_file.display()))
}

/// Encodes `docs` once with [`TextTokenizer::encode_batch`] and returns (tokens, wall time),
/// for BENCHMARKS.md. Thread count is rayon's global pool (RAYON_NUM_THREADS).
pub fn measure_throughput(tok: &TextTokenizer, docs: &[String]) -> Result<(usize, Duration)> {
    let start = Instant::now();
    let encoded = tok.encode_batch(docs)?;
    let elapsed = start.elapsed();
    Ok((encoded.iter().map(Vec::len).sum(), elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        let base = [
            "Once upon a time, there was a little girl named Lily. She liked to play outside.",
            "The quick brown fox jumps over the lazy dog. The dog was not amused.",
            "Tom and his mom went to the park. They saw a big tree and a small bird.",
            "Café, naïve, résumé — ça va? 日本語のテキスト。 Emoji: 🚀🎉",
            "    indented\tcode\n\n  with   spaces   and\r\nnewlines\n",
        ];
        (0..20)
            .flat_map(|i| base.iter().map(move |s| format!("{s} ({i})")))
            .collect()
    }

    fn trained(vocab: usize) -> TextTokenizer {
        TextTokenizer::train(&corpus(), vocab).unwrap()
    }

    #[test]
    fn trains_requested_vocab_with_eot_first() {
        let tok = trained(300);
        assert_eq!(tok.vocab_size(), 300);
        assert_eq!(tok.eot_id(), 0);
        assert_eq!(tok.inner.get_vocab_size(true), 300);
        // Merges happened: common words take fewer tokens than bytes.
        assert!(tok.encode("the little girl").unwrap().len() < "the little girl".len());
        assert!(TextTokenizer::train(&corpus(), 256).is_err());
        assert!(TextTokenizer::train(&[], 300).is_err());
    }

    #[test]
    fn round_trips_exactly() {
        let tok = trained(300);
        let cases = [
            "Hello, world! It's 2024 and we're testing.",
            "Emoji 🚀🎉👩‍👩‍👧‍👦, accents éèêëçñ, CJK 日本語 中文 한국어, RTL עברית",
            "   leading and trailing   ",
            "\t\ttabs\n\n\nnewlines\r\n  \u{a0}nbsp \u{3000}ideographic space  ",
            " ",
            "",
            "unseen bytes: \u{1F9EC} \u{10FFFF} \u{0}",
            "a <|endoftext|> b<|endoftext|><|endoftext|>c",
        ];
        for s in cases {
            let ids = tok.encode(s).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), s, "ids {ids:?}");
        }
        let batch: Vec<String> = cases.iter().map(|s| s.to_string()).collect();
        let enc = tok.encode_batch(&batch).unwrap();
        for (s, ids) in cases.iter().zip(&enc) {
            assert_eq!(ids, &tok.encode(s).unwrap());
        }
    }

    #[test]
    fn eot_in_text_is_one_special_token() {
        let tok = trained(300);
        assert_eq!(tok.encode(EOT).unwrap(), [tok.eot_id()]);
        let ids = tok.encode("story one<|endoftext|>story two").unwrap();
        assert_eq!(ids.iter().filter(|&&i| i == tok.eot_id()).count(), 1);
        assert_eq!(tok.decode(&[tok.eot_id()]).unwrap(), EOT);
        assert!(tok.decode(&[300]).is_err());
    }

    #[test]
    fn save_load_preserves_behaviour_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/tokenizer.json");
        let tok = trained(300);
        tok.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(tok.content_hash(), sha256_hex(&bytes));
        let back = TextTokenizer::load(&path).unwrap();
        assert_eq!(back.content_hash(), tok.content_hash());
        let s = corpus().join("<|endoftext|>");
        assert_eq!(back.encode(&s).unwrap(), tok.encode(&s).unwrap());
        // No stray temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
        // Training is deterministic, so the same corpus gives the same tokenizer (and hash).
        assert_eq!(trained(300).content_hash(), tok.content_hash());
        assert_ne!(trained(310).content_hash(), tok.content_hash());
    }

    #[test]
    fn corrupt_or_unsuitable_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let e = format!("{:#}", TextTokenizer::load(&missing).unwrap_err());
        assert!(
            e.contains("nope.json") && e.contains("tokenizer.path"),
            "{e}"
        );

        let corrupt = dir.path().join("tokenizer.json");
        std::fs::write(&corrupt, "{\"version\": \"1.0\", \"model\": ").unwrap();
        let e = format!("{:#}", TextTokenizer::load(&corrupt).unwrap_err());
        assert!(
            e.contains("tokenizer.json") && e.contains("delete it"),
            "{e}"
        );
        // ensure_tokenizer does not paper over a corrupt file that has no sidecar.
        let e = ensure_tokenizer(&corrupt, 300, "fp", || Ok(corpus())).unwrap_err();
        assert!(format!("{e:#}").contains("delete it"), "{e:#}");

        let no_eot = dir.path().join("wordlevel.json");
        std::fs::write(
            &no_eot,
            r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
               "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
               "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#,
        )
        .unwrap();
        let e = format!("{:#}", TextTokenizer::load(&no_eot).unwrap_err());
        assert!(e.contains("wordlevel.json") && e.contains(EOT), "{e}");
    }

    #[test]
    fn ensure_tokenizer_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let calls = std::cell::Cell::new(0);
        let docs = || {
            calls.set(calls.get() + 1);
            Ok(corpus())
        };

        // Missing → trained, saved, sidecar written.
        let (tok, src, at) = ensure_tokenizer(&path, 300, "fp-a", docs).unwrap();
        assert_eq!(at, path);
        assert!(
            matches!(&src, TokenizerSource::Trained { reason } if reason.contains("no tokenizer"))
        );
        assert_eq!(calls.get(), 1);
        let meta = read_meta(&meta_path(&path)).unwrap();
        assert_eq!(meta.vocab_size, 300);
        assert_eq!(meta.data_fingerprint, "fp-a");
        assert_eq!(meta.docs, corpus().len());
        assert!(meta.trained_by.starts_with("lmtrain "));
        assert_eq!(
            meta_path(&path),
            dir.path().join("tokenizer.json.meta.json")
        );
        let original = std::fs::read(&path).unwrap();

        // Matching → loaded without collecting docs.
        let (again, src, at) = ensure_tokenizer(&path, 300, "fp-a", docs).unwrap();
        assert_eq!(
            (src, at.as_path()),
            (TokenizerSource::Loaded, path.as_path())
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(again.content_hash(), tok.content_hash());

        // Different vocab_size → a new tokenizer beside it (case c20: never overwritten).
        let (bigger, src, alt) = ensure_tokenizer(&path, 320, "fp-a", docs).unwrap();
        let TokenizerSource::Trained { reason } = src else {
            panic!("expected training")
        };
        assert!(
            reason.contains("vocab_size 300 → 320") && reason.contains("kept unchanged"),
            "{reason}"
        );
        assert_eq!(bigger.vocab_size(), 320);
        assert_eq!(calls.get(), 2);
        assert_ne!(alt, path);
        let name = alt.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("tokenizer.")
                && name.ends_with(".json")
                && name.len() == "tokenizer.12345678.json".len(),
            "{name}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            original,
            "the first tokenizer was overwritten"
        );
        assert_eq!(read_meta(&meta_path(&path)).unwrap().vocab_size, 300);
        // … and found again next time.
        let (_, src, again) = ensure_tokenizer(&path, 320, "fp-a", docs).unwrap();
        assert_eq!(
            (src, again.as_path()),
            (TokenizerSource::Loaded, alt.as_path())
        );
        assert_eq!(calls.get(), 2);

        // Different data fingerprint → another one beside it.
        let (_, src, other) = ensure_tokenizer(&path, 300, "fp-b", docs).unwrap();
        assert!(matches!(src, TokenizerSource::Trained { .. }));
        assert!(other != alt && other != path);
        assert_eq!(calls.get(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), original);

        // A corrupt sidecar → an error naming it; nothing is retrained over the file.
        std::fs::write(meta_path(&path), "{").unwrap();
        let e = format!(
            "{:#}",
            ensure_tokenizer(&path, 300, "fp-a", docs).unwrap_err()
        );
        assert!(
            e.contains("meta.json") && e.contains("kept unchanged"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), original);

        // Sidecar-less (foreign) file → loaded as is, whatever the requested settings.
        let foreign = dir.path().join("gpt2-like.json");
        trained(300).save(&foreign).unwrap();
        let (tok, src, _) = ensure_tokenizer(&foreign, 50257, "other", docs).unwrap();
        assert_eq!(src, TokenizerSource::Loaded);
        assert_eq!(tok.vocab_size(), 300);
        assert_eq!(calls.get(), 3);
        assert!(!meta_path(&foreign).exists());
    }

    #[test]
    fn throughput_counts_tokens() {
        let tok = trained(300);
        let docs = corpus();
        let (n, _) = measure_throughput(&tok, &docs).unwrap();
        let expect: usize = docs.iter().map(|d| tok.encode(d).unwrap().len()).sum();
        assert_eq!(n, expect);
    }

    /// Release-mode benchmark on the shared TinyStories shard (vocab 4096), ignored by default:
    /// `cargo test --release -- --ignored --nocapture tinystories_throughput`.
    #[test]
    #[ignore]
    fn tinystories_throughput() {
        let path = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/TinyStories/data/train-00000-of-00001.parquet"
        ));
        if !path.exists() {
            eprintln!(
                "skipped: {} not present (run scripts/setup.sh)",
                path.display()
            );
            return;
        }
        let units =
            crate::data::shards::list_units(std::slice::from_ref(&path), "text", false).unwrap();
        let docs: Vec<String> = units
            .iter()
            .flat_map(|u| crate::data::shards::read_unit(u, "text", false).unwrap())
            .collect();
        let t = Instant::now();
        let tok = TextTokenizer::train(&docs, 4096).unwrap();
        let train_time = t.elapsed();
        let bytes: usize = docs.iter().map(String::len).sum();
        // Warm-up pass fills the BPE word cache, as in a long run; then best of 5, since this
        // often runs beside a busy build.
        measure_throughput(&tok, &docs).unwrap();
        let (tokens, dt) = (0..5)
            .map(|_| measure_throughput(&tok, &docs).unwrap())
            .min_by_key(|&(_, dt)| dt)
            .unwrap();
        eprintln!(
            "TinyStories shard: {} docs, {bytes} bytes, vocab {} (trained in {train_time:.2?}); \
             {tokens} tokens ({:.2} bytes/token) in {dt:.3?} = {:.0} tokens/s on {} rayon threads",
            docs.len(),
            tok.vocab_size(),
            bytes as f64 / tokens as f64,
            tokens as f64 / dt.as_secs_f64(),
            rayon::current_num_threads()
        );
    }
}
