"""The repository's address wherever the course spells it out, and rewriting it for a fork.

``config.REPOSITORY`` is the one source. The notebooks' Colab badges and install cells and the
README's badges must repeat it as text (a notebook's install cell runs before the package is
installed); ``tests/test_repository_address.py`` checks that they agree, and
``python -m simclr_helpers set-repository OWNER/NAME`` rewrites every copy at once.
"""

from __future__ import annotations

import re
from pathlib import Path

from .config import REPOSITORY, project_root
from .errors import SimclrError

OWNER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_ADDRESS = r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+?"
# Where an address appears: a Colab badge's target, a pip install from GitHub, the constant.
BADGE = re.compile(rf"colab\.research\.google\.com/github/({_ADDRESS})/blob/")
INSTALL = re.compile(rf"git\+https://github\.com/({_ADDRESS})(?=\.git|[\"'\\\s@#]|$)")
CONSTANT = re.compile(r'^(REPOSITORY = ")([^"]+)(")', re.MULTILINE)


def files(root: Path) -> list[Path]:
    """The files that spell the address out: the config constant, the README, the notebooks."""
    return [root / "simclr_helpers" / "config.py", root / "README.md", *sorted((root / "notebooks").glob("*.ipynb"))]


def addresses(text: str) -> set[str]:
    """Every OWNER/NAME that ``text`` names in a Colab badge, a GitHub pip install or the constant."""
    return {m.group(1) for pattern in (BADGE, INSTALL) for m in pattern.finditer(text)} | {
        m.group(2) for m in CONSTANT.finditer(text)}


def set_repository(new: str, root: str | Path | None = None) -> list[Path]:
    """Point every badge, install cell and the constant at ``new`` (OWNER/NAME); returns the files changed.

    ``root`` is the course's folder (default: the one this command runs in). Only the
    addresses are replaced, byte for byte, so the notebooks keep their outputs and format.
    """
    if not OWNER_NAME.match(new):
        raise SimclrError(f"{new!r} is not a GitHub repository address; give it as OWNER/NAME, "
                          "e.g. my-name/simclr-step-by-step.")
    root = Path(root) if root is not None else project_root()
    if not (root / "notebooks").is_dir() or not (root / "simclr_helpers" / "config.py").is_file():
        raise SimclrError(f"{root.name or root}: not the course's folder (no notebooks/ and simclr_helpers/config.py); "
                          "run set-repository inside a clone of the repository.")
    changed = []
    for path in files(root):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new_text = CONSTANT.sub(lambda m: m.group(1) + new + m.group(3), text)
        for old in addresses(text) | {REPOSITORY}:
            if old == new:
                continue
            new_text = re.sub(rf"(colab\.research\.google\.com/github/){re.escape(old)}(?=/)", rf"\g<1>{new}", new_text)
            new_text = re.sub(rf"(github\.com/){re.escape(old)}(?![A-Za-z0-9_.-])", rf"\g<1>{new}", new_text)
        if new_text != text:
            path.write_text(new_text, encoding="utf-8")
            changed.append(path)
    return changed
