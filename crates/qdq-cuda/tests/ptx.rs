//! What NVRTC makes of qdq's kernels, checked on the PTX (no GPU needed): every kernel
//! compiles, and the arithmetic that decides values is the exact kind. This is what
//! makes the GPU's values the CPU's bit for bit: a fused multiply-add, an approximate
//! division or a reciprocal would each move some results by one ulp.
//!
//! Needs libnvrtc: pip's `nvidia-cuda-nvrtc` in the workspace's `.venv` (`.ci/run`
//! installs `crates/qdq-cuda/tests/requirements.txt`), or `QDQ_NVRTC=/path/libnvrtc.so.13`.

use std::path::PathBuf;

fn nvrtc() -> PathBuf {
    if let Some(p) = std::env::var_os("QDQ_NVRTC") {
        return p.into();
    }
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/lib"));
    std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("site-packages/nvidia/cu13/lib/libnvrtc.so.13"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "no libnvrtc.so.13 under {}: run `.venv/bin/pip install -r crates/qdq-cuda/tests/requirements.txt` (or set QDQ_NVRTC)",
                root.display()
            )
        })
}

/// The body of one `.entry` in the PTX.
fn entry<'a>(ptx: &'a str, name: &str) -> &'a str {
    let start = ptx
        .find(&format!(".entry {name}("))
        .unwrap_or_else(|| panic!("no kernel {name} in the PTX"));
    let rest = &ptx[start..];
    let end = rest[1..].find(".entry ").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn kernels_compile_to_exact_arithmetic() {
    qdq_cuda::preload(&nvrtc()).unwrap();
    for arch in [Some("compute_75"), Some("compute_90")] {
        let ptx = qdq_cuda::compile_ptx(arch).unwrap();
        // No contraction, no approximate division or reciprocal, anywhere.
        for banned in ["fma.", "div.approx", "div.full", "rcp.", "mad.f32"] {
            assert!(!ptx.contains(banned), "{arch:?}: `{banned}` in the PTX");
        }
        for k in ["fake_quant_tensor", "fake_quant_entries"] {
            let body = entry(&ptx, k);
            // x * scale rounded to nearest, rint (half to even), q / scale rounded to nearest.
            for op in ["mul.rn.f32", "cvt.rni.f32.f32", "div.rn.f32"] {
                assert!(body.contains(op), "{arch:?} {k}: no `{op}`");
            }
        }
        // The histogram bin: |x| * bins / hi, rounded to nearest, truncated to an integer.
        for k in ["histogram_shared", "histogram_global"] {
            let body = entry(&ptx, k);
            for op in ["abs.f32", "mul.rn.f32", "div.rn.f32", "cvt.rzi.u32.f32"] {
                assert!(body.contains(op), "{arch:?} {k}: no `{op}`");
            }
        }
        for k in ["ste_backward_tensor", "ste_backward_entries", "abs_scan"] {
            entry(&ptx, k);
        }
    }
}

#[test]
fn a_broken_nvrtc_path_is_a_typed_error() {
    let e = qdq_cuda::preload(std::path::Path::new("/nonexistent/libnvrtc.so.13")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libnvrtc.so.13"), "{e}");
}
