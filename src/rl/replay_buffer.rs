//! SAC's replay buffer: a ring of transitions (s, a, r, s′, terminated) held on the host in f32,
//! with uniform sampling and an atomic sidecar file beside each checkpoint.
//!
//! Storage grows as transitions arrive (a 1M-capacity Humanoid buffer is ~3 GB when full), then
//! wraps, overwriting the oldest. Only `terminated` is stored: a truncated transition bootstraps
//! from the real final observation, as Gymnasium's time-limit handling requires.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

/// Identifies replay-buffer sidecar files.
pub const FORMAT: &str = "lmtrain-replay-buffer";
pub const VERSION: u32 = 1;

/// A ring buffer of transitions.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayBuffer {
    pub obs_dim: usize,
    pub action_dim: usize,
    pub capacity: usize,
    /// The slot the next transition goes to.
    pub pos: usize,
    /// Transitions held (≤ capacity).
    pub len: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<f32>,
}

/// A sampled minibatch, row-major on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub size: usize,
    /// `[size, obs_dim]`.
    pub obs: Vec<f32>,
    /// `[size, action_dim]`.
    pub actions: Vec<f32>,
    /// `[size]`.
    pub rewards: Vec<f32>,
    /// `[size, obs_dim]`.
    pub next_obs: Vec<f32>,
    /// `[size]`, 1.0 where the episode terminated (no bootstrap).
    pub terminated: Vec<f32>,
}

#[derive(Serialize, Deserialize)]
struct SidecarMeta {
    format: String,
    version: u32,
    /// The checkpoint step this buffer belongs to.
    step: u64,
    obs_dim: usize,
    action_dim: usize,
    capacity: usize,
    pos: usize,
    len: usize,
}

impl ReplayBuffer {
    pub fn new(obs_dim: usize, action_dim: usize, capacity: usize) -> Self {
        Self {
            obs_dim,
            action_dim,
            capacity,
            pos: 0,
            len: 0,
            obs: Vec::new(),
            next_obs: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            terminated: Vec::new(),
        }
    }

