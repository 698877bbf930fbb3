"""What readers without widgets get: a static figure for every widget, and notebook 06's MY_IMAGE cell.

The browser test (test_browser.py) checks the live widgets; these tests need no browser and no kernel.
"""

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from simclr_helpers import widgets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_CALLS = ("augmentation_explorer(", "upload_predictor(")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code_cells(nb):
    return [c for c in json.loads(nb.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def _widget_cells():
    for nb in NOTEBOOKS:
        for cell in _code_cells(nb):
            code = "\n".join(line for line in _source(cell).splitlines() if not line.lstrip().startswith("#"))
            if any(call in code and f"def {call}" not in code for call in WIDGET_CALLS):
                yield pytest.param(cell, id=f"{nb.stem}:{cell.get('id')}")


def _path_cell():
    nb = ROOT / "notebooks" / "06_predict_single_image.ipynb"
    cells = [_source(c) for c in _code_cells(nb) if "MY_IMAGE = " in _source(c)]
    assert cells, "notebook 06 has a cell that sets MY_IMAGE"
    return cells[0]


def test_every_widget_notebook_is_covered():
    stems = {p.id.split(":")[0] for p in _widget_cells()}
    assert {"02_augmentations", "06_predict_single_image"} <= stems


@pytest.mark.parametrize("cell", list(_widget_cells()))
def test_widget_cells_keep_a_static_figure(cell):
    """GitHub's viewer cannot run a widget: the committed output must hold a PNG it can show."""
    pngs = [o for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert pngs, ("no image/png in this widget cell's committed output: re-execute the notebook top to bottom "
                  "and keep the widget's display bundle (its image/png is the static figure)")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_widget_state_is_stored(nb):
    """With widget state in the metadata, nbconvert and nbviewer draw the (dead) widget view instead of
    the PNG beside it; without it they show the PNG."""
    assert "widgets" not in json.loads(nb.read_text(encoding="utf-8")).get("metadata", {})


def test_widget_bundles_hold_the_view_and_a_png(bundled, classifier_ckpt):
    pytest.importorskip("ipywidgets")
    from IPython.core.formatters import DisplayFormatter

    from simclr_helpers.predict import load_classifier

    plt.close("all")
    fmt = DisplayFormatter()
    made = [widgets.augmentation_explorer(bundled.test.images[:2], n_views=2),
            widgets.upload_predictor(load_classifier(classifier_ckpt))]
    for widget in made:
        data, _ = fmt.format(widget)
        assert WIDGET_VIEW in data and data["image/png"], sorted(data)
        assert widgets.base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert not plt.get_fignums(), "the static figures are closed, so the inline backend shows them only once"


def test_upload_problems_are_one_sentence_each():
    assert widgets.upload_problem(()) == widgets.NO_FILE_RECEIVED
    assert widgets.upload_problem({}) == widgets.NO_FILE_RECEIVED
    big = ({"name": "photo.jpg", "type": "image/jpeg", "size": 3_400_000, "content": memoryview(b"")},)
    text = widgets.upload_problem(big)
    assert text.startswith("photo.jpg (3.4 MB) did not arrive:") and "MY_IMAGE" in text
    empty = ({"name": "blank.jpg", "size": 0, "content": memoryview(b"")},)
    assert widgets.upload_problem(empty) == "blank.jpg: the file is empty (0 bytes); it is not an image."
    assert widgets.upload_problem(({"name": "a.jpg", "size": 3, "content": memoryview(b"abc")},)) is None
    for sentence in (widgets.NO_FILE_RECEIVED, text, widgets.UPLOAD_LIMIT_NOTE):
        assert sentence.count(". ") == 0 and sentence.endswith(".") and "\n" not in sentence
    assert "10 MB" in widgets.UPLOAD_LIMIT_NOTE and "1 MB on Colab" in widgets.UPLOAD_LIMIT_NOTE


def test_upload_box_says_when_nothing_arrived(classifier_ckpt, capsys):
    pytest.importorskip("ipywidgets")
    from simclr_helpers.predict import load_classifier

    box = widgets.upload_predictor(load_classifier(classifier_ckpt))
    _, content = widgets.example_bytes()
    now = datetime.datetime.now(datetime.timezone.utc)
    box.children[0].value = ({"name": "cat.jpg", "type": "image/jpeg", "size": len(content),
                              "content": memoryview(content), "last_modified": now},)
    box.children[0].value = ()  # what Colab delivers for a file of about 1 MB or more
    assert widgets.NO_FILE_RECEIVED in capsys.readouterr().out  # no kernel: Output passes prints through
    assert any(widgets.UPLOAD_LIMIT_NOTE.split(":")[0] in getattr(w, "value", "") for w in box.children)
    plt.close("all")


# A prelude run in a fresh interpreter where ipywidgets cannot be imported at all (as in a kernel or
# front end without widget support), with the names notebook 06 defines before section 5.
NO_WIDGETS = textwrap.dedent("""
    import json, sys
    sys.modules["ipywidgets"] = None  # `import ipywidgets` raises ImportError from here on
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path
    from simclr_helpers.predict import load_classifier

    classifier = load_classifier(sys.argv[1])
    samples = Path(sys.argv[2])
    samples.mkdir(parents=True, exist_ok=True)  # section 2 of the notebook made it
    report = {}

    def chart(fig):
        return None if fig is None else {"axes": len(fig.axes), "bars": len(fig.axes[1].patches),
                                         "title": fig.axes[0].get_title()}
""")


def _run(script, *args, cwd):
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *printed, last = proc.stdout.strip().splitlines()
    return json.loads(last), printed


def test_path_cell_predicts_without_ipywidgets(classifier_ckpt, tmp_path):
    script = NO_WIDGETS + textwrap.dedent("""
        exec(compile(CELL, "notebook 06, the MY_IMAGE cell", "exec"))
        report["default"] = chart(fig)
        report["my_image"] = Path(MY_IMAGE).name
        try:
            import ipywidgets  # noqa: F401
            report["ipywidgets"] = "importable"
        except ImportError:
            report["ipywidgets"] = "not importable"
        print(json.dumps(report))
    """).replace("CELL", repr(_path_cell()))
    report, printed = _run(script, classifier_ckpt, tmp_path / "samples", cwd=tmp_path)
    assert report["ipywidgets"] == "not importable"
    assert report["default"] == {"axes": 2, "bars": 5, "title": report["my_image"]}
    assert (tmp_path / "samples" / report["my_image"]).is_file() and not printed


def test_predict_source_paths_urls_and_failures_without_ipywidgets(classifier_ckpt, tmp_path):
    """A path, a URL (served locally), a broken file, a missing file, an unreachable URL; Colab's branch."""
    _, content = widgets.example_bytes()
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "cat.jpg").write_bytes(content)
    (tmp_path / "broken.jpg").write_bytes(b"\x00\x01 not an image")
    nb = json.loads((ROOT / "notebooks" / "06_predict_single_image.ipynb").read_text(encoding="utf-8"))
    colab_cell = next(_source(c) for c in nb["cells"] if "google.colab" in _source(c) and "files.upload" in
                      _source(c))
    script = NO_WIDGETS + textwrap.dedent("""
        import functools, http.server, socket, threading, types
        from simclr_helpers.widgets import predict_source

        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        with socket.socket() as s:  # a port nothing listens on: the download fails as offline
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}/cat.jpg"

        report["path"] = chart(predict_source(classifier, Path(sys.argv[3]) / "cat.jpg"))
        report["url"] = chart(predict_source(classifier, url + "/cat.jpg"))
        for name, source in (("broken", "broken.jpg"), ("missing", "missing.jpg"), ("404", url + "/nope.jpg"),
                             ("offline", closed)):
            report[name] = predict_source(classifier, source)
        print("---")

        # Colab's branch, with a stand-in for google.colab.files that "uploads" the cat
        files = types.SimpleNamespace(upload=lambda: {"upload.jpg": Path(sys.argv[3], "cat.jpg").read_bytes()})
        sys.modules["google.colab"] = types.SimpleNamespace(files=files)
        fig = None
        exec(compile(COLAB, "notebook 06, the Colab cell", "exec"))
        report["colab"] = chart(fig)
        report["colab_file"] = str(MY_IMAGE.relative_to(samples))
        server.shutdown()
        print(json.dumps(report))
    """).replace("COLAB", repr(colab_cell))
    report, printed = _run(script, classifier_ckpt, tmp_path / "samples", tmp_path / "served", cwd=tmp_path)
    assert report["path"] == {"axes": 2, "bars": 5, "title": "cat.jpg"}
    assert report["url"] == report["path"]
    assert report["colab"] == {"axes": 2, "bars": 5, "title": "upload.jpg"} and report["colab_file"] == "upload.jpg"
    assert all(report[k] is None for k in ("broken", "missing", "404", "offline"))
    sentences = printed[:printed.index("---")]
    assert len(sentences) == 4, sentences  # one line each
    broken, missing, not_found, offline = sentences
    assert broken == "broken.jpg: not an image file PIL can read (unknown or unsupported format)."
    assert missing == "missing.jpg: no such file; check the path."
    assert not_found.endswith("/nope.jpg: the server answered 404 (File not found); check the address.")
    assert "/cat.jpg: could not download it (" in offline and "refused" in offline
    assert offline.endswith("); check the address and the network connection.")


def test_the_widget_module_imports_no_ipywidgets():
    code = ("import sys; sys.modules['ipywidgets'] = None\n"
            "import simclr_helpers.widgets as w\n"
            "try:\n    w.upload_predictor(None)\nexcept ImportError as e:\n    print('ImportError')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ImportError", proc.stderr[-2000:]
