"""Interactive explorers (ipywidgets), each with a static figure for viewers without a kernel.

Notebook 02 uses ``augmentation_explorer``; notebook 06 uses ``upload_predictor`` and, with no
widget support at all (a plain viewer, a kernel without ipywidgets, a script), ``predict_source``.
Each widget is displayed as one bundle holding both the live widget and a PNG of its figure for
the default state: a front end with a widget manager (JupyterLab: tests/test_browser.py) draws the
widget; a viewer without one (GitHub, or nbconvert for a notebook that stores no widget state) shows
the PNG. Nothing here imports ipywidgets until a widget is made.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import http.client
import io
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .augment import CIFAR_AUGMENT, AugmentConfig, BatchedSimCLRAugment

# Bundled test images (inside assets/cifar10_subset.zip) that stand in for "your own image"
# where no file has been chosen yet: the default of notebook 06's MY_IMAGE and the upload box's
# static figure.
EXAMPLE_IMAGE = "test/cat/0000.jpg"
UPLOAD_EXAMPLE = "test/dog/0001.jpg"
# What reaches the kernel through the upload box: Jupyter's server closes a websocket message over
# 10 MiB (tornado's default), and on Colab files of about 1 MB or more arrive empty.
UPLOAD_LIMIT_NOTE = ("Files of about 10 MB or more (about 1 MB on Colab) never reach the kernel: "
                     "for those, set MY_IMAGE above to the file's path.")
NO_FILE_RECEIVED = ("No file received: the upload arrived empty (on Colab, files of about 1 MB or more do); "
                    "set MY_IMAGE above to the file's path instead.")
DOWNLOAD_LIMIT = 50 * 1024 * 1024  # bytes: a URL that serves more than this is not read to the end


def augmentation_views(images: torch.Tensor, config: AugmentConfig = CIFAR_AUGMENT, n_views: int = 6,
                       seed: int = 0, title: str | None = None):
    """A figure: each image (rows) with ``n_views`` SimCLR views drawn with ``config``."""
    from .plots import image_grid

    aug = BatchedSimCLRAugment(config, generator=torch.Generator().manual_seed(seed))
    views = [aug(images, normalized=False) for _ in range(n_views)]
    grid = torch.stack([images.float() / 255] + views, dim=1).flatten(0, 1)
    titles = (["original"] + [f"view {i + 1}" for i in range(n_views)]) * len(images)
    fig = image_grid(grid, titles, ncols=n_views + 1, size=1.4, stats=None)
    fig.suptitle(title or f"crop scale >= {config.min_scale:.2f}, jitter strength {config.cj_strength:.2f}, "
                 f"greyscale p = {config.gray_prob:.2f}, blur p = {config.blur_prob:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    """The PNG bytes of a figure, framed as the notebooks' inline figures are (tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def with_static_figure(widget, fig):
    """Show ``fig`` as a PNG wherever ``widget`` cannot be drawn, and close the figure.

    The widget's display bundle gains an ``image/png`` entry beside its widget view: a front end
    with a widget manager renders the view (its preferred type), any other viewer the PNG.
    """
    png = base64.b64encode(figure_png(fig)).decode("ascii")
    plt.close(fig)
    widget_bundle = getattr(widget, "_repr_mimebundle_", None)
    if widget_bundle is None:  # ipywidgets 7 (Colab's): a widget displays itself through _ipython_display_
        return _with_static_figure_7(widget, png)

    def bundle(**kwargs):
        data = widget_bundle(**kwargs)
        return {**data, "image/png": png} if data else data

    widget._repr_mimebundle_ = bundle  # what IPython displays; ipywidgets itself resets it on close()
    return widget


def _with_static_figure_7(widget, png: str):
    """``with_static_figure`` for ipywidgets 7, whose widgets publish their view themselves
    (``_ipython_display_``): the same bundle, with the PNG beside the view."""
    from IPython.display import display

    def show(**kwargs):
        data = {"text/plain": repr(widget)[:110],
                "application/vnd.jupyter.widget-view+json": {"version_major": 2, "version_minor": 0,
                                                             "model_id": widget.model_id},
                "image/png": png}
        display(data, raw=True)
        widget._handle_displayed(**kwargs)

    widget._ipython_display_ = show  # ipywidgets 7 resets it on close()
    return widget


def augmentation_explorer(images: torch.Tensor, n_views: int = 6):
    """Sliders for crop scale, jitter strength, greyscale and blur probability; a button for new views."""
    import ipywidgets as W
    from IPython.display import display

    style = {"description_width": "140px"}
    scale = W.FloatSlider(value=CIFAR_AUGMENT.min_scale, min=0.05, max=1.0, step=0.01,
                          description="min crop scale", style=style)
    strength = W.FloatSlider(value=CIFAR_AUGMENT.cj_strength, min=0.0, max=1.5, step=0.05,
                             description="jitter strength", style=style)
    gray = W.FloatSlider(value=CIFAR_AUGMENT.gray_prob, min=0.0, max=1.0, step=0.05,
                         description="greyscale prob.", style=style)
    blur = W.FloatSlider(value=CIFAR_AUGMENT.blur_prob, min=0.0, max=1.0, step=0.05,
                         description="blur prob.", style=style)
    button = W.Button(description="new views", icon="refresh")
    out = W.Output()
    state = {"seed": 0}

    def redraw(*_):
        cfg = dataclasses.replace(CIFAR_AUGMENT, min_scale=scale.value, cj_strength=strength.value,
                                  gray_prob=gray.value, blur_prob=blur.value)
        with out:
            out.clear_output(wait=True)
            fig = augmentation_views(images, cfg, n_views, seed=state["seed"])
            display(fig)
            plt.close(fig)

    def new_views(_):
        state["seed"] += 1
        redraw()

    for s in (scale, strength, gray, blur):
        s.observe(redraw, names="value")
    button.on_click(new_views)
    redraw()
    box = W.VBox([W.HBox([W.VBox([scale, strength]), W.VBox([gray, blur]), button]), out])
    return with_static_figure(box, augmentation_views(images, CIFAR_AUGMENT, n_views, seed=0))


