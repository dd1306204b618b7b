//! Reading a config file, applying `--set` overrides, resolving relative paths, and comparing
//! configs for resume.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use serde::de::DeserializeOwned;

use super::schema::Config;

/// Where a config came from, for error messages and path resolution.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub file: PathBuf,
}

/// A validated config whose relative paths have been made absolute against the config file's
/// directory, so that the copy in the run directory is self-contained.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    pub config: Config,
    /// The stem of the file it came from (used to name run directories).
    pub name: String,
}

/// Parses `key=value`. The value is read as a TOML value and taken as a bare string if that fails,
/// so `--set optim.lr=3e-4` is a float and `--set device=cpu` a string.
pub fn parse_override(spec: &str) -> Result<(String, toml::Value)> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {spec:?}: expected key=value, e.g. --set optim.lr=3e-4"))?;
    let key = key.trim();
    if key.is_empty() {
        bail!("--set {spec:?}: the key is empty");
    }
    let value = parse_toml_value(raw.trim());
    Ok((key.to_string(), value))
}

fn parse_toml_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Loads `file`, applies `overrides` in order, validates, and resolves relative paths.
pub fn load_config(file: &Path, overrides: &[String]) -> Result<ResolvedConfig> {
    let (mut config, name) = load_typed::<Config>(file, overrides)?;
    config
        .validate()
        .with_context(|| format!("in config file {} (after --set overrides)", file.display()))?;
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = absolute(&base)?;
    config.resolve_paths(&base);
    Ok(ResolvedConfig { config, name })
}

/// Loads a TOML file into any config type `T`, applying `--set` overrides in order: the file is
/// checked alone first, so that an error in it is reported against the file, then after each
/// override. Returns the value and the file's stem (used to name run directories). Semantic
/// validation is the caller's.
pub fn load_typed<T: DeserializeOwned>(file: &Path, overrides: &[String]) -> Result<(T, String)> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read config file {}: check the path (shipped configs are in configs/)",
            file.display()
        )
    })?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("config file {} is not valid TOML", file.display()))?;
    toml::from_str::<T>(&text)
        .map_err(|e| anyhow!("{}", e.to_string().trim_end()))
        .with_context(|| format!("in config file {}", file.display()))?;
    for spec in overrides {
        let (key, value) = parse_override(spec)?;
        let value = absolute_override(&key, value)?;
        set_dotted(&mut table, &key, value)
            .with_context(|| format!("--set {spec} (config file {})", file.display()))?;
        // The error's own message only: its line numbers and snippet would be those of the
        // re-serialized table, not of the file.
        let text = toml::to_string(&table).context("cannot re-serialize the config table")?;
        if let Err(e) = toml::from_str::<T>(&text) {
            bail!(
                "--set {spec} (config file {}): {}",
                file.display(),
                e.message().trim_end()
            );
        }
    }
    let value = deserialize_typed::<T>(&table)?;
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into());
    Ok((value, name))
}

/// The keys whose values are paths. A relative path in the file resolves against the file's
/// directory; one given with `--set` on the command line resolves against the current directory,
/// as a path typed in a shell does.
const PATH_KEYS: [&str; 7] = [
    "data.train_glob",
    "data.expert",
    "data.val_glob",
    "tokenizer.path",
    "train.out_dir",
    "eval.judge_checkpoint",
    "model.init_from",
];

/// `value` made absolute against the current directory when `key` is a path key and the value a
/// relative path (`model.init_from` keeps its `hf:` prefix).
fn absolute_override(key: &str, value: toml::Value) -> Result<toml::Value> {
    let toml::Value::String(text) = &value else {
        return Ok(value);
    };
    if !PATH_KEYS.contains(&key) {
        return Ok(value);
    }
    let (prefix, path) = match text.strip_prefix("hf:") {
        Some(rest) if key == "model.init_from" => ("hf:", rest),
        _ if key == "model.init_from" => return Ok(value),
        _ => ("", text.as_str()),
    };
    if path.is_empty() {
        return Ok(value); // validation names the empty value
    }
    let cwd = absolute(Path::new("."))?;
    Ok(toml::Value::String(format!(
        "{prefix}{}",
        resolve_against(&cwd, path)
    )))
}

