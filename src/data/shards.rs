//! Streaming Hugging Face parquet shards with bounded memory.
//!
//! A shard can be hundreds of megabytes, so it is never read whole: [`list_units`] reads only the
//! footers (a few KB each) and [`read_unit`] decodes one row group, and of it only the columns
//! that are needed. Callers schedule reading by [`RowGroupUnit`], so peak memory is one row group
//! of text (per reader thread), whatever the size of the data set.
//!
//! Layouts handled: TinyStories (`data/train-*.parquet`, one column `text`) and
//! wikimedia/wikipedia (`20231101.en/train-*.parquet`, columns `id`, `url`, `title`, `text`).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use sha2::{Digest, Sha256};

/// Column holding article titles in wikimedia/wikipedia shards.
const TITLE_COLUMN: &str = "title";

/// Rows per decoded arrow batch. Only bounds the size of one intermediate batch: the whole row
/// group ends up in the returned `Vec<String>` anyway.
const BATCH_ROWS: usize = 4096;

/// Expands a glob. A relative pattern is resolved against `base_dir` (the config file's
/// directory), so a config means the same files whatever the working directory.
/// Only regular files are returned, sorted by path. An empty result is an error that names the
/// pattern (as given and as resolved) and suggests a fix.
pub fn resolve_glob(pattern: &str, base_dir: &Path) -> Result<Vec<PathBuf>> {
    // `resolved` is what error messages show; `glob_pattern` is what is expanded. They differ
    // in that the base directory is escaped: a config living under e.g. `runs[1]/` must not
    // have its brackets read as a character class.
    let (resolved, glob_pattern) = if Path::new(pattern).is_absolute() {
        (pattern.to_string(), pattern.to_string())
    } else {
        let base = glob::Pattern::escape(&base_dir.to_string_lossy());
        (
            base_dir.join(pattern).to_string_lossy().into_owned(),
            Path::new(&base)
                .join(pattern)
                .to_string_lossy()
                .into_owned(),
        )
    };
    let entries = glob::glob(&glob_pattern)
        .with_context(|| format!("invalid glob pattern `{pattern}` (resolved to `{resolved}`)"))?;
    let mut files = Vec::new();
    for entry in entries {
        // An unreadable directory on the way is reported rather than silently shrinking the
        // data set.
        let path = entry
            .with_context(|| format!("expanding glob `{pattern}` (resolved to `{resolved}`)"))?;
        if path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        bail!(
            "no files match the data glob `{pattern}` (resolved to `{resolved}`); \
             check data.train_glob / data.val_glob (a relative pattern in a config file is \
             relative to that file, one given with --set to the current directory), or run \
             scripts/setup.sh, which writes the synthetic corpus and collects the BC datasets"
        );
    }
    files.sort();
    Ok(files)
}

/// One row group of one shard: the unit of reading (and of shuffling/sharding work).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowGroupUnit {
    pub shard: PathBuf,
    pub row_group: usize,
    pub rows: usize,
}

/// Opens a shard and parses its footer only (no data pages are read).
fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path)
        .with_context(|| format!("cannot open parquet shard {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| {
        format!(
            "{} is not a readable parquet file (corrupt or truncated footer?); \
             delete it and re-run scripts/setup.sh",
            path.display()
        )
    })
}

fn is_text_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Finds a top-level string column by name. The error lists the columns that do exist, since
/// the usual cause is a config naming the wrong column for the data set.
fn find_text_column(schema: &Schema, name: &str, path: &Path) -> Result<usize> {
    let Some((idx, field)) = schema.column_with_name(name) else {
        let have: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} ({})", f.name(), f.data_type()))
            .collect();
        bail!(
            "{}: no column `{name}`; the shard has columns: {}",
            path.display(),
            have.join(", ")
        );
    };
    if !is_text_type(field.data_type()) {
        bail!(
            "{}: column `{name}` has type {}, expected a string column (Utf8, LargeUtf8 or Utf8View)",
            path.display(),
            field.data_type()
        );
    }
    Ok(idx)
}

