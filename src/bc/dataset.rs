//! Expert datasets for behaviour cloning: the parquet shards and `dataset.json` that
//! `lmtrain expert collect` writes (`src/rl/collect.rs` documents the columns), read whole into
//! memory (100 Walker2d episodes are 100k rows, about 10 MB of f32).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use serde::Deserialize;

/// One episode's (observation, expert action) pairs, in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// The global episode index of the dataset (`episode` column).
    pub index: i64,
    /// `[len, obs_dim]`, row-major.
    pub obs: Vec<f32>,
    /// `[len, action_dim]`, row-major.
    pub actions: Vec<f32>,
}

impl Episode {
    pub fn len(&self, obs_dim: usize) -> usize {
        self.obs.len() / obs_dim
    }
}

/// The episodes of one split.
#[derive(Clone, Debug)]
pub struct Split {
    pub obs_dim: usize,
    pub action_dim: usize,
    /// Sorted by episode index.
    pub episodes: Vec<Episode>,
    pub files: Vec<PathBuf>,
}

impl Split {
    /// Total (observation, action) pairs.
    pub fn samples(&self) -> usize {
        self.episodes.iter().map(|e| e.len(self.obs_dim)).sum()
    }
}

/// What BC reads of `dataset.json`.
#[derive(Deserialize, Clone, Debug)]
pub struct DatasetInfo {
    pub env: String,
    /// The expert file as given to `lmtrain expert collect`.
    pub expert: String,
    pub seed: u64,
    pub train_episodes: usize,
    pub val_episodes: usize,
    pub episodes: Vec<EpisodeInfo>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct EpisodeInfo {
    pub episode: u64,
    pub seed: u64,
    #[serde(rename = "return")]
    pub ret: f64,
    pub length: usize,
}

/// Reads the `dataset.json` beside the first shard of `files`.
pub fn read_info(files: &[PathBuf]) -> Result<(DatasetInfo, PathBuf)> {
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .ok_or_else(|| anyhow!("no shard to find dataset.json beside"))?;
    let path = dir.join("dataset.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: BC data must come with the dataset.json that `lmtrain expert collect` writes beside its shards",
            path.display()
        )
    })?;
    let info: DatasetInfo = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an lmtrain dataset.json", path.display()))?;
    Ok((info, path))
}

/// Reads every shard matched by `glob`, keeping the first `limit` episodes by index (all when
/// `None`). Errors name the file and what is wrong (a missing column, ragged rows, rows of one
/// episode out of order).
pub fn read_split(glob: &str, limit: Option<usize>) -> Result<Split> {
    let files = crate::data::shards::resolve_glob(glob, Path::new("/"))?;
    let mut episodes: Vec<Episode> = Vec::new();
    let mut dims: Option<(usize, usize)> = None;
    for file in &files {
        read_shard(file, &mut episodes, &mut dims)
            .with_context(|| format!("reading BC shard {}", file.display()))?;
    }
    let (obs_dim, action_dim) =
        dims.ok_or_else(|| anyhow!("the shards matched by {glob} hold no rows"))?;
    episodes.sort_by_key(|e| e.index);
    if let Some(w) = episodes.windows(2).find(|w| w[0].index == w[1].index) {
        bail!(
            "episode {} appears twice in the shards matched by {glob} (the same shard matched twice, or rows of one episode split across shards)",
            w[0].index
        );
    }
    if let Some(n) = limit {
        if n > episodes.len() {
            bail!(
                "data.episodes = {n}, but {glob} holds only {} episodes; lower data.episodes or collect more with `lmtrain expert collect --episodes N`",
                episodes.len()
            );
        }
        episodes.truncate(n);
    }
    Ok(Split {
        obs_dim,
        action_dim,
        episodes,
        files,
    })
}

fn read_shard(
    file: &Path,
    episodes: &mut Vec<Episode>,
    dims: &mut Option<(usize, usize)>,
) -> Result<()> {
    let f = File::open(file).context("cannot open")?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .context("not a readable parquet file (corrupt or truncated?)")?;
    let schema = builder.schema().clone();
    let wanted = ["episode", "t", "obs", "action"];
    let mut indices = Vec::new();
    for name in wanted {
        let i = schema.index_of(name).map_err(|_| {
            anyhow!(
                "no column {name:?} (columns: {}); BC reads the shards `lmtrain expert collect` writes",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        indices.push(i);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let reader = builder.with_projection(mask).build()?;
    for batch in reader {
        let batch = batch.context("cannot decode a record batch")?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| anyhow!("no column {name:?}"))
        };
        let ep = col("episode")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| anyhow!("column \"episode\" is not int64"))?
            .clone();
        let t = col("t")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| anyhow!("column \"t\" is not int64"))?
            .clone();
        let obs = col("obs")?
            .as_list_opt::<i32>()
            .ok_or_else(|| anyhow!("column \"obs\" is not a list of float32"))?
            .clone();
        let act = col("action")?
            .as_list_opt::<i32>()
            .ok_or_else(|| anyhow!("column \"action\" is not a list of float32"))?
            .clone();
        for row in 0..batch.num_rows() {
            let o = obs.value(row);
            let a = act.value(row);
            let o = o
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| anyhow!("column \"obs\" is not a list of float32"))?;
            let a = a
                .as_primitive_opt::<Float32Type>()
                .ok_or_else(|| anyhow!("column \"action\" is not a list of float32"))?;
            if o.null_count() > 0 || a.null_count() > 0 {
                bail!("row {row}: null values in obs or action");
            }
            let d = (o.len(), a.len());
            match dims {
                None => *dims = Some(d),
                Some(prev) if *prev != d => {
                    bail!("row {row}: obs/action widths {d:?} differ from earlier rows' {prev:?}")
                }
                _ => {}
            }
            let index = ep.value(row);
            let step = t.value(row);
            let same = episodes.last().is_some_and(|e| e.index == index);
            if !same {
                if step != 0 {
                    bail!("episode {index} starts at t = {step}, not 0 (rows out of order?)");
                }
                episodes.push(Episode {
                    index,
                    obs: Vec::new(),
                    actions: Vec::new(),
                });
            }
            let e = episodes.last_mut().ok_or_else(|| anyhow!("no episode"))?;
            if step as usize != e.len(d.0) {
                bail!(
                    "episode {index}: row t = {step} follows t = {} (rows must be in time order)",
                    e.len(d.0) as i64 - 1
                );
            }
            e.obs.extend_from_slice(o.values());
            e.actions.extend_from_slice(a.values());
        }
    }
    Ok(())
}
