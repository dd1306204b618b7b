//! The GVA evaluation of a language model: long generations from fixed prompts and seeds, for the
//! raw and the EMA weights, scored for quality; and teacher-forced validation loss by position.
//!
//! Every evaluation uses the same prompts and seeds: one greedy generation per prompt, and
//! `eval.sample_seeds` sampled ones at `eval.temperature` / `eval.top_k`. Metrics go to
//! metrics.jsonl as `gen_<metric>_<mode>_<weights>`; every generation goes to generations.jsonl.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::task::windows_to_batch;
use crate::config::EvalConfig;
use crate::data::tokenizer::TextTokenizer;
use crate::eval::story_check::{check_story, validity_rate, ReasonKind, StoryVerdict};
use crate::eval::text_metrics::{degeneration, median_butterfly_horizon};
use crate::generate::{Decoding, Generator};
use crate::model::Gpt;

/// Position buckets of the teacher-forced loss: late positions separate the model's long-context
/// quality from rollout effects.
const POSITION_BUCKETS: [(usize, Option<usize>); 3] = [(0, Some(64)), (64, Some(256)), (256, None)];

/// One line of generations.jsonl.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct GenerationRecord {
    pub step: u64,
    pub weights: String,
    pub prompt_id: usize,
    pub seed: u64,
    pub mode: String,
    pub tokens: Vec<u32>,
    pub text: String,
    /// The story checker's verdict on prompt + text, when `eval.story_checker` is on: "valid",
    /// or why not (for reading failures without rerunning the checker).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verdict: Option<String>,
}

/// A judge model: another lmtrain checkpoint with the same tokenizer, scoring continuations.
pub struct Judge {
    pub gpt: Gpt,
    pub params: Vec<Tensor<1>>,
}

impl Judge {
    /// Loads `eval.judge_checkpoint` (`path`: a checkpoint file, or a run directory meaning its
    /// newest checkpoint; raw weights) onto `device`.
    ///
    /// Errors: the checkpoint does not load, or its tokenizer is not `tokenizer` (the run's, at
    /// `tokenizer_path`; a judge must share it to score the run's token ids).
    pub fn load(
        path: &str,
        tokenizer: &TextTokenizer,
        tokenizer_path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let judge = crate::sample::load_model(Path::new(path), false, device.clone())
            .with_context(|| format!("loading eval.judge_checkpoint {path}"))?;
        if judge.tokenizer.content_hash() != tokenizer.content_hash() {
            bail!(
                "eval.judge_checkpoint {path} uses a different tokenizer from this run's {}; a judge must share the tokenizer",
                tokenizer_path.display()
            );
        }
        Ok(Self {
            gpt: judge.gpt,
            params: judge.params,
        })
    }
}

/// How an evaluation generates: one greedy continuation per prompt, and `eval.sample_seeds`
/// sampled ones per prompt (seeds 0.., at `eval.temperature` / `eval.top_k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenMode {
    Greedy,
    Sample,
}

impl GenMode {
    pub const ALL: [GenMode; 2] = [GenMode::Greedy, GenMode::Sample];

    /// The `<mode>` of the metric keys `gen_<metric>_<mode>_<weights>`.
    pub fn label(self) -> &'static str {
        match self {
            GenMode::Greedy => "greedy",
            GenMode::Sample => "sample",
        }
    }
}

/// The judge's mean NLL over all continuation tokens and by position: (key suffix, first
/// position, end position).
const JUDGE_SPANS: [(&str, usize, usize); 4] = [
    ("", 0, usize::MAX),
    ("_pos_0_64", 0, 64),
    ("_pos_64_256", 64, 256),
    ("_pos_256_end", 256, usize::MAX),
];

/// The `<metric>` names one mode of an evaluation can log (`gen_<metric>_<mode>_<weights>`):
/// the degeneration metrics and the mean continuation length always, `valid` and
/// `invalid_<reason>` (fractions of all stories) with the story checker, and `judge_nll` (overall
/// and by position) with a judge. `horizon`, which compares a greedy generation with the previous
/// evaluation's, is not among them: it belongs to [`GenerationEval`], not to one scoring.
pub fn metric_names(story_checker: bool, judge: bool) -> Vec<String> {
    let mut names: Vec<String> = [
        "rep2",
        "rep4",
        "distinct2",
        "distinct4",
        "longest_span",
        "length",
    ]
    .map(String::from)
    .to_vec();
    if story_checker {
        names.push("valid".into());
        names.extend(
            ReasonKind::ALL
                .iter()
                .map(|k| format!("invalid_{}", k.label())),
        );
    }
    if judge {
        names.extend(JUDGE_SPANS.iter().map(|(s, _, _)| format!("judge_nll{s}")));
    }
    names
}