    /// Adds one transition; observations arrive as the environment's f64.
    pub fn push(
        &mut self,
        obs: &[f64],
        action: &[f32],
        reward: f64,
        next_obs: &[f64],
        terminated: bool,
    ) {
        let (o, a) = (self.obs_dim, self.action_dim);
        let cast = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        if self.len < self.capacity && self.pos == self.len {
            self.obs.extend(cast(obs));
            self.next_obs.extend(cast(next_obs));
            self.actions.extend_from_slice(action);
            self.rewards.push(reward as f32);
            self.terminated.push(f32::from(u8::from(terminated)));
        } else {
            let p = self.pos;
            self.obs[p * o..(p + 1) * o].copy_from_slice(&cast(obs));
            self.next_obs[p * o..(p + 1) * o].copy_from_slice(&cast(next_obs));
            self.actions[p * a..(p + 1) * a].copy_from_slice(action);
            self.rewards[p] = reward as f32;
            self.terminated[p] = f32::from(u8::from(terminated));
        }
        self.pos = (self.pos + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Gathers the transitions at `indices` (each < `len`).
    pub fn gather(&self, indices: &[usize]) -> Batch {
        let (o, a) = (self.obs_dim, self.action_dim);
        let mut b = Batch {
            size: indices.len(),
            obs: Vec::with_capacity(indices.len() * o),
            actions: Vec::with_capacity(indices.len() * a),
            rewards: Vec::with_capacity(indices.len()),
            next_obs: Vec::with_capacity(indices.len() * o),
            terminated: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            b.obs.extend_from_slice(&self.obs[i * o..(i + 1) * o]);
            b.next_obs
                .extend_from_slice(&self.next_obs[i * o..(i + 1) * o]);
            b.actions
                .extend_from_slice(&self.actions[i * a..(i + 1) * a]);
            b.rewards.push(self.rewards[i]);
            b.terminated.push(self.terminated[i]);
        }
        b
    }

    /// Writes the buffer atomically to `path` (temporary file, fsync, rename), tagged with the
    /// checkpoint `step` it belongs to.
    pub fn save(&self, path: &Path, step: u64) -> Result<()> {
        let meta = SidecarMeta {
            format: FORMAT.into(),
            version: VERSION,
            step,
            obs_dim: self.obs_dim,
            action_dim: self.action_dim,
            capacity: self.capacity,
            pos: self.pos,
            len: self.len,
        };
        let (o, a, n) = (self.obs_dim, self.action_dim, self.len);
        let fields: [(&str, &Vec<f32>, Vec<usize>); 5] = [
            ("obs", &self.obs, vec![n, o]),
            ("next_obs", &self.next_obs, vec![n, o]),
            ("actions", &self.actions, vec![n, a]),
            ("rewards", &self.rewards, vec![n]),
            ("terminated", &self.terminated, vec![n]),
        ];
        let views: Vec<(String, TensorView)> = fields
            .iter()
            .map(|(name, data, shape)| {
                TensorView::new(
                    Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data.as_slice()),
                )
                .map(|v| (name.to_string(), v))
                .map_err(|e| anyhow!("replay buffer field {name}: {e}"))
            })
            .collect::<Result<_>>()?;
        let mut metadata = std::collections::HashMap::new();
        metadata.insert("lmtrain".to_string(), serde_json::to_string(&meta)?);
        crate::fsutil::write_atomic_with(path, |tmp| {
            safetensors::tensor::serialize_to_file(views, Some(metadata), tmp)
                .map_err(|e| anyhow!("{e}"))
        })
        .with_context(|| {
            format!(
                "saving the replay buffer {} failed; the previous checkpoint and its buffer are intact. Free disk space, then resume",
                path.display()
            )
        })
    }

    /// Reads a sidecar written by [`Self::save`] for checkpoint `step`, checking its shape.
    pub fn load(path: &Path, step: u64, obs_dim: usize, action_dim: usize) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the replay buffer {}; resume with --refill-buffer to refill it with the current policy",
                path.display()
            )
        })?;
        let st = SafeTensors::deserialize(&bytes).map_err(|e| {
            anyhow!(
                "replay buffer {} is corrupt ({e}); resume with --refill-buffer",
                path.display()
            )
        })?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| anyhow!("replay buffer {}: {e}", path.display()))?;
        let raw = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("lmtrain"))
            .ok_or_else(|| anyhow!("{} is not an lmtrain replay buffer", path.display()))?;
        let meta: SidecarMeta = serde_json::from_str(raw)
            .with_context(|| format!("{}: malformed replay-buffer metadata", path.display()))?;
        if meta.format != FORMAT || meta.version != VERSION {
            bail!(
                "{}: format {:?} version {}, expected {FORMAT:?} version {VERSION}",
                path.display(),
                meta.format,
                meta.version
            );
        }
        if meta.step != step || meta.obs_dim != obs_dim || meta.action_dim != action_dim {
            bail!(
                "replay buffer {} belongs to step {} with dimensions {}/{}, but the checkpoint is step {step} with {obs_dim}/{action_dim}; resume with --refill-buffer",
                path.display(),
                meta.step,
                meta.obs_dim,
                meta.action_dim
            );
        }
        let field = |name: &str| -> Result<Vec<f32>> {
            let v = st
                .tensor(name)
                .map_err(|_| anyhow!("replay buffer {} has no field {name}", path.display()))?;
            if v.dtype() != Dtype::F32 {
                bail!("replay buffer {}: field {name} is not f32", path.display());
            }
            Ok(v.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let buf = Self {
            obs_dim,
            action_dim,
            capacity: meta.capacity,
            pos: meta.pos,
            len: meta.len,
            obs: field("obs")?,
            next_obs: field("next_obs")?,
            actions: field("actions")?,
            rewards: field("rewards")?,
            terminated: field("terminated")?,
        };
        if buf.rewards.len() != buf.len
            || buf.obs.len() != buf.len * obs_dim
            || buf.pos >= buf.capacity.max(1)
        {
            bail!(
                "replay buffer {} is inconsistent (length {} vs {} rewards)",
                path.display(),
                buf.len,
                buf.rewards.len()
            );
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_overwrites_the_oldest_and_round_trips_through_a_file() {
        let mut b = ReplayBuffer::new(2, 1, 3);
        for k in 0..5 {
            let x = k as f64;
            b.push(
                &[x, -x],
                &[k as f32 / 10.0],
                x * 2.0,
                &[x + 1.0, 0.0],
                k == 4,
            );
        }
        assert_eq!((b.len, b.pos), (3, 2));
        // Slot 0 holds transition 3, slot 1 transition 4, slot 2 transition 2.
        let got = b.gather(&[0, 1, 2]);
        assert_eq!(got.rewards, vec![6.0, 8.0, 4.0]);
        assert_eq!(got.terminated, vec![0.0, 1.0, 0.0]);
        assert_eq!(got.obs, vec![3.0, -3.0, 4.0, -4.0, 2.0, -2.0]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.safetensors");
        b.save(&path, 5).unwrap();
        assert_eq!(ReplayBuffer::load(&path, 5, 2, 1).unwrap(), b);
        assert!(ReplayBuffer::load(&path, 6, 2, 1).is_err());
    }
}
