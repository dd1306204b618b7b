//! A run's label and key settings, from its `config.toml` (the resolved config the trainer
//! writes before step 1).
//!
//! The config labels the report and decides which runs are seeds of one setting
//! ([`seed_pools`]). It is read as plain TOML (no schema): a report over an older or newer run
//! still works, and a missing or unreadable config.toml becomes a note in the report rather than
//! an error (such a run is never pooled).

use std::path::{Path, PathBuf};

/// Settings shown in the report, in this order, when the config has them.
pub const KEY_SETTINGS: [&str; 35] = [
    "task.kind",
    "model.n_layer",
    "model.n_embd",
    "model.block_size",
    "policy.kind",
    "policy.hidden",
    "policy.n_layer",
    "policy.n_embd",
    "policy.history",
    "data.episodes",
    "train.batch_size",
    "optim.grad_accum",
    "train.max_steps",
    "train.seed",
    "optim.lr",
    "schedule.kind",
    "schedule.warmup_steps",
    "schedule.min_lr",
    "ema.enabled",
    "ema.kind",
    "ema.power",
    "ema.offset",
    "ema.bias_power",
    "ema.multiplier",
    "ema.burn_in",
    "ema.min_beta",
    "ema.decay",
    "eval.val_every",
    "eval.generate_every",
    "eval.generate_tokens",
    "eval.num_prompts",
    "eval.temperature",
    "eval.top_k",
    "eval.rollout_every",
    "eval.rollouts",
];

#[derive(Clone, Debug)]
pub struct RunInfo {
    pub dir: PathBuf,
    /// `train.run_name`, else the directory's name; made unique across the report's runs.
    pub label: String,
    /// (dotted key, value; strings without quotes) for each of [`KEY_SETTINGS`] the config has.
    pub settings: Vec<(String, String)>,
    /// Why the settings are missing, when they are.
    pub config_note: Option<String>,
    /// `train.seed` as written in config.toml (`None`: not there).
    pub seed: Option<String>,
    /// The whole config less [`SEED_ONLY_KEYS`]: runs with equal ones are seeds of one setting.
    /// `None` without a readable config.
    pub setting: Option<toml::Table>,
}

/// The keys two seeds of one setting may differ in: the seed itself, where the run is written,
/// and what does not change the trajectory: the devices (one or several data-parallel workers
/// take the same steps, and a resume may change them) and the step watchdog.
pub const SEED_ONLY_KEYS: [(&str, &str); 5] = [
    ("train", "seed"),
    ("train", "run_name"),
    ("train", "out_dir"),
    ("train", "step_timeout_s"),
    ("", "device"),
];

pub fn read_run_info(dir: &Path) -> RunInfo {
    let dir_name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    let path = dir.join("config.toml");
    let parsed = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|text| {
            text.parse::<toml::Table>()
                .map_err(|e| format!("cannot parse {}: {e}", path.display()))
        });
    let (table, config_note) = match parsed {
        Ok(table) => (Some(table), None),
        Err(note) => (None, Some(note)),
    };
    let lookup = |dotted: &str| table.as_ref().and_then(|t| setting(t, dotted));
    let label = lookup("train.run_name")
        .filter(|name| !name.is_empty())
        .unwrap_or(dir_name);
    let settings = KEY_SETTINGS
        .iter()
        .filter_map(|key| lookup(key).map(|value| (key.to_string(), value)))
        .collect();
    let seed = lookup("train.seed");
    let setting = table.map(|mut t| {
        for (table, key) in SEED_ONLY_KEYS {
            if table.is_empty() {
                t.remove(key);
            } else if let Some(toml::Value::Table(section)) = t.get_mut(table) {
                section.remove(key);
            }
        }
        t
    });
    RunInfo {
        dir: dir.to_path_buf(),
        label,
        settings,
        config_note,
        seed,
        setting,
    }
}

