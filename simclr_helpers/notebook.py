"""The first code cell of every notebook: profile, device, precision, data, checkpoints, seeds, figures.

Kept here so the notebooks stay identical in their setup and nothing is copied
from one notebook to the next. The cell shows two Colab form fields and passes
them on: ``setup(seed=0, profile=PROFILE, keep_in_drive=KEEP_IN_DRIVE)``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import (
    AUTO,
    ENV_CHECKPOINTS,
    ENV_DATA,
    ENV_PROFILE,
    GPU_PROFILES,
    PROFILE_CHOICES,
    PROFILES,
    Profile,
    auto_profile_name,
    default_checkpoint_dir,
    no_gpu_sentence,
    project_root,
)
from .data import DataSpec, shown
from .errors import DataError, SimclrError
from .lines import show_lines
from .runs import Run, choose_run, reference_data, resolve_data
from .runtime import Precision, pick_device, pick_precision, seed_everything

# Colab mounts Google Drive here; checkpoints go to DRIVE_FOLDER inside "My Drive".
DRIVE_MOUNT = "/content/drive"
DRIVE_FOLDER = "simclr-step-by-step/checkpoints"
NOT_ON_COLAB = "KEEP_IN_DRIVE only applies on Colab; checkpoints stay in checkpoints/ here."


@dataclass
class Session:
    profile: Profile
    device: torch.device
    checkpoint_dir: Path  # where this profile's checkpoints live (notebook 03 writes its run there)
    precision: Precision | None = None  # what training on ``device`` runs in (runtime.pick_precision)
    data: DataSpec | None = None  # where the profile's data comes from (for CIFAR-10: the download target)
    on_colab: bool = False
    in_drive: bool = False  # checkpoints on Google Drive (keep_in_drive on Colab)
    run: Run | None = None  # the run notebooks 04-06 read (``runs.choose_run``); None in notebooks 01-03

    def relative(self, path: str | Path) -> str:
        """A path relative to the course folder (or to Google Drive), for printing (no machine paths in outputs)."""
        path = Path(path).resolve()
        for root, label in ((Path(DRIVE_MOUNT).resolve(), "Google Drive: "), (project_root(), "")):
            try:
                return label + str(path.relative_to(root))
            except ValueError:
                pass
        return path.name


def on_colab() -> bool:
    """Whether this kernel runs on Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def keep_checkpoints_in_drive() -> Path:
    """Mount Google Drive (Colab asks for permission) and make its course folder ``$SIMCLR_CHECKPOINTS``.

    Everything that follows finds checkpoints there: this session's ``checkpoint_dir``, notebooks
    03-06, and ``python -m simclr_helpers pretrain --resume`` started from a cell (it inherits the
    variable). An interrupted run therefore continues in a new runtime from the ``last.pt`` it left.
    """
    from google.colab import drive

    try:
        drive.mount(DRIVE_MOUNT)
    except Exception as exc:  # noqa: BLE001  (declined permission, timeout: Colab raises various errors)
        raise SimclrError(f"Google Drive was not mounted ({exc}); run the cell again and allow access, or set "
                          "KEEP_IN_DRIVE = False to keep checkpoints in the runtime.") from None
    folder = Path(DRIVE_MOUNT) / "MyDrive" / DRIVE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_CHECKPOINTS] = str(folder)
    return folder


def planned_data(profile: Profile, run: Run | None = None) -> DataSpec | None:
    """Where the notebook's data will come from, without reading or downloading anything: CIFAR-10 for the
    reference weights (``runs.reference_data``), else ``profile``'s data (``runs.resolve_data`` without
    fetching); None, after saying why, if ``$SIMCLR_DATA`` is wrong."""
    try:
        return reference_data() if run is not None and run.is_reference else resolve_data(profile, None, fetch=False)
    except DataError as exc:
        print(f"data: {exc}")
        return None


def describe_data(spec: DataSpec | None) -> str:
    """One line on the data, for the setup cell's output (no machine paths)."""
    if spec is None:
        return "not found (see above)"
    if os.environ.get(ENV_DATA):
        return f"{spec.describe()}, from ${ENV_DATA}"
    if spec.kind == "torchvision" and spec.path is not None:
        if (Path(spec.path) / "cifar-10-batches-py").is_dir():
            return f"CIFAR-10, downloaded earlier to {shown(spec.path)}"
        return f"CIFAR-10, downloaded on first use to {shown(spec.path)} (170 MB, once)"
    return spec.describe()


