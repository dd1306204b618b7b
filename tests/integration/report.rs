//! `lmtrain report` over synthetic run directories: metrics.jsonl files written here with known
//! shapes (smooth val loss, a generation metric whose raw series zigzags while its EMA series is
//! smooth), so the verdict and the table have a known right answer; generations.jsonl files
//! with hand-counted flips; and runs that differ only in `train.seed` (pooled) or in the
//! learning rate (not pooled).

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::common::{lmtrain, run_err, run_ok};

const EVALUATIONS: u64 = 40;
const EVAL_EVERY: u64 = 10;

/// A run directory `parent/name` with config.toml and metrics.jsonl:
/// - a training-only row between evaluations (no evaluation keys: absent, not 0);
/// - val loss decaying smoothly, with a tiny wiggle, raw and EMA;
/// - `rep4` (greedy and sample): raw zigzags by ±`zigzag` around a slow trend, EMA is smooth;
/// - `distinct4` (greedy): an exact straight line, raw and EMA (oscillates less than val loss);
/// - `horizon` (greedy): from the second evaluation on only, as lmtrain logs it;
/// - `valid` (greedy): at three evaluations only — too few for statistics;
/// - teacher-forced loss in two position buckets.
fn write_run(parent: &Path, name: &str, zigzag: f64) -> PathBuf {
    write_run_with(parent, name, zigzag, None, 0.001)
}

/// [`write_run`] with `train.seed` (absent when `None`) and `optim.lr` set.
fn write_run_with(parent: &Path, name: &str, zigzag: f64, seed: Option<u64>, lr: f64) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("run dir");
    let seed = seed.map_or(String::new(), |s| format!("seed = {s}\n"));
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[train]\nrun_name = \"{name}\"\nout_dir = \"{}\"\n{seed}batch_size = 8\nmax_steps = {}\n[optim]\ngrad_accum = 1\nlr = {lr}\n[ema]\npower = 0.75\n",
            parent.display(),
            EVALUATIONS * EVAL_EVERY
        ),
    )
    .expect("config.toml");
    let mut lines = Vec::new();
    for k in 1..=EVALUATIONS {
        let step = k * EVAL_EVERY;
        lines.push(
            json!({"step": step - EVAL_EVERY / 2, "tokens": (step - 5) * 1024, "train_loss": 4.0})
                .to_string(),
        );
        let t = k as f64;
        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
        let val = 3.0 + 2.0 * (-t / 12.0).exp();
        let mut row = Map::new();
        row.insert("step".to_string(), json!(step));
        row.insert("tokens".to_string(), json!(step * 1024));
        let mut put = |key: &str, v: f64| {
            row.insert(key.to_string(), json!(v));
        };
        put("val_loss_raw", val + 0.002 * (t * 1.3).sin());
        put("val_loss_ema", val + 0.05 + 0.001 * (t * 0.7).sin());
        for mode in ["greedy", "sample"] {
            let trend = 0.3 + 0.002 * t;
            put(
                &format!("gen_rep4_{mode}_raw"),
                trend + sign * zigzag * (1.0 + 0.3 * (t * 0.9).sin()),
            );
            put(
                &format!("gen_rep4_{mode}_ema"),
                trend + 0.01 + 0.002 * (t * 0.2).sin(),
            );
        }
        put("gen_distinct4_greedy_raw", 0.5 + 0.001 * t);
        put("gen_distinct4_greedy_ema", 0.52 + 0.001 * t);
        if k >= 2 {
            put("gen_horizon_greedy_raw", 40.0 + 25.0 * sign);
            put("gen_horizon_greedy_ema", 60.0 + 2.0 * (t * 0.3).sin());
        }
        if k > EVALUATIONS - 3 {
            put("gen_valid_greedy_raw", 0.5);
            put("gen_valid_greedy_ema", 0.6);
        }
        put("val_loss_pos_0_64_raw", val + 0.3);
        put("val_loss_pos_0_64_ema", val + 0.31);
        put("val_loss_pos_64_end_raw", val - 0.2 + 0.01 * sign);
        put("val_loss_pos_64_end_ema", val - 0.19);
        lines.push(Value::Object(row).to_string());
    }
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").expect("metrics.jsonl");
    dir
}

