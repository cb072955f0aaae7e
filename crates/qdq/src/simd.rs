//! Host loops compiled for the widest vector unit the CPU has.
//!
//! qdq's release builds target baseline x86-64 (SSE2), so the fused elementwise loops
//! (fake quantization, the runtime's Erf) ran four lanes wide. [`widest`] compiles its
//! closure a second time with AVX2 enabled and picks that copy when the CPU has it.
//! The arithmetic is the same IEEE operations lane by lane (Rust never fuses a multiply
//! and an add on its own), so results are identical bit for bit either way.

/// Runs `f`, compiled with AVX2 when the CPU supports it.
#[inline(always)]
pub fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_copies_compute_the_same_values() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.37).collect();
        let plain: Vec<f32> = xs.iter().map(|x| (x * 1.7 + 0.3) / 2.9).collect();
        let wide = widest(|| {
            xs.iter()
                .map(|x| (x * 1.7 + 0.3) / 2.9)
                .collect::<Vec<f32>>()
        });
        assert_eq!(
            plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            wide.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }
}
