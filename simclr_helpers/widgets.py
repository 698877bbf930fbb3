"""Interactive explorers (ipywidgets) with a static figure for viewers without a kernel.

Notebook 02 uses ``augmentation_explorer``; notebook 06 uses ``upload_predictor``.
Each function draws its figure for the default settings once (what nbval and
GitHub's viewer show) and returns the widget for a live kernel.
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import torch

from .augment import CIFAR_AUGMENT, AugmentConfig, BatchedSimCLRAugment


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
    return W.VBox([W.HBox([W.VBox([scale, strength]), W.VBox([gray, blur]), button]), out])


def read_upload(value) -> tuple[str, bytes] | None:
    """(file name, bytes) of the first file in a FileUpload value (ipywidgets 7 or 8 format)."""
    if not value:
        return None
    item = value[0] if isinstance(value, (list, tuple)) else next(iter(value.values()))
    name = item["name"] if isinstance(item, dict) and "name" in item else getattr(item, "name", "upload")
    return name, bytes(item["content"] if isinstance(item, dict) else item.content)


def predict_upload(classifier, name: str, content: bytes, top_k: int = 5):
    """A top-k figure for an uploaded file, or one sentence saying why it cannot be read."""
    from .data import open_image, pil_to_uint8
    from .errors import ImageError
    from .plots import topk_figure
    from .predict import predict_image

    try:
        top = predict_image(classifier, content, top_k)
    except ImageError as exc:
        return f"{name}: {str(exc).split(': ', 1)[-1]}"
    shown = torch.from_numpy(pil_to_uint8(open_image(content)))
    return topk_figure(shown, top, title=name)


def upload_predictor(classifier, top_k: int = 5):
    """A FileUpload: any image file you choose is classified and shown with its top-k bar chart."""
    import ipywidgets as W
    from IPython.display import display

    upload = W.FileUpload(accept="image/*", multiple=False, description="Upload an image")
    out = W.Output()

    def on_upload(change):
        file = read_upload(change["new"])
        if file is None:
            return
        result = predict_upload(classifier, *file, top_k)
        with out:
            out.clear_output(wait=True)
            if isinstance(result, str):
                print(result)
            else:
                display(result)
                plt.close(result)

    upload.observe(on_upload, names="value")
    return W.VBox([upload, out])