/// The cells of the table row whose first cell is `series`.
fn table_row(report: &str, series: &str) -> Vec<String> {
    let prefix = format!("| {series} |");
    let line = report
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no table row {series:?} in:\n{report}"));
    line.split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The (raw, EMA) oscillation index of a table row.
fn indices(report: &str, series: &str) -> (f64, f64) {
    let row = table_row(report, series);
    // "0.0812 [0.061, 0.104]": the index, then its 95% interval.
    let parse = |cell: &str| -> f64 {
        cell.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series}: index cell {cell:?} is not a number"))
    };
    (parse(&row[2]), parse(&row[3]))
}

/// The verdict bullet of a metric.
fn verdict_line<'a>(report: &'a str, series: &str) -> &'a str {
    let prefix = format!("- **{series}**:");
    report
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no verdict line for {series:?} in:\n{report}"))
}

fn assert_svg_with_lines(path: &Path) -> String {
    let svg = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{} does not start like SVG: {:?}",
        path.display(),
        &svg[..svg.len().min(60)]
    );
    assert!(
        svg.trim_end().ends_with("</svg>"),
        "{} is cut short",
        path.display()
    );
    svg
}

#[test]
fn single_run_report_shows_raw_oscillating_and_ema_damping_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = write_run(tmp.path(), "zigzag", 0.1);
    // Every step: the synthetic val loss falls linearly to the end, so the default window (from
    // where its descent has settled) would keep only the last evaluations.
    let out = run_ok(lmtrain().args(["report", "--from-step", "0"]).arg(&run));
    let report_path = run.join("report.md");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        report_path.display().to_string()
    );
    let report = std::fs::read_to_string(&report_path).expect("report.md");

    // The table: raw zigzags, EMA does not; val loss is smoother than the raw metric.
    let (val_raw, val_ema) = indices(&report, "val loss");
    for series in ["rep4 (greedy)", "rep4 (sample)", "horizon (greedy)"] {
        let (raw, ema) = indices(&report, series);
        assert!(raw > 5.0 * ema, "{series}: raw index {raw} vs EMA {ema}");
        assert!(
            raw > 5.0 * val_raw,
            "{series}: raw index {raw} vs val loss {val_raw}"
        );
    }
    assert!(val_raw > 0.0 && val_ema > 0.0);
    let (line_raw, line_ema) = indices(&report, "distinct4 (greedy)");
    assert!(line_raw < 1e-9 && line_ema < 1e-9, "{line_raw} {line_ema}");
    // resid_sd is the index's numerator, in the metric's units: 0 for the straight line, and
    // for rep4 the index times its mean level (0.3 + 0.002 t over t = 1..40: 0.341, the zigzag
    // averaging out).
    let line = table_row(&report, "distinct4 (greedy)");
    assert!(
        lead(&line[5]).abs() < 1e-9 && lead(&line[6]).abs() < 1e-9,
        "{line:?}"
    );
    let rep4 = table_row(&report, "rep4 (greedy)");
    let (index_raw, _) = indices(&report, "rep4 (greedy)");
    let level = lead(&rep4[5]) / index_raw;
    assert!((level - 0.341).abs() < 0.01, "{rep4:?}");
    assert!(lead(&rep4[7]) < 0.2, "resid_sd EMA / raw: {rep4:?}");
    // Horizon starts at the second evaluation; valid has only three.
    assert_eq!(table_row(&report, "horizon (greedy)")[1], "39 / 39");
    let valid = table_row(&report, "valid (greedy)");
    assert_eq!(valid[2], "too few evaluations", "{valid:?}");
    assert_eq!(valid[3], "too few evaluations", "{valid:?}");
    // Val loss is compared on the generation grid: the 40 evaluations, not the training rows.
    assert_eq!(table_row(&report, "val loss")[1], "40 / 40");
    assert!(
        report.contains("| val loss, positions 64–end |"),
        "{report}"
    );

    // The verdict says it in words, first thing.
    let verdict_at = report.find("## Verdict").expect("verdict section");
    assert!(verdict_at < report.find("## Oscillation statistics").expect("table"));
    let rep4 = verdict_line(&report, "rep4 (greedy)");
    assert!(rep4.contains("oscillates more than val loss"), "{rep4}");
    assert!(rep4.contains("EMA damped it"), "{rep4}");
    let line = verdict_line(&report, "distinct4 (greedy)");
    assert!(line.contains("oscillates less than val loss"), "{line}");
    assert!(verdict_line(&report, "valid (greedy)").contains("too few evaluations"));
    assert!(
        report.contains("in 3 of 4 metric series"),
        "headline should count rep4 ×2 and horizon, not distinct4 (valid has too few): {report}"
    );

    // Plots exist beside the report, are referenced relatively, and hold the series.
    for file in [
        "val_loss.svg",
        "gen_rep4_greedy.svg",
        "gen_horizon_greedy.svg",
        "val_loss_pos_0_64.svg",
    ] {
        assert!(
            report.contains(&format!("(report/{file})")),
            "{file} not embedded"
        );
        let svg = assert_svg_with_lines(&run.join("report").join(file));
        assert!(svg.contains("<polyline"), "{file} has no line");
    }
    let scatter = assert_svg_with_lines(&run.join("report/gen_rep4_greedy_vs_val_loss.svg"));
    assert!(scatter.contains("<circle"), "the scatter has no points");
    assert!(report.contains("(report/gen_rep4_greedy_vs_val_loss.svg)"));

    // Settings and definitions.
    assert!(report.contains("| `ema.power` | `0.75` |"), "{report}");
    assert!(report.contains("std(Δr) / mean|x|"));
    assert!(report.contains("trend window w = 5"));
}

