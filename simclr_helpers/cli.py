"""The command line: ``python -m simclr_helpers {pretrain,evaluate,predict,benchmark,reproduce,results,...}``.

The same functions the notebooks call; a long GPU run can start headless here
and its checkpoint be opened by the notebooks. Errors a user can cause print one
sentence on stderr and exit with status 2 (``predict`` exits 1 when only some
images failed, after predicting the rest).

The commands that measure and publish the course (``benchmark``, ``reproduce``, ``ablate``,
``label-efficiency``, ``results``, ``gpu-check``) are thin: the work is the lab wing's
(``simclr_helpers.lab``). Flags several commands take are declared once, as argparse parent
parsers, and ``command_line`` rebuilds the command a recorded result came from.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .config import ENV_CHECKPOINTS, ENV_DATA, ENV_PROFILE, PROFILES
from .errors import SimclrError
from .lines import quiet, show_lines

logger = logging.getLogger(__name__)
EXAMPLES = {
    "pretrain": """examples:
  python -m simclr_helpers pretrain --profile smoke
  python -m simclr_helpers pretrain --profile cpu --data ~/data/cifar10-jpeg
  python -m simclr_helpers pretrain --profile gpu --data ~/data/cifar10 --download
  python -m simclr_helpers pretrain --profile gpu --data ~/data/cifar10-jpeg --resume
  python -m simclr_helpers pretrain --data ~/Pictures/holiday --epochs 20   # own photos, unlabelled""",
    "evaluate": """examples:
  python -m simclr_helpers evaluate --checkpoint checkpoints/smoke/last.pt
  python -m simclr_helpers evaluate --checkpoint checkpoints/smoke/last.pt --random-init
  python -m simclr_helpers evaluate --checkpoint checkpoints/smoke/last.pt --method linear
      (also writes checkpoints/smoke/classifier.pt for predict)
  python -m simclr_helpers evaluate --checkpoint reference --data bundled
      (the reference weights shipped with the course, on the bundled subset)""",
    "predict": """examples:
  python -m simclr_helpers predict --checkpoint checkpoints/smoke/classifier.pt cat.jpg dog.png
  python -m simclr_helpers predict --checkpoint checkpoints/smoke/classifier.pt photos/*.jpg --top-k 3 --json
  python -m simclr_helpers predict --checkpoint reference cat.jpg
      (the reference weights' linear probe)""",
    "benchmark": """examples:
  python -m simclr_helpers benchmark                       # this machine, ImageNet stem, batch 256
  python -m simclr_helpers benchmark --stem cifar --device cuda --json
  python -m simclr_helpers benchmark --data ~/data/cifar10-jpeg --compile
  python -m simclr_helpers benchmark --record              # keep it for the README's speed table""",
    "reproduce": """examples:
  python -m simclr_helpers reproduce --profile smoke --record
  python -m simclr_helpers reproduce --profile smoke --stem cifar --epochs 3 --no-supervised --record
  python -m simclr_helpers reproduce --profile cpu --data ~/data/cifar10-jpeg --record
      (pretrains, or resumes a run in checkpoints/<row id>, then measures every figure of a row)""",
    "ablate": """examples:
  python -m simclr_helpers ablate --record                 # every variant, 4 epochs x 3 seeds each (~14 min, 2 CPUs)
  python -m simclr_helpers ablate --variants full,crop-only --epochs 10 --seeds 5
  python -m simclr_helpers ablate --variants tau-0.1,tau-0.5 --json
variants: full, no-crop, no-colour, no-grey, crop-only, colour-only, tau-0.1, tau-0.5, blog-optimizer""",
    "label-efficiency": """examples:
  python -m simclr_helpers label-efficiency --checkpoint reference --data ~/data/cifar10-jpeg --record
      (four curves at 1%, 10% and 100% of the labels, every one's epochs chosen on a validation split;
      resumable: every finished run is kept in --store, default checkpoints/label-efficiency/<run>.jsonl;
      --record keeps the summary in the package's results file, which holds the reference's: for another run,
      leave --record out and notebook 04 summarises its store)
  python -m simclr_helpers label-efficiency --checkpoint checkpoints/smoke/last.pt --fractions 0.1,1.0 \\
      --grid 0.1:2,4 --grid 1.0:1,2""",
    "results": """examples:
  python -m simclr_helpers results                         # the tables, from simclr_helpers/assets/results.json
  python -m simclr_helpers results --check README.md       # exit 1 if the README says anything else
  python -m simclr_helpers results --write README.md""",
    "build-subset": """examples:
  python -m simclr_helpers build-subset --source ~/data/cifar10-jpeg
      (rebuilds simclr_helpers/assets/cifar10_subset.zip; see assets/SUBSET.md)""",
    "export-reference": """examples:
  python -m simclr_helpers export-reference --run checkpoints/cpu-imagenet-45ep-cifar10
      (its last.pt and classifier.pt, from `evaluate --method linear`, become the shipped reference weights;
      then set REFERENCE_SHA256 in simclr_helpers/checkpoints.py to the printed sha256)""",
    "gpu-check": """examples:
  python -m simclr_helpers gpu-check                       # at most 8 minutes, JSON on stdout
  python -m simclr_helpers gpu-check --data ~/data/cifar10-jpeg > gpu-check.json
  python -m simclr_helpers gpu-check --minutes 4           # fewer stages (the JSON names those left out)""",
    "set-repository": """examples:
  python -m simclr_helpers set-repository my-name/simclr-step-by-step
      (rewrites the Colab badges, the notebooks' install cells, the README and config.REPOSITORY)""",
}