fn deserialize_typed<T: DeserializeOwned>(table: &toml::Table) -> Result<T> {
    let text = toml::to_string(table).context("cannot re-serialize the config table")?;
    toml::from_str(&text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))
}

/// `value` made absolute against the directory of the config file `file`.
pub fn resolve_against_file(file: &Path, value: &str) -> Result<String> {
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(resolve_against(&absolute(&base)?, value))
}

/// The dotted keys whose values differ between two TOML values (a key missing on one side
/// counts as differing).
pub fn differing_keys(a: &toml::Value, b: &toml::Value) -> Vec<String> {
    let mut diffs = Vec::new();
    diff_values("", a, b, &mut diffs);
    diffs
}

/// What a resume may change, for error messages: "a, b, c.* and d.*".
pub fn resumable_text(keys: &[&str], tables: &[&str]) -> String {
    let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    all.extend(tables.iter().map(|t| format!("{t}.*")));
    match all.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The dotted keys whose values differ between two configs, less those a resume may change:
/// the keys in `may_change` and every key under the tables in `may_change_tables`.
pub fn incompatible_keys<T: serde::Serialize>(
    a: &T,
    b: &T,
    may_change: &[&str],
    may_change_tables: &[&str],
) -> Result<Vec<String>> {
    let a = toml::Value::try_from(a).context("serialize config")?;
    let b = toml::Value::try_from(b).context("serialize config")?;
    let mut diffs = differing_keys(&a, &b);
    diffs.retain(|k| {
        !may_change.contains(&k.as_str())
            && !may_change_tables
                .iter()
                .any(|t| k.strip_prefix(t).is_some_and(|rest| rest.starts_with('.')))
    });
    Ok(diffs)
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(normalize(&cwd.join(path)))
}

/// Removes `.` and `..` components without touching the filesystem (globs need not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn resolve_against(base: &Path, value: &str) -> String {
    if Path::new(value).is_absolute() {
        value.to_string()
    } else {
        normalize(&base.join(value)).to_string_lossy().into_owned()
    }
}

impl Config {
    /// Makes every path absolute against `base`, the config file's directory.
    fn resolve_paths(&mut self, base: &Path) {
        self.data.train_glob = resolve_against(base, &self.data.train_glob);
        if let Some(v) = &self.data.val_glob {
            self.data.val_glob = Some(resolve_against(base, v));
        }
        if let Some(p) = &self.tokenizer.path {
            self.tokenizer.path = Some(resolve_against(base, p));
        }
        self.train.out_dir = resolve_against(base, &self.train.out_dir);
        if let Some(j) = &self.eval.judge_checkpoint {
            self.eval.judge_checkpoint = Some(resolve_against(base, j));
        }
        if let Some(dir) = self
            .model
            .init_from
            .as_deref()
            .and_then(crate::interop::init_from::parse_init_from)
        {
            let dir = resolve_against(base, &dir.to_string_lossy());
            // A model fine-tuned from DIR tokenizes with DIR's tokenizer unless told otherwise;
            // setting it here makes the run's config.toml say so.
            if self.tokenizer.path.is_none() {
                let tok = crate::interop::init_from::default_tokenizer_path(Path::new(&dir));
                self.tokenizer.path = Some(tok.to_string_lossy().into_owned());
            }
            self.model.init_from = Some(format!("{}{dir}", crate::interop::init_from::HF_PREFIX));
        }
    }

