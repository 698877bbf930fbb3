"""The six notebooks top to bottom in a kernel with Colab's own stack, a kernel that believes it is on Colab.

A second virtual environment holds the kernel-side packages in the versions Colab's published runtime
list names (tests/colab/constraints.txt: IPython 7, ipywidgets 7, ...), with torch and torchvision as
the package index serves them. It is built under build/colab/ (git-ignored) once, reused while the
constraints file and Python are unchanged, and registered as the Jupyter kernel ``simclr-colab``.

Its IPython start-up file (tests/colab/startup.py, tests/colab/fake_colab.py) fakes ``google.colab``:
Drive mounts a temporary folder, ``files.upload()`` returns a real image file, and the notebooks'
``%pip install`` line is checked against Colab's torch and torchvision (and the rest of its list), then
installs this checkout in place of the repository's address. Each notebook runs in a fresh runtime (a new
kernel in an empty folder), as on Colab, with the form fields set as a learner would: PROFILE = "smoke",
KEEP_IN_DRIVE ticked in notebooks 03-06, so that 03 keeps its run on the (fake) Drive and 04-06 read it.

It needs a package index the first time (to build the environment): without one the runs are skipped,
except in CI (``CI=true``), where they fail. ``pytest -m "not colab_kernel"`` leaves these runs out.
``SIMCLR_COLAB_NOTEBOOKS=FOLDER`` runs the notebooks of FOLDER instead of notebooks/ (copies changed on
purpose, to see what the test says).
"""

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "tests" / "colab"
CONSTRAINTS = COLAB / "constraints.txt"
CACHE = ROOT / "build" / "colab"  # git-ignored
VENV = CACHE / "venv"
JUPYTER = CACHE / "jupyter"  # the kernel's registration: JUPYTER/share/jupyter/kernels/KERNEL
KERNEL = "simclr-colab"
NOTEBOOKS = Path(os.environ.get("SIMCLR_COLAB_NOTEBOOKS") or ROOT / "notebooks")
ORDER = ["01_backbone_dissection", "02_augmentations", "03_pretraining", "04_linear_evaluation",
         "05_embeddings_tsne", "06_predict_single_image"]
IN_DRIVE = {"03_pretraining", "04_linear_evaluation", "05_embeddings_tsne", "06_predict_single_image"}
DRIVE_RUN = Path("MyDrive/simclr-step-by-step/checkpoints/smoke")  # where notebook 03 keeps its run
UPLOAD = "my_ship.jpg"  # the file the fake "Choose Files" dialog picks: a bundled test image, enlarged
COURSE_ENV = ("SIMCLR_PROFILE", "SIMCLR_RUN", "SIMCLR_DATA", "SIMCLR_CHECKPOINTS", "TQDM_DISABLE", "MPLBACKEND")