#[test]
fn several_runs_overlay_into_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = write_run(tmp.path(), "run-a", 0.1);
    let b = write_run(tmp.path(), "run-b", 0.02);
    let out = tmp.path().join("sweep");
    run_ok(
        lmtrain()
            .args(["report", "--from-step", "0", "--trend-window", "3", "--out"])
            .arg(&out)
            .arg(&a)
            .arg(&b),
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md in --out");
    assert!(!a.join("report.md").exists() && !b.join("report.md").exists());
    assert!(report.contains("### run-a") && report.contains("### run-b"));
    assert!(report.contains("trend window w = 3"));
    assert!(report.contains("| setting | run-a | run-b |"), "{report}");
    // The sweep overview puts each run's raw → EMA index side by side; the larger zigzag
    // oscillates more.
    let overview = table_row(&report, "rep4 (greedy)");
    let raw_index = |cell: &str| -> f64 {
        let (raw, _ema) = cell.split_once(" → ").expect("raw → EMA");
        raw.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("a number")
    };
    assert!(
        raw_index(&overview[1]) > 2.0 * raw_index(&overview[2]),
        "{overview:?}"
    );
    let svg = assert_svg_with_lines(&out.join("plots/gen_rep4_greedy.svg"));
    for legend in ["run-a raw", "run-a EMA", "run-b raw", "run-b EMA"] {
        assert!(svg.contains(legend), "overlay lacks {legend:?}");
    }
    assert!(report.contains("(plots/gen_rep4_greedy.svg)"));

    // Without --out, several runs go to ./report.
    let cwd = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).expect("cwd");
    run_ok(lmtrain().current_dir(&cwd).arg("report").arg(&a).arg(&b));
    assert!(cwd.join("report/report.md").is_file());
    assert!(cwd.join("report/plots/val_loss.svg").is_file());
}

