//! Everything a language-model run needs before step 1: the shards, the tokenizer (trained if
//! missing or stale), and the fixed validation windows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::data::shards::{list_units, read_unit, resolve_glob, shards_fingerprint};
use crate::data::tokenizer::{ensure_tokenizer, TextTokenizer, TokenizerSource};
use crate::data::windows::{is_held_out, validation_windows, TextSource};

/// The prepared data of a run.
pub struct RunData {
    /// The train shards (absolute paths, in order), for checkpoints.
    pub train_shards: Vec<String>,
    pub train: Arc<TextSource>,
    pub tokenizer: Arc<TextTokenizer>,
    pub tokenizer_path: PathBuf,
    pub val: Vec<Vec<u32>>,
    /// Fixed generation prompts (empty when `eval.generate_every` is 0).
    pub prompts: Vec<Vec<u32>>,
    /// Human-readable lines for the log (what was found, trained or reused).
    pub notes: Vec<String>,
}

/// Where the tokenizer lives: `tokenizer.path` (already absolute), or the run directory.
pub fn tokenizer_path(config: &Config, run_dir: &Path) -> PathBuf {
    match &config.tokenizer.path {
        Some(p) => PathBuf::from(p),
        None => run_dir.join("tokenizer.json"),
    }
}

/// A fingerprint of what a tokenizer is trained on: the shards (names and sizes) and the
/// settings that change which text it sees.
fn data_fingerprint(config: &Config, shards: &[PathBuf]) -> Result<String> {
    let mut h = Sha256::new();
    h.update(shards_fingerprint(shards)?.as_bytes());
    let d = &config.data;
    h.update(
        format!(
            "|{}|{}|{}|{}",
            d.text_column, d.prepend_title, d.tokenizer_docs, d.val_fraction
        )
        .as_bytes(),
    );
    Ok(format!("{:x}", h.finalize()))
}

/// Loads or trains the tokenizer for `config`.
pub fn prepare_tokenizer(
    config: &Config,
    run_dir: &Path,
) -> Result<(TextTokenizer, PathBuf, Vec<String>)> {
    let d = &config.data;
    let shards = resolve_glob(&d.train_glob, Path::new("/"))
        .with_context(|| "data.train_glob matches no file".to_string())?;
    let units = list_units(&shards, &d.text_column, d.prepend_title)?;
    let holdout = if d.val_glob.is_some() {
        0.0
    } else {
        d.val_fraction
    };
    let path = tokenizer_path(config, run_dir);
    let fingerprint = data_fingerprint(config, &shards)?;
    let limit = d.tokenizer_docs;
    let collect = || -> Result<Vec<String>> {
        let mut docs = Vec::new();
        for unit in &units {
            for doc in read_unit(unit, &d.text_column, d.prepend_title)? {
                if !is_held_out(&doc, holdout) {
                    docs.push(doc);
                }
            }
            if docs.len() >= limit {
                break;
            }
        }
        docs.truncate(limit);
        Ok(docs)
    };
    let (tok, source, path) =
        ensure_tokenizer(&path, config.tokenizer.vocab_size, &fingerprint, collect)?;
    let mut notes = Vec::new();
    match source {
        TokenizerSource::Loaded => notes.push(format!("tokenizer: loaded {}", path.display())),
        TokenizerSource::Trained { reason } => notes.push(format!(
            "tokenizer: trained a byte-level BPE of {} tokens into {} ({reason})",
            tok.vocab_size(),
            path.display()
        )),
    }
    if tok.vocab_size() > config.model.vocab_size {
        bail!(
            "the tokenizer {} has {} tokens but model.vocab_size = {}: raise model.vocab_size to at least {} (a multiple of 64 is fastest)",
            path.display(),
            tok.vocab_size(),
            config.model.vocab_size,
            tok.vocab_size()
        );
    }
    Ok((tok, path, notes))
}

/// Validation documents hashed for the train/validation overlap check, at most.
const MAX_VAL_HASHES: usize = 1_000_000;

/// Documents of the sample the tokenizer's round trip is checked on.
const ROUND_TRIP_SAMPLE: usize = 200;

/// A warning when `decode(encode(text)) ≠ text` for some of the first sampled documents (a
/// lowercasing or normalising tokenizer): the model then never sees the text as written.
fn round_trip_warning(tok: &TextTokenizer, docs: &[String]) -> Result<Option<String>> {
    let sample = &docs[..docs.len().min(ROUND_TRIP_SAMPLE)];
    let mut changed = 0;
    let mut example = None;
    for doc in sample {
        let back = tok.decode(&tok.encode(doc)?)?;
        if &back != doc {
            changed += 1;
            example.get_or_insert_with(|| doc.chars().take(40).collect::<String>());
        }
    }
    Ok((changed > 0).then(|| {
        format!(
            "warning: the tokenizer does not round-trip {changed} of {} sampled training documents ({:.1}%): decode(encode(text)) differs from the text (it normalises or lowercases?), e.g. {:?}…; the model never sees those documents as written",
            sample.len(),
            100.0 * changed as f64 / sample.len().max(1) as f64,
            example.unwrap_or_default()
        )
    }))
}

