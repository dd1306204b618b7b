//! `lmtrain data bench`: the data pipeline's throughput alone, without a model.
//!
//! Two figures: the tokenizer on its own (documents already in memory, encoded in parallel), and
//! the whole training stream (parquet row groups → documents → tokens → shuffled windows), as
//! the trainer consumes it.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::config::Config;
use crate::data::shards::read_unit;
use crate::data::windows::TrainStream;
use crate::lm::prepare_run_data;

pub struct DataBench {
    pub threads: usize,
    pub docs: usize,
    pub tokenizer_tokens: usize,
    pub tokenizer_secs: f64,
    pub stream_tokens: usize,
    pub stream_secs: f64,
}

/// Measures both figures; `work_dir` holds the tokenizer when the config names none.
pub fn bench_data(config: &Config, work_dir: &Path, windows: usize) -> Result<DataBench> {
    let data = prepare_run_data(config, work_dir, None)?;
    let unit = &data.train.units[0];
    let docs = read_unit(unit, &data.train.text_column, data.train.prepend_title)?;
    // One warm-up pass so that page cache and thread pool start-up are not measured.
    crate::data::tokenizer::measure_throughput(&data.tokenizer, &docs)?;
    let (tokenizer_tokens, elapsed) =
        crate::data::tokenizer::measure_throughput(&data.tokenizer, &docs)?;

    let window = config.model.block_size + 1;
    let mut stream = TrainStream::start(
        data.train.clone(),
        data.tokenizer.clone(),
        window,
        config.train.seed,
        Default::default(),
    )?;
    let start = Instant::now();
    for _ in 0..windows {
        stream.next_window()?;
    }
    Ok(DataBench {
        threads: rayon::current_num_threads(),
        docs: docs.len(),
        tokenizer_tokens,
        tokenizer_secs: elapsed.as_secs_f64(),
        stream_tokens: windows * window,
        stream_secs: start.elapsed().as_secs_f64(),
    })
}
