"""The course where learners use it: JupyterLab in a real (headless) Chromium, widgets included.

The test starts a JupyterLab server of its own on 127.0.0.1 (a free port, a random token) over a
temporary copy of notebooks 02 and 06, drives it with Playwright, and stops it at the end with every
kernel it started. The notebooks find a small pretraining run and classifier in a temporary
checkpoint folder (``SIMCLR_CHECKPOINTS``), so nothing big is trained. Screenshots go to
``results/local/browser/`` (git-ignored).

Needs Chromium: Debian's ``apt-get install chromium``, or any Chromium or Chrome on PATH.
Without one the test is skipped, except in CI (``CI=true``), where it fails.

    .venv/bin/pytest tests/test_browser.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "results" / "local" / "browser"
NOTEBOOKS = ("02_augmentations.ipynb", "06_predict_single_image.ipynb")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# Chromium talks to Google's services unless told not to; this machine's network is not its business.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-features=Translate,OptimizationHints,MediaRouter"]
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
RUN_TIMEOUT_MS = 600_000  # running a notebook up to its widget cell (a busy 2-core machine: about 30 s)
TIMEOUT_MS = 120_000  # one widget step: a redraw, a prediction (a second or two)
LAB_SETTINGS = {  # the user settings of the test's own JupyterLab
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # every cell in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
}


def find_chromium() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
if CHROMIUM is None and not IN_CI:
    pytest.skip("no Chromium on PATH (Debian: apt-get install chromium); in CI (CI=true) this fails instead",
                allow_module_level=True)
if IN_CI:
    from playwright.sync_api import expect, sync_playwright
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
    expect, sync_playwright = sync_api.expect, sync_api.sync_playwright
expect.set_options(timeout=30_000)


@pytest.fixture(scope="session", autouse=True)
def _chromium_in_ci():
    """In CI a missing Chromium fails these tests (before anything is set up for them)."""
    if CHROMIUM is None:
        pytest.fail(f"CI=true and no Chromium on PATH (looked for {', '.join(BROWSERS)}): install one, "
                    "e.g. apt-get install chromium", pytrace=False)


# ------------------------------------------------------------------ processes --

def _children() -> dict[int, list[int]]:
    """Every process's children (pid -> child pids), from /proc, else from ps."""
    tree: dict[int, list[int]] = {}
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                tree.setdefault(ppid, []).append(int(entry.name))
    else:
        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid, ppid = map(int, line.split())
            tree.setdefault(ppid, []).append(pid)
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent's wait is missing
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------- server --

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_run, classifier_ckpt):
    """A checkpoint folder as notebooks 03 and 04 leave it: <folder>/smoke/last.pt and classifier.pt."""
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "smoke").mkdir()
    shutil.copy(tiny_run.checkpoint, folder / "smoke" / "last.pt")
    shutil.copy(classifier_ckpt, folder / "smoke" / "classifier.pt")
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory, checkpoints):
    """A JupyterLab server over a copy of the notebooks; yields (base URL, token, notebook folder)."""
    home = tmp_path_factory.mktemp("lab")
    course = home / "notebooks"
    course.mkdir()
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, course / name)
    for name, values in LAB_SETTINGS.items():
        path = home / "lab-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMCLR_", "JUPYTER", "MPLBACKEND"))}
    env.update(SIMCLR_PROFILE="smoke", TQDM_DISABLE="1", SIMCLR_CHECKPOINTS=str(checkpoints),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), IPYTHONDIR=str(home / "ipython"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={course}", "--ServerApp.terminals_enabled=False",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]  # no PyPI look-ups
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers often run as root
        cmd.append("--allow-root")
    log = (home / "server.log").open("w")
    server = subprocess.Popen(cmd, cwd=course, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # its own process group, killed as one at the end
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {server.returncode}:\n"
                            f"{(home / 'server.log').read_text()[-3000:]}")
            try:
                if _request(f"{base}/api/status", token) == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 120 s:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token, course
    finally:
        # Kernels run in sessions of their own (jupyter_client starts them so), so the server's group
        # does not hold them: note every process below the server, ask the server to shut down (it
        # stops its kernels), then kill whatever is left, group by group.
        below = descendants(server.pid)
        try:
            _request(f"{base}/api/shutdown", token, method="POST")
            server.wait(timeout=30)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            pass
        _kill_group(server.pid)
        for pid in below:
            try:
                _kill_group(os.getpgid(pid))
            except ProcessLookupError:
                pass
        server.wait(timeout=30)
        log.close()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in below) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in below if _alive(p)]
        assert not left, f"processes the test started outlived it: {left}"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# ------------------------------------------------------------------- JupyterLab --

