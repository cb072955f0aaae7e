//! qdq's CUDA kernels, launched on raw device pointers.
//!
//! Four fused passes, each one read of its inputs and one write, on the same legacy
//! default stream PyTorch (and so burn's LibTorch backend) uses:
//! - [`Gpu::fake_quant`]: `fake_tensor_quant` / `tensor_quant`, per tensor or any
//!   broadcast amax, with the unsigned-input check folded in;
//! - [`Gpu::ste_backward`]: the straight-through gradient, `g` where `|x| <= amax`;
//! - [`Gpu::abs_scan`]: largest `|x|` and number of zeros (max calibration, and the
//!   first half of histogram collection);
//! - [`Gpu::histogram`]: `torch.histc(|x|)` bins, counted in shared memory; only the
//!   counts come back to the host.
//!
//! The kernels (`kernels.cu`) are compiled by NVRTC the first time a device is used.
//! Values are bit for bit those of qdq's CPU kernels: explicit round-to-nearest
//! multiplies and divides, `rintf` for half to even. libcuda and libnvrtc are loaded
//! at run time, so this crate builds on machines without CUDA, where [`Gpu::get`]
//! returns [`Error::Unavailable`].

#![deny(missing_docs)]

use std::sync::{Arc, OnceLock};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg,
};

/// What went wrong on the GPU side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No CUDA driver or NVRTC library could be loaded, or there is no such device.
    #[error(
        "CUDA is not available for device {ordinal}: {reason} (qdq's GPU kernels need the NVIDIA driver's libcuda and NVRTC's libnvrtc; put the folder holding libnvrtc.so, e.g. the CUDA toolkit's lib64 or pip's nvidia/cu13/lib, on LD_LIBRARY_PATH, or set QDQ_NVRTC to the file)"
    )]
    Unavailable {
        /// The CUDA device ordinal asked for.
        ordinal: usize,
        /// Why loading or opening failed.
        reason: String,
    },
    /// NVRTC rejected the kernels (a toolkit older than the driver's GPU).
    #[error("NVRTC could not compile qdq's kernels for device {ordinal}: {reason}")]
    Compile {
        /// The CUDA device ordinal.
        ordinal: usize,
        /// NVRTC's log.
        reason: String,
    },
    /// A CUDA call failed (out of memory, a bad pointer, a sticky earlier error).
    #[error("CUDA call failed in {what}: {reason}")]
    Driver {
        /// The operation that failed (a launch, a copy, an allocation).
        what: &'static str,
        /// The driver's error.
        reason: String,
    },
}

/// Result alias of qdq-cuda.
pub type Result<T> = std::result::Result<T, Error>;

fn driver(what: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> Error {
    move |e| Error::Driver {
        what,
        reason: e.to_string(),
    }
}

/// The CUDA source of every kernel, for inspection and tests.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Threads per block of every launch.
const THREADS: u32 = 256;
/// Shared memory a block may use without opting in (48 KiB): 12 Ki `u32` bins.
const SHARED_BINS: usize = 48 * 1024 / 4;

/// How an amax broadcasts over the data: element `i` uses `entries[(i / inner) % period]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Scales {
    /// One entry for the whole tensor.
    Tensor(Entry),
    /// One entry per block of `inner` contiguous elements, repeating every `entries.len()` blocks.
    Blocks {
        /// One entry per block, in order; repeats every `entries.len()` blocks.
        entries: Vec<Entry>,
        /// Contiguous elements per block.
        inner: u64,
    },
}

/// The constants of one amax entry (as qdq's CPU `IntParams`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Entry {
    /// Multiplier before rounding: `max_bound / amax`, or 0 when `amax <= 2^-24`.
    pub scale_round: f32,
    /// Divisor after rounding: `max_bound / amax`, or 1 when `amax <= 2^-24`.
    pub scale_out: f32,
    /// The straight-through bound: amax.
    pub bound: f32,
}

/// One integer grid, as the CPU kernels take it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// Smallest code (`-127` for narrow 8-bit, `0` unsigned).
    pub lo: f32,
    /// Largest code.
    pub hi: f32,
}