/// Reads only parquet footers and lists every row group of every shard, in shard order.
/// Errors name the file for: missing file, not a parquet file / corrupt footer, a missing
/// `text_column` (listing the columns that exist), and a missing `title` column when
/// `prepend_title`. Checking the schema here makes a misconfigured run fail at start-up, not
/// hours later when a reader reaches the bad shard.
pub fn list_units(
    shards: &[PathBuf],
    text_column: &str,
    prepend_title: bool,
) -> Result<Vec<RowGroupUnit>> {
    let mut units = Vec::new();
    for shard in shards {
        let builder = open_builder(shard)?;
        find_text_column(builder.schema(), text_column, shard)?;
        if prepend_title {
            find_text_column(builder.schema(), TITLE_COLUMN, shard)
                .context("data.prepend_title needs a `title` column")?;
        }
        for (row_group, rg) in builder.metadata().row_groups().iter().enumerate() {
            let rows = usize::try_from(rg.num_rows()).map_err(|_| {
                anyhow!(
                    "{}: row group {row_group} has a negative row count ({})",
                    shard.display(),
                    rg.num_rows()
                )
            })?;
            units.push(RowGroupUnit {
                shard: shard.clone(),
                row_group,
                rows,
            });
        }
    }
    Ok(units)
}

/// What a shard holds in its text column, from its footer and a sample of its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSurvey {
    pub rows: usize,
    /// Rows read for the sample (the first row groups, until one holds text, or all).
    pub sampled: usize,
    pub null: usize,
    pub empty: usize,
}

impl ShardSurvey {
    /// The log line for a shard.
    pub fn describe(&self, path: &Path) -> String {
        format!(
            "shard {}: {} rows; of {} sampled, {} null and {} empty",
            path.display(),
            self.rows,
            self.sampled,
            self.null,
            self.empty
        )
    }
}

/// Checks that a shard has text before any training: reads its row groups' `text_column` in
/// order until one holds a non-empty document (usually the first), counting null and empty rows.
/// A shard whose every row is null or empty is an error naming the file, the column and the
/// counts.
pub fn survey_shard(path: &Path, text_column: &str) -> Result<ShardSurvey> {
    let builder = open_builder(path)?;
    let idx = find_text_column(builder.schema(), text_column, path)?;
    let rows: usize = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows().max(0) as usize)
        .sum();
    let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()
        .with_context(|| format!("cannot set up a reader for {}", path.display()))?;
    let mut survey = ShardSurvey {
        rows,
        sampled: 0,
        null: 0,
        empty: 0,
    };
    for batch in reader {
        let batch =
            batch.with_context(|| format!("cannot decode {} (corrupt page?)", path.display()))?;
        let col = batch.column_by_name(text_column).ok_or_else(|| {
            anyhow!(
                "{}: decoded batch lacks column `{text_column}`",
                path.display()
            )
        })?;
        let mut has_text = false;
        for i in 0..batch.num_rows() {
            match string_at(col, i) {
                None => survey.null += 1,
                Some(t) if t.trim().is_empty() => survey.empty += 1,
                Some(_) => has_text = true,
            }
        }
        survey.sampled += batch.num_rows();
        if has_text {
            return Ok(survey);
        }
    }
    bail!(
        "{}: column `{text_column}` holds no text: {} rows, {} null and {} empty or whitespace. Remove the shard from the glob, or point data.text_column at the column with the documents",
        path.display(),
        rows,
        survey.null,
        survey.empty
    )
}

/// Borrows row `i` of a string column of any of the three arrow string layouts; `None` if null.
fn string_at(array: &ArrayRef, i: usize) -> Option<&str> {
    if array.is_null(i) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().value(i),
        DataType::LargeUtf8 => array.as_string::<i64>().value(i),
        DataType::Utf8View => array.as_string_view().value(i),
        // Checked by `find_text_column` before any batch is decoded.
        other => unreachable!("non-string column type {other} passed the schema check"),
    })
}

