//! The run's logs: `metrics.jsonl` (one JSON object per logged step), `train.log` (the header and
//! a greppable line per log interval), and the progress bar on the terminal.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// One row of `metrics.jsonl`. Absent values are omitted, never written as zero.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct MetricsRow {
    pub step: u64,
    pub tokens: u64,
    pub lr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_raw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_ema: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tok_per_s: Option<f64>,
    /// The task's evaluation metrics (for the LM: `gen_<metric>_<mode>_<weights>` and
    /// `val_loss_pos_<lo>_<hi>_<weights>`), present only on evaluation steps.
    #[serde(flatten)]
    pub extra: std::collections::BTreeMap<String, f64>,
}

impl MetricsRow {
    /// The greppable form used in train.log and on stderr.
    pub fn log_line(&self, max_steps: u64) -> String {
        let mut s = format!("step {}/{} | tokens {}", self.step, max_steps, self.tokens);
        if let Some(l) = self.train_loss {
            s += &format!(" | loss {l:.4}");
        }
        s += &format!(" | lr {:.3e}", self.lr);
        if let Some(g) = self.grad_norm {
            s += &format!(" | grad_norm {g:.4}");
        }
        if let Some(t) = self.tok_per_s {
            s += &format!(" | tok/s {t:.0}");
        }
        if let Some(v) = self.val_loss_raw {
            s += &format!(" | val_raw {v:.4}");
        }
        if let Some(v) = self.val_loss_ema {
            s += &format!(" | val_ema {v:.4}");
        }
        // The headline generation metrics; the rest are in metrics.jsonl.
        for key in [
            "gen_valid_greedy_raw",
            "gen_valid_greedy_ema",
            "gen_rep4_greedy_raw",
            "gen_rep4_greedy_ema",
        ] {
            if let Some(v) = self.extra.get(key) {
                s += &format!(" | {} {v:.3}", key.trim_start_matches("gen_"));
            }
        }
        // BC's headline rollout metrics.
        for key in [
            "rollout_return_mean_raw",
            "rollout_return_mean_ema",
            "rollout_fell_raw",
            "rollout_fell_ema",
        ] {
            if let Some(v) = self.extra.get(key) {
                s += &format!(" | {} {v:.2}", key.trim_start_matches("rollout_"));
            }
        }
        // The linear testbed's rollout costs.
        for (key, v) in &self.extra {
            if key.starts_with("rollout_cost_h") {
                s += &format!(" | {} {v:.4}", key.trim_start_matches("rollout_"));
            }
        }
        s
    }
}

pub struct RunLog {
    metrics: File,
    log: File,
    bar: ProgressBar,
    to_terminal: bool,
}

impl RunLog {
    /// Reopens metrics.jsonl after a resume's rewind replaced it (the rewind writes a new file
    /// and renames it over the old one, so the handle opened before would append to the
    /// unlinked old file, and every row after the resume would be lost).
    pub fn reopen_metrics(&mut self, run_dir: &Path) -> Result<()> {
        let path = run_dir.join("metrics.jsonl");
        self.metrics = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(())
    }

    /// Opens (appending) the run's log files. The progress bar draws only on a terminal; otherwise
    /// each log line also goes to stderr, so a redirected overnight run still shows progress.
    pub fn open(run_dir: &Path, start_step: u64, max_steps: u64) -> Result<Self> {
        let open = |name: &str| {
            let path = run_dir.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))
        };
        let to_terminal = std::io::stderr().is_terminal();
        let bar = if to_terminal {
            let bar = ProgressBar::with_draw_target(Some(max_steps), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(start_step);
            bar
        } else {
            ProgressBar::hidden()
        };
        Ok(Self {
            metrics: open("metrics.jsonl")?,
            log: open("train.log")?,
            bar,
            to_terminal,
        })
    }

    /// A free-form line in train.log and on stderr.
    pub fn line(&mut self, text: &str) -> Result<()> {
        writeln!(self.log, "{text}").context("cannot write train.log")?;
        if self.to_terminal {
            self.bar.println(text);
        } else {
            eprintln!("{text}");
        }
        Ok(())
    }

    pub fn row(&mut self, row: &MetricsRow, max_steps: u64) -> Result<()> {
        let json = serde_json::to_string(row).context("cannot serialize metrics")?;
        writeln!(self.metrics, "{json}").context("cannot write metrics.jsonl")?;
        self.metrics.flush().context("cannot write metrics.jsonl")?;
        self.line(&row.log_line(max_steps))?;
        let mut msg = String::new();
        if let Some(l) = row.train_loss {
            msg += &format!("loss {l:.4} ");
        }
        msg += &format!("lr {:.2e}", row.lr);
        if let Some(t) = row.tok_per_s {
            msg += &format!(" {t:.0} tok/s");
        }
        self.bar.set_message(msg);
        Ok(())
    }

    /// A row of any task's own schema: `value` to metrics.jsonl, `line` to train.log (and
    /// stderr off a terminal), `message` beside the progress bar.
    pub fn json_row<T: Serialize>(&mut self, value: &T, line: &str, message: String) -> Result<()> {
        let json = serde_json::to_string(value).context("cannot serialize metrics")?;
        writeln!(self.metrics, "{json}").context("cannot write metrics.jsonl")?;
        self.metrics.flush().context("cannot write metrics.jsonl")?;
        self.line(line)?;
        self.bar.set_message(message);
        Ok(())
    }

    pub fn progress(&self, step: u64) {
        self.bar.set_position(step);
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