/// A CUDA device with qdq's kernels loaded.
pub struct Gpu {
    ordinal: usize,
    stream: Arc<CudaStream>,
    blocks: u32,
    fake_quant_tensor: CudaFunction,
    fake_quant_entries: CudaFunction,
    ste_backward_tensor: CudaFunction,
    ste_backward_entries: CudaFunction,
    abs_scan: CudaFunction,
    histogram_shared: CudaFunction,
    histogram_global: CudaFunction,
}

/// Devices the process has set up, by ordinal.
const MAX_DEVICES: usize = 16;
static DEVICES: [OnceLock<std::result::Result<Gpu, String>>; MAX_DEVICES] =
    [const { OnceLock::new() }; MAX_DEVICES];

impl Gpu {
    /// Device `ordinal` with the kernels compiled (once per process).
    ///
    /// # Errors
    /// [`Error::Unavailable`] without a driver, NVRTC or such a device;
    /// [`Error::Compile`] when NVRTC rejects the kernels.
    pub fn get(ordinal: usize) -> Result<&'static Gpu> {
        let slot = DEVICES.get(ordinal).ok_or_else(|| Error::Unavailable {
            ordinal,
            reason: format!("qdq supports device ordinals below {MAX_DEVICES}"),
        })?;
        match slot.get_or_init(|| Self::init(ordinal).map_err(|e| e.to_string())) {
            Ok(gpu) => Ok(gpu),
            Err(reason) => Err(Error::Unavailable {
                ordinal,
                reason: reason.clone(),
            }),
        }
    }

    fn init(ordinal: usize) -> Result<Gpu> {
        // cudarc panics when it cannot dlopen a library: look for it first.
        if !loadable("cuda") {
            return Err(Error::Unavailable {
                ordinal,
                reason: "libcuda.so (the NVIDIA driver) could not be loaded".into(),
            });
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|p| Error::Unavailable {
                ordinal,
                reason: panic_text(p),
            })?
            .map_err(|e| Error::Unavailable {
                ordinal,
                reason: e.to_string(),
            })?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("compute_capability"))?;
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(driver("multiprocessor count"))?;
        let ptx = compile(arch_for(major, minor)).map_err(|e| match e {
            Error::Unavailable { reason, .. } => Error::Unavailable { ordinal, reason },
            Error::Compile { reason, .. } => Error::Compile { ordinal, reason },
            other => other,
        })?;
        // One stream (PyTorch's), so cudarc's cross-stream events are pure overhead.
        // SAFETY: every launch and copy of this crate goes to that one stream.
        unsafe { ctx.disable_event_tracking() };
        let module = ctx.load_module(ptx).map_err(driver("load_module"))?;
        let f = |name: &str| module.load_function(name).map_err(driver("load_function"));
        Ok(Gpu {
            ordinal,
            stream: ctx.default_stream(),
            // Enough blocks to fill every SM several times; the loops stride over the rest.
            blocks: (sms.max(1) as u32) * 16,
            fake_quant_tensor: f("fake_quant_tensor")?,
            fake_quant_entries: f("fake_quant_entries")?,
            ste_backward_tensor: f("ste_backward_tensor")?,
            ste_backward_entries: f("ste_backward_entries")?,
            abs_scan: f("abs_scan")?,
            histogram_shared: f("histogram_shared")?,
            histogram_global: f("histogram_global")?,
        })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn config(&self, work: u64, shared: u32) -> LaunchConfig {
        let wanted = work.div_ceil(u64::from(THREADS)).max(1);
        LaunchConfig {
            grid_dim: (wanted.min(u64::from(self.blocks)) as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: shared,
        }
    }

    /// Writes `quantize(x)` (divided back by the scale when `divide`) to `y`.
    /// Returns whether any input was negative, when `check_negative` (the caller
    /// then reports the unsigned-grid error; `y` is written regardless).
    ///
    /// # Safety
    /// `x` and `y` must be device pointers on this device to `n` `f32`s each (they may
    /// be equal), valid until the default stream reaches this launch.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn fake_quant(
        &self,
        x: u64,
        y: u64,
        n: u64,
        scales: &Scales,
        grid: Grid,
        divide: bool,
        check_negative: bool,
    ) -> Result<bool> {
        if n == 0 {
            return Ok(false);
        }
        // The negative-input flag, only when it is read.
        let flag = if check_negative {
            Some(self.stream.alloc_zeros::<i32>(1).map_err(driver("alloc"))?)
        } else {
            None
        };
        let divide = i32::from(divide);
        let null = 0u64;
        let aligned = x.is_multiple_of(16) && y.is_multiple_of(16);
        match scales {
            Scales::Tensor(e) if aligned => {
                let mut b = self.stream.launch_builder(&self.fake_quant_tensor);
                b.arg(&x).arg(&y).arg(&n);
                b.arg(&e.scale_round)
                    .arg(&e.scale_out)
                    .arg(&grid.lo)
                    .arg(&grid.hi);
                b.arg(&divide);
                match &flag {
                    Some(f) => b.arg(f),
                    None => b.arg(&null),
                };
                unsafe { b.launch(self.config(n.div_ceil(4), 0)) }
                    .map_err(driver("fake_quant_tensor"))?;
            }
            _ => {
                let (entries, inner) = blocks(scales, n);
                let entries = self.upload(&entries)?;
                let period = (entries.len() / 3) as u64;
                let mut b = self.stream.launch_builder(&self.fake_quant_entries);
                b.arg(&x)
                    .arg(&y)
                    .arg(&n)
                    .arg(&entries)
                    .arg(&inner)
                    .arg(&period);
                b.arg(&grid.lo).arg(&grid.hi).arg(&divide);
                match &flag {
                    Some(f) => b.arg(f),
                    None => b.arg(&null),
                };
                unsafe { b.launch(self.config(n, 0)) }.map_err(driver("fake_quant_entries"))?;
            }
        }
        let Some(flag) = flag else {
            return Ok(false);
        };
        let seen = self.stream.clone_dtoh(&flag).map_err(driver("read flag"))?;
        Ok(seen[0] != 0)
    }

    /// Writes the straight-through gradient to `gx`: `g` where `|x| <= bound`, `+0`
    /// elsewhere.
    ///
    /// # Safety
    /// `x`, `g` and `gx` must be device pointers on this device to `n` `f32`s each.
    pub unsafe fn ste_backward(
        &self,
        x: u64,
        g: u64,
        gx: u64,
        n: u64,
        scales: &Scales,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        match scales {
            Scales::Tensor(e) if [x, g, gx].iter().all(|p| p.is_multiple_of(16)) => {
                let mut b = self.stream.launch_builder(&self.ste_backward_tensor);
                b.arg(&x).arg(&g).arg(&gx).arg(&n).arg(&e.bound);
                unsafe { b.launch(self.config(n.div_ceil(4), 0)) }
                    .map_err(driver("ste_backward_tensor"))?;
            }
            _ => {
                let (entries, inner) = blocks(scales, n);
                let entries = self.upload(&entries)?;
                let period = (entries.len() / 3) as u64;
                let mut b = self.stream.launch_builder(&self.ste_backward_entries);
                b.arg(&x)
                    .arg(&g)
                    .arg(&gx)
                    .arg(&n)
                    .arg(&entries)
                    .arg(&inner)
                    .arg(&period);
                unsafe { b.launch(self.config(n, 0)) }.map_err(driver("ste_backward_entries"))?;
            }
        }
        Ok(())
    }

    /// The largest `|x|` bit pattern (NaN and Inf patterns sort above every finite
    /// value) and the number of zeros (`±0`).
    ///
    /// # Safety
    /// `x` must be a device pointer on this device to `n` `f32`s.
    pub unsafe fn abs_scan(&self, x: u64, n: u64) -> Result<(u32, u64)> {
        if n == 0 {
            return Ok((0, 0));
        }
        let max_bits = self.stream.alloc_zeros::<u32>(1).map_err(driver("alloc"))?;
        let zeros = self.stream.alloc_zeros::<u64>(1).map_err(driver("alloc"))?;
        let mut b = self.stream.launch_builder(&self.abs_scan);
        b.arg(&x).arg(&n).arg(&max_bits).arg(&zeros);
        unsafe { b.launch(self.config(n, 0)) }.map_err(driver("abs_scan"))?;
        let m = self
            .stream
            .clone_dtoh(&max_bits)
            .map_err(driver("read max"))?;
        let z = self
            .stream
            .clone_dtoh(&zeros)
            .map_err(driver("read zeros"))?;
        Ok((m[0], z[0]))
    }

    /// Adds the histogram of `|x|` over `bins` bins of `[0, hi]` to `counts`, with
    /// qdq's (and `torch.histc`'s) bin of each value: `floor(min(|x| * bins / hi, bins - 1))`.
    /// The data must hold no NaN or Inf (check with [`Gpu::abs_scan`] first).
    ///
    /// # Safety
    /// `x` must be a device pointer on this device to `n` `f32`s.
    pub unsafe fn histogram(&self, x: u64, n: u64, hi: f32, counts: &mut [u64]) -> Result<()> {
        let bins = counts.len();
        if n == 0 || bins == 0 {
            return Ok(());
        }
        let mut device = self
            .stream
            .alloc_zeros::<u64>(bins)
            .map_err(driver("alloc"))?;
        let nb = bins as f32;
        if bins <= SHARED_BINS {
            let bins32 = bins as u32;
            let mut b = self.stream.launch_builder(&self.histogram_shared);
            b.arg(&x)
                .arg(&n)
                .arg(&nb)
                .arg(&hi)
                .arg(&bins32)
                .arg(&mut device);
            unsafe { b.launch(self.config(n, bins32 * 4)) }.map_err(driver("histogram_shared"))?;
        } else {
            let mut b = self.stream.launch_builder(&self.histogram_global);
            b.arg(&x).arg(&n).arg(&nb).arg(&hi).arg(&mut device);
            unsafe { b.launch(self.config(n, 0)) }.map_err(driver("histogram_global"))?;
        }
        let got = self
            .stream
            .clone_dtoh(&device)
            .map_err(driver("read histogram"))?;
        for (c, g) in counts.iter_mut().zip(got) {
            *c += g;
        }
        Ok(())
    }

    /// Waits for every launch on the stream (for timing).
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(driver("synchronize"))
    }

    fn upload<T: DeviceRepr>(&self, values: &[T]) -> Result<cudarc::driver::CudaSlice<T>> {
        self.stream.clone_htod(values).map_err(driver("upload"))
    }
}

