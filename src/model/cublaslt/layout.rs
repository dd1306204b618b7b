//! Row-major GEMMs as cuBLASLt (column-major) calls.
//!
//! A row-major buffer of a `[rows, cols]` matrix R, read column-major with leading dimension
//! `cols`, is Rᵀ (`[cols, rows]`). So the row-major product C = op(A)·op(B) is computed as the
//! column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's first operand is our B buffer and its
//! second our A buffer, each transposed exactly when ours is, and cuBLASLt's (m, n, k) is our
//! (N, M, K). References: cuBLAS's column-major convention and `lda ≥ max(1, rows of the stored
//! matrix)` (cuBLAS docs, "Data layout" and `cublasLtMatmul`); the epilogues' definitions
//! (`CUBLASLT_EPILOGUE_BIAS`: a vector of length m added to every column of D;
//! `CUBLASLT_EPILOGUE_BGRADA`: the bias gradient of length m, the sum of A's rows over k) in
//! the cuBLASLt API reference, `cublasLtEpilogue_t`.
//!
//! The linear layer `Y = X·W + b` (X `[M, K]`, W stored `[in, out]` = `[K, N]`, as the whole
//! project stores weights) uses three calls:
//! - forward: Y = X·W, epilogue BIAS with b;
//! - input gradient: dX = dY·Wᵀ;
//! - weight gradient: dW = Xᵀ·dY, epilogue BGRADA, whose output is db = Σ_rows dY.

/// What the epilogue adds to a GEMM, in the row-major caller's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RowEpilogue {
    None,
    /// C += b broadcast over rows; `b` has one entry per column of C (length N).
    Bias,
    /// Also writes db = the column sums of the row-major `B` operand as stored untransposed
    /// (`[K, N]`, summed over K): the bias gradient when B is dY in dW = Xᵀ·dY. Length N.
    BiasGradOfB,
}

/// cuBLASLt's epilogue for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LtEpilogue {
    Default,
    Bias,
    BGradA,
}

/// Which of the caller's buffers goes where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The caller's A (left) buffer.
    RowA,
    /// The caller's B (right) buffer.
    RowB,
}

/// One `cublasLtMatmul` call, column-major: D (m×n, ldc) = op(first)·op(second), with the
/// epilogue. `trans_*` apply to the operand as cuBLASLt reads it (column-major, with its ld).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LtGemm {
    pub first: Operand,
    pub second: Operand,
    pub trans_first: bool,
    pub trans_second: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ld_first: usize,
    pub ld_second: usize,
    pub ldc: usize,
    pub epilogue: LtEpilogue,
}

impl LtGemm {
    /// The call that computes the row-major `C [M, N] = op(A)·op(B)`, where A is stored
    /// row-major as `[M, K]` (or `[K, M]` when `trans_a`) and B as `[K, N]` (or `[N, K]` when
    /// `trans_b`), all contiguous. `BiasGradOfB` needs an untransposed B.
    ///
    /// Errors: a zero dimension, or `BiasGradOfB` with `trans_b` (cuBLASLt's BGRADA reduces the
    /// first operand over k, which is B's K only when B is read untransposed).
    pub fn from_row_major(
        (m, n, k): (usize, usize, usize),
        trans_a: bool,
        trans_b: bool,
        epilogue: RowEpilogue,
    ) -> Result<Self, String> {
        if m == 0 || n == 0 || k == 0 {
            return Err(format!("GEMM with a zero dimension: M={m} N={n} K={k}"));
        }
        if epilogue == RowEpilogue::BiasGradOfB && trans_b {
            return Err("the bias gradient epilogue needs B untransposed".into());
        }
        // Row-major column counts of the stored buffers: the leading dimensions of their
        // column-major views.
        let cols_a = if trans_a { m } else { k };
        let cols_b = if trans_b { k } else { n };
        Ok(Self {
            first: Operand::RowB,
            second: Operand::RowA,
            trans_first: trans_b,
            trans_second: trans_a,
            m: n,
            n: m,
            k,
            ld_first: cols_b,
            ld_second: cols_a,
            ldc: n,
            epilogue: match epilogue {
                RowEpilogue::None => LtEpilogue::Default,
                RowEpilogue::Bias => LtEpilogue::Bias,
                RowEpilogue::BiasGradOfB => LtEpilogue::BGradA,
            },
        })
    }

