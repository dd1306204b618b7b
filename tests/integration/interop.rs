//! Hugging Face interop: import against transformers' own logits and encodings (fixtures written
//! by `scripts/check_hf_export.py`, so these tests need no Python), export → import round trips,
//! `model.init_from`, `lmtrain inspect`, and clear errors for foreign and old files.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use lmtrain::data::tokenizer::TextTokenizer;
use lmtrain::interop::host_model::{HostModel, ModelSource};
use lmtrain::interop::logits_report::sequence_logits;
use lmtrain::model::{Activation, HostParams};
use lmtrain::sample::load_source;
use lmtrain::train::checkpoint::{self, CheckpointMeta, CheckpointState};
use safetensors::SafeTensors;

use super::common::*;

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// transformers' batch and logits `[batch][time][vocab]` from `expected_logits.safetensors`.
fn expected(dir: &Path) -> (Vec<Vec<u32>>, Vec<f32>, usize) {
    let bytes = std::fs::read(dir.join("expected_logits.safetensors")).expect("fixture logits");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let ids = st.tensor("input_ids").unwrap();
    let [b, t] = [ids.shape()[0], ids.shape()[1]];
    let flat: Vec<u32> = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let logits = st.tensor("logits").unwrap();
    let v = logits.shape()[2];
    let values = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (
        flat.chunks(t).map(<[u32]>::to_vec).collect::<Vec<_>>()[..b].to_vec(),
        values,
        v,
    )
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    lmtrain::bench::check_fixture::rel_err(a, b)
}

/// lmtrain's logits for each row of the fixture batch, flattened like transformers'.
fn our_logits(dir: &Path, force: Option<Activation>) -> Vec<f32> {
    let mut model = load_source(&ModelSource::HfDir(dir.to_path_buf()), Device::flex()).unwrap();
    if let Some(a) = force {
        model.gpt = lmtrain::model::Gpt::new(lmtrain::model::GptShape {
            activation: a,
            ..model.gpt.shape.clone()
        });
    }
    let (batch, _, _) = expected(dir);
    batch
        .iter()
        .flat_map(|row| sequence_logits(&model, row).unwrap().concat())
        .collect()
}

fn check_against_transformers(name: &str, activation: Activation) {
    let dir = fixture(name);
    let host = HostModel::from_hf_dir(&dir).unwrap();
    assert_eq!(host.gpt.shape.activation, activation);
    let (batch, want, v) = expected(&dir);
    assert_eq!(v, host.gpt.shape.vocab_size);
    let got = our_logits(&dir, None);
    let e = rel_err(&got, &want);
    println!(
        "{name}: logits of {} x {} tokens vs transformers: max rel err {e:.3e} (tolerance 1e-4)",
        batch.len(),
        batch[0].len()
    );
    assert!(e <= 1e-4, "{name}: relative error {e:.3e}");
}

#[test]
fn an_exported_tiny_model_computes_transformers_logits() {
    check_against_transformers("hf_tiny", Activation::Exact);
}

#[test]
fn a_gpt2_style_file_with_gelu_new_computes_transformers_logits() {
    // No `transformer.` prefix, attn.bias buffers, an lm_head copy, float16 weights.
    check_against_transformers("hf_gpt2_style", Activation::Tanh);
    // The fixture can tell the activations apart: the exact GELU misses transformers' logits.
    let dir = fixture("hf_gpt2_style");
    let e = rel_err(
        &our_logits(&dir, Some(Activation::Exact)),
        &expected(&dir).1,
    );
    println!("hf_gpt2_style with the wrong (exact) GELU: max rel err {e:.3e}");
    assert!(e > 1e-3, "{e:.3e}");
}

