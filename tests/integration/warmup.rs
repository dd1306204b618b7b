//! `lmtrain warmup` runs a config's throw-away warm-up in the kernel cache directory, leaves no
//! run behind (neither there nor in the config's out_dir) and says where the cache is.

use super::common::*;

#[test]
fn warmup_runs_the_config_briefly_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 300);
    let config = tiny_config(tmp.path(), &data, "");
    let cache = tmp.path().join("kernels");
    let out = run_ok(
        lmtrain()
            .args(["warmup", "--config"])
            .arg(&config)
            .args(["--steps", "3"])
            .args([
                "--set",
                "eval.generate_every=50",
                "--set",
                "eval.num_prompts=3",
            ])
            .args([
                "--set",
                "eval.prompt_tokens=4",
                "--set",
                "eval.generate_tokens=40",
            ])
            .env("LMTRAIN_KERNEL_CACHE", &cache),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warmup done in"), "{stderr}");
    assert!(stderr.contains(&cache.display().to_string()), "{stderr}");
    // Three steps, then the validation and the one-prompt generation at the last of them.
    assert!(stderr.contains("step 3/3"), "{stderr}");
    assert!(stderr.contains("rep4_greedy_raw"), "{stderr}");
    assert!(cache.is_dir());
    assert!(
        !cache.join("warmup-scratch").exists(),
        "scratch run left behind"
    );
    assert!(
        !tmp.path().join("runs").exists(),
        "warmup wrote into the config's out_dir"
    );
}