#[test]
fn a_malformed_line_is_named_with_its_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = write_run(tmp.path(), "broken", 0.1);
    let path = run.join("metrics.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect();
    lines[2] = "{\"step\": 20, \"val_loss_raw\": 3.1".to_string();
    std::fs::write(&path, lines.join("\n")).expect("write");
    let err = run_err(lmtrain().arg("report").arg(&run));
    assert!(err.contains("metrics.jsonl line 3"), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(!run.join("report.md").exists());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = write_run(tmp.path(), "ok", 0.1);
    let err = run_err(lmtrain().args(["report", "--trend-window", "4"]).arg(&run));
    assert!(err.contains("must be odd"), "{err}");
    let err = run_err(lmtrain().args(["report", "--trend-window", "0"]).arg(&run));
    assert!(
        err.contains("report --trend-window = 0") && err.contains("odd"),
        "{err}"
    );

    let empty = tmp.path().join("not-a-run");
    std::fs::create_dir_all(&empty).expect("dir");
    let err = run_err(lmtrain().arg("report").arg(&empty));
    assert!(err.contains("has no metrics.jsonl"), "{err}");

    let train_only = tmp.path().join("train-only");
    std::fs::create_dir_all(&train_only).expect("dir");
    std::fs::write(
        train_only.join("metrics.jsonl"),
        "{\"step\":1,\"train_loss\":5.0}\n{\"step\":2,\"train_loss\":4.9}\n",
    )
    .expect("write");
    let err = run_err(lmtrain().arg("report").arg(&train_only));
    assert!(err.contains("has no evaluation series"), "{err}");
}

/// Writes `run/generations.jsonl`: `verdicts[w][e][p]` is the greedy verdict of prompt p at
/// evaluation e (step 10·(e+1)) for weights w (0 raw, 1 EMA), `None` for a line without a
/// verdict. Each greedy line is followed by a sampled one whose verdict must be ignored.
fn write_generations(run: &Path, verdicts: [&[&[Option<&str>]]; 2]) {
    let mut lines = Vec::new();
    for (w, weights) in ["raw", "ema"].iter().enumerate() {
        for (e, evaluation) in verdicts[w].iter().enumerate() {
            for (p, verdict) in evaluation.iter().enumerate() {
                for (mode, v) in [("greedy", *verdict), ("sample", Some("sampled: ignored"))] {
                    let mut line = json!({"step": 10 * (e as u64 + 1), "weights": weights,
                        "prompt_id": p, "seed": 0, "mode": mode, "tokens": [1, 2, 3],
                        "text": " Once"});
                    if let Some(v) = v {
                        line["verdict"] = json!(v);
                    }
                    lines.push(line.to_string());
                }
            }
        }
    }
    std::fs::write(run.join("generations.jsonl"), lines.join("\n") + "\n")
        .expect("generations.jsonl");
}

/// The cells of the LM flip table row of `run` and `weights`.
fn flip_row(report: &str, run: &str, weights: &str) -> Vec<String> {
    let section = &report[report
        .find("## Flip rates (LM: greedy story verdicts)")
        .expect("LM flips section")..];
    table_row(section, &format!("{run} | {weights}"))
}

/// The leading number of a cell ("0.333 [0.00, 0.50]" → 0.333).
fn lead(cell: &str) -> f64 {
    cell.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cell {cell:?} does not start with a number"))
}

#[test]
fn lm_flip_rates_count_validity_and_reason_changes_by_hand() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = write_run(tmp.path(), "flips", 0.1);
    let (v, a, b) = (Some("valid"), Some("object mismatch"), Some("no hero"));
    // Raw, steps 10–40, prompts 0 and 1: prompt 0 valid, a, valid, valid; prompt 1 a, b, b, a.
    //   valid ↔ invalid per pair: 1/2, 1/2, 0 → 1/3; any change: 2/2, 1/2, 1/2 → 2/3.
    //   p = 3/8 valid: 2p(1−p) = 0.46875; shares valid 3/8, a 3/8, b 2/8: 1 − 22/64 = 0.65625.
    // EMA: valid throughout — nothing flips and nothing is expected to.
    let raw: [&[Option<&str>]; 4] = [&[v, a], &[a, b], &[v, b], &[v, a]];
    let ema: [&[Option<&str>]; 4] = [&[v, v], &[v, v], &[v, v], &[v, v]];
    write_generations(&run, [&raw, &ema]);
    run_ok(lmtrain().args(["report", "--from-step", "0"]).arg(&run));
    let report = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    let r = flip_row(&report, "flips", "raw");
    // run, weights, extent, p, valid flips, expected, ratio, verdict flips, expected, ratio
    assert_eq!(r[2], "4 × 2", "{r:?}");
    assert_eq!(r[3], "0.375");
    assert!((lead(&r[4]) - 1.0 / 3.0).abs() < 1e-3, "{r:?}");
    assert_eq!(r[5], "0.469");
    assert!((lead(&r[6]) - (1.0 / 3.0) / 0.46875).abs() < 0.01, "{r:?}");
    assert!((lead(&r[7]) - 2.0 / 3.0).abs() < 1e-3, "{r:?}");
    assert_eq!(r[8], "0.656");
    assert!((lead(&r[9]) - (2.0 / 3.0) / 0.65625).abs() < 0.01, "{r:?}");
    let e = flip_row(&report, "flips", "EMA");
    assert_eq!(
        (e[3].as_str(), lead(&e[4]), e[5].as_str()),
        ("1.000", 0.0, "0.000")
    );
    assert!(e[6].starts_with("— (a single outcome"), "{e:?}");

    // --from-step 20 drops the first evaluation: raw pairs (20→30, 30→40) flip valid ↔ invalid
    // 1/2, 0 and in any way 1/2, 1/2.
    run_ok(lmtrain().args(["report", "--from-step", "20"]).arg(&run));
    let report = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    let r = flip_row(&report, "flips", "raw");
    assert_eq!(r[2], "3 × 2", "{r:?}");
    assert!(
        (lead(&r[4]) - 0.25).abs() < 1e-3 && (lead(&r[7]) - 0.5).abs() < 1e-3,
        "{r:?}"
    );

    // An older run: greedy generations without verdicts. One line says so; nothing fails.
    let old = write_run(tmp.path(), "old", 0.1);
    write_generations(
        &old,
        [
            &[&[None, None], &[None, None]],
            &[&[None, None], &[None, None]],
        ],
    );
    run_ok(lmtrain().args(["report", "--from-step", "0"]).arg(&old));
    let report = std::fs::read_to_string(old.join("report.md")).expect("report.md");
    assert!(
        report.contains("old: its greedy generations carry no story-checker verdicts"),
        "{report}"
    );
    assert!(!report.contains("| valid ↔ invalid flips |"), "{report}");
}