def load_fake_colab():
    spec = importlib.util.spec_from_file_location("fake_colab", COLAB / "fake_colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fake_colab = load_fake_colab()
COLAB_VERSIONS = fake_colab.colab_versions(CONSTRAINTS)  # all Colab preinstalls, torch and torchvision too
PINNED = fake_colab.pinned(CONSTRAINTS)  # what the environment has in Colab's version


def install_line(nb: Path) -> str:
    """The ``%pip`` line of a notebook's setup cell, without ``%pip``."""
    setup = next(c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
    (line,) = re.findall(r"^\s*%pip (.+)$", setup.source, flags=re.M)
    return line


# ------------------------------------------------------------------ the install line, without a kernel --

@pytest.mark.parametrize("name", ORDER)
def test_the_install_line_keeps_colabs_torch_and_installs_the_checkout(name):
    args, problems = fake_colab.check_install_line(install_line(NOTEBOOKS / f"{name}.ipynb"), COLAB_VERSIONS, ROOT)
    assert problems == []
    assert str(ROOT) in args and not any("github.com" in a for a in args)


def test_a_line_that_would_downgrade_torch_is_refused_in_one_sentence_per_package():
    line = 'install -q "simclr-helpers @ git+https://github.com/o/n" "torch<=2.10" "torchvision==0.25.*"'
    _, problems = fake_colab.check_install_line(line, COLAB_VERSIONS, ROOT)
    assert problems == ["torch<=2.10 does not admit Colab's torch 2.11.0: pip would replace it",
                        "torchvision==0.25.* does not admit Colab's torchvision 0.26.0: pip would replace it"]


def test_a_package_whose_requirements_would_replace_colabs_is_refused(tmp_path):
    """The package's own requirements count too, with the extras the line asks for."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "simclr-helpers"\n'
                                             'dependencies = ["torch>=2.3,<=2.10", "numpy>=1.24"]\n'
                                             '[project.optional-dependencies]\nnotebooks = ["ipywidgets>=8.0"]\n')
    line = 'install "simclr-helpers[notebooks] @ git+https://github.com/o/n" --force-reinstall'
    args, problems = fake_colab.check_install_line(line, COLAB_VERSIONS, tmp_path)
    assert problems == [
        "simclr-helpers requires torch<=2.10,>=2.3 does not admit Colab's torch 2.11.0: pip would replace it",
        "simclr-helpers requires ipywidgets>=8.0 does not admit Colab's ipywidgets 7.7.1: pip would replace it",
        "--force-reinstall would reinstall the packages Colab has"]
    assert args == [f"{tmp_path}[notebooks]"]


def test_the_requirements_never_cap_torch_below_its_next_major_version():
    from packaging.requirements import Requirement

    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = {Requirement(line).name: Requirement(line) for line in lines if line}
    deps = {Requirement(d).name: Requirement(d) for d in fake_colab.project(ROOT)["dependencies"]}
    for found in (reqs, deps):
        for name, newer in (("torch", "2.99.0"), ("torchvision", "0.99.0")):
            assert found[name].specifier.contains(newer) and found[name].specifier.contains(COLAB_VERSIONS[name])


# ------------------------------------------------------------------------------ the Colab-like kernel --

def build_colab_kernel() -> float:
    """The environment and its kernel, built unless the cached one matches the constraints; seconds spent."""
    python = VENV / "bin" / "python"
    digest = hashlib.sha256(CONSTRAINTS.read_bytes() + sys.version.encode()).hexdigest()
    stamp = CACHE / "venv.sha256"
    spec = JUPYTER / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    if python.exists() and spec.exists() and stamp.exists() and stamp.read_text() == digest:
        return 0.0
    t0 = time.perf_counter()
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    run = dict(check=True, capture_output=True, text=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], **run)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), *PINNED,
                        "torch", "torchvision", "setuptools>=68"], **run)
        subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(JUPYTER), "--name", KERNEL,
                        "--display-name", "Python 3 (Colab-like)"], **run)
    except subprocess.CalledProcessError as exc:
        # Without a package index (offline) there is no Colab-like kernel: skipped, except in CI (CI=true, set
        # by .ci/run), where it fails, as the browser test does without a Chromium.
        print(f"building the Colab-like environment failed:\n{exc.stdout[-3000:]}\n{exc.stderr[-3000:]}")
        if os.environ.get("CI"):
            pytest.fail("building the Colab-like environment failed (its pip output is above)")
        pytest.skip("the Colab-like environment could not be built (no package index?); its pip output is printed")
    stamp.write_text(digest)
    return time.perf_counter() - t0


def copy_checkout(target: Path) -> Path:
    """What pip would get from the repository: the package and its pyproject.toml and README."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "simclr_helpers", target / "simclr_helpers",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def upload_image(path: Path) -> Path:
    """A real JPEG file of a bundled test image (a ship), enlarged to 128 x 128 as a photo would be."""
    import io

    from PIL import Image

    from simclr_helpers.widgets import example_bytes

    _, content = example_bytes("test/ship/0022.jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(io.BytesIO(content)).convert("RGB").resize((128, 128), Image.Resampling.BICUBIC).save(path, "JPEG")
    return path


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """The kernel, its fake Colab (Drive, upload, %pip) and the folders of one test run."""
    built = build_colab_kernel()
    print(f"\nColab-like environment: built in {built:.0f} s" if built else
          "\nColab-like environment: reused (its constraints are unchanged)")
    python = VENV / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "simclr-helpers"], capture_output=True)
    home = tmp_path_factory.mktemp("fake-colab")
    startup = home / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copy(COLAB / "startup.py", startup / "00-fake-colab.py")
    with pytest.MonkeyPatch.context() as mp:
        for name in COURSE_ENV:  # Colab sets none of the course's variables
            mp.delenv(name, raising=False)
        # Nor a PYTHONPATH that reaches this checkout: the kernel must import the course the install line put there.
        mp.delenv("PYTHONPATH", raising=False)
        mp.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(JUPYTER / "share" / "jupyter"),
                                                                os.environ.get("JUPYTER_PATH")])))
        mp.setenv("IPYTHONDIR", str(home / "ipython"))
        mp.setenv("SIMCLR_DATA_CACHE", str(home / "cache"))  # nothing written to the home folder's cache
        mp.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel 6's debugger on Python 3.11 warns otherwise
        mp.setenv("FAKE_COLAB_MODULE", str(COLAB / "fake_colab.py"))
        mp.setenv("FAKE_COLAB_HOME", str(home))
        mp.setenv("FAKE_COLAB_UPLOAD", str(upload_image(home / "computer" / UPLOAD)))
        mp.setenv("FAKE_COLAB_CHECKOUT", str(copy_checkout(home / "checkout")))
        mp.setenv("FAKE_COLAB_CONSTRAINTS", str(CONSTRAINTS))
        yield home