/// The tokenizer file a checkpoint was trained with: the first of the run directory's own copy
/// (`RUN_DIR/tokenizer.json`), the config's `tokenizer.path`, and the tokenizers lmtrain wrote
/// beside that path for other settings (`<stem>.<settings>.json`) whose content hash is
/// `hash` (an empty hash, from checkpoints that recorded none, takes the first that exists).
/// Runs made before tokenizers were copied into run directories are found through the last two.
pub fn checkpoint_tokenizer(run_dir: &Path, config: &Config, hash: &str) -> Result<PathBuf> {
    let mut candidates = vec![run_dir.join("tokenizer.json")];
    if let Some(p) = &config.tokenizer.path {
        let p = PathBuf::from(p);
        if let (Some(dir), Some(stem)) = (p.parent(), p.file_stem()) {
            let prefix = format!("{}.", stem.to_string_lossy());
            let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            siblings.retain(|s| {
                let n = s
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.starts_with(&prefix) && n.ends_with(".json") && !n.ends_with(".meta.json")
            });
            siblings.sort();
            candidates.push(p);
            candidates.extend(siblings);
        }
    }
    let mut tried = Vec::new();
    for c in &candidates {
        if !c.is_file() {
            continue;
        }
        match TextTokenizer::load(c) {
            Ok(t) if hash.is_empty() || t.content_hash() == hash => return Ok(c.clone()),
            Ok(_) => tried.push(format!(
                "{} (another tokenizer: its hash differs)",
                c.display()
            )),
            Err(e) => tried.push(format!("{} ({e:#})", c.display())),
        }
    }
    bail!(
        "the tokenizer this run was trained with (sha256 {}) is not in {} or beside the config's tokenizer.path; tried: {}. An lmtrain from before runs kept their own copy may have overwritten a shared tokenizer: restore that file, or start a new run",
        if hash.is_empty() { "unrecorded" } else { hash },
        run_dir.display(),
        if tried.is_empty() { "no tokenizer file exists there".to_string() } else { tried.join("; ") }
    )
}

