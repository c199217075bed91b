"""benchmarks/bench_gpu.py on CPU at a tiny size: it runs, reports what it promises, and counts
the floating-point operations of an epoch correctly (checked against a hand count on an MLP)."""
import contextlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from bea_lib.nets.models import make_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
bench_gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_gpu)


def test_resnet50_epoch_on_cpu_at_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "result.json"
    bench_gpu.main(["--device", "cpu", "--n", "3", "--image-size", "4", "--chunk-size", "2",
                    "--repeats", "1", "--threads", "1", "--peak-tflops", "1.0", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["model"] == "resnet50" and result["device"] == "cpu"
    assert result["arithmetic"] == "fp32"
    assert result["seconds_per_epoch"] > 0 and result["peak_memory_gib"] > 0
    # ResNet-50 in the CIFAR form at 4 × 4 costs about 1.3 GFLOP × (4/32)² = 0.02 GMAC per
    # image forward, so a training step is well above 0.01 GFLOP per image: a loose floor
    assert result["tflop_per_epoch"] > 3 * 0.01e-3
    assert result["fraction_of_peak"] == pytest.approx(result["achieved_tflops"] / 1.0)
    assert "s per epoch" in capsys.readouterr().out


def test_flop_count_of_an_mlp_matches_a_hand_count():
    torch.manual_seed(0)
    model = make_model("mlp", (1, 40), 10, width=8)  # 40 -> 8 -> 8 -> 10
    x, y = torch.randn(12, 1, 40), torch.randint(0, 10, (12,))
    flops = bench_gpu.epoch_flops(model, x, y, chunk_size=5, autocast=contextlib.nullcontext)
    weights = [40 * 8, 8 * 8, 8 * 10]
    n = 12
    # forward 2·N·W per layer; backward: weight gradients 2·N·W for every layer, input gradients
    # 2·N·W for all but the first (the data need no gradient); chunk of 5 scaled to N = 12
    expected = 2 * n * sum(weights) + 2 * n * sum(weights) + 2 * n * sum(weights[1:])
    assert flops == expected


def test_peak_table_and_bad_input():
    assert bench_gpu.device_peak(torch.device("cpu"), "fp32") == ("cpu", None)
    assert bench_gpu.arithmetic(torch.device("cpu"), bf16=True) == "bf16"
    with pytest.raises(ValueError, match="chunk_size"):
        bench_gpu.run(model="mlp", n=4, chunk_size=0, device="cpu")