/// The libraries loaded by [`preload`], kept for the life of the process.
static PRELOADED: std::sync::Mutex<Vec<libloading::Library>> = std::sync::Mutex::new(Vec::new());

/// Loads a CUDA library (e.g. `libnvrtc.so.13` from pip's `nvidia/cu13/lib`) by path,
/// so that later lookups by name find it without `LD_LIBRARY_PATH`.
/// `QDQ_NVRTC=/path/to/libnvrtc.so.13` does the same for NVRTC at start-up.
///
/// # Errors
/// [`Error::Unavailable`] when the file cannot be loaded.
///
/// NVRTC opens its builtins library (`libnvrtc-builtins.so.*`) by name too, so one
/// found beside `path` is loaded with it.
pub fn preload(path: &std::path::Path) -> Result<()> {
    let load = |p: &std::path::Path| {
        // SAFETY: loading a CUDA library runs only its initialisers.
        unsafe { libloading::Library::new(p) }.map_err(|e| Error::Unavailable {
            ordinal: 0,
            reason: format!("{}: {e}", p.display()),
        })
    };
    let mut libs = vec![load(path)?];
    let builtins = path
        .parent()
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libnvrtc-builtins.so"))
        });
    for b in builtins {
        libs.push(load(&b)?);
    }
    PRELOADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(libs);
    Ok(())
}