def notebook_profile(profile: str | None) -> tuple[Profile, str]:
    """The profile the setup cell's PROFILE field names (``auto``: ``config.auto_profile_name``) and why it
    was chosen; a name that is not a profile is one sentence in the notebook's terms (the PROFILE field)."""
    name, why = auto_profile_name() if profile in (None, AUTO) else (profile, "set in the notebook")
    if name not in PROFILES:
        choices = ", ".join(f'"{c}"' for c in PROFILE_CHOICES)
        if profile in (None, AUTO):  # PROFILE = "auto" took it from the environment
            raise SimclrError(f"unknown profile {name!r} in ${ENV_PROFILE}; set PROFILE in the setup cell to one "
                              f"of {choices}, or unset ${ENV_PROFILE}.")
        raise SimclrError(f"unknown profile {name!r}; set PROFILE in the setup cell to one of {choices}.")
    return PROFILES[name], why


def setup(seed: int = 0, quiet: bool = False, profile: str | None = AUTO, keep_in_drive: bool = False,
          run: str | None = None) -> Session:
    """Pick the profile and device, seed every RNG, PNG figures, the package's lines printed in the cell that
    makes them; on Colab, optionally keep checkpoints in Drive.

    ``profile``: a profile's name, or ``auto`` (the default): ``$SIMCLR_PROFILE`` if set, else
    ``smoke`` without a GPU, ``colab`` on a GPU older than compute capability 8.0 or under
    20 GB (a free Colab T4), ``gpu`` on bigger ones. ``keep_in_drive``: on Colab, mount Google
    Drive and keep checkpoints there (``keep_checkpoints_in_drive``); nothing is mounted unless
    it is set, and elsewhere it changes nothing. ``run`` (notebooks 04-06): which run they read,
    ``auto``, ``reference`` or ``mine`` (``runs.choose_run``); the line it prints says which and why.
    A PROFILE that names no profile, or a profile sized for a GPU (``colab``, ``gpu``) where there is
    none, stops the cell with one sentence before Drive is mounted and before anything is downloaded.
    """
    import lightly
    import matplotlib.pyplot as plt

    try:  # PNG, not SVG: smaller notebooks, the same picture everywhere
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:  # outside IPython
        pass
    from .plots import COURSE_STYLE

    plt.rcParams.update(COURSE_STYLE)
    show_lines("stdout")  # what the package says (data loaded, epochs, a run trained on demand), as print would
    seed_everything(seed)
    chosen, why = notebook_profile(profile)  # a wrong PROFILE stops here, before Drive asks for permission
    device = pick_device()
    if chosen.name in GPU_PROFILES and device.type != "cuda":  # before anything is downloaded or trained
        source = f"${ENV_PROFILE}" if why == f"${ENV_PROFILE}" else f'PROFILE = "{chosen.name}"'
        raise SimclrError(no_gpu_sentence(chosen.name, source, notebook=True))
    colab = on_colab()
    in_drive = False
    if keep_in_drive and colab:
        keep_checkpoints_in_drive()
        in_drive = True
    elif keep_in_drive and not quiet:
        print(NOT_ON_COLAB)
    precision = pick_precision(device)
    chosen_run = None
    if run is not None:
        chosen_run = choose_run(chosen, run)
        chosen_run.check()  # a named folder without last.pt stops here, before anything is written
    session = Session(chosen, device, default_checkpoint_dir() / chosen.name, precision,
                      planned_data(chosen, chosen_run), colab, in_drive, chosen_run)
    if not quiet:
        gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        scaling = " + loss scaling" if precision.scaler else ""
        print(f"profile: {chosen.name} ({why}) | device: {device}{gpu} | {precision.name}{scaling} | "
              f"torch {torch.__version__} | lightly {lightly.__version__} | seed {seed}")
        print(f"data: {describe_data(session.data)} | checkpoints: {session.relative(session.checkpoint_dir)}"
              + (" (kept when the runtime ends; notebooks 04-06 read last.pt there and `pretrain --resume` "
                 "continues it)" if in_drive else ""))
        if chosen_run is not None:
            print(chosen_run.describe(session.relative))
    return session