#[test]
fn the_tokenizer_encodes_and_decodes_like_autotokenizer() {
    let dir = fixture("hf_tiny");
    let tok = TextTokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(dir.join("expected_tokens.json")).unwrap();
    let cases: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 5);
    for (s, ids) in cases {
        let want: Vec<u32> = serde_json::from_value(ids).unwrap();
        assert_eq!(tok.encode(&s).unwrap(), want, "encoding {s:?}");
        assert_eq!(tok.decode(&want).unwrap(), s, "decoding {s:?}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["clean_up_tokenization_spaces"], false);
    assert_eq!(cfg["eos_token"], "<|endoftext|>");
}

fn bits(p: &HostParams) -> Vec<u32> {
    p.iter().flatten().map(|x| x.to_bits()).collect()
}

fn json_stdout(cmd: &mut std::process::Command) -> serde_json::Value {
    serde_json::from_slice(&run_ok(cmd).stdout).expect("JSON on stdout")
}

#[test]
fn export_then_import_is_bit_identical_and_samples_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 300);
    let cfg = tiny_config(tmp.path(), &data, "");
    run_ok(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        "train.run_name=r",
        "--set",
        "train.max_steps=6",
    ]));
    let run = tmp.path().join("runs/r");
    let ckpt = checkpoint::resolve(&run).unwrap();
    let (meta, state) = checkpoint::load(&ckpt, None).unwrap();
    for ema in [false, true] {
        let out = tmp.path().join(if ema { "export-ema" } else { "export" });
        let mut cmd = lmtrain();
        cmd.args(["export", "--checkpoint"])
            .arg(&run)
            .arg("--out")
            .arg(&out);
        if ema {
            cmd.arg("--ema");
        }
        run_ok(&mut cmd);
        let imported = HostModel::from_hf_dir(&out).unwrap();
        // checkpoint::load(None) orders tensors by name; put the import in the same order.
        let mut named: Vec<(String, Vec<f32>)> = imported
            .gpt
            .specs()
            .iter()
            .map(|s| s.name.clone())
            .zip(imported.params)
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let want = if ema {
            state.ema.as_ref().unwrap()
        } else {
            &state.params
        };
        let got: HostParams = named.into_iter().map(|(_, v)| v).collect();
        assert_eq!(
            bits(&got),
            bits(want),
            "export → import changed weights (ema={ema})"
        );
        let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
        assert!(readme.contains("step: 6"), "{readme}");
        assert!(readme.contains(if ema { "EMA" } else { "raw" }), "{readme}");
    }
    let out = tmp.path().join("export");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    for (k, v) in [
        ("activation_function", serde_json::json!("gelu")),
        ("n_positions", serde_json::json!(32)),
        ("n_ctx", serde_json::json!(32)),
        ("vocab_size", serde_json::json!(320)),
        ("eos_token_id", serde_json::json!(0)),
        ("bos_token_id", serde_json::json!(0)),
        ("tie_word_embeddings", serde_json::json!(true)),
    ] {
        assert_eq!(config[k], v, "config.json {k}");
    }
    assert_eq!(
        std::fs::read(out.join("tokenizer.json")).unwrap(),
        std::fs::read(run.join("tokenizer.json")).unwrap(),
        "the run's tokenizer.json is copied byte for byte"
    );
    let st_bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&st_bytes).unwrap();
    assert!(
        st.tensor("lm_head.weight").is_err(),
        "the tied head is not stored"
    );
    assert!(st.tensor("transformer.h.1.mlp.c_fc.weight").is_ok());

    // The CLI on both sources: same greedy text, same logits bit for bit.
    let sample = |src: &[&str], path: &Path| {
        let out = run_ok(lmtrain().arg("sample").args(src).arg(path).args([
            "--prompt",
            "Once upon a time",
            "--tokens",
            "15",
            "--temperature",
            "0",
            "--device",
            "cpu",
        ]));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(sample(&["--hf"], &out), sample(&["--checkpoint"], &run));
    let logits = |src: &str, path: &Path| {
        json_stdout(lmtrain().args(["logits", src]).arg(path).args([
            "--tokens",
            "0,5,17,300,42",
            "--greedy",
            "5",
        ]))
    };
    let (a, b) = (logits("--hf", &out), logits("--checkpoint", &run));
    assert_eq!(a["logits"], b["logits"]);
    assert_eq!(a["greedy"], b["greedy"]);
    assert_eq!(a["logits"].as_array().unwrap().len(), 5);
    assert_eq!(a["logits"][0].as_array().unwrap().len(), 320);

    let err = run_err(
        lmtrain()
            .args(["sample", "--prompt", "x", "--ema", "--hf"])
            .arg(&out),
    );
    assert!(err.contains("--ema") && err.contains("--hf"), "{err}");
    let err = run_err(
        lmtrain()
            .args(["sample", "--prompt", "x", "--hf"])
            .arg(&out)
            .arg("--checkpoint")
            .arg(&run),
    );
    assert!(
        err.contains("--checkpoint") && err.contains("--hf"),
        "{err}"
    );

    // inspect: a run directory means its latest checkpoint.
    let report = String::from_utf8(run_ok(lmtrain().arg("inspect").arg(&run)).stdout).unwrap();
    for needle in [
        "step: 6".to_string(),
        format!("tokens seen: {}", meta.tokens),
        format!("val loss (raw): {:.4}", meta.val_loss_raw.unwrap()),
        format!("val loss (EMA): {:.4}", meta.val_loss_ema.unwrap()),
        "EMA weights: present".to_string(),
        "n_layer = 2".to_string(),
        "2 layers".to_string(),
    ] {
        assert!(
            report.contains(&needle),
            "inspect lacks {needle:?}:\n{report}"
        );
    }
}