/// One mode's generations of one set of weights, scored.
pub struct ModeScore {
    /// `(gen_<metric>_<mode>_<weights>, value)` for the names of [`metric_names`]; a metric
    /// without a value (e.g. `rep4` of generations shorter than four tokens) is absent.
    pub metrics: Vec<(String, f64)>,
    /// One record per (prompt, decoding), prompt-major.
    pub records: Vec<GenerationRecord>,
    /// The continuations' token ids, in the records' order.
    pub generations: Vec<Vec<u32>>,
}

/// Generations from the run's fixed prompts and seeds, scored: what one evaluation does for one
/// set of weights in one mode. The trainer's [`GenerationEval`] and the landscape probe
/// (`lmtrain landscape`, [`crate::lm::landscape`]) both score through it, so a probe's metric is
/// the trainer's for the same weights.
pub struct GenerationScorer {
    cfg: EvalConfig,
    prompts: Vec<Vec<u32>>,
    tokenizer: Arc<TextTokenizer>,
    judge: Option<Judge>,
}

impl GenerationScorer {
    /// `prompts`: the fixed prompts' token ids (see `prepare_run_data`); `cfg` gives the
    /// decodings, the continuation length and whether the story checker scores.
    pub fn new(cfg: EvalConfig, prompts: Vec<Vec<u32>>, tokenizer: Arc<TextTokenizer>) -> Self {
        Self {
            cfg,
            prompts,
            tokenizer,
            judge: None,
        }
    }

    /// Adds a judge whose NLL of every continuation is scored.
    pub fn with_judge(mut self, judge: Judge) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Whether a judge scores (the `judge_nll*` metrics exist).
    pub fn has_judge(&self) -> bool {
        self.judge.is_some()
    }

    /// The decodings of `mode`, or `None` when the config does not sample (`eval.sample_seeds`
    /// or `eval.temperature` is 0).
    pub fn decodings(&self, mode: GenMode) -> Option<Vec<Decoding>> {
        match mode {
            GenMode::Greedy => Some(vec![Decoding {
                temperature: 0.0,
                top_k: 0,
                seed: 0,
            }]),
            GenMode::Sample => {
                (self.cfg.sample_seeds > 0 && self.cfg.temperature > 0.0).then(|| {
                    (0..self.cfg.sample_seeds)
                        .map(|seed| Decoding {
                            temperature: self.cfg.temperature,
                            top_k: self.cfg.top_k,
                            seed,
                        })
                        .collect()
                })
            }
        }
    }

