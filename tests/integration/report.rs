//! `lmtrain report` over synthetic run directories: metrics.jsonl files written here with known
//! shapes (smooth val loss, a generation metric whose raw series zigzags while its EMA series is
//! smooth), so the verdict and the table have a known right answer.

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
    let dir = parent.join(name);
    std::fs::create_dir_all(&dir).expect("run dir");
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[train]\nrun_name = \"{name}\"\nbatch_size = 8\nmax_steps = {}\n[optim]\ngrad_accum = 1\nlr = 0.001\n[ema]\npower = 0.75\n",
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