#[test]
fn init_from_starts_a_run_from_hugging_face_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 300);
    let cfg = tiny_config(tmp.path(), &data, "");
    let hf = fixture("hf_tiny");
    let init = format!("model.init_from=hf:{}", hf.display());
    // A learning rate of 1e-9 keeps the weights where they started, to within ~1e-8.
    run_ok(lmtrain().arg("--config").arg(&cfg).args([
        "--set",
        init.as_str(),
        "--set",
        "model.block_size=16",
        "--set",
        "optim.lr=1e-9",
        "--set",
        "schedule.min_lr=0",
        "--set",
        "train.max_steps=2",
        "--set",
        "train.run_name=ft",
    ]));
    let run = tmp.path().join("runs/ft");
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("initial weights: Hugging Face GPT-2"), "{log}");
    assert!(log.contains("cut from 64 to 16 rows"), "{log}");
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        saved.contains(&hf.join("tokenizer.json").display().to_string()),
        "{saved}"
    );

    let source = HostModel::from_hf_dir(&hf).unwrap();
    let ckpt = checkpoint::resolve(&run).unwrap();
    let (_, state) = checkpoint::load(&ckpt, None).unwrap();
    let names: Vec<String> = {
        let mut n: Vec<String> = source.gpt.specs().iter().map(|s| s.name.clone()).collect();
        n.sort();
        n
    };
    for (name, got) in names.iter().zip(&state.params) {
        let i = source
            .gpt
            .specs()
            .iter()
            .position(|s| &s.name == name)
            .unwrap();
        let want = &source.params[i][..got.len()];
        let diff = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff < 1e-6,
            "{name} moved by {diff} from the imported weights"
        );
    }

    for (set, needle) in [
        ("model.n_layer=3", "model.n_layer = 3 but config.json has 2"),
        (
            "model.activation=gelu_new",
            "activation_function is \"gelu\"",
        ),
        (
            "model.block_size=128",
            "exceeds config.json's n_positions = 64",
        ),
    ] {
        let err = run_err(lmtrain().arg("--config").arg(&cfg).args([
            "--set",
            init.as_str(),
            "--set",
            set,
        ]));
        assert!(err.contains(needle), "{set}: {err}");
    }
    let err = run_err(
        lmtrain()
            .arg("--config")
            .arg(&cfg)
            .args(["--set", "model.init_from=gpt2"]),
    );
    assert!(err.contains("hf:DIR"), "{err}");
}

