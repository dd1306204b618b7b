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

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::dataset;
use super::minibatch::Minibatches;
use super::rollout::{self, RolloutSpec};
use super::rollout_cmd::{load_policy, LoadedPolicy};
use super::task::Pairs;
use crate::model::params::upload;
use crate::model::{HostParams, ParamSpec};
use crate::train::step::{gradients, tracked_copies};

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

/// Filter normalisation: each column (output unit) of every 2-D `[in, out]` weight of `d` is
/// scaled to the norm of the same column of `theta`; 1-D tensors (biases) become zero.
pub fn filter_normalize(d: &mut HostParams, theta: &HostParams, specs: &[ParamSpec]) {
    for ((dv, tv), spec) in d.iter_mut().zip(theta).zip(specs) {
        if spec.shape.len() != 2 {
            dv.iter_mut().for_each(|x| *x = 0.0);
            continue;
        }
        let (rows, cols) = (spec.shape[0], spec.shape[1]);
        for j in 0..cols {
            let norm = |v: &[f32]| {
                (0..rows)
                    .map(|i| (v[i * cols + j] as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            let (nd, nt) = (norm(dv), norm(tv));
            let scale = if nd > 0.0 { (nt / nd) as f32 } else { 0.0 };
            for i in 0..rows {
                dv[i * cols + j] *= scale;
            }
        }
    }
}

fn random_direction(specs: &[ParamSpec], rng: &mut ChaCha8Rng) -> HostParams {
    specs
        .iter()
        .map(|s| (0..s.numel()).map(|_| StandardNormal.sample(rng)).collect())
        .collect()
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
    let n = pairs.len();
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let end = (start + 8192).min(n);
        let b = pairs.batch(start..end, device);
        let loss: f32 = lp.policy.loss(&p, b.obs, b.actions, device).into_scalar();
        total += loss as f64 * (end - start) as f64;
        start = end;
    }
    Ok(total / n.max(1) as f64)
}

/// The gradient of ℓ_BC at `params` on the first minibatch the run drew (seed train.seed).
fn gradient_direction(lp: &LoadedPolicy, train: &Pairs, device: &Device) -> Result<HostParams> {
    let idx = Minibatches::new(train.len(), lp.config.train.seed).next(lp.config.train.batch_size);
    let batch = train.batch(idx.into_iter(), device);
    let p = upload(lp.policy.specs(), &lp.params, device)?;
    let tracked = tracked_copies(&p);
    let loss = lp.policy.loss(&tracked, batch.obs, batch.actions, device);
    let grads = loss.backward();
    gradients(&tracked, &grads)
        .into_iter()
        .map(|g: Tensor<1>| {
            g.to_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow!("cannot read a gradient: {e:?}"))
        })
        .collect()
}

/// Runs the probe, writes `landscape.csv`, `landscape.md` and one SVG per direction into
/// `req.out`, and returns the points.
pub fn landscape(req: &LandscapeRequest) -> Result<Vec<Point>> {
    if req.points < 2 {
        bail!("--points must be at least 2");
    }
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
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let mut directions: Vec<(String, HostParams)> = (0..req.directions)
        .map(|k| (format!("random{k}"), random_direction(&specs, &mut rng)))
        .collect();
    directions.push(("gradient".into(), gradient_direction(&lp, &train, &device)?));
    for (_, d) in directions.iter_mut() {
        filter_normalize(d, &lp.params, &specs);
    }
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
        for k in 0..req.points {
            let s = -req.radius + 2.0 * req.radius * k as f64 / (req.points - 1) as f64;
            let theta: HostParams = lp
                .params
                .iter()
                .zip(d)
                .map(|(t, dv)| t.iter().zip(dv).map(|(a, b)| a + (s as f32) * b).collect())
                .collect();
            let val_loss = bc_loss(&lp, &theta, &val, &device)?;
            let rs = rollout::rollouts(&spec, &lp.policy, &theta)?;
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
    use std::fmt::Write;
    std::fs::create_dir_all(&req.out)
        .with_context(|| format!("cannot create {}", req.out.display()))?;
    let mut csv = String::from("direction,s,val_loss,return_mean,return_std,fell\n");
    for p in points {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            p.direction, p.s, p.val_loss, p.return_mean, p.return_std, p.fell
        );
    }
    crate::fsutil::write_atomic(&req.out.join("landscape.csv"), csv.as_bytes())?;
    let mut md = format!(
        "# Landscape probe: {} ({} weights, step {})\n\n\
         BC loss on the validation episodes and rollout return ({episodes} episodes of ≤ {} steps \
         from reset seeds {}..) along θ + s·d, s ∈ [−{r}, {r}] at {} points; d filter-normalised \
         (random Gaussian directions, seed {}, and the gradient of one training minibatch). \
         Took {secs:.0} s.\n\n",
        lp.path.display(),
        if req.ema { "EMA" } else { "raw" },
        lp.step,
        lp.config.eval.horizon,
        lp.config.eval.rollout_seed,
        req.points,
        req.seed,
        r = req.radius,
    );
    let names: Vec<&String> = {
        let mut v: Vec<&String> = points.iter().map(|p| &p.direction).collect();
        v.dedup();
        v
    };
    for name in names {
        let pts: Vec<&Point> = points.iter().filter(|p| &p.direction == name).collect();
        let line = |f: fn(&Point) -> f64| pts.iter().map(|p| (p.s, f(p))).collect::<Vec<_>>();
        for (what, y, series) in [
            ("val BC loss", "val_loss", line(|p| p.val_loss)),
            ("rollout return", "return", line(|p| p.return_mean)),
        ] {
            let colour = if y == "val_loss" {
                crate::report::plots::run_colour(0)
            } else {
                crate::report::plots::run_colour(1)
            };
            if let Some(svg) = crate::report::plots::xy_plot_svg(
                &format!("{what} along {name}"),
                "s",
                what,
                &[(what.to_string(), colour, series)],
            )? {
                let file = format!("{name}_{y}.svg");
                crate::fsutil::write_atomic(&req.out.join(&file), svg.as_bytes())?;
                let _ = write!(md, "![{what} along {name}]({file}) ");
            }
        }
        md.push_str(
            "\n\n| s | val BC loss | return (mean ± std) | fell |\n| --- | --- | --- | --- |\n",
        );
        for p in pts {
            let _ = writeln!(
                md,
                "| {:+.3} | {:.5} | {:.1} ± {:.1} | {:.2} |",
                p.s, p.val_loss, p.return_mean, p.return_std, p.fell
            );
        }
        md.push('\n');
    }
    crate::fsutil::write_atomic(&req.out.join("landscape.md"), md.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_normalisation_matches_each_column_and_zeroes_biases() {
        let specs = vec![ParamSpec::new("w", &[2, 2]), ParamSpec::new("b", &[2])];
        let theta = vec![vec![3.0, 0.0, 4.0, 1.0], vec![5.0, 5.0]];
        let mut d = vec![vec![1.0, 2.0, 1.0, 0.0], vec![1.0, 1.0]];
        filter_normalize(&mut d, &theta, &specs);
        // Column 0 of θ is (3, 4), norm 5; of d (1, 1) → scaled by 5/√2.
        let k = 5.0 / 2f32.sqrt();
        assert!((d[0][0] - k).abs() < 1e-6 && (d[0][2] - k).abs() < 1e-6);
        // Column 1 of θ is (0, 1), norm 1; of d (2, 0) → (1, 0).
        assert!((d[0][1] - 1.0).abs() < 1e-6 && d[0][3].abs() < 1e-6);
        assert_eq!(d[1], vec![0.0, 0.0]);
    }
}