def set_field(source: str, field: str, value: str) -> str:
    """A Colab form field of the setup cell set to ``value``, as the form would."""
    changed, count = re.subn(rf"^{field} = [^#\n]*?(\s+# @param)", rf"{field} = {value}\1", source, flags=re.M)
    assert count == 1, f"the setup cell has no form field {field}"
    return changed


CHECK_KERNEL = """\
import importlib.metadata as _metadata, json as _json, sys as _sys
import simclr_helpers as _course
print("COLAB-CHECK kernel " + _json.dumps({"versions": {n: _metadata.version(n) for n in NAMES},
      "course": _course.__file__, "on_colab": "google.colab" in _sys.modules}))
"""

CHECK_FILES_UPLOAD = """\
import os as _os
from pathlib import Path as _Path
from simclr_helpers.predict import predict_image as _predict_image
_uploaded = _Path(_os.environ["FAKE_COLAB_UPLOAD"])
_bars = fig.axes[1]
print("COLAB-CHECK files.upload " + _json.dumps({
    "my_image": MY_IMAGE.name, "same_bytes": _Path(MY_IMAGE).read_bytes() == _uploaded.read_bytes(),
    "title": fig.axes[0].get_title(),
    "shown": [[t.get_text(), round(p.get_width(), 4)] for t, p in zip(_bars.get_yticklabels(), _bars.patches)][::-1],
    "expected": [[c, round(p, 4)] for c, p in _predict_image(classifier, _uploaded, 5)]}))
"""

CHECK_UPLOAD_WIDGET = """\
# What the browser sends when a file is chosen in the upload box, in the widget protocol of the
# ipywidgets this kernel has: ipywidgets 7 (Colab's) sends metadata and data lists and a counter,
# ipywidgets 8 one value list; ipywidgets turns either into its FileUpload value.
import ipywidgets as _W
import simclr_helpers.widgets as _widgets
_box = _widgets.upload_predictor(classifier, top_k=5)
_content, _seen, _predict_upload = _uploaded.read_bytes(), [], _widgets.predict_upload

def _spy(classifier, name, content, top_k=5):
    result = _predict_upload(classifier, name, content, top_k)
    _seen.append({"name": name, "same_bytes": bytes(content) == _content, "top_k": top_k,
                  "said": result if isinstance(result, str) else None})
    return result

_widgets.predict_upload = _spy
_file = {"name": _uploaded.name, "type": "image/jpeg", "size": len(_content)}
if _W.__version__.startswith("7."):
    _state, _paths = {"metadata": [{**_file, "lastModified": 1790000000000}], "data": [None], "_counter": 1}, \\
        [["data", 0]]
else:
    _state, _paths = {"value": [{**_file, "last_modified": 1790000000000, "content": None}]}, \\
        [["value", 0, "content"]]
try:
    _box.children[0]._handle_msg({"content": {"data": {"method": "update", "state": _state, "buffer_paths": _paths}},
                                  "buffers": [memoryview(_content)]})
finally:
    _widgets.predict_upload = _predict_upload
print("COLAB-CHECK upload-widget " + _json.dumps({"ipywidgets": _W.__version__, "seen": _seen}))
"""