OPEN = """async (path) => {
    const app = window.jupyterapp;
    await app.restored;
    const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
    await panel.context.ready;
    await panel.sessionContext.ready;
    return panel.id;
}"""

KERNEL_IDLE = """(path) => {
    for (const w of window.jupyterapp.shell.widgets('main')) {
        if (w.context && w.context.path === path) {
            const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
            return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
        }
    }
    return false;
}"""

RUN_THROUGH = """([path, index]) => {
  window.runThrough = null;
  (async () => {
    const app = window.jupyterapp;
    let panel = null;
    for (const w of app.shell.widgets('main')) { if (w.context && w.context.path === path) panel = w; }
    app.shell.activateById(panel.id);
    const nb = panel.content;
    nb.activeCellIndex = index;
    nb.deselectAll();
    const above = await app.commands.execute('notebook:run-all-above');
    const cell = await app.commands.execute('notebook:run-cell');
    const errors = [];
    nb.widgets.slice(0, index + 1).forEach((c, i) => {
        if (c.model.type !== 'code') return;
        for (let j = 0; j < c.model.outputs.length; j++) {
            const o = c.model.outputs.get(j).toJSON();
            if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
        }
    });
    return {ok: above !== false && cell !== false, errors};
  })().then(r => { window.runThrough = r; }, e => { window.runThrough = {ok: false, errors: [String(e)]}; });
}"""


def cell_index(notebook: Path, needle: str) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and needle in "".join(c["source"])]
    assert found, f"no cell with {needle!r} in {notebook.name}"
    return found[0]