/// Runs pooled as seeds, as indices into `runs` (each pool in the order its members were given,
/// pools in the order of their first member), and a sentence for each group of runs that share
/// a setting but are not pooled. The rule: runs whose config.toml files are equal once
/// [`SEED_ONLY_KEYS`] are set aside, and whose seeds all
/// differ, are seeds of one setting; two or more of them form a pool. Runs that differ in
/// anything else (another learning rate, another device, another step count) stay separate, and
/// so do runs with the same seed (repeats, not seeds) and runs without a readable config.
pub fn seed_pools(runs: &[RunInfo]) -> (Vec<Vec<usize>>, Vec<String>) {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(setting) = &run.setting else {
            continue;
        };
        match groups
            .iter_mut()
            .find(|g| runs[g[0]].setting.as_ref() == Some(setting))
        {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut pools = Vec::new();
    let mut notes = Vec::new();
    for g in groups.into_iter().filter(|g| g.len() > 1) {
        let seeds: std::collections::BTreeSet<&Option<String>> =
            g.iter().map(|&i| &runs[i].seed).collect();
        if seeds.len() == g.len() {
            pools.push(g);
        } else {
            notes.push(format!(
                "{} share their setting and a seed: repeats of one run, not pooled as seeds",
                g.iter()
                    .map(|&i| runs[i].label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    (pools, notes)
}

/// Appends " (2)", " (3)", … to labels that repeat, so every run keeps a distinct name.
pub fn make_labels_unique(runs: &mut [RunInfo]) {
    for i in 1..runs.len() {
        let base = runs[i].label.clone();
        let mut candidate = base.clone();
        let mut n = 2;
        while runs[..i].iter().any(|r| r.label == candidate) {
            candidate = format!("{base} ({n})");
            n += 1;
        }
        runs[i].label = candidate;
    }
}

/// The value at a dotted path: strings bare, anything else as TOML writes it.
fn setting(table: &toml::Table, dotted: &str) -> Option<String> {
    let mut parts = dotted.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_settings_and_labels_from_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("config.toml"),
            "[train]\nrun_name = \"kappa-0.75\"\nbatch_size = 8\n[ema]\npower = 0.75\n[optim]\ngrad_accum = 4\n",
        )
        .expect("write");
        let info = read_run_info(dir.path());
        assert_eq!(info.label, "kappa-0.75");
        assert!(info.config_note.is_none());
        assert!(info
            .settings
            .contains(&("ema.power".to_string(), "0.75".to_string())));
        assert!(info
            .settings
            .contains(&("optim.grad_accum".to_string(), "4".to_string())));
    }

    #[test]
    fn runs_differing_only_in_seed_and_name_pool_and_others_do_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let write_on = |name: &str, seed: u64, lr: f64, device: &str| {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).expect("dir");
            std::fs::write(
                dir.join("config.toml"),
                format!("device = {device}\n[optim]\nlr = {lr}\n[train]\nseed = {seed}\nrun_name = \"{name}\"\nout_dir = \"/x/{name}\"\n"),
            )
            .expect("write");
            read_run_info(&dir)
        };
        let write = |name: &str, seed: u64, lr: f64| write_on(name, seed, lr, "\"cpu\"");
        let runs = vec![
            write("a0", 0, 0.001),
            write("b0", 0, 0.002),
            // Another device (here two data-parallel workers) takes the same steps: a seed.
            write_on("a1", 1, 0.001, "[\"cpu\", \"cpu\"]"),
            write("b0-again", 0, 0.002),
            write("c", 0, 0.003),
            read_run_info(&tmp.path().join("no-config")),
        ];
        assert_eq!(runs[0].seed.as_deref(), Some("0"));
        let (pools, notes) = seed_pools(&runs);
        assert_eq!(pools, vec![vec![0, 2]]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("b0, b0-again share"), "{notes:?}");
    }

    #[test]
    fn missing_config_is_a_note_and_labels_become_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let info = read_run_info(dir.path());
        assert!(info.config_note.is_some());
        assert!(info.settings.is_empty());
        let mut runs = vec![info.clone(), info.clone(), info];
        make_labels_unique(&mut runs);
        let base = runs[0].label.clone();
        assert_eq!(runs[1].label, format!("{base} (2)"));
        assert_eq!(runs[2].label, format!("{base} (3)"));
    }
}