/// The table row `series` of the oscillation table under the `### heading` of the statistics
/// section.
fn stats_row(report: &str, heading: &str, series: &str) -> Vec<String> {
    let stats = &report[report.find("## Oscillation statistics").expect("stats")..];
    let at = stats
        .find(&format!("### {heading}\n"))
        .unwrap_or_else(|| panic!("no {heading:?} in the statistics:\n{stats}"));
    table_row(&stats[at..], series)
}

#[test]
fn runs_differing_only_in_seed_pool_and_runs_differing_in_lr_do_not() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s0 = write_run_with(tmp.path(), "s0", 0.1, Some(0), 0.001);
    let s1 = write_run_with(tmp.path(), "s1", 0.14, Some(1), 0.001);
    let lr = write_run_with(tmp.path(), "lr", 0.1, Some(1), 0.002);
    let (v, a) = (Some("valid"), Some("no hero"));
    // Raw flips valid ↔ invalid: s0 1/2 per pair, s1 every prompt every pair.
    let s0_raw: [&[Option<&str>]; 3] = [&[v, v], &[a, v], &[v, v]];
    let s1_raw: [&[Option<&str>]; 3] = [&[v, a], &[a, v], &[v, a]];
    let ema: [&[Option<&str>]; 3] = [&[v, a], &[v, a], &[v, a]];
    write_generations(&s0, [&s0_raw, &ema]);
    write_generations(&s1, [&s1_raw, &ema]);
    let out = tmp.path().join("pooled");
    run_ok(
        lmtrain()
            .args(["report", "--from-step", "0", "--out"])
            .arg(&out)
            .args([&s0, &lr, &s1]),
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    let verdict = &report[..report.find("## Oscillation statistics").expect("stats")];
    // One verdict for the pool, one for the lr run; none for the seeds on their own.
    assert!(verdict.contains("### pooled: s0 + s1\n"), "{verdict}");
    assert!(verdict.contains("### lr\n"), "{verdict}");
    assert!(
        !verdict.contains("### s0\n") && !verdict.contains("### s1\n"),
        "{verdict}"
    );
    assert!(verdict.contains("differ only in `train.seed`"), "{verdict}");
    assert!(verdict.contains("Pooled over 2 seeds"), "{verdict}");
    // The pooled row: each statistic is the mean of the seeds' (up to the printed digits).
    for (col, what) in [(2, "index raw"), (5, "resid_sd raw"), (6, "resid_sd EMA")] {
        let seeds: Vec<f64> = ["s0", "s1"]
            .iter()
            .map(|s| lead(&stats_row(&report, s, "rep4 (greedy)")[col]))
            .collect();
        let pooled = lead(&stats_row(&report, "pooled: s0 + s1", "rep4 (greedy)")[col]);
        let mean = (seeds[0] + seeds[1]) / 2.0;
        assert!(
            (pooled - mean).abs() <= 1e-4 + 1e-3 * mean,
            "{what}: {pooled} vs {seeds:?}"
        );
    }
    let pooled = stats_row(&report, "pooled: s0 + s1", "rep4 (greedy)");
    assert_eq!(pooled[1], "80 / 80", "{pooled:?}");
    assert!(
        pooled[2].contains('['),
        "pooled index has an interval: {pooled:?}"
    );
    // Pooled flips: 1/2 and 1 → 3/4 over 2 seeds of 3 evaluations.
    let f = flip_row(&report, "pooled: s0 + s1", "raw");
    assert_eq!(f[2], "6 × 2 (2 seeds)", "{f:?}");
    assert!((lead(&f[4]) - 0.75).abs() < 1e-3, "{f:?}");
    // The seed shows in the settings.
    assert!(
        report.contains("| **`train.seed`** | `0` | `1` | `1` |"),
        "{report}"
    );

    // Runs that differ in the learning rate are not pooled.
    let out = tmp.path().join("apart");
    run_ok(
        lmtrain()
            .args(["report", "--from-step", "0", "--out"])
            .arg(&out)
            .args([&s0, &lr]),
    );
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(
        !report.contains("### pooled") && !report.contains("are pooled as seeds:"),
        "{report}"
    );
    assert!(report.contains("### s0\n") && report.contains("### lr\n"));
}