/// Shards, tokenizer and validation windows for a run whose directory is `run_dir`.
/// `run_tokenizer` (on resume) is the tokenizer the run's checkpoints record; without it the
/// config's tokenizer is loaded or trained, then copied into the run directory.
pub fn prepare_run_data(
    config: &Config,
    run_dir: &Path,
    run_tokenizer: Option<&Path>,
) -> Result<RunData> {
    let d = &config.data;
    // The data is checked before anything is trained on it, the tokenizer included.
    let shards = resolve_glob(&d.train_glob, Path::new("/"))?;
    let units = list_units(&shards, &d.text_column, d.prepend_title)?;
    let mut surveys = Vec::new();
    for shard in &shards {
        let survey = crate::data::shards::survey_shard(shard, &d.text_column)
            .context("checking the training data before training")?;
        surveys.push(survey.describe(shard));
    }
    let (tok, tokenizer_path, mut notes) = match run_tokenizer {
        Some(p) => (
            TextTokenizer::load(p)?,
            p.to_path_buf(),
            vec![format!(
                "tokenizer: {} (the one the run's checkpoints record)",
                p.display()
            )],
        ),
        None => prepare_tokenizer(config, run_dir)?,
    };
    // The run keeps its own copy, so that a shared tokenizer.path can change without breaking
    // its checkpoints.
    let own = run_dir.join("tokenizer.json");
    if tokenizer_path != own && run_tokenizer.is_none() {
        let bytes = std::fs::read(&tokenizer_path)
            .with_context(|| format!("cannot read {}", tokenizer_path.display()))?;
        crate::fsutil::write_atomic(&own, &bytes)
            .with_context(|| format!("cannot copy the tokenizer into {}", own.display()))?;
        notes.push(format!(
            "tokenizer: copied {} into the run directory",
            tokenizer_path.display()
        ));
    }
    notes.extend(surveys);
    let rows: usize = units.iter().map(|u| u.rows).sum();
    notes.push(format!(
        "train data: {} shard(s), {} row group(s), {rows} documents ({})",
        shards.len(),
        units.len(),
        d.train_glob
    ));
    let holdout = if d.val_glob.is_some() {
        0.0
    } else {
        d.val_fraction
    };
    let train_sample = read_unit(&units[0], &d.text_column, d.prepend_title)?;
    if let Some(note) = round_trip_warning(&tok, &train_sample)? {
        notes.push(note);
    }
    let mut val_doc_hashes = std::collections::HashSet::new();
    if let Some(glob) = &d.val_glob {
        let vshards = resolve_glob(glob, Path::new("/"))?;
        for v in &vshards {
            let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            if shards.iter().any(|t| canonical(t) == canonical(v)) {
                notes.push(format!(
                    "warning: {} is both a train and a validation shard (data.train_glob and data.val_glob overlap): the validation loss is measured on trained-on text",
                    v.display()
                ));
            }
        }
        // Hashes of the validation documents, so that the first epoch can report train
        // documents that are also validation documents (a copy under another file name).
        let vunits = list_units(&vshards, &d.text_column, d.prepend_title)?;
        for unit in &vunits {
            for doc in read_unit(unit, &d.text_column, d.prepend_title)? {
                val_doc_hashes.insert(crate::data::windows::doc_hash(&doc));
            }
            if val_doc_hashes.len() > MAX_VAL_HASHES {
                notes.push(format!("note: only the first {MAX_VAL_HASHES} validation documents are checked for overlap with the train shards"));
                break;
            }
        }
    }
    let train = Arc::new(TextSource {
        units,
        text_column: d.text_column.clone(),
        prepend_title: d.prepend_title,
        holdout_fraction: holdout,
        val_doc_hashes,
    });
    let window = config.model.block_size + 1;
    // Validation (and generation prompts) come from the validation shards, or from the train
    // documents held out by hash.
    let (vsource, from_holdout, origin) = match &d.val_glob {
        Some(glob) => {
            let vshards = resolve_glob(glob, Path::new("/"))?;
            let vsource = TextSource {
                units: list_units(&vshards, &d.text_column, d.prepend_title)?,
                text_column: d.text_column.clone(),
                prepend_title: d.prepend_title,
                holdout_fraction: 0.0,
                val_doc_hashes: Default::default(),
            };
            (Arc::new(vsource), false, glob.clone())
        }
        None => (
            train.clone(),
            true,
            format!(
                "the {:.1}% of train documents held out by hash",
                100.0 * d.val_fraction
            ),
        ),
    };
    let val = validation_windows(
        &vsource,
        from_holdout,
        &tok,
        window,
        config.eval.val_windows,
    )?;
    notes.push(format!(
        "validation: {} fixed windows from {origin}",
        val.len()
    ));
    let prompts = if config.eval.generate_every > 0 {
        let p = generation_prompts(config, &vsource, from_holdout, &tok)?;
        notes.push(format!(
            "generation: {} prompts of {} tokens, {} new tokens each, every {} steps",
            p.len(),
            config.eval.prompt_tokens,
            config.eval.generate_tokens,
            config.eval.generate_every
        ));
        p
    } else {
        Vec::new()
    };
    if val.len() < config.eval.val_windows {
        notes.push(format!(
            "warning: only {} validation windows exist (eval.val_windows = {})",
            val.len(),
            config.eval.val_windows
        ));
    }
    Ok(RunData {
        train_shards: shards.iter().map(|p| p.display().to_string()).collect(),
        train,
        tokenizer: Arc::new(tok),
        tokenizer_path,
        val,
        prompts,
        notes,
    })
}

/// The fixed prompts: `eval.prompts` encoded, or the first `eval.prompt_tokens` tokens of the
/// first `eval.num_prompts` validation documents that are at least that long.
fn generation_prompts(
    config: &Config,
    source: &TextSource,
    from_holdout: bool,
    tok: &TextTokenizer,
) -> Result<Vec<Vec<u32>>> {
    let e = &config.eval;
    if !e.prompts.is_empty() {
        let prompts: Vec<Vec<u32>> = e
            .prompts
            .iter()
            .take(e.num_prompts)
            .map(|p| tok.encode(p))
            .collect::<Result<_>>()?;
        if prompts.iter().any(Vec::is_empty) {
            bail!("eval.prompts contains an empty prompt");
        }
        return Ok(prompts);
    }
    let mut prompts = Vec::new();
    for unit in &source.units {
        let docs: Vec<String> = read_unit(unit, &source.text_column, source.prepend_title)?
            .into_iter()
            .filter(|doc| !from_holdout || is_held_out(doc, source.holdout_fraction))
            .collect();
        for ids in tok.encode_batch(&docs)? {
            if ids.len() >= e.prompt_tokens {
                prompts.push(ids[..e.prompt_tokens].to_vec());
                if prompts.len() == e.num_prompts {
                    return Ok(prompts);
                }
            }
        }
    }
    if prompts.is_empty() {
        bail!(
            "no validation document has eval.prompt_tokens = {} tokens; lower it",
            e.prompt_tokens
        );
    }
    Ok(prompts)
}