def read_upload(value) -> tuple[str, bytes] | None:
    """(file name, bytes) of the first file in a FileUpload value (ipywidgets 7 or 8 format), None if none."""
    file = _first_upload(value)
    return None if file is None else (file[0], file[2])


def _first_upload(value) -> tuple[str, int | None, bytes] | None:
    """(name, size, bytes) of the first file in a FileUpload value, None if it holds none.

    ipywidgets 8 gives a tuple of dicts {"name", "size", "content" (a memoryview), ...}; ipywidgets 7
    (Colab's) a dict {name: {"metadata": {"name", "size", ...}, "content": bytes}}.
    """
    if not value:
        return None
    if isinstance(value, dict):  # ipywidgets 7
        key, item = next(iter(value.items()))
        metadata = item.get("metadata") or {}
        return metadata.get("name", key), metadata.get("size"), bytes(item.get("content") or b"")
    item = value[0]  # ipywidgets 8: dicts (or objects with these attributes)
    get = item.get if isinstance(item, dict) else (lambda key, default=None: getattr(item, key, default))
    return get("name", "upload"), get("size"), bytes(get("content") or b"")


def upload_problem(value) -> str | None:
    """One sentence when a FileUpload change brought no usable bytes (an empty upload, a file too
    large to arrive), else None."""
    file = _first_upload(value)
    if file is None:
        return NO_FILE_RECEIVED
    name, size, content = file
    if content:
        return None
    if size:
        return (f"{name} ({size / 1e6:.1f} MB) did not arrive: the upload box delivered none of its bytes, "
                "as happens to files too large for it; set MY_IMAGE above to the file's path instead.")
    return f"{name}: the file is empty (0 bytes); it is not an image."


def predict_upload(classifier, name: str, content, top_k: int = 5):
    """A top-k figure for an uploaded file (bytes, or a path), or one sentence saying why it cannot be read.
    The file is decoded once: the image the chart shows is the one the classifier saw."""
    from .data import open_image, pil_to_uint8
    from .errors import ImageError
    from .plots import topk_figure
    from .predict import predict_image

    try:
        image = open_image(content, classifier.image_size)
    except ImageError as exc:
        return f"{name}: {exc.reason}"
    top = predict_image(classifier, image, top_k)
    return topk_figure(torch.from_numpy(pil_to_uint8(image)), top, title=name)


def example_bytes(member: str = EXAMPLE_IMAGE) -> tuple[str, bytes]:
    """(file name, JPEG bytes) of one image of the bundled CIFAR-10 subset, such as ``test/cat/0000.jpg``."""
    from .data import BUNDLED_SUBSET

    with zipfile.ZipFile(BUNDLED_SUBSET) as zf:
        content = zf.read(member)
    _, cls, file = member.split("/")
    return f"{cls}_{file}", content


def example_image(folder: str | Path, member: str = EXAMPLE_IMAGE) -> Path:
    """One bundled test image written to ``folder`` as a file (works offline); returns its path."""
    name, content = example_bytes(member)
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def read_source(source: str | Path) -> tuple[str, bytes | Path] | str:
    """(name, path or downloaded bytes) for a path or an http(s) URL, or one sentence saying why not."""
    text = str(source)
    if not text.lower().startswith(("http://", "https://")):
        return Path(text).name or text, Path(text).expanduser()
    name = Path(urllib.parse.urlsplit(text).path).name or "download"
    request = urllib.request.Request(text, headers={"User-Agent": "simclr-helpers"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            content = response.read(DOWNLOAD_LIMIT + 1)
    except urllib.error.HTTPError as exc:
        return f"{text}: the server answered {exc.code} ({exc.reason}); check the address."
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{text}: could not download it ({reason}); check the address and the network connection."
    if len(content) > DOWNLOAD_LIMIT:
        return f"{text}: more than {DOWNLOAD_LIMIT // 2**20} MB, too large for one image; download it yourself."
    return name, content


def predict_source(classifier, source: str | Path, top_k: int = 5):
    """The top-k chart for an image file's path or an http(s) URL; needs no widgets.

    Returns the figure, or prints one sentence saying why the image cannot be read and returns None.
    """
    found = read_source(source)
    result = found if isinstance(found, str) else predict_upload(classifier, *found, top_k)
    if isinstance(result, str):
        print(result)
        return None
    return result


def upload_predictor(classifier, top_k: int = 5):
    """A FileUpload: any image file you choose is classified and shown with its top-k bar chart.

    Without a kernel the cell shows the chart for a bundled example image instead.
    """
    import ipywidgets as W
    from IPython.display import display

    upload = W.FileUpload(accept="image/*", multiple=False, description="Upload an image",
                          layout=W.Layout(width="220px"))  # room for the name and the count of files
    note = W.HTML(f"<small>{html.escape(UPLOAD_LIMIT_NOTE)}</small>")
    out = W.Output()

    def on_upload(change):
        problem = upload_problem(change["new"])
        result = problem or predict_upload(classifier, *read_upload(change["new"]), top_k)
        with out:
            out.clear_output(wait=True)
            if isinstance(result, str):
                print(result)
            else:
                display(result)
                plt.close(result)

    upload.observe(on_upload, names="value")
    box = W.VBox([upload, out, note])
    return with_static_figure(box, predict_upload(classifier, *example_bytes(UPLOAD_EXAMPLE), top_k))