    /// Generates `eval.generate_tokens` tokens after every prompt with every decoding of `mode`
    /// from `params` (weights named `weights`, "raw" or "ema", in the keys and records; `step`
    /// goes into the records) and scores them.
    ///
    /// Errors: `mode` has no decodings under this config, or generation or decoding fails.
    pub fn score(
        &self,
        gpt: &Gpt,
        params: &[Tensor<1>],
        device: &Device,
        weights: &str,
        mode: GenMode,
        step: u64,
    ) -> Result<ModeScore> {
        let decodings = self.decodings(mode).ok_or_else(|| {
            anyhow!(
                "the run makes no sampled generations (eval.sample_seeds = {}, eval.temperature = {})",
                self.cfg.sample_seeds,
                self.cfg.temperature
            )
        })?;
        let g = Generator {
            gpt,
            params,
            device,
            valid_vocab: self.tokenizer.vocab_size(),
            eot: self.tokenizer.eot_id(),
        };
        let mode_name = mode.label();
        let mut gens: Vec<Vec<u32>> = Vec::new();
        let mut records = Vec::new();
        let mut verdicts = Vec::new();
        let mut judged: Vec<Vec<f64>> = Vec::new();
        let mut generated =
            generate_rows(&g, &self.prompts, &decodings, self.cfg.generate_tokens)?.into_iter();
        for (pid, prompt) in self.prompts.iter().enumerate() {
            for d in &decodings {
                let tokens = generated
                    .next()
                    .ok_or_else(|| anyhow!("a generation is missing"))?;
                let full: Vec<u32> = prompt.iter().chain(&tokens).copied().collect();
                // The checker reads prompt and continuation as one text, so a word split across
                // the boundary stays whole.
                let verdict = if self.cfg.story_checker {
                    let v = check_story(&self.tokenizer.decode(&full)?);
                    let said = match &v {
                        StoryVerdict::Valid => "valid".to_string(),
                        StoryVerdict::Invalid(r) => r.to_string(),
                    };
                    verdicts.push(v);
                    Some(said)
                } else {
                    None
                };
                if let Some(j) = &self.judge {
                    let scorer = Generator {
                        gpt: &j.gpt,
                        params: &j.params,
                        device,
                        valid_vocab: self.tokenizer.vocab_size(),
                        eot: self.tokenizer.eot_id(),
                    };
                    judged.push(scorer.score(prompt, &tokens)?);
                }
                records.push(GenerationRecord {
                    step,
                    weights: weights.to_string(),
                    prompt_id: pid,
                    seed: d.seed,
                    mode: mode_name.to_string(),
                    text: self.tokenizer.decode(&tokens)?,
                    tokens: tokens.clone(),
                    verdict,
                });
                gens.push(tokens);
            }
        }
        let mut metrics = Vec::new();
        let mut put = |metric: &str, v: Option<f64>| {
            if let Some(v) = v {
                metrics.push((format!("gen_{metric}_{mode_name}_{weights}"), v));
            }
        };
        let deg = degeneration(&gens);
        put("rep2", deg.rep2);
        put("rep4", deg.rep4);
        put("distinct2", deg.distinct2);
        put("distinct4", deg.distinct4);
        put("longest_span", deg.longest_repeated_span);
        put(
            "length",
            Some(gens.iter().map(Vec::len).sum::<usize>() as f64 / gens.len() as f64),
        );
        if self.cfg.story_checker {
            let rate = validity_rate(&verdicts);
            put("valid", rate.valid_fraction());
            // Why the others failed, as fractions of all stories: which constraint the model
            // has not learned yet.
            for (kind, n) in &rate.by_reason {
                put(
                    &format!("invalid_{}", kind.label()),
                    (rate.total > 0).then(|| *n as f64 / rate.total as f64),
                );
            }
        }
        if self.judge.is_some() {
            for (suffix, lo, hi) in JUDGE_SPANS {
                let vals: Vec<f64> = judged
                    .iter()
                    .flat_map(|n| n.iter().skip(lo).take(hi.saturating_sub(lo)))
                    .copied()
                    .collect();
                if !vals.is_empty() {
                    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                    put(&format!("judge_nll{suffix}"), Some(mean));
                }
            }
        }
        Ok(ModeScore {
            metrics,
            records,
            generations: gens,
        })
    }
}

/// The GVA evaluation during training: [`GenerationScorer`] for every weight set and mode at
/// each evaluation, the position losses, the butterfly horizon across evaluations, and the
/// generations appended to generations.jsonl.
pub struct GenerationEval {
    scorer: GenerationScorer,
    every: u64,
    path: PathBuf,
    /// The previous evaluation's greedy continuation per (weights, prompt), for the horizon.
    previous_greedy: HashMap<(String, usize), Vec<u32>>,
}

impl GenerationEval {
    /// Steps between evaluations (`eval.generate_every`).
    pub fn every(&self) -> u64 {
        self.every
    }

    /// `path` is the run's generations.jsonl; on resume its last greedy generations seed the
    /// butterfly horizon of the next evaluation.
    pub fn new(
        cfg: EvalConfig,
        prompts: Vec<Vec<u32>>,
        tokenizer: Arc<TextTokenizer>,
        path: PathBuf,
    ) -> Result<Self> {
        let previous_greedy = read_previous_greedy(&path)?;
        Ok(Self {
            every: cfg.generate_every,
            scorer: GenerationScorer::new(cfg, prompts, tokenizer),
            path,
            previous_greedy,
        })
    }

    /// Adds a judge whose NLL of every continuation is logged.
    pub fn with_judge(mut self, judge: Judge) -> Self {
        self.scorer = self.scorer.with_judge(judge);
        self
    }

