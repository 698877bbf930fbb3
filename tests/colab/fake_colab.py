"""The fake Colab of the Colab-like kernel (tests/test_colab_kernel.py): the kernel believes it is on Colab.

The kernel's IPython start-up file (tests/colab/startup.py) installs it when the kernel starts:

* loads stand-ins for ``google.colab``, ``google.colab.drive`` and ``google.colab.files``: Colab's kernel has
  ``google.colab`` loaded, and that is how the notebooks know where they run;
* ``drive.mount(...)`` mounts a temporary folder (``$FAKE_COLAB_HOME/drive``) and says "Mounted at ...", as
  Colab does; Colab's mount point /content/drive needs root, so the course module that asked for it is
  pointed at the temporary folder;
* ``files.upload()`` "chooses" the image file ``$FAKE_COLAB_UPLOAD``: it is saved to the current folder and
  returned as ``{name: bytes}``, as Colab does;
* ``%pip install ...`` lines are captured instead of reaching the network. Each line is checked first:
  its specifiers, and those of the package it installs, must admit every version Colab preinstalls
  (``tests/colab/constraints.txt``, torch and torchvision included), or pip would replace them. The line
  then installs the local checkout (``$FAKE_COLAB_CHECKOUT``) in place of the repository's address, once
  per test run; later lines are recorded only. Afterwards the Colab packages must be as they were.

Every call is recorded in ``$FAKE_COLAB_HOME/colab-log.jsonl`` for the test to read. The test also imports
this file as a module, to check install lines without a kernel (``check_install_line``).
"""

import json
import os
import shlex
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip's own copy of tomli
    from pip._vendor import tomli as tomllib

# pip options a notebook's install line may use; the others would install something other than the checkout
# (-r, -e, -c, --index-url ...) or reinstall what Colab has (--force-reinstall ...), and are refused.
QUIET_OPTIONS = {"-q", "--quiet", "-qq", "-qqq", "-U", "--upgrade", "--no-warn-script-location", "--progress-bar=off"}
REINSTALLING_OPTIONS = {"--force-reinstall", "--ignore-installed", "-I", "--upgrade-strategy=eager"}


def colab_versions(constraints: str | Path) -> dict[str, str]:
    """What Colab preinstalls, from the constraints file: its ``name==version`` lines and its
    ``# colab: name==version`` comment lines (the packages the environment cannot have in Colab's version)."""
    versions = {}
    for raw in Path(constraints).read_text().splitlines():
        line = raw.strip()
        if line.startswith("# colab:"):
            line = line[len("# colab:"):]
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            versions[canonicalize_name(req.name)] = spec.version
    return versions


def pinned(constraints: str | Path) -> dict[str, str]:
    """The ``name==version`` lines of the constraints file alone: what the environment installs as Colab has it."""
    versions = {}
    for raw in Path(constraints).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            versions[canonicalize_name(req.name)] = next(iter(req.specifier)).version
    return versions


def project(checkout: str | Path) -> dict:
    """The ``[project]`` table of the checkout's pyproject.toml."""
    return tomllib.loads((Path(checkout) / "pyproject.toml").read_text())["project"]


def _refusal(req: Requirement, name: str, version: str, why: str) -> str | None:
    if canonicalize_name(req.name) != name or (req.marker is not None and not req.marker.evaluate()):
        return None
    if req.specifier.contains(version, prereleases=True):
        return None
    return f"{why}{req} does not admit Colab's {req.name} {version}: pip would replace it"