    /// Parses a config written by lmtrain into a run directory (paths already absolute).
    pub fn from_run_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot serialize the config")
    }

    /// Keys whose values differ, excluding those a resume may change: `train.max_steps`,
    /// `train.log_every`, `model.fused_ops`, `model.bf16_matmuls`, `model.flash_attention` and
    /// `model.matmul`
    /// (how the same model is computed),
    /// `device` (one device or a data-parallel list: the checkpoint keeps the global data
    /// cursor), `checkpoint.*` and `eval.*`.
    pub fn incompatible_keys(&self, other: &Config) -> Result<Vec<String>> {
        incompatible_keys(self, other, &Self::RESUMABLE.0, &Self::RESUMABLE.1)
    }

    /// Keys and tables a resume may change (the rest must equal the run's).
    pub const RESUMABLE: ([&'static str; 11], [&'static str; 2]) = (
        [
            "train.max_steps",
            "train.log_every",
            "train.on_nonfinite",
            "train.rollback_lr_factor",
            "train.max_rollbacks",
            "train.step_timeout_s",
            "model.fused_ops",
            "model.bf16_matmuls",
            "model.flash_attention",
            "model.matmul",
            "device",
        ],
        ["checkpoint", "eval"],
    );
}

fn diff_values(prefix: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(ta), toml::Value::Table(tb)) => {
            let mut keys: Vec<&String> = ta.keys().chain(tb.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (ta.get(k), tb.get(k)) {
                    (Some(x), Some(y)) => diff_values(&path, x, y, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// Sets `a.b.c = value`, creating tables as needed. Whether the key exists is checked by the
/// deserialization that follows, which lists the allowed keys.
fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts
        .split_last()
        .ok_or_else(|| anyhow!("empty key in --set"))?;
    let mut cur = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => bail!(
                "`{}` is a value, not a table, so `{key}` cannot be set",
                parts[..=i].join(".")
            ),
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values_parse_as_toml_or_string() {
        assert_eq!(
            parse_override("optim.lr=3e-4").unwrap().1,
            toml::Value::Float(3e-4)
        );
        assert_eq!(
            parse_override("train.batch_size=8").unwrap().1,
            toml::Value::Integer(8)
        );
        assert_eq!(
            parse_override("device=cuda:1").unwrap().1,
            toml::Value::String("cuda:1".into())
        );
        assert_eq!(
            parse_override("ema.enabled=false").unwrap().1,
            toml::Value::Boolean(false)
        );
        assert!(parse_override("novalue").is_err());
    }

    #[test]
    fn command_line_paths_resolve_against_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        let s = |v: &str| toml::Value::String(v.into());
        let out = absolute_override("train.out_dir", s("runs/x")).unwrap();
        assert_eq!(out, s(&cwd.join("runs/x").to_string_lossy()));
        let hf = absolute_override("model.init_from", s("hf:exports/m")).unwrap();
        assert_eq!(
            hf,
            s(&format!("hf:{}", cwd.join("exports/m").to_string_lossy()))
        );
        // Absolute paths, non-path keys and an empty value are left as given.
        assert_eq!(
            absolute_override("train.out_dir", s("/abs")).unwrap(),
            s("/abs")
        );
        assert_eq!(absolute_override("device", s("cpu")).unwrap(), s("cpu"));
        assert_eq!(
            absolute_override("model.init_from", s("hf:")).unwrap(),
            s("hf:")
        );
    }

    /// How the model is computed may change on resume; what it is may not. And the three keys
    /// reach the model's compute switches.
    #[test]
    fn compute_keys_may_change_on_resume_and_set_the_switches() {
        let base =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases/base.toml");
        let saved = load_config(&base, &[]).unwrap().config;
        let changed = load_config(
            &base,
            &[
                "model.fused_ops=true".into(),
                "model.bf16_matmuls=true".into(),
                "model.flash_attention=true".into(),
                "model.matmul=\"cublaslt\"".into(),
            ],
        )
        .unwrap()
        .config;
        assert!(changed.incompatible_keys(&saved).unwrap().is_empty());
        let wider = load_config(&base, &["model.n_embd=64".into()])
            .unwrap()
            .config;
        assert_eq!(
            wider.incompatible_keys(&saved).unwrap(),
            vec!["model.n_embd"]
        );

        assert_eq!(saved.model.compute(), crate::model::Compute::default());
        let c = changed.model.compute();
        assert!(c.bf16_matmuls && c.flash_attention && c.fused_attention && c.gather_embedding);
        assert!(
            c.cublaslt
                && changed
                    .model
                    .describe_compute()
                    .contains("model.matmul = \"cublaslt\"")
        );
        assert!(changed.model.describe_compute().contains("bf16"));
    }
}
