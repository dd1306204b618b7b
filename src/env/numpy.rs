//! NumPy's arithmetic where Gymnasium's rewards depend on it, so that rewards agree bit for bit.
//!
//! The actions are float32 (the action space's dtype), so `w * np.sum(np.square(action))` is
//! float32 throughout under NumPy 2's promotion rules (NEP 50: the Python float `w` is cast to
//! float32), and `np.sum` adds with NumPy's pairwise summation. The float32 cost is then
//! subtracted from a float64 reward. Computing the cost in float64 instead would differ by up to
//! ~1e-7, far over the 1e-9 the replay allows.

/// NumPy's pairwise summation (`pairwise_sum_FLOAT`/`_DOUBLE` in NumPy's loops), for float32
/// and float64 alike: plain accumulation below 8 values; otherwise eight running sums combined as
/// a tree, the remainder added last; blocks over 128 values are split in two halves (rounded to a
/// multiple of 8).
pub fn pairwise_sum<T>(a: &[T]) -> T
where
    T: Copy + Default + std::ops::Add<Output = T> + std::ops::AddAssign,
{
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        let mut res = T::default();
        for &x in a {
            res += x;
        }
        res
    } else if n <= BLOCK {
        let mut r = [T::default(); 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// `weight * np.sum(np.square(action))` with a float32 `action` and a Python-float `weight`,
/// as NumPy 2 computes it (all float32), widened to f64 exactly.
pub fn weighted_square_sum_f32(weight: f64, action: &[f32]) -> f64 {
    // Fixed-size scratch: actions have at most 17 values (Humanoid); longer ones use the heap.
    let mut buf = [0.0f32; 32];
    let sum = if action.len() <= buf.len() {
        for (b, a) in buf.iter_mut().zip(action) {
            *b = a * a;
        }
        pairwise_sum(&buf[..action.len()])
    } else {
        pairwise_sum(&action.iter().map(|a| a * a).collect::<Vec<_>>())
    };
    // The cast is what NumPy does to the Python float (round to nearest float32).
    f64::from((weight as f32) * sum)
}

/// `weight * np.sum(np.square(x))` for float64 `x` (Humanoid's cost on `data.ctrl`), with NumPy's
/// summation order.
pub fn weighted_square_sum_f64(weight: f64, x: &[f64]) -> f64 {
    let squares: Vec<f64> = x.iter().map(|v| v * v).collect();
    weight * pairwise_sum(&squares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_sums_accumulate_left_to_right() {
        let a = [1.0e8f32, 1.0, -1.0e8, 1.0];
        // ((1e8 + 1) - 1e8) + 1 in float32: the first 1 is lost to rounding.
        assert_eq!(pairwise_sum(&a), 1.0);
    }

    #[test]
    fn eight_or_more_values_sum_as_a_tree() {
        // Left to right, 1e8 + 1 + ... loses every 1; the tree adds the 1s together first.
        let mut a = [1.0f32; 8];
        a[0] = 1.0e8;
        a[4] = -1.0e8;
        let sequential: f32 = a.iter().fold(0.0, |s, x| s + x);
        let pairwise = pairwise_sum(&a);
        assert_eq!(
            pairwise,
            ((1e8 + 1.0) + (1.0 + 1.0)) + ((-1e8 + 1.0) + (1.0 + 1.0))
        );
        assert_ne!(
            pairwise, sequential,
            "the test needs a case where the order matters"
        );
    }

    #[test]
    fn the_remainder_is_added_after_the_tree_and_long_arrays_split() {
        // 17 values (Humanoid's ctrl): r[j] = a[j] + a[8 + j], the tree, then a[16].
        let a: Vec<f64> = (0..17).map(|i| 1.0 / (i as f64 + 3.0)).collect();
        let r: Vec<f64> = (0..8).map(|j| a[j] + a[8 + j]).collect();
        let tree = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        assert_eq!(pairwise_sum(&a), tree + a[16]);
        // 300 values: halves of 144 and 156, each summed on its own.
        let b: Vec<f32> = (0..300).map(|i| (i as f32 * 0.37).sin()).collect();
        assert_eq!(
            pairwise_sum(&b),
            pairwise_sum(&b[..144]) + pairwise_sum(&b[144..])
        );
    }

    #[test]
    fn cost_is_float32_then_widened() {
        let cost = weighted_square_sum_f32(0.1, &[0.3, -0.7, 0.9]);
        let expected = f64::from(0.1f64 as f32 * ((0.3f32 * 0.3 + 0.7 * 0.7) + 0.9 * 0.9));
        assert_eq!(cost, expected);
        assert_ne!(cost, 0.1 * (0.09 + 0.49 + 0.81));
    }
}