def check_install_line(line: str, colab: dict[str, str], checkout: str | Path) -> tuple[list[str], list[str]]:
    """The pip arguments that install ``line`` from the checkout instead of the repository, and the problems
    of the line: each a sentence on a requirement (of the line, or of the package it installs) that does not
    admit a version Colab preinstalls, or on an option the line should not use."""
    words = shlex.split(line)
    if not words or words[0] != "install":
        return [], [f"%pip {line}: the notebooks only ever run %pip install"]
    meta = project(checkout)
    args, problems = [], []
    for word in words[1:]:
        if word.startswith("-"):
            if word in REINSTALLING_OPTIONS:
                problems.append(f"{word} would reinstall the packages Colab has")
            elif word not in QUIET_OPTIONS:
                problems.append(f"{word}: an option the fake %pip does not know; give the notebooks plain requirements")
            else:
                args.append(word)
            continue
        try:
            req = Requirement(word)
        except InvalidRequirement as exc:
            problems.append(f"{word}: not a requirement ({exc})")
            continue
        if req.url:  # the course's package from its repository: installed from the checkout instead
            if canonicalize_name(req.name) != canonicalize_name(meta["name"]) or not req.url.startswith(
                    "git+https://github.com/"):
                problems.append(f"{word}: expected {meta['name']} @ git+https://github.com/OWNER/NAME")
                continue
            deps = list(meta.get("dependencies", []))
            for extra in sorted(req.extras):
                deps += meta.get("optional-dependencies", {}).get(extra, [])
            for dep in map(Requirement, deps):
                for name, version in colab.items():
                    problem = _refusal(dep, name, version, f"{meta['name']} requires ")
                    problems += [problem] if problem else []
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            args.append(f"{Path(checkout)}{extras}")
        else:
            for name, version in colab.items():
                problem = _refusal(req, name, version, "")
                problems += [problem] if problem else []
            args.append(word)
    return args, problems


def installed(names) -> dict[str, str | None]:
    """The installed version of each distribution (None: not installed)."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


class FakeColab:
    """The stand-ins, with their settings from the environment the test gave the kernel."""

    def __init__(self, environ=os.environ):
        self.home = Path(environ["FAKE_COLAB_HOME"])
        self.upload_file = Path(environ["FAKE_COLAB_UPLOAD"])
        self.checkout = Path(environ["FAKE_COLAB_CHECKOUT"])
        self.constraints = Path(environ["FAKE_COLAB_CONSTRAINTS"])
        self.drive = self.home / "drive"
        self.log_file = self.home / "colab-log.jsonl"

    def log(self, **record) -> None:
        with self.log_file.open("a") as f:
            f.write(json.dumps(record) + "\n")

    # ---------------------------------------------------------------------------- google.colab --
    def mount(self, mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
        (self.drive / "MyDrive").mkdir(parents=True, exist_ok=True)
        course = sys.modules.get("simclr_helpers.notebook")
        if course is not None and getattr(course, "DRIVE_MOUNT", None) == mountpoint:
            course.DRIVE_MOUNT = str(self.drive)  # reads its checkpoints' folder from here after mount() returns
        self.log(event="mount", mountpoint=str(mountpoint))
        print(f"Mounted at {mountpoint}")

    def upload(self, target_dir=""):
        name, content = self.upload_file.name, self.upload_file.read_bytes()
        target = Path(target_dir or ".") / name
        target.write_bytes(content)
        self.log(event="upload", name=name, bytes=len(content))
        print(f"Saving {name} to {target}")
        return {name: content}

    def modules(self) -> dict[str, types.ModuleType]:
        google = sys.modules.get("google") or types.ModuleType("google")
        google.__path__ = getattr(google, "__path__", [])
        colab = types.ModuleType("google.colab")
        drive = types.ModuleType("google.colab.drive")
        files = types.ModuleType("google.colab.files")
        drive.mount, files.upload = self.mount, self.upload
        colab.drive, colab.files, google.colab = drive, files, colab
        return {"google": google, "google.colab": colab, "google.colab.drive": drive, "google.colab.files": files}

    # ---------------------------------------------------------------------------------- %pip --
    def pip(self, line: str) -> None:
        colab = colab_versions(self.constraints)
        args, problems = check_install_line(line, colab, self.checkout)
        record = {"event": "pip", "line": line, "problems": problems}
        if problems:
            self.log(**record, action="refused")
            raise RuntimeError(f"%pip {line}: on Colab this would change its preinstalled packages: "
                               + "; ".join(problems))
        marker = self.home / "checkout-installed"
        if marker.exists():
            self.log(**record, action="recorded (this test run installed the checkout already)")
            return
        before = installed(colab)
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", *args],
                              capture_output=True, text=True)
        if done.returncode:
            self.log(**record, action="failed", output=done.stdout[-4000:] + done.stderr[-4000:])
            raise RuntimeError(f"pip install of the checkout failed:\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
        after = installed(colab)
        changed = {name: (before[name], after[name]) for name in colab if before[name] != after[name]}
        self.log(**record, action="installed the checkout", changed=changed)
        if changed:
            raise RuntimeError(f"%pip {line} changed Colab's packages (before, after): {changed}")
        marker.touch()

    def install(self, shell) -> None:
        sys.modules.update(self.modules())
        shell.register_magic_function(self.pip, magic_kind="line", magic_name="pip")