/// A window with too few evaluations says so, instead of "in 0 of 0 metric series".
#[test]
fn too_few_evaluations_are_said_plainly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = write_run(tmp.path(), "short", 0.1);
    let from = ((EVALUATIONS - 2) * EVAL_EVERY).to_string();
    run_ok(lmtrain().args(["report", "--from-step", &from]).arg(&run));
    let report = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    assert!(report.contains("Too few evaluations to judge"), "{report}");
    assert!(!report.contains(" of 0 metric series"), "{report}");
    // Five evaluations: statistics, but no intervals, so nothing is called resolved.
    let from = ((EVALUATIONS - 4) * EVAL_EVERY).to_string();
    run_ok(lmtrain().args(["report", "--from-step", &from]).arg(&run));
    let report = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    assert!(report.contains("in 0 of 4 metric series"), "{report}");
    assert!(report.contains("fewer than 10 evaluations"), "{report}");
    // Past the last step: said so.
    let past = (EVALUATIONS * EVAL_EVERY + 1).to_string();
    let e = run_err(lmtrain().args(["report", "--from-step", &past]).arg(&run));
    assert!(e.contains("past the last logged step"), "{e}");
}

/// An EMA still in its burn-in equals the raw weights: the report says so rather than calling
/// the comparison "not resolved".
#[test]
fn an_ema_in_burn_in_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("burnin");
    std::fs::create_dir_all(&run).expect("dir");
    std::fs::write(run.join("config.toml"), "[ema]\nburn_in = 500\n").expect("config");
    let rows: Vec<String> = (1..=12u64)
        .map(|k| {
            let v = 0.3 + if k % 2 == 0 { 0.1 } else { -0.1 };
            let val = 3.0 + 1.0 / k as f64;
            json!({"step": k * 10, "val_loss_raw": val, "val_loss_ema": val,
                   "gen_rep4_greedy_raw": v, "gen_rep4_greedy_ema": v})
            .to_string()
        })
        .collect();
    std::fs::write(run.join("metrics.jsonl"), rows.join("\n") + "\n").expect("metrics");
    run_ok(lmtrain().args(["report", "--from-step", "0"]).arg(&run));
    let report = std::fs::read_to_string(run.join("report.md")).expect("report.md");
    assert!(report.contains("EMA equals the raw weights"), "{report}");
}
