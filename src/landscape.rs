//! Weight-space slices for the landscape probes (`lmtrain landscape`), shared by the
//! behaviour-cloning probe ([`crate::bc::landscape`]) and the language-model one
//! ([`crate::lm::landscape`]).
//!
//! A probe evaluates a checkpoint's weights θ moved along 1-D slices θ + s·d, s ∈ [−R, R] at P
//! evenly spaced points (Block et al. 2024, §4, after Li et al. 2018, "Visualizing the loss
//! landscape of neural nets"). The directions d: N random Gaussian ones and the gradient of one
//! fixed minibatch, each filter-normalised ([`filter_normalize`]), so that s is in units of the
//! weights' own scale. This module holds the directions, the grid, and the writer of the
//! probe's table (`landscape.csv`, `landscape.md`) and plots; what is measured at each point is
//! the caller's.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::model::params::upload;
use crate::model::{HostParams, ParamSpec};
use crate::train::step::{gradients, tracked_copies};

/// Filter normalisation (Li et al. 2018, §4): each column (output unit) of every 2-D
/// `[in, out]` weight of `d` is scaled to the Euclidean norm of the same column of `theta`;
/// every other tensor (1-D: biases, LayerNorm gains and shifts) becomes zero, so the slice
/// leaves them at θ's values. A zero column of `d` stays zero. `d`, `theta` and `specs` are in
/// the same (spec) order.
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

/// A direction of i.i.d. standard normal entries, shaped like `specs`, drawn from `rng`.
pub fn random_direction(specs: &[ParamSpec], rng: &mut ChaCha8Rng) -> HostParams {
    specs
        .iter()
        .map(|s| (0..s.numel()).map(|_| StandardNormal.sample(rng)).collect())
        .collect()
}

/// The probe's directions, filter-normalised against `theta`: `random0`..`random{n−1}` (standard
/// normal, from a ChaCha8 stream seeded with `seed`, so a seed gives the same directions for the
/// same shapes), then `gradient` under the name "gradient".
pub fn slice_directions(
    specs: &[ParamSpec],
    theta: &HostParams,
    random: usize,
    seed: u64,
    gradient: HostParams,
) -> Vec<(String, HostParams)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut directions: Vec<(String, HostParams)> = (0..random)
        .map(|k| (format!("random{k}"), random_direction(specs, &mut rng)))
        .collect();
    directions.push(("gradient".into(), gradient));
    for (_, d) in directions.iter_mut() {
        filter_normalize(d, theta, specs);
    }
    directions
}

/// The `points` offsets s of a slice, evenly spaced over [−radius, radius], one at exactly 0
/// (the checkpoint itself, which every comparison needs). Errors when `points` is even or
/// below 3.
pub fn slice_offsets(radius: f64, points: usize) -> Result<Vec<f64>> {
    if points < 3 || points.is_multiple_of(2) {
        bail!(
            "--points must be odd and at least 3, so that s = 0 (the checkpoint itself) is one of them; got {points}"
        );
    }
    Ok((0..points)
        .map(|k| -radius + 2.0 * radius * k as f64 / (points - 1) as f64)
        .collect())
}

/// θ + s·d, tensor by tensor (f32). At s = 0 it is θ exactly.
pub fn shifted(theta: &HostParams, d: &HostParams, s: f64) -> HostParams {
    theta
        .iter()
        .zip(d)
        .map(|(t, dv)| t.iter().zip(dv).map(|(a, b)| a + (s as f32) * b).collect())
        .collect()
}

/// The gradient of `loss` (a scalar, shape `[1]`) at `params` (host values in `specs` order),
/// computed on `device` and read back in spec order; a parameter the loss does not reach gets
/// zeros.
pub fn gradient_at(
    specs: &[ParamSpec],
    params: &HostParams,
    device: &Device,
    loss: impl FnOnce(&[Tensor<1>]) -> Tensor<1>,
) -> Result<HostParams> {
    let p = upload(specs, params, device)?;
    let tracked = tracked_copies(&p);
    let grads = loss(&tracked).backward();
    gradients(&tracked, &grads)
        .into_iter()
        .map(|g: Tensor<1>| {
            g.to_data()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow!("cannot read a gradient: {e:?}"))
        })
        .collect()
}

/// One measured quantity of a probe: a column of the table.
pub struct Column {
    /// Its header in landscape.csv (e.g. `val_loss`).
    pub key: String,
    /// Its name in landscape.md and on the plots (e.g. "val BC loss").
    pub label: String,
    /// `Some(name)`: one plot per direction, `<direction>_<name>.svg`; `None`: table only.
    pub plot: Option<String>,
    /// Decimals in landscape.md (the CSV keeps full precision).
    pub decimals: usize,
}

impl Column {
    pub fn new(key: &str, label: &str, plot: Option<&str>, decimals: usize) -> Self {
        Self {
            key: key.into(),
            label: label.into(),
            plot: plot.map(String::from),
            decimals,
        }
    }
}