/// A checkpoint whose metadata claims `format` and `version`.
fn fake_checkpoint(dir: &Path, format: &str, version: u32) -> PathBuf {
    let specs = vec![lmtrain::model::ParamSpec::new("w", &[2])];
    let state = CheckpointState {
        params: vec![vec![1.0, 2.0]],
        ema: None,
        adam_m: vec![vec![0.0; 2]],
        adam_v: vec![vec![0.0; 2]],
        buffers: Vec::new(),
    };
    let meta = CheckpointMeta {
        format: format.into(),
        version,
        step: 3,
        tokens: 10,
        cursor: serde_json::Value::Null,
        config: String::new(),
        tokenizer_hash: String::new(),
        val_loss_raw: None,
        val_loss_ema: None,
        has_ema: false,
        train_shards: Vec::new(),
        checksum: None,
        rollbacks: 0,
        task_info: serde_json::Value::Null,
    };
    checkpoint::save(dir, &specs, &state, &meta).unwrap()
}

#[test]
fn foreign_old_and_damaged_files_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = fixture("hf_tiny");
    let cases: Vec<(PathBuf, &str)> = vec![
        (hf.join("model.safetensors"), "not an lmtrain checkpoint"),
        (hf.clone(), "Hugging Face model directory"),
        (
            fake_checkpoint(&tmp.path().join("old"), checkpoint::FORMAT, 99),
            "checkpoint version 99",
        ),
        (
            fake_checkpoint(&tmp.path().join("other"), "something-else", 1),
            "\"something-else\"",
        ),
        (hf.join("config.json"), "not a readable safetensors file"),
        (tmp.path().join("missing"), "does not exist"),
    ];
    for (path, needle) in &cases {
        let err = run_err(lmtrain().arg("inspect").arg(path));
        assert!(err.contains(needle), "inspect {}: {err}", path.display());
        assert!(!err.contains("panicked"), "{err}");
    }
    // Sampling refuses the old checkpoint with the same message.
    let err = run_err(
        lmtrain()
            .args(["sample", "--prompt", "x", "--device", "cpu", "--checkpoint"])
            .arg(&cases[2].0),
    );
    assert!(err.contains("checkpoint version 99"), "{err}");
    // A version-1 file (before checksums and shard lists) still inspects, with a warning.
    let v1 = fake_checkpoint(&tmp.path().join("v1"), checkpoint::FORMAT, 1);
    let out = run_ok(lmtrain().arg("inspect").arg(&v1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 1") && err.contains("warning"),
        "{err}"
    );
    // So does a version-2 file (before task buffers), saying what it lacks.
    let v2 = fake_checkpoint(&tmp.path().join("v2"), checkpoint::FORMAT, 2);
    let out = run_ok(lmtrain().arg("inspect").arg(&v2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 2") && err.contains("warning") && err.contains("task buffers"),
        "{err}"
    );
    // A file of the current version inspects fine, without a warning.
    let ok = fake_checkpoint(
        &tmp.path().join("good"),
        checkpoint::FORMAT,
        checkpoint::VERSION,
    );
    let out = run_ok(lmtrain().arg("inspect").arg(&ok));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("step: 3") && report.contains("EMA weights: absent"),
        "{report}"
    );
}

/// A flipped byte in tensor data or a truncated file is detected by the checksum, named, and a
/// run directory falls back to the newest intact checkpoint, saying so.
#[test]
fn damaged_checkpoints_are_detected_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/checkpoints");
    let a = fake_checkpoint(&dir, checkpoint::FORMAT, checkpoint::VERSION);
    // A second, newer checkpoint: same content at a later step.
    let newer = dir.join(checkpoint::file_name(4));
    std::fs::copy(&a, &newer).unwrap();
    let mut bytes = std::fs::read(&newer).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    std::fs::write(&newer, &bytes).unwrap();
    let err = run_err(lmtrain().arg("inspect").arg(&newer));
    assert!(
        err.contains("checksum") && err.contains("ckpt-000000004"),
        "{err}"
    );
    let out = run_ok(lmtrain().arg("inspect").arg(tmp.path().join("run")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping damaged checkpoint") && stderr.contains("ckpt-000000004"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("step: 3"));
    // Truncated.
    std::fs::write(&newer, &bytes[..bytes.len() / 2]).unwrap();
    let out = run_ok(lmtrain().arg("inspect").arg(tmp.path().join("run")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipping damaged checkpoint"));
}
