"""The command line: results on stdout, one-sentence errors on stderr, exit statuses."""

import json
import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from simclr_helpers.cli import main


def run(*args, env=None):
    """The CLI in a real subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "simclr_helpers", *map(str, args)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_pretrain_shows_its_lines_on_stderr_as_they_are(tmp_path, capsys):
    """The package's lines come out plain (no level, no logger name) on stderr, stdout holding the result; once
    each, however many times the command runs in one process."""
    out = tmp_path / "run"
    args = ["pretrain", "--profile", "smoke", "--data", "bundled", "--epochs", "1", "--batch-size", "64",
            "--train-limit", "200", "--out", str(out), "--resume"]

    def lines(err: str) -> list[str]:  # without tqdm's progress bar
        return [line for line in err.splitlines() if line.strip() and "batch/s" not in line]

    assert main(args) == 0
    captured = capsys.readouterr()
    shown = lines(captured.err)
    assert shown[0].startswith("data: bundled CIFAR-10 subset/train, 180 training images (")
    assert shown[1] == f"no checkpoint at {out / 'last.pt'} yet; starting a new run"
    assert re.fullmatch(r"epoch   1/1: loss \d\.\d{4}, lr \d\.\d{4}, \d+ img/s, [\d.]+ s(, kNN top-1 [\d.]+%)?",
                        shown[2]), shown
    assert len(shown) == 3 and captured.out == f"checkpoint: {out / 'last.pt'}\n"
    assert main(args) == 0
    shown = lines(capsys.readouterr().err)
    assert shown[1:] == [f"{out / 'last.pt'} already finished 1 epochs; nothing to do"], shown


@pytest.mark.parametrize("cmd", ["pretrain", "evaluate", "predict", "benchmark", "build-subset"])
def test_help_has_examples(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_evaluate_prints_a_line_or_with_json_the_result_as_json(tiny_run, capsys):
    assert main(["evaluate", "--checkpoint", str(tiny_run.checkpoint), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "knn" and result["backbone"] == "simclr" and 0 <= result["top1"] <= 1
    assert result["n_test"] == 1000
    assert main(["evaluate", "--checkpoint", str(tiny_run.checkpoint)]) == 0
    out = capsys.readouterr().out
    assert out == (f"knn top-1 (simclr backbone of {tiny_run.checkpoint}): {result['top1']:.1%} on 1,000 test "
                   "images of the bundled CIFAR-10 subset\n")


def test_predict_lines_json_and_partial_failure(classifier_ckpt, tmp_path, capsys):
    Image.new("P", (50, 70)).save(tmp_path / "a.gif")
    Image.new("CMYK", (20, 20), (0, 255, 0, 0)).save(tmp_path / "b.jpg")
    (tmp_path / "bad.png").write_text("nope")
    code = main(["predict", "--checkpoint", classifier_ckpt, str(tmp_path / "a.gif"), str(tmp_path / "bad.png"),
                 str(tmp_path / "b.jpg"), "--top-k", "2"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(tmp_path / "a.gif")) and "%" in lines[0]
    assert err.count("\n") == 1 and "bad.png" in err and "Traceback" not in err
    assert main(["predict", "--checkpoint", classifier_ckpt, str(tmp_path / "a.gif"), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed[0]["top"][0]["probability"] > 0


def test_bad_checkpoints_exit_2_with_one_sentence(tiny_run, classifier_ckpt, tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 64)
    proc = run("predict", "--checkpoint", tiny_run.checkpoint, "x.jpg")  # once for real, as a process
    assert proc.returncode == 2 and "classifier checkpoint is needed" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    cases = [
        (["evaluate", "--checkpoint", classifier_ckpt], "simclr checkpoint is needed"),
        (["evaluate", "--checkpoint", tmp_path / "missing.pt"], "no such checkpoint"),
        (["predict", "--checkpoint", tmp_path / "junk.pt", "x.jpg"], "not a readable checkpoint"),
    ]
    for args, message in cases:
        assert main([str(a) for a in args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0


def test_data_problems_exit_2(tmp_path, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.delenv("SIMCLR_DATA", raising=False)
    monkeypatch.setenv("SIMCLR_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)  # no network, whatever this machine has
    assert main(["pretrain", "--profile", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "could not download it" in err and "--data PATH" in err and "Traceback" not in err
    assert main(["pretrain", "--data", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["pretrain", "--data", str(tmp_path / "empty")]) == 2
    assert "no image files" in capsys.readouterr().err


def test_pretrain_command_and_resume(tmp_path):
    out = tmp_path / "run"
    args = ["pretrain", "--profile", "smoke", "--epochs", "1", "--batch-size", "64", "--train-limit", "200",
            "--out", out, "--json"]
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["epochs"] == 1 and summary["profile"] == "smoke" and (out / "last.pt").exists()
    again = run(*args[:-1], "--resume")
    assert again.returncode == 0 and "already finished 1 epochs" in again.stderr


@pytest.mark.parametrize("args", [
    ["pretrain", "--epochs", "0"], ["pretrain", "--epochs", "2.5"], ["pretrain", "--lr-per-256", "nan"],
    ["pretrain", "--lr-per-256", "inf"], ["pretrain", "--lr-per-256", "-0.1"], ["pretrain", "--batch-size", "0"],
    ["pretrain", "--batch-size", "1"], ["pretrain", "--train-limit", "0"], ["predict", "--checkpoint", "x", "a.jpg",
    "--top-k", "0"], ["benchmark", "--steps", "0"], ["benchmark", "--repeats", "-1"], ["benchmark", "--workers", "-1"],
    ["benchmark", "--sweep", "64,1"], ["benchmark", "--sweep", "64,,128"], ["reproduce", "--epochs", "0"],
    ["reproduce", "--probe-epochs", "-1"], ["reproduce", "--supervised-steps", "0"], ["ablate", "--seeds", "-2"],
    ["ablate", "--epochs", "0"], ["label-efficiency", "--checkpoint", "x", "--fractions", "0.1,1.5"],
    ["label-efficiency", "--checkpoint", "x", "--grid", "0.1:25,0"], ["label-efficiency", "--checkpoint", "x",
    "--grid", "0.1"], ["build-subset", "--source", "x", "--seed", "-1"], ["build-subset", "--source", "x",
    "--train-per-class", "0"], ["gpu-check", "--minutes", "nan"]])
def test_numeric_arguments_are_checked_where_they_are_parsed(args, capsys):
    """A bad number stops the command before anything is read: argparse's exit status 2 and one line naming
    the flag (the flag is the last one before the bad value)."""
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    flag = [a for a in args if a.startswith("--")][-1]
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"python -m simclr_helpers {args[0]}: error: argument {flag}: "), err


def test_pretrain_on_fewer_images_than_one_batch_is_one_sentence(tmp_path):
    proc = run("pretrain", "--profile", "smoke", "--train-limit", "10", "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("error: 9 training images are fewer than one batch of 128; use a "
                                                    "smaller --batch-size or more images.")
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "last.pt").exists()


def test_bad_profile_in_environment_is_one_sentence(monkeypatch, capsys):
    monkeypatch.setenv("SIMCLR_PROFILE", "huge")
    assert main(["pretrain"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_resume_continues_the_run_as_its_record_says(tmp_path, capsys):
    """``pretrain --out RUN --resume`` without other arguments takes epochs, batch and images from the run's
    record, not from the profile's defaults (smoke: 10 epochs of 128); an argument that contradicts the record is
    one sentence and leaves last.pt as it was; more epochs extend the run."""
    from simclr_helpers.checkpoints import RunRecord
    from simclr_helpers.config import get_profile
    from simclr_helpers.runs import load_pretrain_data, run_pretrain

    out = tmp_path / "run"
    profile = get_profile("smoke").with_overrides(epochs=2, batch_size=64, train_limit=200, knn_every=0)

    def stop_after_first_epoch(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pretrain(profile, load_pretrain_data(profile), out, progress=False,
                     on_epoch_end=stop_after_first_epoch)
    cut = (out / "last.pt").read_bytes()
    for extra, message in ((["--batch-size", "32"], "was started with --batch-size 64, not --batch-size 32"),
                           (["--stem", "cifar"], "was started with --stem imagenet, not --stem cifar"),
                           (["--epochs", "1"], "a run can be extended, not cut short"),
                           (["--lr-per-256", "0.3", "--train-limit", "100"],
                            "--lr-per-256 0.12, --train-limit 200, not --lr-per-256 0.3, --train-limit 100")):
        assert main(["pretrain", "--out", str(out), "--resume", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err
        assert (out / "last.pt").read_bytes() == cut

    assert main(["pretrain", "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "180 training images" in err and "resuming" in err and "epoch 2/2" in err
    record = RunRecord.load(out / "last.pt")
    assert record.epoch == record.profile.epochs == 2 and record.profile.batch_size == 64
    assert record.scheduler["last_epoch"] == record.steps == 2 * (180 // 64)
    assert record.metrics[-1]["lr"] < record.metrics[0]["lr"] / 100  # the cosine schedule of 2 epochs ended

    assert main(["pretrain", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    assert "extending" in capsys.readouterr().err and RunRecord.load(out / "last.pt").epoch == 3
    kept = (out / "last.pt").read_bytes()
    assert main(["reproduce", "--out", str(out), "--lr-per-256", "0.3", "--no-supervised", "--probe-epochs", "0"]) == 2
    assert "was started with --lr-per-256 0.12, not --lr-per-256 0.3" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == kept


def test_command_line_rebuilds_every_recorded_command_from_argparse():
    """The command a results file records is rebuilt from argparse's parsed values (``cli.command_line``):
    every command recorded so far parses back into itself, and flags at their defaults, a comma list, an
    appended ``--grid``, a switch and ``--record PATH`` are written the way a user types them."""
    import shlex

    from simclr_helpers.cli import build_parser, command_line
    from simclr_helpers.lab.results import load

    parser = build_parser()
    stored = load()
    recorded = [r["command"] for r in stored["rows"] if r.get("command")]
    recorded += [part["command"] for part in (stored["ablations"], stored.get("label_efficiency")) if part]
    assert any(" ablate " in c for c in recorded) and any(" reproduce " in c for c in recorded)
    for command in recorded:
        assert command_line(parser, parser.parse_args(shlex.split(command)[3:])) == command
    args = parser.parse_args(["label-efficiency", "--checkpoint", "/some/run/last.pt", "--fractions", "0.1, 1.0",
                              "--grid", "0.1:2,4", "--grid", "1.0:1", "--device", "cpu", "--record", "/tmp/r.json"])
    assert command_line(parser, args, checkpoint="RUN/last.pt") == (
        "python -m simclr_helpers label-efficiency --checkpoint RUN/last.pt --fractions 0.1,1.0 --grid 0.1:2,4 "
        "--grid 1.0:1 --record")
    args = parser.parse_args(["ablate", "--profile", "smoke", "--epochs", "2", "--data", "/data/cifar", "--json"])
    assert command_line(parser, args, data="CIFAR10_DIR") == (
        "python -m simclr_helpers ablate --epochs 2 --data CIFAR10_DIR")
    args = parser.parse_args(["benchmark", "--sweep", "64,128", "--compile", "--record"])
    assert command_line(parser, args) == "python -m simclr_helpers benchmark --compile --sweep 64,128 --record"


def test_reproduce_records_the_command_that_made_its_row(monkeypatch, tmp_path, capsys):
    """``reproduce --record`` writes the row with its command (the profile always named, a CIFAR-10 path as a
    placeholder, the output folder and device left out) through the one ``record_result``."""
    from simclr_helpers.lab import reproduce
    from simclr_helpers.lab.results import load

    def fake(profile, data, *args, **kwargs):
        return {"id": f"{profile.name}-{profile.stem}-3ep-cifar10", "profile": profile.name, "stem": profile.stem,
                "data": "CIFAR-10 (full, image folder)"}

    monkeypatch.setattr(reproduce, "run_reproduce", fake)
    monkeypatch.delenv("SIMCLR_PROFILE", raising=False)
    results = tmp_path / "results.json"
    assert main(["reproduce", "--stem", "cifar", "--epochs", "3", "--data", str(tmp_path), "--out", str(tmp_path),
                 "--device", "cpu", "--no-supervised", "--probe-epochs", "0", "--record", str(results)]) == 0
    command = ("python -m simclr_helpers reproduce --profile smoke --stem cifar --epochs 3 --data CIFAR10_DIR "
               "--no-supervised --probe-epochs 0 --record")
    assert json.loads(capsys.readouterr().out)["command"] == command
    assert load(results)["rows"][0]["command"] == command