/// Reads one row group's documents, decoding only the needed columns (via a [`ProjectionMask`]).
/// With `prepend_title`, each doc is `"{title}\n\n{text}"` (just the text if the title is null).
/// Null texts are skipped. Errors name the file and row group.
pub fn read_unit(
    unit: &RowGroupUnit,
    text_column: &str,
    prepend_title: bool,
) -> Result<Vec<String>> {
    let path = &unit.shard;
    let where_ = || format!("{} row group {}", path.display(), unit.row_group);
    let builder = open_builder(path)?;
    let num_groups = builder.metadata().num_row_groups();
    if unit.row_group >= num_groups {
        bail!(
            "{}: the shard has only {num_groups} row groups (was it replaced since the units were listed?)",
            where_()
        );
    }
    let text_idx = find_text_column(builder.schema(), text_column, path)?;
    let mut roots = vec![text_idx];
    if prepend_title {
        roots.push(find_text_column(builder.schema(), TITLE_COLUMN, path)?);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_row_groups(vec![unit.row_group])
        .with_batch_size(BATCH_ROWS)
        .build()
        .with_context(|| format!("cannot set up a reader for {}", where_()))?;

    let mut docs = Vec::with_capacity(unit.rows);
    let mut rows_seen = 0usize;
    for batch in reader {
        let batch = batch.with_context(|| format!("cannot decode {} (corrupt page?)", where_()))?;
        rows_seen += batch.num_rows();
        // The projected batch keeps the original column names, so look them up by name rather
        // than trusting positions.
        let text = batch
            .column_by_name(text_column)
            .ok_or_else(|| anyhow!("{}: decoded batch lacks column `{text_column}`", where_()))?;
        let title = if prepend_title {
            Some(
                batch
                    .column_by_name(TITLE_COLUMN)
                    .ok_or_else(|| anyhow!("{}: decoded batch lacks column `title`", where_()))?,
            )
        } else {
            None
        };
        for i in 0..batch.num_rows() {
            let Some(t) = string_at(text, i) else {
                continue;
            };
            match title.and_then(|col| string_at(col, i)) {
                Some(title) => docs.push(format!("{title}\n\n{t}")),
                None => docs.push(t.to_string()),
            }
        }
    }
    // A mismatch means the file changed between listing and reading; the unit list (and any
    // position computed from it) would then be wrong, so stop rather than train on a mix.
    if rows_seen != unit.rows {
        bail!(
            "{}: read {rows_seen} rows but the unit lists {} (was the shard replaced?)",
            where_(),
            unit.rows
        );
    }
    Ok(docs)
}

/// A cheap identity of a set of shards for cache/tokenizer invalidation: sha256 over
/// (file name, byte size) of each shard, in order, as a hex string. File names rather than full
/// paths, so that moving the data directory does not invalidate anything. Each name is
/// length-prefixed so that different lists can never serialise to the same bytes.
pub fn shards_fingerprint(shards: &[PathBuf]) -> Result<String> {
    let mut hasher = Sha256::new();
    for shard in shards {
        let name = shard
            .file_name()
            .ok_or_else(|| anyhow!("shard path {} has no file name", shard.display()))?
            .to_string_lossy();
        let size = std::fs::metadata(shard)
            .with_context(|| format!("cannot stat parquet shard {}", shard.display()))?
            .len();
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(size.to_le_bytes());
    }
    Ok(to_hex(&hasher.finalize()))
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{LargeStringArray, RecordBatch, StringArray, StringViewArray};
    use arrow_schema::Field;
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    use std::sync::Arc;

    /// Writes `groups` as separate row groups (one flush each) of a single text column.
    fn write_text_shard(path: &Path, groups: &[Vec<Option<&str>>], dt: DataType) {
        let schema = Arc::new(Schema::new(vec![Field::new("text", dt.clone(), true)]));
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
        for g in groups {
            let col: ArrayRef = match dt {
                DataType::Utf8 => Arc::new(StringArray::from(g.clone())),
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(g.clone())),
                DataType::Utf8View => Arc::new(StringViewArray::from(g.clone())),
                _ => unreachable!(),
            };
            w.write(&RecordBatch::try_new(schema.clone(), vec![col]).unwrap())
                .unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
    }

    /// (ids, titles, texts) of one row group.
    type WikiGroup<'a> = (&'a [&'a str], &'a [Option<&'a str>], &'a [Option<&'a str>]);

    /// A wikipedia-like shard: id, url, title, text; two row groups.
    fn write_wiki_shard(path: &Path) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("url", DataType::Utf8, false),
            Field::new("title", DataType::Utf8, true),
            Field::new("text", DataType::LargeUtf8, true),
        ]));
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), schema.clone(), None).unwrap();
        let groups: [WikiGroup; 2] = [
            (
                &["1", "2"],
                &[Some("Anarchism"), Some("Albedo")],
                &[Some("A is..."), None],
            ),
            (&["3"], &[None], &[Some("untitled text")]),
        ];
        for (ids, titles, texts) in groups {
            let cols: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(StringArray::from(
                    ids.iter()
                        .map(|i| format!("https://x/{i}"))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(titles.to_vec())),
                Arc::new(LargeStringArray::from(texts.to_vec())),
            ];
            w.write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
                .unwrap();
            w.flush().unwrap();
        }
        w.close().unwrap();
    }

    fn three_groups() -> Vec<Vec<Option<&'static str>>> {
        vec![
            vec![Some("one"), Some("two")],
            vec![Some("three"), None, Some("four")],
            vec![Some("five — ünïcödé 🚀")],
        ]
    }

    #[test]
    fn lists_and_reads_row_groups_for_all_string_types() {
        let dir = tempfile::tempdir().unwrap();
        for dt in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            let path = dir.path().join(format!("train-{dt}.parquet"));
            write_text_shard(&path, &three_groups(), dt.clone());
            let units = list_units(std::slice::from_ref(&path), "text", false).unwrap();
            assert_eq!(units.len(), 3, "{dt}");
            assert_eq!(
                units
                    .iter()
                    .map(|u| (u.row_group, u.rows))
                    .collect::<Vec<_>>(),
                vec![(0, 2), (1, 3), (2, 1)],
                "{dt}"
            );
            // Each unit yields exactly its own group's docs; the null is skipped.
            let got: Vec<Vec<String>> = units
                .iter()
                .map(|u| read_unit(u, "text", false).unwrap())
                .collect();
            assert_eq!(got[0], ["one", "two"], "{dt}");
            assert_eq!(got[1], ["three", "four"], "{dt}");
            assert_eq!(got[2], ["five — ünïcödé 🚀"], "{dt}");
        }
    }

    #[test]
    fn units_span_shards_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        write_text_shard(&a, &three_groups(), DataType::Utf8);
        write_text_shard(&b, &three_groups()[..1], DataType::Utf8);
        let units = list_units(&[a.clone(), b.clone()], "text", false).unwrap();
        assert_eq!(units.len(), 4);
        assert_eq!(
            units[3],
            RowGroupUnit {
                shard: b,
                row_group: 0,
                rows: 2
            }
        );
        assert!(units[..3].iter().all(|u| u.shard == a));
    }

    #[test]
    fn prepend_title_and_projection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train-00000-of-00041.parquet");
        write_wiki_shard(&path);
        let units = list_units(std::slice::from_ref(&path), "text", true).unwrap();
        assert_eq!(units.len(), 2);
        assert_eq!(
            read_unit(&units[0], "text", true).unwrap(),
            ["Anarchism\n\nA is..."]
        );
        // A null title leaves the text alone.
        assert_eq!(
            read_unit(&units[1], "text", true).unwrap(),
            ["untitled text"]
        );
        assert_eq!(read_unit(&units[0], "text", false).unwrap(), ["A is..."]);
    }

    fn err_string(r: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.expect_err("expected an error"))
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("missing-shard.parquet");
        let e = err_string(list_units(std::slice::from_ref(&missing), "text", false));
        assert!(e.contains("missing-shard.parquet"), "{e}");
        let e = err_string(shards_fingerprint(std::slice::from_ref(&missing)));
        assert!(e.contains("missing-shard.parquet"), "{e}");

        let garbage = dir.path().join("garbage-shard.parquet");
        std::fs::write(&garbage, b"this is not a parquet file at all, just bytes").unwrap();
        let e = err_string(list_units(std::slice::from_ref(&garbage), "text", false));
        assert!(
            e.contains("garbage-shard.parquet") && e.contains("not a readable parquet"),
            "{e}"
        );

        let good = dir.path().join("good-shard.parquet");
        write_text_shard(&good, &three_groups(), DataType::Utf8);
        let e = err_string(list_units(std::slice::from_ref(&good), "content", false));
        assert!(
            e.contains("good-shard.parquet") && e.contains("`content`"),
            "{e}"
        );
        assert!(
            e.contains("text (Utf8)"),
            "should list existing columns: {e}"
        );
        let e = err_string(list_units(std::slice::from_ref(&good), "text", true));
        assert!(
            e.contains("good-shard.parquet") && e.contains("`title`"),
            "{e}"
        );

        // A unit pointing past the last row group (file replaced since listing).
        let bogus = RowGroupUnit {
            shard: good.clone(),
            row_group: 7,
            rows: 1,
        };
        let e = err_string(read_unit(&bogus, "text", false));
        assert!(e.contains("good-shard.parquet row group 7"), "{e}");
        let stale = RowGroupUnit {
            shard: good,
            row_group: 0,
            rows: 5,
        };
        let e = err_string(read_unit(&stale, "text", false));
        assert!(
            e.contains("row group 0") && e.contains("read 2 rows"),
            "{e}"
        );
    }

    #[test]
    fn corrupt_row_group_is_named_and_others_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt-shard.parquet");
        write_text_shard(&path, &three_groups(), DataType::Utf8);
        let units = list_units(std::slice::from_ref(&path), "text", false).unwrap();
        // Overwrite row group 1's column chunk (page headers and data) with 0xFF; the footer
        // stays intact, so listing still works and only that unit fails.
        let builder = open_builder(&path).unwrap();
        let (start, len) = builder.metadata().row_group(1).column(0).byte_range();
        drop(builder);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[start as usize..(start + len) as usize].fill(0xFF);
        std::fs::write(&path, bytes).unwrap();

        assert_eq!(read_unit(&units[0], "text", false).unwrap(), ["one", "two"]);
        let e = err_string(read_unit(&units[1], "text", false));
        assert!(e.contains("corrupt-shard.parquet row group 1"), "{e}");
        assert_eq!(
            read_unit(&units[2], "text", false).unwrap(),
            ["five — ünïcödé 🚀"]
        );
    }

    #[test]
    fn glob_resolves_relative_sorted_and_reports_empty() {
        let dir = tempfile::tempdir().unwrap();
        // Brackets in the base directory must be taken literally.
        let base = dir.path().join("cfg[1]");
        std::fs::create_dir_all(base.join("data")).unwrap();
        for name in [
            "train-00001-of-00002.parquet",
            "train-00000-of-00002.parquet",
            "val.parquet",
        ] {
            std::fs::write(base.join("data").join(name), b"x").unwrap();
        }
        let got = resolve_glob("data/train-*.parquet", &base).unwrap();
        assert_eq!(
            got,
            vec![
                base.join("data/train-00000-of-00002.parquet"),
                base.join("data/train-00001-of-00002.parquet")
            ]
        );
        // An absolute pattern ignores base_dir.
        let abs = format!(
            "{}/*.parquet",
            glob::Pattern::escape(&base.join("data").to_string_lossy())
        );
        assert_eq!(
            resolve_glob(&abs, Path::new("/nonexistent")).unwrap().len(),
            3
        );

        let e = err_string(resolve_glob("nothing/*.parquet", &base));
        assert!(e.contains("`nothing/*.parquet`"), "{e}");
        assert!(
            e.contains("cfg[1]") && e.contains("scripts/setup.sh"),
            "{e}"
        );
    }

    #[test]
    fn fingerprint_tracks_names_sizes_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        std::fs::write(&a, b"aaaa").unwrap();
        std::fs::write(&b, b"bb").unwrap();
        let ab = shards_fingerprint(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(ab.len(), 64);
        assert_eq!(ab, shards_fingerprint(&[a.clone(), b.clone()]).unwrap());
        assert_ne!(ab, shards_fingerprint(&[b.clone(), a.clone()]).unwrap());
        assert_ne!(ab, shards_fingerprint(std::slice::from_ref(&a)).unwrap());
        // Same name and size elsewhere → same fingerprint (the data dir may move).
        let other = tempfile::tempdir().unwrap();
        std::fs::copy(&a, other.path().join("a.parquet")).unwrap();
        std::fs::copy(&b, other.path().join("b.parquet")).unwrap();
        let moved = [
            other.path().join("a.parquet"),
            other.path().join("b.parquet"),
        ];
        assert_eq!(ab, shards_fingerprint(&moved).unwrap());
        std::fs::write(&b, b"bbb").unwrap();
        assert_ne!(ab, shards_fingerprint(&[a, b]).unwrap());
    }

    fn shared(rel: &str) -> Option<PathBuf> {
        let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/")).join(rel);
        if p.exists() {
            Some(p)
        } else {
            eprintln!(
                "skipped: {} not present (run scripts/setup.sh)",
                p.display()
            );
            None
        }
    }

    #[test]
    fn shared_tinystories_shard() {
        let Some(path) = shared("TinyStories/data/train-00000-of-00001.parquet") else {
            return;
        };
        let units = list_units(std::slice::from_ref(&path), "text", false).unwrap();
        assert!(!units.is_empty());
        let mut docs = 0;
        for u in &units {
            let d = read_unit(u, "text", false).unwrap();
            assert!(d.iter().all(|s| !s.is_empty()));
            docs += d.len();
        }
        assert_eq!(docs, 2085);
        assert_eq!(units.iter().map(|u| u.rows).sum::<usize>(), 2085);
    }

    #[test]
    fn shared_wikipedia_shard() {
        let Some(path) = shared("wikipedia/20231101.en/train-00000-of-00001.parquet") else {
            return;
        };
        let units = list_units(std::slice::from_ref(&path), "text", true).unwrap();
        let mut plain = Vec::new();
        let mut titled = Vec::new();
        for u in &units {
            plain.extend(read_unit(u, "text", false).unwrap());
            titled.extend(read_unit(u, "text", true).unwrap());
        }
        assert_eq!(plain.len(), 60);
        assert_eq!(titled.len(), 60);
        for (p, t) in plain.iter().zip(&titled) {
            let (title, rest) = t.split_once("\n\n").expect("title separator");
            assert!(!title.is_empty());
            assert_eq!(rest, p);
        }
    }
}
