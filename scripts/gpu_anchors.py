"""The comparison side of scripts/gpu-check.sh, on the same card: device copy
bandwidth, torch's fused fake_quantize_per_tensor_affine, pytorch-quantization's
fake quant written as its own torch ops (tensor_quant.py's arithmetic), and its
HistogramCalibrator.collect (calib/histogram.py, torch path). Prints RESULT lines."""
import json
import torch

dev = torch.device("cuda")


def result(what, **fields):
    fields["what"] = what
    print("RESULT " + json.dumps(fields), flush=True)


def time_ms(f, reps=20):
    for _ in range(2):
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        f()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def reference_fake_quant(x, amax, num_bits=8):
    # pytorch-quantization tensor_quant.py, _tensor_quant + fake: scale, round, clamp, divide.
    max_bound = torch.tensor(2.0 ** (num_bits - 1) - 1.0, device=amax.device)
    scale = max_bound / amax
    out = torch.clamp((x * scale).round_(), -max_bound, max_bound)
    return out / scale


class ReferenceHistogram:
    # pytorch-quantization calib/histogram.py HistogramCalibrator.collect, torch path.
    def __init__(self, num_bins=2048):
        self.num_bins, self.hist, self.edges = num_bins, None, None

    def collect(self, x):
        if torch.min(x) < 0.0:
            x = x.abs()
        x = x.float()
        with torch.no_grad():
            x_max = x.max()
            if self.edges is None and self.hist is None:
                self.hist = torch.histc(x, bins=self.num_bins, min=0, max=x_max)
                self.edges = torch.linspace(0, x_max, self.num_bins + 1)
            else:
                if x_max > self.edges[-1]:
                    width = self.edges[1] - self.edges[0]
                    self.num_bins = int((x_max / width).ceil().item())
                    self.edges = torch.arange(0, x_max + width, width, device=x.device)
                hist = torch.histc(x, bins=self.num_bins, min=0, max=self.edges[-1])
                hist[: self.hist.numel()] += self.hist
                self.hist = hist


def main():
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)
    n = 256 << 20
    x = torch.randn(n, device=dev)
    y = torch.empty_like(x)
    gb = 2 * 4 * n / 1e9
    copy = time_ms(lambda: y.copy_(x))
    amax = torch.tensor(3.0, device=dev)
    builtin = time_ms(lambda: torch.fake_quantize_per_tensor_affine(x, 3.0 / 127, 0, -127, 127))
    reference = time_ms(lambda: reference_fake_quant(x, amax), reps=10)
    print(f"copy 256 M values: {copy:.3f} ms ({gb / copy:.2f} TB/s); torch fake_quantize_per_tensor_affine "
          f"{builtin:.3f} ms; pytorch-quantization's op chain {reference:.3f} ms", flush=True)
    result("anchors_256M", values=n, copy_ms=copy, copy_tb_s=gb / copy, torch_builtin_ms=builtin,
           reference_chain_ms=reference)
    # Bits: torch's built-in against the reference arithmetic (scale = amax/127 and a
    # reciprocal multiply, against 127/amax and a true division).
    differ = int((torch.fake_quantize_per_tensor_affine(x, 3.0 / 127, 0, -127, 127)
                  != reference_fake_quant(x, amax)).sum())
    result("torch_builtin_vs_reference_bits", values=n, differ=differ)
    print(f"torch built-in vs reference arithmetic: {differ} of {n} values differ", flush=True)
    del x, y
    m = 51 << 20
    act = torch.randn(m, device=dev).clamp_min(0.0)
    calib = ReferenceHistogram()
    hist = time_ms(lambda: calib.collect(act))
    histc = time_ms(lambda: torch.histc(act, bins=2048, min=0, max=4.0))
    print(f"reference histogram collect 51 M values: {hist:.3f} ms (torch.histc alone {histc:.3f} ms)", flush=True)
    result("anchors_histogram_51M", values=m, reference_collect_ms=hist, histc_ms=histc)


if __name__ == "__main__":
    main()