/// One evaluated point: a direction's name, the offset s, and one value per [`Column`] (NaN
/// where there is none; NaN is written as `NaN` and left off the plots).
#[derive(Clone, Debug)]
pub struct ProbePoint {
    pub direction: String,
    pub s: f64,
    pub values: Vec<f64>,
}

/// Writes the probe's outputs into `out` (created if missing): `landscape.csv` (columns
/// `direction,s,<column keys>`, one row per point), `landscape.md` (`heading` as its title,
/// `intro`, the wall time `seconds`, then per direction its plots and a table) and one SVG per
/// direction and plotted column. Points are grouped by direction in the order given.
pub fn write_outputs(
    out: &Path,
    heading: &str,
    intro: &str,
    columns: &[Column],
    points: &[ProbePoint],
    seconds: f64,
) -> Result<()> {
    use std::fmt::Write;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut csv = String::from("direction,s");
    for c in columns {
        let _ = write!(csv, ",{}", c.key);
    }
    csv.push('\n');
    for p in points {
        let _ = write!(csv, "{},{}", p.direction, p.s);
        for v in &p.values {
            let _ = write!(csv, ",{v}");
        }
        csv.push('\n');
    }
    crate::fsutil::write_atomic(&out.join("landscape.csv"), csv.as_bytes())?;
    let mut md = format!(
        "# {heading}\n\n{intro} Took {seconds:.1} s ({:.2} s a point).\n\n",
        seconds / points.len().max(1) as f64
    );
    let mut names: Vec<&String> = points.iter().map(|p| &p.direction).collect();
    names.dedup();
    for name in names {
        let pts: Vec<&ProbePoint> = points.iter().filter(|p| &p.direction == name).collect();
        for (i, c) in columns.iter().enumerate() {
            let Some(plot) = &c.plot else { continue };
            let series: Vec<(f64, f64)> = pts.iter().map(|p| (p.s, p.values[i])).collect();
            let what = &c.label;
            if let Some(svg) = crate::report::plots::xy_plot_svg(
                &format!("{what} along {name}"),
                "s",
                what,
                &[(what.clone(), crate::report::plots::run_colour(i), series)],
            )? {
                let file = format!("{name}_{plot}.svg");
                crate::fsutil::write_atomic(&out.join(&file), svg.as_bytes())?;
                let _ = write!(md, "![{what} along {name}]({file}) ");
            }
        }
        md.push_str("\n\n| s |");
        for c in columns {
            let _ = write!(md, " {} |", c.label);
        }
        md.push_str("\n| --- |");
        md.push_str(&" --- |".repeat(columns.len()));
        md.push('\n');
        for p in pts {
            let _ = write!(md, "| {:+.3} |", p.s);
            for (c, v) in columns.iter().zip(&p.values) {
                let _ = write!(md, " {v:.*} |", c.decimals);
            }
            md.push('\n');
        }
        md.push('\n');
    }
    crate::fsutil::write_atomic(&out.join("landscape.md"), md.as_bytes())?;
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

    #[test]
    fn the_grid_is_symmetric_with_an_exact_centre() {
        let s = slice_offsets(0.5, 5).unwrap();
        assert_eq!(s, vec![-0.5, -0.25, 0.0, 0.25, 0.5]);
        assert!(slice_offsets(0.5, 1).is_err());
        let e = slice_offsets(0.5, 4).unwrap_err().to_string();
        assert!(e.contains("odd") && e.contains("s = 0"), "{e}");
        let theta = vec![vec![1.5f32, -2.0]];
        assert_eq!(shifted(&theta, &vec![vec![3.0, 7.0]], 0.0), theta);
    }

    #[test]
    fn outputs_have_a_row_per_point_and_a_table_per_direction() {
        let dir = tempfile::tempdir().unwrap();
        let columns = [
            Column::new("val_loss", "val loss", Some("val_loss"), 3),
            Column::new("gen_valid_greedy", "validity", None, 2),
        ];
        let points: Vec<ProbePoint> = ["random0", "gradient"]
            .iter()
            .flat_map(|d| {
                [-1.0, 0.0, 1.0].map(|s| ProbePoint {
                    direction: d.to_string(),
                    s,
                    values: vec![2.0 + s * s, f64::NAN],
                })
            })
            .collect();
        write_outputs(dir.path(), "Probe", "Intro.", &columns, &points, 3.0).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("landscape.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "direction,s,val_loss,gen_valid_greedy");
        assert_eq!(lines.len(), 7);
        assert_eq!(lines[2], "random0,0,2,NaN");
        let md = std::fs::read_to_string(dir.path().join("landscape.md")).unwrap();
        assert!(md.contains("Took 3.0 s (0.50 s a point)"), "{md}");
        assert_eq!(md.matches("| s | val loss | validity |").count(), 2, "{md}");
        assert!(dir.path().join("gradient_val_loss.svg").is_file());
        assert!(!dir.path().join("gradient_gen_valid_greedy.svg").exists());
    }
}
