"""The GPU code paths, tested as far as a CPU can: ``torch.cuda``'s answers faked, the work run on the CPU.

A T4 (compute capability 7.5) trains in fp16 with loss scaling and never in bf16, although
``torch.cuda.is_bf16_supported()`` answers True there (bf16 can be emulated); capability 8.0 and
newer train in bf16. ``--compile`` changes nothing about that. ``gpu-check`` refuses a CPU in one
sentence and, on a (faked) GPU, runs its stages within its time budget.
"""

import ast
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from simclr_helpers.lab import gpucheck
from simclr_helpers.runtime import Precision, pick_precision

PACKAGE = Path(__file__).resolve().parents[1] / "simclr_helpers"


def fake_capability(monkeypatch, capability, memory_gb=16.0, name="Tesla T4", available=True):
    props = SimpleNamespace(name=name, major=capability[0], minor=capability[1], total_memory=int(memory_gb * 1e9))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what a T4 answers
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    if available:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("capability, dtype, scaler", [
    ((7, 5), torch.float16, True),  # T4
    ((7, 0), torch.float16, True),  # V100
    ((6, 0), torch.float16, True),  # P100
    ((8, 0), torch.bfloat16, False),  # A100
    ((8, 9), torch.bfloat16, False),  # L4
    ((9, 0), torch.bfloat16, False),  # H100
])
def test_precision_follows_the_compute_capability(monkeypatch, capability, dtype, scaler):
    fake_capability(monkeypatch, capability)
    p = pick_precision(torch.device("cuda"))
    assert p.dtype == dtype and p.scaler == scaler
    assert p.name == ("fp16" if dtype == torch.float16 else "bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert p.grad_scaler("cpu").is_enabled() == scaler  # enabled for fp16 only
    assert pick_precision(torch.device("cuda"), amp=False) == Precision(None, False)
    assert pick_precision(torch.device("cpu")) == Precision(None, False)


def _uses(module_path: Path, attribute: str) -> list[str]:
    """Functions (or <module>) of a module that use ``something.<attribute>``."""
    tree = ast.parse(module_path.read_text())
    found = []
    for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)] + [tree]:
        for node in ast.walk(func):
            if isinstance(node, ast.Attribute) and node.attr == attribute:
                found.append(getattr(func, "name", "<module>"))
                break
    return found