# Every numeric argument is checked where argparse reads it: a bad value stops the command before anything is
# loaded, with argparse's usage line and one sentence naming the flag (exit status 2).
def _number(text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
                                         ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number; give an ordinary number")
    return value


def _checked(text: str, kind, ok, problem: str):
    """``text`` read as ``kind``; ``problem`` (formatted with the value) when ``ok(value)`` is false."""
    value = _number(text, kind)
    if not ok(value):
        raise argparse.ArgumentTypeError(problem.format(value))
    return value


def positive_int(text: str) -> int:
    """1 or more (epochs, steps, images, seeds)."""
    return _checked(text, int, lambda v: v >= 1, "{} is too small; give 1 or more")


def non_negative_int(text: str) -> int:
    """0 or more (a seed, DataLoader workers, epochs where 0 skips the measurement)."""
    return _checked(text, int, lambda v: v >= 0, "{} is negative; give 0 or more")


def batch_size(text: str) -> int:
    """2 or more: NT-Xent needs at least one other image in the batch as a negative."""
    return _checked(text, int, lambda v: v >= 2, "{} is too small; give a batch of 2 or more (NT-Xent needs negatives)")


def positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, minutes)."""
    return _checked(text, float, lambda v: v > 0, "{:g} is not above 0; give a positive number")


def fraction(text: str) -> float:
    """A share of the labels in (0, 1]."""
    return _checked(text, float, lambda v: 0 < v <= 1, "{:g} is not a fraction in (0, 1]; give one such as 0.1")


def _comma_text(values) -> str:
    return ",".join(map(str, values))


def comma_list(item):
    """``"a,b,c"`` read with ``item`` for every element (``command_line`` writes it back the same way)."""
    def parse(text: str) -> tuple:
        parts = [part.strip() for part in text.split(",")]
        if not all(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: give values separated by commas, without empty ones")
        return tuple(item(part) for part in parts)
    parse.text = _comma_text
    return parse


def grid_item(text: str) -> tuple[float, tuple[int, ...]]:
    """``FRACTION:EPOCHS,...`` (``0.1:25,50,100``) of ``label-efficiency --grid``."""
    if text.count(":") != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction and epoch budgets, as in 0.1:25,50,100")
    share, epochs = text.split(":")
    return fraction(share), comma_list(positive_int)(epochs)


grid_item.text = lambda value: f"{value[0]}:{_comma_text(value[1])}"


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _flags(*arguments: tuple[str, dict]) -> argparse.ArgumentParser:
    """A parent parser: flags that several commands share, declared once (``parents=[...]`` of a command)."""
    parent = argparse.ArgumentParser(add_help=False)
    for flag, options in arguments:
        parent.add_argument(flag, **options)
    return parent


# The flags several commands share, as (flag, add_argument options).
PROFILE = ("--profile", {"choices": list(PROFILES), "help": f"sizes of the run (default ${ENV_PROFILE} or smoke)"})
STEM = ("--stem", {"choices": ["imagenet", "cifar"], "help": "override the profile's stem"})
EPOCHS = ("--epochs", {"type": positive_int, "help": "override the profile's number of epochs"})
LR = ("--lr-per-256", {"type": positive_float,
                       "help": "override the SGD learning rate per 256 images (default 0.12: lightly's 0.06 per 128)"})
DATA = ("--data", {"help": f"'bundled', or CIFAR-10 as an image folder or torchvision root (default ${ENV_DATA}, "
                           "else the profile's: bundled for smoke)"})
DEVICE = ("--device", {"help": "cpu, cuda, cuda:1 ... (default: cuda if available)"})
JSON = ("--json", {"action": "store_true", "help": "print the result as JSON on stdout"})
RECORD = ("--record", {"nargs": "?", "const": "", "metavar": "RESULTS_JSON",
                       "help": "keep the result in the results file, where the README's tables and the notebooks "
                               "read it (default simclr_helpers/assets/results.json)"})
STORE = ("--store", {"metavar": "JSONL", "help": "where every finished run is kept as it ends; a re-run of the same "
                                                 "budget skips those (default: one file under checkpoints/)"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simclr_helpers", formatter_class=_formatter,
        description="SimCLR, step by step: pretrain, evaluate and predict from the command line.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """A command whose flags are ``parents``' in order: its own flags sit in a parent too, so that the shared
        ones (device, printing, recording) come last in ``--help`` and in the commands ``command_line`` writes."""
        return sub.add_parser(name, help=help, epilog=EXAMPLES[name], formatter_class=_formatter, parents=parents)

    own = _flags(
        ("--data", {"help": f"'bundled', an image folder (train/<class>/, test/<class>/), a torchvision CIFAR-10 "
                            f"root, or a folder of unlabelled photos (default ${ENV_DATA})"}),
        ("--download", {"action": "store_true", "help": "download CIFAR-10 into --data with torchvision"}),
        ("--batch-size", {"type": batch_size, "help": "override the profile's batch size (the global batch: "
                                                      "torchrun's processes split it)"}),
        ("--train-limit", {"type": positive_int, "help": "use at most N training images (class-balanced)"}),
        ("--out", {"help": f"output folder (default ${ENV_CHECKPOINTS}/<profile>, else checkpoints/<profile>)"}),
        ("--resume", {"action": "store_true",
                      "help": "continue from OUT/last.pt at the next epoch, with the epochs, batch, stem, learning "
                              "rate and data its record holds (a larger --epochs extends it)"}),
        ("--overwrite", {"action": "store_true",
                         "help": "replace the run OUT already holds (without it, a folder with a run is refused)"}),
        ("--pipeline", {"choices": ["fast", "blog"], "default": "fast",
                        "help": "fast: data on the device + batched views (default); blog: the blog post's PIL + "
                                "DataLoader"}),
        ("--no-amp", {"action": "store_true", "help": "fp32 even on a GPU"}),
        ("--compile", {"action": "store_true", "help": "torch.compile the model"}),
        ("--sync-bn", {"action": argparse.BooleanOptionalAction, "default": None,
                       "help": "under torchrun: BatchNorm statistics over the global batch (SyncBatchNorm); default "
                               "on with GPUs, off on CPUs, where torch does not support it"}))
    command("pretrain", "SimCLR pretraining (checkpoint every epoch, resumable)",
            _flags(PROFILE, STEM, EPOCHS, LR), own, _flags(DEVICE, JSON))

    own = _flags(
        ("--checkpoint", {"required": True, "help": "a pretraining checkpoint (last.pt), or `reference` for the "
                                                    "weights shipped with the course"}),
        ("--method", {"choices": ["knn", "linear"], "default": "knn"}),
        ("--random-init", {"action": "store_true",
                           "help": "the same evaluation on a randomly initialised backbone"}),
        ("--data", {"help": "labelled CIFAR-10, or 'bundled' (default: the data the checkpoint was trained on; for "
                            "`reference`, $SIMCLR_DATA or the download cache)"}),
        ("--out", {"help": "where --method linear writes the classifier (default: beside the checkpoint; for "
                           "`reference`, checkpoints/reference/)"}))
    command("evaluate", "kNN or linear-probe accuracy of a pretrained backbone", own, _flags(DEVICE, JSON))

    own = _flags(
        ("--checkpoint", {"required": True, "help": "a classifier checkpoint (from evaluate --method linear), or "
                                                    "`reference` for the shipped weights' probe"}),
        ("images", {"nargs": "+", "metavar": "IMAGE"}),
        ("--top-k", {"type": positive_int, "default": 5}))
    command("predict", "classify image files with a classifier checkpoint", own, _flags(DEVICE, JSON))

    # The lab's commands: they measure the course and publish what they measured (simclr_helpers.lab).
    own = _flags(
        ("--data", {"default": "bundled", "help": "images to use (default: the bundled subset)"}),
        ("--batch-size", {"type": batch_size, "default": 256}),
        ("--stem", {"choices": ["imagenet", "cifar"], "default": "imagenet"}),
        ("--steps", {"type": positive_int, "default": 5, "help": "timed training steps per repeat"}),
        ("--repeats", {"type": positive_int, "default": 3, "help": "training repeats (alternating the blog's and "
                                                                   "the fast pipeline); the median is reported"}),
        ("--workers", {"type": non_negative_int,
                       "help": "DataLoader workers of the blog's pipeline (default: one per CPU; the blog used 8)"}),
        ("--compile", {"action": "store_true", "help": "torch.compile the model on the fast path"}),
        ("--sweep", {"metavar": "BATCHES", "type": comma_list(batch_size),
                     "help": "fast path only: training throughput at these batch sizes (e.g. 64,128,256,512), "
                             "taking turns, medians; with --compile each also compiled; --record keeps it"}))
    command("benchmark", "the blog's pipeline vs the fast path: augmentation and training throughput",
            own, _flags(DEVICE, JSON, RECORD))

    own = _flags(
        ("--out", {"help": "checkpoint folder (default checkpoints/<row id>)"}),
        ("--no-supervised", {"action": "store_true",
                             "help": "skip the supervised from-scratch baselines (the longest part on a CPU)"}),
        ("--supervised-steps", {"type": positive_int, "help": "optimiser steps of each supervised baseline "
                                                              "(default: as many as the pretraining took)"}),
        ("--probe-epochs", {"type": non_negative_int, "default": 10,
                            "help": "epochs of the cached-probe vs blog's-way timing (0 skips it)"}))
    command("reproduce", "one row of the results table: pretrain (or resume), then measure it all",
            _flags(PROFILE, STEM, EPOCHS, LR, DATA), own, _flags(DEVICE, RECORD))

    own = _flags(
        ("--profile", {"choices": list(PROFILES), "default": "smoke", "help": "the budget of every run (default "
                                                                               "smoke)"}),
        ("--epochs", {"type": positive_int, "help": "epochs of every run (default 4)"}),
        ("--seeds", {"type": positive_int, "help": "runs per variant, seeds 0, 1, ... (default 3)"}),
        ("--batch-size", {"type": batch_size, "help": "override the profile's batch size"}),
        ("--train-limit", {"type": positive_int,
                           "help": "use at most N labelled training images (class-balanced)"}),
        ("--variants", {"help": "comma-separated variants (default: all; see below)"}))
    command("ablate", "what each piece of the recipe is worth: kNN top-1 of variants, several seeds",
            own, _flags(DATA, DEVICE, STORE, JSON, RECORD))

    own = _flags(
        ("--checkpoint", {"required": True, "help": "a pretraining checkpoint (last.pt), or `reference`"}),
        ("--data", {"help": "labelled CIFAR-10 (default: the data the checkpoint was trained on)"}),
        ("--fractions", {"type": comma_list(fraction), "default": (0.01, 0.1, 1.0),
                         "help": "label fractions, each in (0, 1] (default 0.01,0.1,1.0)"}),
        ("--methods", {"default": ",".join(("probe-simclr", "probe-random", "scratch", "finetune")),
                       "help": "which curves (default all four)"}),
        ("--grid", {"action": "append", "type": grid_item, "metavar": "FRACTION:EPOCHS,...",
                    "help": "epoch budgets tried for one fraction by the trained curves, walked upwards until one "
                            "does not improve validation (default label_efficiency.EPOCH_GRID: "
                            "0.01:100,200,400,800 0.1:25,50,100,200,400 1.0:6,12,24,48)"}),
        ("--probe-grid", {"type": comma_list(positive_int), "metavar": "EPOCHS,...",
                          "help": "epoch budgets tried by the linear probes at every fraction (default "
                                  "label_efficiency.PROBE_GRID: 25,50,100,200,400; the profile's linear_epochs, "
                                  "100, is always among them)"}))
    command("label-efficiency", "probe, from-scratch and fine-tuned curves over label fractions",
            own, _flags(STORE, DEVICE, RECORD))

    t = command("results", "print the results tables, or check/update the README's copy")
    t.add_argument("--file", help="results JSON (default simclr_helpers/assets/results.json)")
    group = t.add_mutually_exclusive_group()
    group.add_argument("--check", metavar="README", help="exit 1 if the README's tables differ from the file")
    group.add_argument("--write", metavar="README", help="replace the README's tables with the file's")

    b = command("build-subset", "rebuild the bundled offline CIFAR-10 subset")
    b.add_argument("--source", required=True, help="CIFAR-10 image folder (train/<class>/, test/<class>/)")
    b.add_argument("--out", help="output zip (default: the package's assets/cifar10_subset.zip)")
    b.add_argument("--train-per-class", type=positive_int, default=300)
    b.add_argument("--test-per-class", type=positive_int, default=100)
    b.add_argument("--seed", type=non_negative_int, default=0)

    x = command("export-reference", "make a run and its linear probe the shipped reference weights")
    x.add_argument("--run", required=True, help="a run folder with last.pt and classifier.pt")
    x.add_argument("--out", help="output file (default: the package's reference weights file)")
    x.add_argument("--data", help="CIFAR-10: measure kNN and probe top-1 with the fp32 run and the fp16 file")

    g = command("gpu-check", "what to run first on a GPU: benchmark, short colab pretraining, kNN (JSON)")
    g.add_argument("--data", help=f"CIFAR-10 (default ${ENV_DATA}, else the download cache, else a download, "
                                  "else the bundled subset)")
    g.add_argument("--device", default="cuda", help="the GPU to check (default cuda)")
    g.add_argument("--minutes", type=positive_float, default=8.0,
                   help="time budget; stages that do not fit are skipped")

    w = command("set-repository", "point the Colab badges and install cells at a fork (OWNER/NAME)")
    w.add_argument("repository", metavar="OWNER/NAME")
    w.add_argument("--root", help="the course's folder (default: the one this runs in)")
    return parser


# What a recorded command leaves out: where it ran and where it kept things, not what it measured.
UNRECORDED = ("device", "json", "store", "out")


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, hide=UNRECORDED, **shown) -> str:
    """The command that made a recorded result, rebuilt from argparse's own parsed values: ``python -m
    simclr_helpers COMMAND`` and every flag whose value differs from its default, in the order ``--help`` lists
    them, each written back the way its type reads it (a comma list, a ``--grid`` item, once per appended value).

    ``hide``: flags (by ``dest``) that say where it ran, not what it measured. ``shown``: a value to write instead
    of the parsed one (a placeholder such as ``CIFAR10_DIR`` for a path on one machine, or a value the command
    resolved itself, such as the profile); None leaves the flag out. ``--record`` is written bare: its value
    says where the result went, and the results file holds the row.
    """
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[args.command]
    words = [sub.prog]
    for action in sub._actions:
        if not action.option_strings or action.dest in ("help", *hide):
            continue
        value = shown[action.dest] if action.dest in shown else getattr(args, action.dest)
        if value is None or (action.dest not in shown and value == action.default):
            continue
        flag = action.option_strings[0]
        text = getattr(action.type, "text", str)
        if action.nargs == 0:  # a switch: --compile, or --sync-bn / --no-sync-bn
            words.append(flag if value else action.option_strings[-1])
        elif action.nargs == "?":  # --record [RESULTS_JSON]
            words.append(flag)
        elif isinstance(action, argparse._AppendAction):
            words += [f"{flag} {text(item)}" for item in value]
        else:
            words.append(f"{flag} {text(value)}")
    return " ".join(words)


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _refuse_gpu_profile_without_gpu(name: str, args) -> None:
    """A profile sized for a GPU (colab, gpu) on a machine without one stops before any data is read,
    unless ``--device`` names the device to train on (``--device cpu``: on the CPU anyway)."""
    import torch

    from .config import GPU_PROFILES, no_gpu_sentence

    if name in GPU_PROFILES and not args.device and not torch.cuda.is_available():
        source = f"--profile {name}" if args.profile else f"${ENV_PROFILE}"
        raise SimclrError(no_gpu_sentence(name, source, notebook=False))


def cmd_pretrain(args) -> int:
    from contextlib import nullcontext

    from .config import default_checkpoint_dir, get_profile
    from .distributed import is_main, main_first, process_group
    from .runs import RESUME_FLAGS, load_pretrain_data, resumed_settings, run_pretrain

    given = {key: getattr(args, flag[2:].replace("-", "_")) for key, flag in RESUME_FLAGS.items()}  # None: not given
    profile = get_profile(args.profile).with_overrides(**{k: v for k, v in given.items() if k != "name"})
    _refuse_gpu_profile_without_gpu(profile.name, args)
    out = Path(args.out) if args.out else default_checkpoint_dir() / profile.name
    data_arg = args.data
    if args.resume and (out / "last.pt").exists():  # the run as its record says, not the profile's defaults
        profile, recorded_data = resumed_settings(out / "last.pt", **given)
        data_arg = args.data or recorded_data
    # Under torchrun every process runs this command and joins one process group; without it nothing changes.
    with process_group(args.device) as device:
        main = is_main()
        with quiet(not main):  # rank 0 alone speaks
            with main_first() if args.download else nullcontext():  # one download at a time
                data = load_pretrain_data(profile, data_arg, args.download)
            result = run_pretrain(profile, data, out=out, resume=args.resume, device=device, pipeline=args.pipeline,
                                  amp=not args.no_amp, compile=args.compile, sync_bn=args.sync_bn,
                                  overwrite=args.overwrite)
    if main:
        summary = result.summary()
        print(json.dumps(summary, indent=1) if args.json else f"checkpoint: {summary['checkpoint']}")
    return 0


def cmd_evaluate(args) -> int:
    from .runs import run_evaluate

    with quiet(not args.json):  # without --json the line below says more
        result = run_evaluate(args.checkpoint, method=args.method, random_init=args.random_init, data=args.data,
                              out=args.out, device=args.device)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['method']} top-1 ({result['backbone']} backbone of {result['checkpoint']}): {result['top1']:.1%} "
          f"on {result['n_test']:,} test images of the {result['data']}")
    if "classifier" in result:
        print(f"classifier: {result['classifier']}")
    return 0


def cmd_predict(args) -> int:
    from .predict import load_classifier, predict_files

    classifier = load_classifier(args.checkpoint, args.device)
    results = predict_files(classifier, args.images, args.top_k)
    for res in results:
        if res.error:
            print(res.line(), file=sys.stderr)
        elif not args.json:
            print(res.line())
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
    return 1 if any(r.error for r in results) else 0


def cmd_export_reference(args) -> int:
    from .checkpoints import REFERENCE_FILE, ClassifierRecord, RunRecord, export_reference

    run, out = Path(args.run), Path(args.out) if args.out else REFERENCE_FILE
    info = export_reference(RunRecord.load(run / "last.pt"), ClassifierRecord.load(run / "classifier.pt"), out)
    if args.data:
        from .lab.reproduce import reference_precision

        info["precision"] = reference_precision(run, out, info["sha256"], args.data)
    print(json.dumps(info, indent=1))
    logger.info(f"now set REFERENCE_SHA256 = \"{info['sha256']}\" in simclr_helpers/checkpoints.py")
    return 0


def cmd_build_subset(args) -> int:
    from .data import BUNDLED_SUBSET, build_subset

    info = build_subset(args.source, Path(args.out) if args.out else BUNDLED_SUBSET,
                        args.train_per_class, args.test_per_class, args.seed)
    print(json.dumps(info, indent=1))
    return 0


def _record(kind: str, result: dict, args) -> None:
    """``--record [RESULTS_JSON]``: keep ``result`` in the results file, and say where."""
    from .lab.results import record_result

    if args.record is not None:
        logger.info(f"recorded in {record_result(kind, result, args.record)}")


def _data_shown(bundled: bool, given) -> str | None:
    """``--data`` as a recorded command shows it: a placeholder for CIFAR-10 on the machine that ran it (given or
    found through the profile and $SIMCLR_DATA), ``bundled`` where it was named, nothing where it was the default."""
    return ("bundled" if given else None) if bundled else "CIFAR10_DIR"


def cmd_benchmark(args) -> int:
    from .data import load_cifar10
    from .lab.benchmark import format_sweep, format_table, run_benchmark, training_sweep
    from .lab.results import stamp
    from .runtime import pick_device

    images = load_cifar10(args.data).train.images
    if args.sweep:
        result = training_sweep(images, args.device, args.sweep, args.stem, args.steps, args.repeats, args.compile)
    else:
        result = run_benchmark(images, args.device, args.batch_size, args.stem, args.steps, args.repeats,
                               args.compile, workers=args.workers)
    print(json.dumps(result, indent=1) if args.json else (format_sweep if args.sweep else format_table)(result))
    if args.record is not None:
        result = {**result, **stamp(pick_device(args.device)),
                  "command": command_line(build_parser(), args, data=_data_shown(args.data == "bundled", False))}
        _record("sweep" if args.sweep else "benchmark", result, args)
    return 0


def cmd_reproduce(args) -> int:
    from .config import get_profile
    from .data import DataSpec
    from .lab.reproduce import run_reproduce

    profile = get_profile(args.profile).with_overrides(stem=args.stem, epochs=args.epochs, lr_per_256=args.lr_per_256)
    row = run_reproduce(profile, args.data, args.out, args.device, supervised=not args.no_supervised,
                        probe_epochs=args.probe_epochs, supervised_steps=args.supervised_steps)
    row["command"] = command_line(build_parser(), args, profile=profile.name,
                                  data=_data_shown(row["data"] == DataSpec("bundled").describe(), args.data))
    print(json.dumps(row, indent=1))
    _record("row", row, args)
    return 0


def cmd_ablate(args) -> int:
    from .config import get_profile
    from .lab.ablations import (
        DEFAULT_EPOCHS,
        DEFAULT_SEEDS,
        VARIANTS,
        default_store,
        format_result,
        parse_variants,
        run_ablation,
    )
    from .runs import load_pretrain_data

    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    seeds = DEFAULT_SEEDS if args.seeds is None else args.seeds
    keys = parse_variants(args.variants)
    profile = get_profile(args.profile).with_overrides(epochs=epochs, batch_size=args.batch_size,
                                                      train_limit=args.train_limit)
    data = load_pretrain_data(profile, args.data)
    logger.info(f"ablation: {len(keys)} variant(s) x {seeds} seed(s), {epochs} epoch(s) each, "
                f"batch {profile.batch_size}")
    store = Path(args.store) if args.store else default_store(profile, len(data.train))
    result = run_ablation(profile, data, keys, seeds, args.device, store=store)
    result["command"] = command_line(build_parser(), args, variants=None if keys == list(VARIANTS) else ",".join(keys),
                                     data=_data_shown(data.spec.kind == "bundled", args.data))
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    _record("ablations", result, args)
    return 0


def cmd_label_efficiency(args) -> int:
    from .checkpoints import RunRecord, is_reference
    from .lab.label_efficiency import METHODS, default_store, format_result, run_label_efficiency
    from .lab.results import stamp
    from .runs import run_splits
    from .runtime import pick_device

    methods = tuple(m.strip() for m in args.methods.split(","))
    if unknown := [m for m in methods if m not in METHODS]:
        raise SimclrError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    _, splits = run_splits(RunRecord.load(args.checkpoint), args.data)
    store = Path(args.store) if args.store else default_store(args.checkpoint)
    result = run_label_efficiency(args.checkpoint, splits, args.fractions, dict(args.grid or []) or None, store,
                                  args.device, methods, **({"probe_grid": args.probe_grid} if args.probe_grid else {}))
    print(format_result(result), end="")
    if args.record is not None:
        result.update({**stamp(pick_device(args.device)), "data": splits.train.source.split("/")[0],
                       "command": command_line(build_parser(), args, data="CIFAR10_DIR" if args.data else None,
                                               checkpoint="reference" if is_reference(args.checkpoint)
                                               else "RUN/last.pt")})
        _record("label_efficiency", result, args)
    return 0


def cmd_results(args) -> int:
    from .lab.results import RESULTS_FILE, check_readme, load, markdown_tables, write_readme

    # A missing or unreadable results file is one sentence (exit 2): never an empty table, never a README
    # whose tables were replaced by nothing.
    stored = load(Path(args.file) if args.file else RESULTS_FILE, missing_ok=False)
    if args.check:
        if not check_readme(args.check, stored=stored):
            _err(f"{args.check}: its results tables differ from the results file; "
                 f"run python -m simclr_helpers results --write {args.check}")
            return 1
        print(f"{args.check}: results tables match the results file")
    elif args.write:
        print(f"wrote {write_readme(args.write, stored=stored)}")
    else:
        print(markdown_tables(stored["rows"]), end="")
    return 0


def cmd_gpu_check(args) -> int:
    from .lab.gpucheck import gpu_check

    result = gpu_check(args.data, args.device, budget_s=args.minutes * 60)
    print(json.dumps(result, indent=1))
    return 1 if result["errors"] else 0


def cmd_set_repository(args) -> int:
    from .repository import set_repository

    changed = set_repository(args.repository, args.root)
    for path in changed:
        print(f"rewrote {path.parent.name}/{path.name}")
    print(f"{len(changed)} files now point at {args.repository}" if changed else
          f"every address already points at {args.repository}")
    return 0


COMMANDS = {"pretrain": cmd_pretrain, "evaluate": cmd_evaluate, "predict": cmd_predict,
            "benchmark": cmd_benchmark, "reproduce": cmd_reproduce, "ablate": cmd_ablate, "results": cmd_results,
            "build-subset": cmd_build_subset, "export-reference": cmd_export_reference,
            "label-efficiency": cmd_label_efficiency,
            "gpu-check": cmd_gpu_check, "set-repository": cmd_set_repository}


# Commands whose CPU work allocates and frees large tensors all the time: the process keeps freed
# memory instead of faulting it in again (runtime.keep_freed_memory; a notebook opts in by calling it).
KEEP_FREED_MEMORY = ("pretrain", "evaluate", "benchmark", "reproduce", "ablate", "gpu-check", "label-efficiency")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in KEEP_FREED_MEMORY:
        from .runtime import keep_freed_memory

        keep_freed_memory()
    before = show_lines("stderr")  # progress lines on stderr, as they are; stdout holds the result
    try:
        return COMMANDS[args.command](args)
    except SimclrError as exc:
        _err(str(exc))
        return 2
    except KeyboardInterrupt:
        _err("interrupted; the last finished epoch's checkpoint is kept (continue with --resume).")
        return 130
    finally:
        show_lines(before)  # called from a notebook, its lines go back where they were
