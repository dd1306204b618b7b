//! Expert datasets: `lmtrain expert collect` rolls a deterministic expert out from seeded start
//! states into parquet shards in the Hugging Face layout, one row per step, plus `dataset.json`.
//!
//! Episode k (0-based; the train episodes first, then the validation ones) starts from reset seed
//! `seed + k`. Columns: `episode` (int64, the global index k), `t` (int64), `obs`
//! (list<float32>, the observation the action was taken in), `action` (list<float32>), `reward`
//! (float64), `terminated`, `truncated` (bool). The same expert and seed give identical files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow_array::builder::{Float32Builder, ListBuilder};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use serde::Serialize;

use super::environment;
use super::expert_file::{self, ExpertCard};
use super::policy::HostActor;

/// One recorded episode.
struct Recorded {
    seed: u64,
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    obs: Vec<Vec<f32>>,
    actions: Vec<Vec<f32>>,
    rewards: Vec<f64>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
}

impl Recorded {
    fn ret(&self) -> f64 {
        self.rewards.iter().sum()
    }
}

/// What `dataset.json` holds per episode.
#[derive(Serialize)]
struct EpisodeRecord {
    episode: u64,
    split: &'static str,
    seed: u64,
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    #[serde(rename = "return")]
    ret: f64,
    length: usize,
}

#[derive(Serialize)]
struct DatasetInfo {
    env: String,
    expert: String,
    expert_card: Option<ExpertCard>,
    seed: u64,
    train_episodes: usize,
    val_episodes: usize,
    columns: Vec<&'static str>,
    episodes: Vec<EpisodeRecord>,
}

/// What was written.
pub struct CollectSummary {
    pub train_steps: usize,
    pub val_steps: usize,
    pub train_return_mean: f64,
    pub files: Vec<PathBuf>,
}

fn record(env_id: &str, actor: &HostActor, seed: u64) -> Result<Recorded> {
    let mut env = environment::make(env_id)?;
    let mut obs = env.reset(seed)?;
    let (qpos, qvel) = env
        .joint_state()
        .with_context(|| format!("{env_id} has no joint state to record"))?;
    let mut r = Recorded {
        seed,
        qpos,
        qvel,
        obs: Vec::new(),
        actions: Vec::new(),
        rewards: Vec::new(),
        terminated: Vec::new(),
        truncated: Vec::new(),
    };
    loop {
        let action = actor.mean_action(&obs);
        let o = env
            .step(&action)
            .with_context(|| format!("{env_id} episode from seed {seed}"))?;
        r.obs.push(obs.iter().map(|&v| v as f32).collect());
        r.actions.push(action);
        r.rewards.push(o.reward);
        r.terminated.push(o.terminated);
        r.truncated.push(o.truncated);
        if o.terminated || o.truncated {
            return Ok(r);
        }
        obs = o.obs;
    }
}

fn schema() -> Arc<Schema> {
    let list = |name: &str| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", DataType::Float32, true))),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("episode", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        list("obs"),
        list("action"),
        Field::new("reward", DataType::Float64, false),
        Field::new("terminated", DataType::Boolean, false),
        Field::new("truncated", DataType::Boolean, false),
    ]))
}

fn list_column(rows: impl Iterator<Item = Vec<f32>>) -> ArrayRef {
    let mut b = ListBuilder::new(Float32Builder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Float32,
        true,
    )));
    for row in rows {
        b.values().append_slice(&row);
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Writes episodes (with their global indices) to one parquet shard, atomically.
fn write_shard(path: &Path, episodes: &[(u64, &Recorded)]) -> Result<()> {
    crate::fsutil::write_atomic_with(path, |tmp| {
        let file =
            std::fs::File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(16_384)
            .build();
        let schema = schema();
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;
        for (k, ep) in episodes {
            let n = ep.rewards.len();
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(vec![*k as i64; n])),
                    Arc::new(Int64Array::from_iter_values(0..n as i64)),
                    list_column(ep.obs.iter().cloned()),
                    list_column(ep.actions.iter().cloned()),
                    Arc::new(Float64Array::from(ep.rewards.clone())),
                    Arc::new(BooleanArray::from(ep.terminated.clone())),
                    Arc::new(BooleanArray::from(ep.truncated.clone())),
                ],
            )?;
            writer.write(&batch)?;
        }
        writer.close()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Rolls `expert` out for `train + val` episodes from seeds `seed..` and writes
/// `train-00000-of-00001.parquet`, `validation-00000-of-00001.parquet` and `dataset.json` to
/// `out`.
pub fn collect(
    expert: &Path,
    train: usize,
    val: usize,
    seed: u64,
    out: &Path,
) -> Result<CollectSummary> {
    if train == 0 {
        bail!("--episodes must be ≥ 1");
    }
    let (env_id, actor) = expert_file::load(expert)?;
    let card = expert_file::load_card(expert).ok();
    let episodes: Vec<Recorded> = (0..(train + val) as u64)
        .into_par_iter()
        .map(|k| record(&env_id, &actor, seed + k))
        .collect::<Result<_>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let indexed: Vec<(u64, &Recorded)> = episodes
        .iter()
        .enumerate()
        .map(|(k, e)| (k as u64, e))
        .collect();
    let train_path = out.join("train-00000-of-00001.parquet");
    let val_path = out.join("validation-00000-of-00001.parquet");
    write_shard(&train_path, &indexed[..train])?;
    let mut files = vec![train_path];
    if val > 0 {
        write_shard(&val_path, &indexed[train..])?;
        files.push(val_path);
    }
    let info = DatasetInfo {
        env: env_id.clone(),
        expert: expert.display().to_string(),
        expert_card: card,
        seed,
        train_episodes: train,
        val_episodes: val,
        columns: vec![
            "episode",
            "t",
            "obs",
            "action",
            "reward",
            "terminated",
            "truncated",
        ],
        episodes: indexed
            .iter()
            .map(|(k, e)| EpisodeRecord {
                episode: *k,
                split: if (*k as usize) < train {
                    "train"
                } else {
                    "validation"
                },
                seed: e.seed,
                qpos: e.qpos.clone(),
                qvel: e.qvel.clone(),
                ret: e.ret(),
                length: e.rewards.len(),
            })
            .collect(),
    };
    let json_path = out.join("dataset.json");
    crate::fsutil::write_atomic(
        &json_path,
        (serde_json::to_string_pretty(&info)? + "\n").as_bytes(),
    )?;
    files.push(json_path);
    let steps = |r: &[(u64, &Recorded)]| r.iter().map(|(_, e)| e.rewards.len()).sum::<usize>();
    Ok(CollectSummary {
        train_steps: steps(&indexed[..train]),
        val_steps: steps(&indexed[train..]),
        train_return_mean: indexed[..train].iter().map(|(_, e)| e.ret()).sum::<f64>()
            / train as f64,
        files,
    })
}
