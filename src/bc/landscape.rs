//! `lmtrain landscape`: the paper's landscape probe (Block et al. 2024, §4, after Li et al. 2018,
//! "Visualizing the loss landscape of neural nets"). Along 1-D slices θ + s·d of a BC
//! checkpoint's weights, s ∈ [−R, R] at P points, it evaluates the BC loss on the validation
//! episodes and the rollout return from the run's fixed starts. The directions d: N random
//! Gaussian ones, filter-normalised (each output unit's column of a weight matrix scaled to the
//! norm of θ's column; biases left at zero, so R is in units of the weights' own scale), and the
//! minibatch-gradient direction of one fixed training batch, normalised the same way. On
//! Walker2d the paper sees a smooth loss and a jagged return along such slices.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use burn::tensor::Device;

use super::dataset;
use super::minibatch::Minibatches;
use super::rollout::{self, RolloutSpec};
use super::rollout_cmd::{load_policy, LoadedPolicy};
use super::task::Pairs;
use crate::landscape::{gradient_at, shifted, slice_directions, slice_offsets, Column, ProbePoint};
use crate::model::params::upload;
use crate::model::HostParams;

/// What to probe.
pub struct LandscapeRequest<'a> {
    pub checkpoint: &'a Path,
    pub ema: bool,
    /// Random directions (the gradient direction comes on top).
    pub directions: usize,
    /// Half-width R of each slice, in filter-normalised units.
    pub radius: f64,
    /// Points per slice (odd puts one at s = 0).
    pub points: usize,
    /// Rollout episodes per point (default: the run's eval.rollouts).
    pub episodes: Option<usize>,
    /// Seed of the random directions.
    pub seed: u64,
    pub out: PathBuf,
}

/// One evaluated point.
#[derive(Clone, Debug)]
pub struct Point {
    pub direction: String,
    pub s: f64,
    pub val_loss: f64,
    pub return_mean: f64,
    pub return_std: f64,
    pub fell: f64,
}

fn normalized_pairs(glob: &str, episodes: Option<usize>, lp: &LoadedPolicy) -> Result<Pairs> {
    Ok(super::run::pairs(
        &dataset::read_split(glob, episodes)?,
        &lp.norm,
    ))
}

/// ℓ_BC of `params` over all of `pairs`, on `device`.
fn bc_loss(lp: &LoadedPolicy, params: &HostParams, pairs: &Pairs, device: &Device) -> Result<f64> {
    let p = upload(lp.policy.specs(), params, device)?;
    lp.policy.mean_loss(&p, pairs, device)
}

/// The gradient of ℓ_BC at `params` on the first minibatch the run drew (seed train.seed).
fn gradient_direction(lp: &LoadedPolicy, train: &Pairs, device: &Device) -> Result<HostParams> {
    let idx = Minibatches::new(train.len(), lp.config.train.seed).next(lp.config.train.batch_size);
    let batch = lp.policy.batch(train, idx.into_iter(), device);
    gradient_at(lp.policy.specs(), &lp.params, device, |p| {
        lp.policy.loss(p, &batch)
    })
}

/// Runs the probe, writes `landscape.csv`, `landscape.md` and one SVG per direction into
/// `req.out`, and returns the points.
pub fn landscape(req: &LandscapeRequest) -> Result<Vec<Point>> {
    let offsets = slice_offsets(req.radius, req.points)?;
    let started = Instant::now();
    let lp = load_policy(req.checkpoint, req.ema)?;
    let data = lp.config.data.as_ref().ok_or_else(|| {
        anyhow!("the landscape probe needs a BC run on expert data (the linear testbed has none)")
    })?;
    let device = crate::device::choose_device(crate::device::DeviceChoice::parse("cpu")?)?.device;
    let val = normalized_pairs(&data.val_glob, None, &lp).with_context(|| {
        format!(
            "the validation data of {} ({})",
            lp.path.display(),
            data.val_glob
        )
    })?;
    let train = normalized_pairs(&data.train_glob, data.episodes, &lp)?;
    let specs = lp.policy.specs().to_vec();
    let gradient = gradient_direction(&lp, &train, &device)?;
    let directions = slice_directions(&specs, &lp.params, req.directions, req.seed, gradient);
    let episodes = req.episodes.unwrap_or(lp.config.eval.rollouts);
    let spec = RolloutSpec {
        env_id: lp.info.env.clone(),
        seeds: (0..episodes as u64)
            .map(|k| lp.config.eval.rollout_seed + k)
            .collect(),
        horizon: lp.config.eval.horizon,
        norm: lp.norm.clone(),
        expert: None,
    };
    let mut points = Vec::new();
    for (name, d) in &directions {
        for &s in &offsets {
            let theta = shifted(&lp.params, d, s);
            let val_loss = bc_loss(&lp, &theta, &val, &device)?;
            let rs = rollout::rollouts(&spec, &lp.policy, &theta, &device)?;
            let n = rs.len().max(1) as f64;
            let mean = rs.iter().map(|r| r.ret).sum::<f64>() / n;
            let std = (rs.iter().map(|r| (r.ret - mean).powi(2)).sum::<f64>() / n).sqrt();
            let fell = rs.iter().filter(|r| r.fell).count() as f64 / n;
            eprintln!(
                "landscape: {name} s = {s:+.3}: val loss {val_loss:.5}, return {mean:.1} ± {std:.1}, fell {fell:.2}"
            );
            points.push(Point {
                direction: name.clone(),
                s,
                val_loss,
                return_mean: mean,
                return_std: std,
                fell,
            });
        }
    }
    let secs = started.elapsed().as_secs_f64();
    write_outputs(req, &lp, &points, episodes, secs)?;
    Ok(points)
}

fn write_outputs(
    req: &LandscapeRequest,
    lp: &LoadedPolicy,
    points: &[Point],
    episodes: usize,
    secs: f64,
) -> Result<()> {
    let heading = format!(
        "Landscape probe: {} ({} weights, step {})",
        lp.path.display(),
        if req.ema { "EMA" } else { "raw" },
        lp.step,
    );
    let intro = format!(
        "BC loss on the validation episodes and rollout return ({episodes} episodes of ≤ {} steps \
         from reset seeds {}..) along θ + s·d, s ∈ [−{r}, {r}] at {} points; d filter-normalised \
         (random Gaussian directions, seed {}, and the gradient of one training minibatch).",
        lp.config.eval.horizon,
        lp.config.eval.rollout_seed,
        req.points,
        req.seed,
        r = req.radius,
    );
    let columns = [
        Column::new("val_loss", "val BC loss", Some("val_loss"), 5),
        Column::new("return_mean", "rollout return", Some("return"), 1),
        Column::new("return_std", "return std", None, 1),
        Column::new("fell", "fell", None, 2),
    ];
    let rows: Vec<ProbePoint> = points
        .iter()
        .map(|p| ProbePoint {
            direction: p.direction.clone(),
            s: p.s,
            values: vec![p.val_loss, p.return_mean, p.return_std, p.fell],
        })
        .collect();
    crate::landscape::write_outputs(&req.out, &heading, &intro, &columns, &rows, secs)
}
