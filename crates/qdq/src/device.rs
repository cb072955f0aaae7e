//! Where qdq computes: `cpu` (burn's Flex backend) or `cuda[:N]` (burn's LibTorch
//! backend on NVIDIA GPU N, with qdq's fused kernels; feature `gpu`).

use burn::tensor::Device;

use crate::error::{Error, Result};

/// The device a `--device` value names: `cpu`, `cuda` (GPU 0) or `cuda:N`.
///
/// On CUDA, the GPU is set up (driver, NVRTC, qdq's kernels) before this returns,
/// so a machine without one fails here, with what to do, and not mid-run.
///
/// # Errors
/// An unknown name, a build without the `gpu` feature, or a GPU that cannot be used.
///
/// ```
/// assert_eq!(qdq::device("cpu").unwrap(), burn::tensor::Device::flex());
/// assert!(qdq::device("tpu").unwrap_err().to_string().contains("cpu, cuda or cuda:N"));
/// ```
pub fn device(name: &str) -> Result<Device> {
    let bad = || Error::UnknownDevice(name.to_string());
    match name {
        "cpu" => Ok(Device::flex()),
        _ => {
            let rest = name.strip_prefix("cuda").ok_or_else(bad)?;
            let ordinal = match rest {
                "" => 0,
                _ => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(bad)?,
            };
            cuda(ordinal)
        }
    }
}

#[cfg(feature = "gpu")]
// burn deprecates its LibTorch backend for burn-cuda, whose runtime does not build
// here (it downloads LLVM); LibTorch is qdq's GPU backend until it does.
#[allow(deprecated)]
fn cuda(ordinal: usize) -> Result<Device> {
    qdq_cuda::Gpu::get(ordinal).map_err(|e| Error::Gpu(e.to_string()))?;
    Ok(Device::libtorch_cuda(ordinal))
}

#[cfg(not(feature = "gpu"))]
fn cuda(ordinal: usize) -> Result<Device> {
    Err(Error::Gpu(format!(
        "device cuda:{ordinal} needs a qdq built with the `gpu` feature (cargo build --release --features gpu; see README, \"GPU\")"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(device("cpu").unwrap(), Device::flex());
        for bad in ["", "gpu", "cuda:", "cuda:x", "cuda0", "CPU"] {
            let e = device(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
        // Without the feature, a CUDA device is refused with the way to get one.
        #[cfg(not(feature = "gpu"))]
        {
            let e = device("cuda:1").unwrap_err().to_string();
            assert!(e.contains("cuda:1") && e.contains("`gpu` feature"), "{e}");
        }
    }
}
