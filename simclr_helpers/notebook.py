"""The first code cell of every notebook: profile, device, seeds, figure format.

Kept here so the notebooks stay identical in their setup and nothing is copied
from one notebook to the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .config import Profile, default_checkpoint_dir, get_profile, project_root
from .runtime import pick_device, seed_everything


@dataclass
class Session:
    profile: Profile
    device: torch.device
    checkpoint_dir: Path  # where this profile's checkpoints live

    def relative(self, path: str | Path) -> str:
        """A path relative to the course folder, for printing (no machine paths in outputs)."""
        path = Path(path).resolve()
        try:
            return str(path.relative_to(project_root()))
        except ValueError:
            return path.name


def setup(seed: int = 0, quiet: bool = False) -> Session:
    """Pick the profile ($SIMCLR_PROFILE, default smoke) and device, seed every RNG, PNG figures."""
    import lightly
    import matplotlib.pyplot as plt

    try:  # PNG, not SVG: smaller notebooks, the same picture everywhere
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
    except ImportError:  # outside IPython
        pass
    from .plots import COURSE_STYLE

    plt.rcParams.update(COURSE_STYLE)
    seed_everything(seed)
    profile = get_profile()
    device = pick_device()
    session = Session(profile, device, default_checkpoint_dir() / profile.name)
    if not quiet:
        gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        print(f"profile: {profile.name} | device: {device}{gpu} | torch {torch.__version__} | "
              f"lightly {lightly.__version__} | seed {seed}")
    return session
