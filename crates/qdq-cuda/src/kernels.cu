// qdq's quantization arithmetic on NVIDIA GPUs, compiled at run time by NVRTC.
//
// Every value is bit for bit what qdq's CPU kernels compute (qdq::tensor_quant::kernel,
// qdq::calib::histogram): each multiply and divide is an explicit round-to-nearest
// intrinsic, so neither FMA contraction nor a division turned into a multiply by a
// reciprocal can move a result by one ulp. rintf rounds half to even, like torch.round.

typedef unsigned long long u64;

// Per pattern entry: scale used for rounding, scale divided out, STE bound (amax).
struct __align__(4) Entry { float scale_round; float scale_out; float bound; };

__device__ __forceinline__ float clamp_keep_nan(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

__device__ __forceinline__ float quantize(float x, float sr, float so, float lo, float hi, int divide) {
    float q = rintf(clamp_keep_nan(__fmul_rn(x, sr), lo, hi));
    return divide ? __fdiv_rn(q, so) : q;
}

// One scale for the whole tensor; x and y 16-byte aligned. Thread t owns elements
// 4t..4t+3, read and written as one float4 where all four exist.
extern "C" __global__ void fake_quant_tensor(const float* __restrict__ x, float* __restrict__ y, u64 n,
                                             float sr, float so, float lo, float hi, int divide,
                                             int* negative) {
    int neg = 0;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; 4 * t < n; t += stride) {
        u64 i = 4 * t;
        if (i + 3 < n) {
            float4 v = reinterpret_cast<const float4*>(x)[t];
            neg |= (v.x < 0.0f) | (v.y < 0.0f) | (v.z < 0.0f) | (v.w < 0.0f);
            float4 o;
            o.x = quantize(v.x, sr, so, lo, hi, divide);
            o.y = quantize(v.y, sr, so, lo, hi, divide);
            o.z = quantize(v.z, sr, so, lo, hi, divide);
            o.w = quantize(v.w, sr, so, lo, hi, divide);
            reinterpret_cast<float4*>(y)[t] = o;
        } else {
            for (; i < n; ++i) {
                neg |= x[i] < 0.0f;
                y[i] = quantize(x[i], sr, so, lo, hi, divide);
            }
        }
    }
    if (negative != 0 && neg) atomicOr(negative, 1);
}

// Element i uses entry (i / inner) % period: any amax that broadcasts (per channel).
extern "C" __global__ void fake_quant_entries(const float* __restrict__ x, float* __restrict__ y, u64 n,
                                              const Entry* __restrict__ entries, u64 inner, u64 period,
                                              float lo, float hi, int divide, int* negative) {
    int neg = 0;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        Entry e = entries[(i / inner) % period];
        float v = x[i];
        neg |= v < 0.0f;
        y[i] = quantize(v, e.scale_round, e.scale_out, lo, hi, divide);
    }
    if (negative != 0 && neg) atomicOr(negative, 1);
}

// Straight-through gradient: g where |x| <= bound, +0 elsewhere (NaN x: outside).
extern "C" __global__ void ste_backward_tensor(const float* __restrict__ x, const float* __restrict__ g,
                                               float* __restrict__ gx, u64 n, float bound) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; 4 * t < n; t += stride) {
        u64 i = 4 * t;
        if (i + 3 < n) {
            float4 v = reinterpret_cast<const float4*>(x)[t];
            float4 d = reinterpret_cast<const float4*>(g)[t];
            float4 o;
            o.x = fabsf(v.x) <= bound ? d.x : 0.0f;
            o.y = fabsf(v.y) <= bound ? d.y : 0.0f;
            o.z = fabsf(v.z) <= bound ? d.z : 0.0f;
            o.w = fabsf(v.w) <= bound ? d.w : 0.0f;
            reinterpret_cast<float4*>(gx)[t] = o;
        } else {
            for (; i < n; ++i) gx[i] = fabsf(x[i]) <= bound ? g[i] : 0.0f;
        }
    }
}

extern "C" __global__ void ste_backward_entries(const float* __restrict__ x, const float* __restrict__ g,
                                                float* __restrict__ gx, u64 n,
                                                const Entry* __restrict__ entries, u64 inner, u64 period) {
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float bound = entries[(i / inner) % period].bound;
        gx[i] = fabsf(x[i]) <= bound ? g[i] : 0.0f;
    }
}

// Largest |x| bit pattern (Inf and NaN patterns sort above every finite one) and the
// number of zeros, as the CPU histogram's scan.
extern "C" __global__ void abs_scan(const float* __restrict__ x, u64 n, unsigned* max_bits, u64* zeros) {
    unsigned m = 0;
    u64 z = 0;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        unsigned b = __float_as_uint(x[i]) & 0x7fffffffu;
        m = max(m, b);
        z += (b == 0);
    }
    for (int o = 16; o > 0; o >>= 1) {
        m = max(m, __shfl_down_sync(0xffffffffu, m, o));
        z += __shfl_down_sync(0xffffffffu, z, o);
    }
    if ((threadIdx.x & 31) == 0) {
        atomicMax(max_bits, m);
        if (z) atomicAdd(zeros, z);
    }
}

// torch.histc(|x|, bins, 0, hi)'s bin, as qdq's CPU Binner: floor(min(|x| * bins / hi, bins - 1)).
__device__ __forceinline__ unsigned bin_of(float x, float nb, float hi, float last) {
    float y = __fdiv_rn(__fmul_rn(fabsf(x), nb), hi);
    y = y < last ? y : last;
    return (unsigned)y;
}

// Lanes of a warp that fall in the same bin add once (activations after ReLU put
// half their values in bin 0).
__device__ __forceinline__ void add_one(unsigned* counts, unsigned k) {
    unsigned same = __match_any_sync(__activemask(), k);
    if ((threadIdx.x & 31) == (unsigned)(__ffs(same) - 1)) atomicAdd(&counts[k], (unsigned)__popc(same));
}

// Bins in shared memory, one private histogram per block, added to the global u64
// counts at the end.
extern "C" __global__ void histogram_shared(const float* __restrict__ x, u64 n, float nb, float hi,
                                            unsigned bins, u64* counts) {
    extern __shared__ unsigned local[];
    for (unsigned b = threadIdx.x; b < bins; b += blockDim.x) local[b] = 0;
    __syncthreads();
    float last = nb - 1.0f;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        add_one(local, bin_of(x[i], nb, hi, last));
    }
    __syncthreads();
    for (unsigned b = threadIdx.x; b < bins; b += blockDim.x) {
        if (local[b]) atomicAdd(&counts[b], (u64)local[b]);
    }
}

// Histograms too large for shared memory: u64 atomics in global memory.
extern "C" __global__ void histogram_global(const float* __restrict__ x, u64 n, float nb, float hi,
                                            u64* counts) {
    float last = nb - 1.0f;
    u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        atomicAdd(&counts[bin_of(x[i], nb, hi, last)], 1ull);
    }
}
