//! Degeneration metrics and the butterfly horizon over token sequences (issue 3, metrics 1–2).
//!
//! Definitions (n-grams are contiguous windows of `n` tokens; a sequence of length L has
//! L − n + 1 of them, none if L < n):
//!
//! - **rep-n** of one sequence = the fraction of its n-grams that repeat an n-gram seen at an
//!   earlier position of the same sequence = 1 − unique / total (Welleck et al. 2019's
//!   "seq-rep-n"). The evaluation's rep-n is the **mean over its generations** (those with at
//!   least one n-gram).
//! - **distinct-n** = unique n-grams / total n-grams **over all generations of one evaluation
//!   together** (corpus level, as in Li et al. 2016). Per sequence, distinct-n would be exactly
//!   1 − rep-n and say nothing new; pooled, it also falls when different prompts collapse onto the
//!   same text, which rep-n cannot see.
//! - **longest repeated span** = the length in tokens of the longest contiguous span that occurs
//!   at least twice in the sequence, occurrences allowed to overlap (`a b a b a` has `a b a` twice,
//!   so 3); 0 when no token repeats. The evaluation's value is the mean over its generations.
//! - **butterfly horizon** between two sequences = the first position at which they differ;
//!   if one is a prefix of the other (equal sequences included), the shorter length. Reported as
//!   the median over prompts.
//!
//! These apply to the *generated* tokens (the continuation, without the prompt), so a shared
//! prompt does not count as repetition or agreement.

use std::collections::HashSet;
use std::hash::Hash;

/// rep-n of one sequence: 1 − unique n-grams / total n-grams. `None` if `n == 0` or the sequence
/// has no n-gram (fewer than `n` tokens).
pub fn rep_n<T: Eq + Hash>(tokens: &[T], n: usize) -> Option<f64> {
    let (unique, total) = ngram_counts(std::iter::once(tokens), n)?;
    Some(1.0 - unique as f64 / total as f64)
}

/// Mean of [`rep_n`] over the sequences that have at least one n-gram; `None` if none has.
pub fn mean_rep_n<T: Eq + Hash, S: AsRef<[T]>>(sequences: &[S], n: usize) -> Option<f64> {
    let values: Vec<f64> = sequences
        .iter()
        .filter_map(|s| rep_n(s.as_ref(), n))
        .collect();
    mean(&values)
}

/// Corpus-level distinct-n: unique n-grams over all `sequences` / their total number of n-grams.
/// N-grams never span two sequences. `None` if `n == 0` or there is no n-gram at all.
pub fn distinct_n<T: Eq + Hash, S: AsRef<[T]>>(sequences: &[S], n: usize) -> Option<f64> {
    let (unique, total) = ngram_counts(sequences.iter().map(|s| s.as_ref()), n)?;
    Some(unique as f64 / total as f64)
}

/// (unique, total) n-gram counts pooled over `sequences`; `None` for `n == 0` or total 0.
fn ngram_counts<'a, T: Eq + Hash + 'a>(
    sequences: impl Iterator<Item = &'a [T]>,
    n: usize,
) -> Option<(usize, usize)> {
    if n == 0 {
        return None;
    }
    let mut seen: HashSet<&'a [T]> = HashSet::new();
    let mut total = 0;
    for tokens in sequences {
        for gram in tokens.windows(n) {
            seen.insert(gram);
            total += 1;
        }
    }
    (total > 0).then_some((seen.len(), total))
}

/// Length of the longest span occurring at least twice in `tokens` (overlaps allowed); 0 if no
/// token repeats.
///
/// Two occurrences at positions i < j = i + d agree on a span of length L exactly when
/// tokens[i + k] == tokens[i + d + k] for k < L, so the answer is the longest run of matches
/// along any offset d. O(len²) time, O(1) memory: 4 M comparisons for 2 000 tokens.
pub fn longest_repeated_span<T: PartialEq>(tokens: &[T]) -> usize {
    let mut best = 0;
    for offset in 1..tokens.len() {
        // No run at this offset can be longer than the tokens left after it.
        if tokens.len() - offset <= best {
            break;
        }
        let mut run = 0;
        for (a, b) in tokens.iter().zip(&tokens[offset..]) {
            if a == b {
                run += 1;
                best = best.max(run);
            } else {
                run = 0;
            }
        }
    }
    best
}

/// Mean of [`longest_repeated_span`] over `sequences`; `None` for no sequences.
pub fn mean_longest_repeated_span<T: PartialEq, S: AsRef<[T]>>(sequences: &[S]) -> Option<f64> {
    let spans: Vec<f64> = sequences
        .iter()
        .map(|s| longest_repeated_span(s.as_ref()) as f64)
        .collect();
    mean(&spans)
}