    /// The linear layer's three calls for X `[rows, k]`, W `[k, n]`: forward (A = X, B = W,
    /// bias), input gradient (A = dY, B = W transposed), weight gradient (A = X transposed,
    /// B = dY, bias gradient).
    pub fn linear(rows: usize, k: usize, n: usize) -> Result<[Self; 3], String> {
        Ok([
            Self::from_row_major((rows, n, k), false, false, RowEpilogue::Bias)?,
            Self::from_row_major((rows, k, n), false, true, RowEpilogue::None)?,
            Self::from_row_major((k, n, rows), true, false, RowEpilogue::BiasGradOfB)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// cuBLASLt's column-major semantics, written out: D = op(P)·op(Q) (+ bias per row of D),
    /// BGRADA = the sums of op(P)'s rows over k. Checks the leading-dimension rules cuBLAS
    /// enforces. Returns (D as a column-major m×n with ld `ldc`, bias gradient).
    fn reference(g: &LtGemm, p: &[f64], q: &[f64], bias: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (rows_p, rows_q) = (
            if g.trans_first { g.k } else { g.m },
            if g.trans_second { g.n } else { g.k },
        );
        assert!(g.ld_first >= rows_p.max(1), "lda {} < {rows_p}", g.ld_first);
        assert!(
            g.ld_second >= rows_q.max(1),
            "ldb {} < {rows_q}",
            g.ld_second
        );
        assert!(g.ldc >= g.m.max(1));
        // op(P)[i, l] and op(Q)[l, j], column-major reads.
        let opp = |i: usize, l: usize| {
            if g.trans_first {
                p[l + i * g.ld_first]
            } else {
                p[i + l * g.ld_first]
            }
        };
        let opq = |l: usize, j: usize| {
            if g.trans_second {
                q[j + l * g.ld_second]
            } else {
                q[l + j * g.ld_second]
            }
        };
        let mut d = vec![0.0; g.ldc * g.n];
        for j in 0..g.n {
            for i in 0..g.m {
                let mut s: f64 = (0..g.k).map(|l| opp(i, l) * opq(l, j)).sum();
                if g.epilogue == LtEpilogue::Bias {
                    s += bias[i];
                }
                d[i + j * g.ldc] = s;
            }
        }
        let bgrad = if g.epilogue == LtEpilogue::BGradA {
            (0..g.m)
                .map(|i| (0..g.k).map(|l| opp(i, l)).sum())
                .collect()
        } else {
            Vec::new()
        };
        (d, bgrad)
    }

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// Row-major naive matmul of `[r, c]` buffers.
    fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for l in 0..k {
                for j in 0..n {
                    c[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        c
    }

    fn transpose(a: &[f64], r: usize, c: usize) -> Vec<f64> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = a[i * c + j];
            }
        }
        t
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{x} vs {y}");
        }
    }

    /// The linear layer's forward and both gradients through the mapping and the reference
    /// GEMM, against row-major arithmetic, on non-square shapes (so any swapped dimension or
    /// leading dimension shows).
    #[test]
    fn the_linear_layers_calls_match_row_major_arithmetic() {
        let mut rng = ChaCha8Rng::seed_from_u64(18);
        for (rows, k, n) in [(5, 3, 4), (7, 6, 2), (1, 4, 9), (6, 1, 3)] {
            let x = random(&mut rng, rows * k);
            let w = random(&mut rng, k * n);
            let b = random(&mut rng, n);
            let dy = random(&mut rng, rows * n);
            let [fwd, dx_call, dw_call] = LtGemm::linear(rows, k, n).unwrap();
            let pick = |g: &LtGemm, a: &[f64], bb: &[f64]| -> (Vec<f64>, Vec<f64>) {
                let buf = |o: Operand| {
                    if o == Operand::RowA {
                        a.to_vec()
                    } else {
                        bb.to_vec()
                    }
                };
                (buf(g.first), buf(g.second))
            };

            // Forward: Y = X·W + b. The column-major D (N×rows, ld N) is row-major Y.
            let (p, q) = pick(&fwd, &x, &w);
            let (y, _) = reference(&fwd, &p, &q, &b);
            let mut expect = matmul(&x, &w, rows, k, n);
            for r in 0..rows {
                for j in 0..n {
                    expect[r * n + j] += b[j];
                }
            }
            close(&y, &expect);

            // dX = dY·Wᵀ.
            let (p, q) = pick(&dx_call, &dy, &w);
            let (dx, _) = reference(&dx_call, &p, &q, &[]);
            close(&dx, &matmul(&dy, &transpose(&w, k, n), rows, n, k));

            // dW = Xᵀ·dY and db = Σ_rows dY.
            let (p, q) = pick(&dw_call, &x, &dy);
            let (dw, db) = reference(&dw_call, &p, &q, &[]);
            close(&dw, &matmul(&transpose(&x, rows, k), &dy, k, rows, n));
            let sums: Vec<f64> = (0..n)
                .map(|j| (0..rows).map(|r| dy[r * n + j]).sum())
                .collect();
            close(&db, &sums);
        }
    }

    /// Every transpose combination of a plain GEMM, e.g. the tied LM head's logits = h·Wteᵀ.
    #[test]
    fn every_transpose_combination_matches() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (m, n, k) = (4, 5, 3);
        for ta in [false, true] {
            for tb in [false, true] {
                let a = random(&mut rng, m * k);
                let b = random(&mut rng, k * n);
                let g = LtGemm::from_row_major((m, n, k), ta, tb, RowEpilogue::None).unwrap();
                // Stored buffers: A as [m,k] or its transpose [k,m]; likewise B.
                let a_buf = if ta { transpose(&a, m, k) } else { a.clone() };
                let b_buf = if tb { transpose(&b, k, n) } else { b.clone() };
                let (p, q) = (b_buf, a_buf);
                assert_eq!((g.first, g.second), (Operand::RowB, Operand::RowA));
                let (c, _) = reference(&g, &p, &q, &[]);
                close(&c, &matmul(&a, &b, m, k, n));
            }
        }
    }

    #[test]
    fn bad_calls_are_refused() {
        assert!(LtGemm::from_row_major((0, 2, 2), false, false, RowEpilogue::None).is_err());
        assert!(LtGemm::from_row_major((2, 2, 2), false, true, RowEpilogue::BiasGradOfB).is_err());
    }
}