def open_and_run_through(page, lab, name: str, needle: str):
    """Open a notebook in JupyterLab, run it from the top through the cell containing ``needle``;
    return that cell's element."""
    base, token, course = lab
    page.goto(f"{base}/lab?reset&token={token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=TIMEOUT_MS)
    panel_id = page.evaluate(OPEN, name)
    page.wait_for_function(KERNEL_IDLE, arg=name, timeout=RUN_TIMEOUT_MS, polling=250)
    index = cell_index(course / name, needle)
    page.evaluate(RUN_THROUGH, [name, index])  # starts the run; the page keeps the result
    result = page.wait_for_function("() => window.runThrough", timeout=RUN_TIMEOUT_MS, polling=500).json_value()
    assert result["ok"] and not result["errors"], result
    cell = page.locator(f"#{panel_id} .jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    return cell


def img_src(locator) -> str:
    src = locator.get_attribute("src")
    assert src, "an image with no source"
    return src


def png_size(src: str) -> tuple[int, int]:
    """(width, height) of a PNG given as a data URI (JupyterLab shows figures so)."""
    head = base64.b64decode(src.split(",", 1)[1][:64])
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "the figure is a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def fingerprint(src: str) -> str:
    return hashlib.sha1(src.encode()).hexdigest()[:12]


def new_image(page, image, old: str, action: str) -> None:
    """Wait until the image differs from ``old`` (its data URI): the explorer redrew after ``action``."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if image.count() == 1 and img_src(image) != old:
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the image did not change within {TIMEOUT_MS // 1000} s of {action} "
                         f"(still {fingerprint(old)})")


def settled(page, image, notebook: str) -> str:
    """The image's source once the kernel is idle and the image has not changed for a second."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    src = img_src(image)
    while time.monotonic() < deadline:
        page.wait_for_function(KERNEL_IDLE, arg=notebook, timeout=TIMEOUT_MS, polling=100)
        page.wait_for_timeout(1000)
        now = img_src(image)
        if now == src:
            return src
        src = now
    raise AssertionError("the explorer kept redrawing")


def choose(page, button, path: Path) -> None:
    """Click the upload button and pick ``path`` in the file chooser it opens, as a learner does."""
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(path)


def shot(locator, name: str) -> str:
    SHOTS.mkdir(parents=True, exist_ok=True)
    locator.screenshot(path=SHOTS / name)
    return (SHOTS / name).relative_to(ROOT).as_posix()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    context.close()


# ------------------------------------------------------------------------- tests --

def test_augmentation_explorer_in_jupyterlab(lab, page, capsys):
    cell = open_and_run_through(page, lab, "02_augmentations.ipynb", "augmentation_explorer(")
    output = cell.locator(".jp-Cell-outputArea")
    sliders = output.locator(".widget-hslider")
    expect(sliders).to_have_count(4, timeout=TIMEOUT_MS)
    button = output.get_by_role("button", name="new views")
    expect(button).to_be_visible()
    image = output.locator(".widget-output img")
    expect(image).to_have_count(1, timeout=TIMEOUT_MS)
    expect(output.locator("img")).to_have_count(1)  # the widget, not its static stand-in as well
    expect(page.get_by_text("Error displaying widget")).to_have_count(0)
    first = img_src(image)
    shots = [shot(cell, "02_explorer_default.png")]

    scale = sliders.filter(has_text="min crop scale")
    readout = scale.locator(".widget-readout")
    expect(readout).to_have_text("0.08")
    track = scale.locator(".noUi-target").bounding_box()
    handle = scale.locator(".noUi-handle").bounding_box()
    y = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + 0.6 * track["width"], y, steps=3)
    page.mouse.up()
    expect(readout).not_to_have_text("0.08")
    assert float(readout.inner_text()) > 0.3
    new_image(page, image, first, "moving the crop-scale slider")
    moved = settled(page, image, "02_augmentations.ipynb")  # the drag's last redraw

    button.click()
    new_image(page, image, moved, "pressing 'new views'")
    expect(page.get_by_text("Error displaying widget")).to_have_count(0)
    shots.append(shot(cell, "02_explorer_changed.png"))
    with capsys.disabled():
        print(f"\nscreenshots: {', '.join(shots)}")


def test_upload_predictor_in_jupyterlab(lab, page, tmp_path, capsys):
    from simclr_helpers.data import BUNDLED_SUBSET

    with zipfile.ZipFile(BUNDLED_SUBSET) as zf:  # a real JPEG file, as a learner would pick one
        (tmp_path / "horse.jpg").write_bytes(zf.read("test/horse/0002.jpg"))
    (tmp_path / "broken.jpg").write_bytes(bytes(range(256)) * 16)  # not any image format

    cell = open_and_run_through(page, lab, "06_predict_single_image.ipynb", "upload_predictor(")
    output = cell.locator(".jp-Cell-outputArea")
    button = output.locator(".widget-upload")  # its <input type=file> is not in the page: a click opens it
    expect(button).to_have_count(1, timeout=TIMEOUT_MS)
    expect(output).to_contain_text("never reach the kernel")  # the size limit, said before it bites
    expect(output.locator("img")).to_have_count(0)  # the static stand-in is for viewers without widgets
    expect(page.get_by_text("Error displaying widget")).to_have_count(0)
    shown = output.locator(".widget-output")

    choose(page, button, tmp_path / "horse.jpg")
    chart = shown.locator("img")
    expect(chart).to_have_count(1, timeout=TIMEOUT_MS)
    width, height = png_size(img_src(chart))
    assert width > 2 * height, f"a {width}x{height} figure is not the picture-and-bars chart"
    assert shown.inner_text().strip() == "", "a chart, no message"
    shots = [shot(cell, "06_upload_chart.png")]

    choose(page, button, tmp_path / "broken.jpg")
    sentence = "broken.jpg: not an image file PIL can read (unknown or unsupported format)."
    expect(shown).to_have_text(sentence, timeout=TIMEOUT_MS)
    expect(chart).to_have_count(0)
    shots.append(shot(cell, "06_upload_broken.png"))
    with capsys.disabled():
        print(f"\nscreenshots: {', '.join(shots)}")