/// Whether cudarc will find library `lib` ("cuda", "nvrtc") by one of its names.
fn loadable(lib: &str) -> bool {
    cudarc::get_lib_name_candidates(lib)
        .iter()
        // SAFETY: as in `preload`.
        .any(|name| unsafe { libloading::Library::new(name) }.is_ok())
}

/// qdq's kernels compiled to PTX by NVRTC for `arch` (e.g. `Some("compute_90")`;
/// `None`: NVRTC's default), with the options every launch uses. Needs libnvrtc, not
/// a GPU.
///
/// # Errors
/// [`Error::Unavailable`] without libnvrtc; [`Error::Compile`] if NVRTC rejects the source.
pub fn compile_ptx(arch: Option<&'static str>) -> Result<String> {
    Ok(compile(arch)?.to_src())
}

fn compile(arch: Option<&'static str>) -> Result<cudarc::nvrtc::Ptx> {
    if let Some(path) = std::env::var_os("QDQ_NVRTC") {
        preload(std::path::Path::new(&path))?;
    }
    if !loadable("nvrtc") {
        return Err(Error::Unavailable {
            ordinal: 0,
            reason: "libnvrtc.so (NVRTC) could not be loaded".into(),
        });
    }
    let opts = cudarc::nvrtc::CompileOptions {
        arch,
        // Spelled out, though mostly NVRTC's defaults: values must not depend on them.
        prec_div: Some(true),
        ftz: Some(false),
        fmad: Some(false),
        name: Some("qdq_kernels.cu".into()),
        ..Default::default()
    };
    std::panic::catch_unwind(|| cudarc::nvrtc::compile_ptx_with_opts(SOURCE, opts))
        .map_err(|p| Error::Unavailable {
            ordinal: 0,
            reason: panic_text(p),
        })?
        .map_err(|e| Error::Compile {
            ordinal: 0,
            reason: e.to_string(),
        })
}