def test_nothing_but_pick_precision_chooses_bf16_and_nothing_asks_is_bf16_supported():
    for path in PACKAGE.glob("*.py"):
        assert not _uses(path, "is_bf16_supported"), f"{path.name} asks torch.cuda.is_bf16_supported()"
        users = set(_uses(path, "bfloat16")) - {"<module>"}
        allowed = {"pick_precision", "name"} if path.name == "runtime.py" else set()
        assert users <= allowed, f"{path.name}: {sorted(users - allowed)} use torch.bfloat16"
        text = path.read_text()
        assert "set_float32_matmul_precision" not in text and "allow_bf16_reduced" not in text, path.name


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((9, 0), torch.bfloat16)])
def test_compile_keeps_the_precision_of_the_capability(monkeypatch, bundled, tiny_profile, tmp_path,
                                                        capability, expected):
    """``pretrain(compile=True)``: what it compiles and every autocast it asks for, with the precision a GPU of
    ``capability`` gets (the steps themselves run on the CPU in fp32: autocast and compile are recorded)."""
    from simclr_helpers import train
    from simclr_helpers.checkpoints import RunRecord

    fake_capability(monkeypatch, capability, available=False)
    compiled, autocasts = [], []

    def spy_compile(model, *args, **kwargs):
        compiled.append((args, kwargs))
        return model

    real_autocast = torch.autocast

    def spy_autocast(device_type, dtype=None, enabled=True, **kwargs):
        autocasts.append((device_type, dtype, enabled))
        return real_autocast(device_type, enabled=False)

    monkeypatch.setattr(torch, "compile", spy_compile)
    monkeypatch.setattr(torch, "autocast", spy_autocast)
    monkeypatch.setattr(train, "pick_precision", lambda dev, amp=True: pick_precision(torch.device("cuda"), amp))
    train_set = bundled.train.balanced_subset(128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GradScaler("cuda") without CUDA: it disables itself
        result = train.pretrain(tiny_profile.with_overrides(epochs=1), train_set, tmp_path, compile=True,
                                progress=False)
    assert result.precision == ("fp16" if expected == torch.float16 else "bf16")
    assert compiled == [((), {})]  # torch.compile(model): no mode, options or dtype that could choose bf16
    asked = {dtype for _, dtype, enabled in autocasts if enabled}
    assert asked == {expected}, autocasts
    record = RunRecord.load(result.checkpoint)
    assert {v.dtype for v in record.model.values() if v.is_floating_point()} == {torch.float32}
    assert (record.scaler is not None) == (expected == torch.float16)


def test_gpu_check_on_a_cpu_is_one_sentence_and_status_2(monkeypatch, capsys):
    from simclr_helpers.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {gpucheck.NO_GPU}" and err.count("\n") == 0
    assert "no GPU" in err


@pytest.fixture
def faked_stages(monkeypatch, bundled):
    """gpu-check on a faked T4 with every measuring stage replaced by a recorder."""
    from simclr_helpers.lab import benchmark

    fake_capability(monkeypatch, (7, 5), 15.8, "Tesla T4")
    calls = []

    def short(data, device, budget_s, profile=None):
        calls.append(("pretrain", data, str(device)))
        return {"projected_colab_minutes_on_this_gpu": 21.0}, bundled.train.images

    def sweep(images, device, batch_sizes, stem, steps, repeats, compile):
        calls.append(("sweep", stem, compile, batch_sizes))
        return {"stem": stem, "rows": [{"batch_size": 512, "compile": compile, "images_per_s": 1.0}]}

    def bench(images, device, batch_size, stem, **kwargs):
        calls.append(("benchmark", stem))
        return {"stem": stem}

    monkeypatch.setattr(gpucheck, "short_pretraining", short)
    monkeypatch.setattr(benchmark, "training_sweep", sweep)
    monkeypatch.setattr(benchmark, "run_benchmark", bench)
    return calls


def test_gpu_check_runs_every_stage_when_there_is_time(faked_stages, monkeypatch):
    monkeypatch.setenv("SIMCLR_PROFILE", "x")
    monkeypatch.delenv("SIMCLR_PROFILE")
    result = gpucheck.gpu_check(budget_s=480)
    json.dumps(result)  # JSON as printed
    assert result["gpu"] == {"name": "Tesla T4", "capability": "7.5", "memory_gb": 15.8}
    assert (result["auto_profile"], result["precision"], result["loss_scaling"]) == ("colab", "fp16", True)
    assert faked_stages == [("pretrain", None, "cuda"),
                            ("sweep", "cifar", False, (512,)), ("sweep", "imagenet", False, (512,)),
                            ("benchmark", "cifar"), ("benchmark", "imagenet"),
                            ("sweep", "cifar", True, (512,)), ("sweep", "imagenet", True, (512,))]
    assert result["skipped"] == [] and result["errors"] == []
    assert result["estimate"]["note"].endswith("not measured on a GPU")


def test_gpu_check_skips_what_does_not_fit_and_goes_on_after_a_failure(faked_stages, monkeypatch):
    from simclr_helpers.lab import benchmark

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory\nmore")

    monkeypatch.setattr(benchmark, "run_benchmark", broken)
    result = gpucheck.gpu_check(budget_s=gpucheck.COMPILE_NEEDS_S - 1)
    assert [c[0] for c in faked_stages] == ["pretrain", "sweep", "sweep"]
    assert result["errors"] == [f"blog pipeline vs fast path, {stem} stem: RuntimeError: CUDA error: out of memory"
                                for stem in ("cifar", "imagenet")]
    skipped = [s.split(" (")[0] for s in result["skipped"]]
    assert skipped == ["torch.compile, cifar stem", "torch.compile, imagenet stem"]
    assert result["sweep_compiled"] == {"cifar": None, "imagenet": None}


def test_gpu_check_command_exits_1_when_a_stage_failed(faked_stages, monkeypatch, capsys):
    from simclr_helpers.cli import main
    from simclr_helpers.lab import benchmark

    monkeypatch.setattr(benchmark, "training_sweep", lambda *a, **k: 1 / 0)
    assert main(["gpu-check", "--minutes", "2"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["errors"][0].startswith("training throughput, cifar stem: ZeroDivisionError")


def test_short_pretraining_stops_when_its_time_is_up(tiny_profile, monkeypatch):
    """The real stage on the CPU with a tiny profile: stopped after its first epoch, then the kNN of that checkpoint."""
    res, images = gpucheck.short_pretraining("bundled", torch.device("cpu"), budget_s=0.01,
                                             profile=tiny_profile.with_overrides(epochs=3, train_limit=320))
    assert res["stopped_early"] and res["epochs"] == 1 and len(res["train_seconds_per_epoch"]) == 1
    assert 0.0 <= res["knn_top1"] <= 1.0 and res["knn_test_images"] == 1000
    assert res["projected_colab_minutes_on_this_gpu"] is None and "full CIFAR-10" in res["projection_note"]
    assert res["data"] == "bundled subset" and images.dtype == torch.uint8
    json.dumps(res)


@pytest.mark.parametrize("cmd", ["gpu-check", "set-repository"])
def test_new_commands_have_help_with_examples(cmd, capsys):
    from simclr_helpers.cli import main

    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0 and "examples:" in capsys.readouterr().out
