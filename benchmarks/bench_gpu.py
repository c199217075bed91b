"""One epoch of full-batch training of ResNet-50 on CIFAR-10-shaped data: time, memory, TFLOP/s.

An epoch is what one Adam step of the paper's Section 6 costs: the gradient of the loss over
all N training images, accumulated over chunks by ``bea_lib.nets.module_net.full_batch_gradient``,
then the step of ``bea_lib.core.optimizers.Adam``. The data are fabricated (standard normal images,
uniform labels; N × 3 × 32 × 32 with N = 50,000 by default): the cost does not depend on them.

Reported: seconds per epoch (the best of ``--repeats`` epochs after one warm-up epoch), peak
memory (the device's allocator peak on CUDA; the process's peak resident set on CPU), the
floating-point operations of one epoch counted by ``torch.utils.flop_counter.FlopCounterMode``
(matrix products and convolutions, forward and backward, on one chunk, times the number of
chunks), and the achieved TFLOP/s against the device's peak: ``--peak-tflops``, or the dense
peak of the device from :data:`PEAK_TFLOPS` for the arithmetic used (bf16 with ``--bf16``,
TF32 for float32 on CUDA with TF32 allowed, float32 otherwise).

    python benchmarks/bench_gpu.py                          # CUDA if present; ResNet-50, N = 50,000
    python benchmarks/bench_gpu.py --chunk-size 1000 --channels-last --bf16
    python benchmarks/bench_gpu.py --device cpu --n 8 --image-size 8 --chunk-size 4 --threads 1

The result, with the command line and commit, is printed and written as JSON with ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path

import torch

from bea_lib.nets.models import MODELS, make_model
from bea_lib.nets.module_net import full_batch_gradient
from bea_lib.core.optimizers import Adam
from bea_lib.base.provenance import commit_label

# Dense peak TFLOP/s from the vendors' data sheets (no sparsity), by the arithmetic used; the
# first key that occurs in torch.cuda.get_device_name() wins.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.0},
    "H100": {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0},  # SXM
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L40S": {"bf16": 362.0, "tf32": 183.0, "fp32": 91.6},
    "A10": {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2},
    "V100": {"bf16": None, "tf32": None, "fp32": 15.7},  # no bf16 or TF32 tensor cores
}


def arithmetic(device: torch.device, bf16: bool) -> str:
    """Which peak applies: bf16 under autocast, TF32 for float32 on CUDA when allowed, else fp32."""
    if bf16:
        return "bf16"
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def device_peak(device: torch.device, kind: str) -> tuple[str, float | None]:
    """The device's name and its peak TFLOP/s for ``kind`` (:data:`PEAK_TFLOPS`; None: unknown)."""
    if device.type != "cuda":
        return "cpu", None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return name, peaks[kind]
    return name, None


def epoch_flops(model, x, y, *, chunk_size: int, autocast) -> int:
    """Floating-point operations of one epoch: one chunk's forward and backward, counted, times
    the number of chunks (a last, shorter chunk counted in proportion)."""
    from torch.utils.flop_counter import FlopCounterMode

    chunk = x[:chunk_size]
    counter = FlopCounterMode(display=False)
    with counter, autocast():
        full_batch_gradient(model, chunk, y[:chunk_size], chunk_size=chunk_size)
    return round(counter.get_total_flops() * len(x) / len(chunk))


def peak_memory_bytes(device: torch.device) -> int:
    """The allocator's peak on CUDA; the process's peak resident set on CPU (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run(*, model: str = "resnet50", n: int = 50_000, image_size: int = 32, n_classes: int = 10,
        chunk_size: int = 500, channels_last: bool = False, bf16: bool = False,
        device: str | None = None, repeats: int = 2, peak_tflops: float | None = None,
        seed: int = 0) -> dict:
    """Measure one full-batch epoch (see the module docstring); returns the result as a dict."""
    for name, value, low in (("n", n, 1), ("image_size", image_size, 1),
                             ("chunk_size", chunk_size, 1),
                             ("repeats", repeats, 1), ("n_classes", n_classes, 2)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    net = make_model(model, (3, image_size, image_size), n_classes).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    x = torch.randn(n, 3, image_size, image_size, device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, n_classes, (n,), device=dev)
    opt = Adam(net.parameters(), lr=1e-4, beta=0.99, rho=0.999, eps=1e-8)
    autocast = (lambda: torch.autocast(dev.type,
                                       dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def epoch() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        with autocast():
            full_batch_gradient(net, x, y, chunk_size=chunk_size)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0

    flops = epoch_flops(net, x, y, chunk_size=chunk_size, autocast=autocast)
    epoch()  # warm-up: allocator, cuDNN's algorithm choice
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    seconds = min(epoch() for _ in range(repeats))
    kind = arithmetic(dev, bf16)
    name, table_peak = device_peak(dev, kind)
    peak = peak_tflops if peak_tflops is not None else table_peak
    achieved = flops / seconds / 1e12
    return {"model": model, "n": n, "image_size": image_size, "chunk_size": chunk_size,
            "channels_last": channels_last, "bf16": bf16, "device": name, "arithmetic": kind,
            "seconds_per_epoch": seconds, "peak_memory_gib": peak_memory_bytes(dev) / 2**30,
            "tflop_per_epoch": flops / 1e12, "achieved_tflops": achieved, "peak_tflops": peak,
            "fraction_of_peak": None if peak is None else achieved / peak,
            "torch": torch.__version__, "commit": commit_label(Path(__file__).resolve().parents[1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50", choices=MODELS)
    parser.add_argument("--n", type=int, default=50_000, help="training images (CIFAR-10: 50,000)")
    parser.add_argument("--image-size", type=int, default=32, help="height = width (CIFAR: 32)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=500, help="images per forward/backward")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs; the best is kept")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s (default: PEAK_TFLOPS by device name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(model=args.model, n=args.n, image_size=args.image_size, n_classes=args.classes,
                 chunk_size=args.chunk_size, channels_last=args.channels_last, bf16=args.bf16,
                 device=args.device, repeats=args.repeats, peak_tflops=args.peak_tflops)
    result["command"] = " ".join(["python", "benchmarks/bench_gpu.py", *(argv or sys.argv[1:])])
    peak = "unknown peak" if result["peak_tflops"] is None else \
        f"{100 * result['fraction_of_peak']:.1f} % of {result['peak_tflops']:g}"
    print(f"{result['model']} on {result['n']} × 3 × {result['image_size']}² ({result['device']}, "
          f"{result['arithmetic']}, chunk {result['chunk_size']}): "
          f"{result['seconds_per_epoch']:.3f} s per epoch, peak memory "
          f"{result['peak_memory_gib']:.2f} GiB, "
          f"{result['achieved_tflops']:.3g} TFLOP/s ({peak})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