/// The entries flattened to `[scale_round, scale_out, bound]` triples, and `inner`.
fn blocks(scales: &Scales, n: u64) -> (Vec<f32>, u64) {
    let (entries, inner) = match scales {
        Scales::Tensor(e) => (std::slice::from_ref(e), n),
        Scales::Blocks { entries, inner } => (entries.as_slice(), *inner),
    };
    let flat = entries
        .iter()
        .flat_map(|e| [e.scale_round, e.scale_out, e.bound])
        .collect();
    (flat, inner.max(1))
}

/// NVRTC's `--gpu-architecture` for a compute capability (it wants a `'static` string).
fn arch_for(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        // Unknown: NVRTC's default virtual architecture, JIT-compiled by the driver.
        _ => return None,
    })
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a CUDA library could not be loaded".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_flatten_entries_and_default_inner() {
        let e = Entry {
            scale_round: 63.5,
            scale_out: 63.5,
            bound: 2.0,
        };
        assert_eq!(blocks(&Scales::Tensor(e), 10), (vec![63.5, 63.5, 2.0], 10));
        let two = Scales::Blocks {
            entries: vec![e, Entry { bound: 4.0, ..e }],
            inner: 0,
        };
        assert_eq!(blocks(&two, 10).0.len(), 6);
        assert_eq!(blocks(&two, 10).1, 1);
    }

    #[test]
    fn a_missing_device_is_a_typed_error_not_a_panic() {
        // Ordinal 16 is past what qdq sets up; on a machine without CUDA every ordinal
        // fails the same way, with the library it could not load in the message.
        let e = Gpu::get(MAX_DEVICES).err().expect("no device 16");
        assert!(matches!(e, Error::Unavailable { ordinal: 16, .. }), "{e}");
        if let Err(e) = Gpu::get(0) {
            assert!(matches!(e, Error::Unavailable { ordinal: 0, .. }), "{e}");
            assert!(e.to_string().contains("LD_LIBRARY_PATH"), "{e}");
        }
    }

    #[test]
    fn known_architectures_compile_for_their_own_virtual_arch() {
        assert_eq!(arch_for(9, 0), Some("compute_90"));
        assert_eq!(arch_for(8, 6), Some("compute_86"));
        assert_eq!(arch_for(6, 1), None);
    }
}