/// First position at which `previous` and `current` differ; the shorter length if one is a
/// prefix of the other (so equal sequences give their length).
pub fn butterfly_horizon<T: PartialEq>(previous: &[T], current: &[T]) -> usize {
    previous
        .iter()
        .zip(current)
        .position(|(a, b)| a != b)
        .unwrap_or(previous.len().min(current.len()))
}

/// Median over prompts of [`butterfly_horizon`], pairing `previous[i]` with `current[i]` (the
/// same prompt, seed and weights at consecutive evaluations). `None` if there are no prompts or
/// the two evaluations have different numbers of them (a pairing bug must not give a number).
pub fn median_butterfly_horizon<T: PartialEq, S: AsRef<[T]>>(
    previous: &[S],
    current: &[S],
) -> Option<f64> {
    if previous.len() != current.len() {
        return None;
    }
    let horizons: Vec<f64> = previous
        .iter()
        .zip(current)
        .map(|(p, c)| butterfly_horizon(p.as_ref(), c.as_ref()) as f64)
        .collect();
    median(&horizons)
}

/// Median; the mean of the two middle values for an even count. `None` when empty or when any
/// value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The degeneration metrics of one evaluation (one weights × mode), ready to log as
/// `gen_rep2_*`, `gen_rep4_*`, `gen_distinct2_*`, `gen_distinct4_*`, `gen_longest_repeat_*`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Degeneration {
    pub rep2: Option<f64>,
    pub rep4: Option<f64>,
    pub distinct2: Option<f64>,
    pub distinct4: Option<f64>,
    /// Mean over generations of the longest repeated span, in tokens.
    pub longest_repeated_span: Option<f64>,
}