def execute(colab: Path, name: str) -> tuple[nbformat.NotebookNode, dict, float]:
    """Run a notebook in a fresh Colab-like runtime; the executed notebook, its COLAB-CHECK records, seconds."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    setup.source = set_field(setup.source, "PROFILE", '"smoke"')
    setup.source = set_field(setup.source, "KEEP_IN_DRIVE", str(name in IN_DRIVE))
    names = [*PINNED, "torch", "torchvision"]
    nb.cells.append(nbformat.v4.new_code_cell(f"NAMES = {names!r}\n" + CHECK_KERNEL))
    if name == "06_predict_single_image":
        nb.cells += [nbformat.v4.new_code_cell(CHECK_FILES_UPLOAD), nbformat.v4.new_code_cell(CHECK_UPLOAD_WIDGET)]
    runtime = colab / f"content-{name[:2]}"  # a fresh runtime's /content
    runtime.mkdir()
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=900, startup_timeout=180,
                            resources={"metadata": {"path": str(runtime)}})
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{name} failed in the Colab-like kernel:\n{plain(str(exc))}", pytrace=False)
    seconds = time.perf_counter() - t0
    # A traceback the kernel showed without failing the cell (a widget's callback, say) fails the test too.
    shown = [plain("\n".join(o.traceback)) for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    if shown:
        pytest.fail(f"{name}: the Colab-like kernel showed a traceback:\n" + "\n".join(shown), pytrace=False)
    checks = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("COLAB-CHECK "):
                    kind, record = line[len("COLAB-CHECK "):].split(" ", 1)
                    checks[kind] = json.loads(record)
    return nb, checks, seconds


def plain(text: str) -> str:
    """Text without the colours of IPython 7's tracebacks."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def text_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def colab_log(colab: Path) -> list[dict]:
    path = colab / "colab-log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.colab_kernel
@pytest.mark.parametrize("name", ORDER)
def test_the_notebook_runs_top_to_bottom_in_the_colab_kernel(colab, name, request):
    drive_run = colab / "drive" / DRIVE_RUN
    if name in IN_DRIVE and name != "03_pretraining" and not (drive_run / "last.pt").exists():
        # Run alone (or after notebook 03 failed): a small run left on Drive by an earlier runtime stands in.
        drive_run.mkdir(parents=True, exist_ok=True)
        shutil.copy(request.getfixturevalue("tiny_run").checkpoint, drive_run / "last.pt")
    log_before = len(colab_log(colab))
    nb, checks, seconds = execute(colab, name)
    print(f"{name}: {seconds:.0f} s in the Colab-like kernel")

    kernel = checks["kernel"]  # Colab's stack, untouched by the install line
    assert kernel["on_colab"] and kernel["course"].startswith(str(VENV))  # the installed checkout, not the repo
    assert {n: kernel["versions"][n] for n in PINNED} == PINNED
    log = colab_log(colab)[log_before:]
    pip = [r for r in log if r["event"] == "pip"]
    assert len(pip) == 1 and pip[0]["problems"] == [] and pip[0].get("changed", {}) == {}, pip
    mounts = [r for r in log if r["event"] == "mount"]
    setup = text_of(next(c for c in nb.cells if c.cell_type == "code"))
    assert "profile: smoke (set in the notebook) | device: cpu" in setup

    if name in IN_DRIVE:
        assert mounts == [{"event": "mount", "mountpoint": "/content/drive"}]
        assert "Mounted at /content/drive" in setup
        assert f"checkpoints: Google Drive: {DRIVE_RUN}" in setup
        assert (drive_run / "last.pt").is_file()  # notebook 03 wrote it there; 04-06 read it from there
        assert not (colab / f"content-{name[:2]}" / "checkpoints" / "smoke" / "last.pt").exists()
    else:
        assert mounts == [] and "checkpoints: checkpoints/smoke" in setup
    if name in ("04_linear_evaluation", "05_embeddings_tsne", "06_predict_single_image"):
        assert f"run: Google Drive: {DRIVE_RUN} (" in setup and "notebook 03's run of the smoke profile" in setup
    if name in ("02_augmentations", "06_predict_single_image"):  # the widgets: view and PNG in one bundle
        bundles = [o["data"] for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") in
                   ("display_data", "execute_result") and "application/vnd.jupyter.widget-view+json" in o["data"]]
        assert bundles and all("image/png" in b for b in bundles)
    if name == "06_predict_single_image":
        chosen = next(c for c in nb.cells if "files.upload()" in c.source)
        assert f"Saving {UPLOAD} to {UPLOAD}" in text_of(chosen)
        assert any("image/png" in o.get("data", {}) for o in chosen.outputs), "no chart for the uploaded file"
        upload = checks["files.upload"]
        assert upload["my_image"] == UPLOAD and upload["same_bytes"] and upload["title"] == UPLOAD
        assert upload["shown"] == upload["expected"]  # the chart is the prediction for the uploaded file
        widget = checks["upload-widget"]
        assert widget["seen"] == [{"name": UPLOAD, "same_bytes": True, "top_k": 5, "said": None}], widget