    pub fn evaluate(
        &mut self,
        gpt: &Gpt,
        step: u64,
        weights: &[(&str, &[Tensor<1>])],
        val: &[Vec<u32>],
        batch_size: usize,
        device: &Device,
    ) -> Result<Vec<(String, f64)>> {
        let mut metrics = Vec::new();
        let mut records = Vec::new();
        for &(name, params) in weights {
            metrics.extend(position_losses(gpt, params, val, batch_size, device, name)?);
            for mode in GenMode::ALL {
                if self.scorer.decodings(mode).is_none() {
                    continue;
                }
                let scored = self.scorer.score(gpt, params, device, name, mode, step)?;
                metrics.extend(scored.metrics);
                records.extend(scored.records);
                if mode == GenMode::Greedy {
                    let gens = scored.generations;
                    let previous: Option<Vec<Vec<u32>>> = (0..gens.len())
                        .map(|pid| self.previous_greedy.get(&(name.to_string(), pid)).cloned())
                        .collect();
                    if let Some(v) =
                        previous.and_then(|prev| median_butterfly_horizon(&prev, &gens))
                    {
                        metrics.push((format!("gen_horizon_greedy_{name}"), v));
                    }
                    for (pid, tokens) in gens.into_iter().enumerate() {
                        self.previous_greedy.insert((name.to_string(), pid), tokens);
                    }
                }
            }
        }
        self.append(&records)?;
        Ok(metrics)
    }

    fn append(&self, records: &[GenerationRecord]) -> Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        for r in records {
            let line = serde_json::to_string(r).context("cannot serialize a generation")?;
            writeln!(f, "{line}")
                .with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// Every (prompt, decoding) pair's continuation, prompt-major as the records are written.
/// Prompts of one length generate together as one batch (one forward and one logits read per
/// token for the whole batch, which is what makes evaluation cheap on a GPU); a batch gives each
/// row what generating it alone would.
fn generate_rows(
    g: &Generator,
    prompts: &[Vec<u32>],
    decodings: &[Decoding],
    max_new: usize,
) -> Result<Vec<Vec<u32>>> {
    let rows: Vec<(&[u32], Decoding)> = prompts
        .iter()
        .flat_map(|p| decodings.iter().map(move |d| (p.as_slice(), *d)))
        .collect();
    let mut out = vec![Vec::new(); rows.len()];
    let mut lengths: Vec<usize> = rows.iter().map(|(p, _)| p.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    for len in lengths {
        let idx: Vec<usize> = (0..rows.len())
            .filter(|&i| rows[i].0.len() == len)
            .collect();
        let batch_prompts: Vec<&[u32]> = idx.iter().map(|&i| rows[i].0).collect();
        let batch_decodings: Vec<Decoding> = idx.iter().map(|&i| rows[i].1).collect();
        let gens = g.generate_batch(&batch_prompts, max_new, &batch_decodings, true, false)?;
        for (i, gen) in idx.into_iter().zip(gens) {
            out[i] = gen.tokens;
        }
    }
    Ok(out)
}

fn read_previous_greedy(path: &Path) -> Result<HashMap<(String, usize), Vec<u32>>> {
    let mut out = HashMap::new();
    if !path.exists() {
        return Ok(out);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        let r: GenerationRecord = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {} is not a generation record",
                path.display(),
                i + 1
            )
        })?;
        if r.mode == "greedy" {
            out.insert((r.weights, r.prompt_id), r.tokens);
        }
    }
    Ok(out)
}

/// Teacher-forced validation loss by position bucket, `val_loss_pos_<lo>_<hi|end>_<weights>`.
fn position_losses(
    gpt: &Gpt,
    params: &[Tensor<1>],
    val: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
    weights: &str,
) -> Result<Vec<(String, f64)>> {
    let t = gpt.shape.block_size;
    let mut sums = vec![0.0f64; t];
    let mut rows = 0usize;
    for chunk in val.chunks(batch_size) {
        let batch = windows_to_batch(chunk, device);
        let per_pos: Vec<f32> = gpt
            .token_losses(params, batch.input, batch.target)
            .sum_dim(0)
            .into_data()
            .try_to_vec()
            .map_err(|e| anyhow!("cannot read losses: {e:?}"))?;
        for (s, v) in sums.iter_mut().zip(per_pos) {
            *s += v as f64;
        }
        rows += chunk.len();
    }
    let mut out = Vec::new();
    for (lo, hi) in POSITION_BUCKETS {
        let end = hi.unwrap_or(t).min(t);
        if lo >= end {
            continue;
        }
        let mean = sums[lo..end].iter().sum::<f64>() / ((end - lo) * rows) as f64;
        let hi_name = hi.map_or("end".to_string(), |h| h.to_string());
        out.push((format!("val_loss_pos_{lo}_{hi_name}_{weights}"), mean));
    }
    Ok(out)
}