/// All degeneration metrics over the generations (continuations only) of one evaluation.
pub fn degeneration<T: Eq + Hash, S: AsRef<[T]>>(generations: &[S]) -> Degeneration {
    Degeneration {
        rep2: mean_rep_n(generations, 2),
        rep4: mean_rep_n(generations, 4),
        distinct2: distinct_n(generations, 2),
        distinct4: distinct_n(generations, 4),
        longest_repeated_span: mean_longest_repeated_span(generations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn rep_n_by_hand() {
        // Bigrams of 1 2 1 2 3: (1,2) (2,1) (1,2) (2,3) — 4 in all, 3 unique → rep-2 = 1/4.
        let s = [1u32, 2, 1, 2, 3];
        assert!(close(rep_n(&s, 2).expect("has bigrams"), 0.25));
        // Unigrams: 1 2 1 2 3 → 3 unique of 5 → 2/5.
        assert!(close(rep_n(&s, 1).expect("has unigrams"), 0.4));
        // A constant sequence of 6: 3 four-grams, all the same → 2/3.
        assert!(close(rep_n(&[7u32; 6], 4).expect("has 4-grams"), 2.0 / 3.0));
        // All distinct: nothing repeats.
        assert!(close(rep_n(&[1u32, 2, 3, 4, 5], 2).expect("bigrams"), 0.0));
        // Too short, or n = 0: undefined.
        assert_eq!(rep_n(&[1u32, 2, 3], 4), None);
        assert_eq!(rep_n(&[1u32, 2, 3], 0), None);
        assert_eq!(rep_n::<u32>(&[], 1), None);
    }

    #[test]
    fn mean_rep_n_skips_sequences_without_ngrams() {
        // rep-2: [1 2 1 2 3] → 1/4; [5 5 5] → bigrams (5,5)(5,5) → 1/2; [9] has none.
        let gens: Vec<Vec<u32>> = vec![vec![1, 2, 1, 2, 3], vec![5, 5, 5], vec![9]];
        assert!(close(
            mean_rep_n(&gens, 2).expect("defined"),
            (0.25 + 0.5) / 2.0
        ));
        assert_eq!(mean_rep_n(&[vec![1u32]], 2), None);
    }

    #[test]
    fn distinct_n_pools_generations() {
        // Each alone is all-distinct, but the second copies the first: bigrams
        // (1,2)(2,3) | (1,2)(2,3) | (4,5) → 5 total, 3 unique → 3/5. Per-sequence rep-2 is 0.
        let gens: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![1, 2, 3], vec![4, 5]];
        assert!(close(distinct_n(&gens, 2).expect("defined"), 0.6));
        assert!(close(mean_rep_n(&gens, 2).expect("defined"), 0.0));
        // N-grams do not span sequences: [1] [2] has no bigram at all.
        assert_eq!(distinct_n(&[vec![1u32], vec![2]], 2), None);
        // For a single sequence distinct-n = 1 − rep-n.
        let one = [vec![1u32, 2, 1, 2, 3]];
        assert!(close(distinct_n(&one, 2).expect("defined"), 0.75));
    }

    #[test]
    fn longest_repeated_span_by_hand() {
        assert_eq!(longest_repeated_span::<u32>(&[]), 0);
        assert_eq!(longest_repeated_span(&[1u32]), 0);
        assert_eq!(longest_repeated_span(&[1u32, 2, 3, 4]), 0);
        assert_eq!(longest_repeated_span(&[1u32, 2, 3, 1]), 1);
        // "1 2 3" occurs at 0 and 4.
        assert_eq!(longest_repeated_span(&[1u32, 2, 3, 9, 1, 2, 3, 8]), 3);
        // Overlapping: a b a b a has "a b a" at 0 and 2.
        assert_eq!(longest_repeated_span(&[1u32, 2, 1, 2, 1]), 3);
        // A constant run of 5 repeats its first 4 tokens at offset 1.
        assert_eq!(longest_repeated_span(&[7u32; 5]), 4);
        // The longest of several repeats wins: "5 6" twice, "1 2 3 4" twice.
        let s = [5u32, 6, 1, 2, 3, 4, 0, 5, 6, 9, 1, 2, 3, 4];
        assert_eq!(longest_repeated_span(&s), 4);
        let gens = vec![vec![1u32, 2, 1, 2, 1], vec![1, 2, 3]];
        assert!(close(mean_longest_repeated_span(&gens).expect("some"), 1.5));
        assert_eq!(mean_longest_repeated_span::<u32, Vec<u32>>(&[]), None);
    }

    #[test]
    fn longest_repeated_span_agrees_with_brute_force() {
        // Every span length and start compared naively on pseudo-random short sequences over a
        // tiny alphabet (so repeats are common).
        let mut state = 12345u64;
        for _ in 0..200 {
            let len = (state % 30) as usize;
            let seq: Vec<u32> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % 3) as u32
                })
                .collect();
            let brute = (1..len)
                .rev()
                .find(|&l| {
                    (0..=len - l).any(|i| (i + 1..=len - l).any(|j| seq[i..i + l] == seq[j..j + l]))
                })
                .unwrap_or(0);
            assert_eq!(longest_repeated_span(&seq), brute, "{seq:?}");
        }
    }

    #[test]
    fn butterfly_horizon_by_hand() {
        assert_eq!(butterfly_horizon(&[1u32, 2, 3, 4], &[1, 2, 9, 4]), 2);
        assert_eq!(butterfly_horizon(&[1u32, 2, 3], &[5, 2, 3]), 0);
        assert_eq!(butterfly_horizon(&[1u32, 2, 3], &[1, 2, 3]), 3);
        // One a prefix of the other (e.g. one stopped at end-of-text): the shorter length.
        assert_eq!(butterfly_horizon(&[1u32, 2], &[1, 2, 3, 4]), 2);
        assert_eq!(butterfly_horizon(&[1u32, 2, 3, 4], &[1, 2]), 2);
        assert_eq!(butterfly_horizon::<u32>(&[], &[1]), 0);
    }

    #[test]
    fn median_and_median_horizon() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
        // Horizons 2, 0, 3 → median 2.
        let previous: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![1, 2], vec![7, 7, 7]];
        let current: Vec<Vec<u32>> = vec![vec![1, 2, 4], vec![2, 2], vec![7, 7, 7]];
        assert_eq!(median_butterfly_horizon(&previous, &current), Some(2.0));
        assert_eq!(median_butterfly_horizon(&previous, &current[..2]), None);
        assert_eq!(median_butterfly_horizon::<u32, Vec<u32>>(&[], &[]), None);
    }

    #[test]
    fn degeneration_bundles_the_parts() {
        let gens: Vec<Vec<u32>> = vec![vec![1, 2, 1, 2, 1, 2], vec![3, 4, 5, 6, 3, 4, 5, 6]];
        let d = degeneration(&gens);
        // rep-2: [1 2 1 2 1 2] 5 bigrams, 2 unique → 3/5; [3 4 5 6 3 4 5 6] 7 bigrams, 4 unique
        // → 3/7. Mean = (3/5 + 3/7)/2 = 18/35.
        assert!(close(d.rep2.expect("rep2"), 18.0 / 35.0));
        // rep-4: 3 four-grams, 2 unique → 1/3; 5 four-grams, 4 unique → 1/5. Mean = 4/15.
        assert!(close(d.rep4.expect("rep4"), 4.0 / 15.0));
        // distinct-2 pooled: 12 bigrams, 2 + 4 unique (none shared) → 1/2.
        assert!(close(d.distinct2.expect("distinct2"), 0.5));
        // distinct-4 pooled: 8 four-grams, 6 unique → 3/4.
        assert!(close(d.distinct4.expect("distinct4"), 0.75));
        // Longest repeated spans: 4 (1 2 1 2 at 0 and 2) and 4 (3 4 5 6) → 4.
        assert!(close(d.longest_repeated_span.expect("span"), 4.0));
    }
}
