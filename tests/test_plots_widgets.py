"""Figures and widgets build from real data (what the notebooks display)."""

import datetime
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from simclr_helpers import plots, widgets  # noqa: E402
from simclr_helpers.augment import to_model_input  # noqa: E402


def test_to_display_undoes_normalisation(bundled):
    x = bundled.test.images[:4]
    assert np.allclose(plots.to_display(to_model_input(x)), plots.to_display(x), atol=1e-5)


def test_figures(bundled):
    fig = plots.image_grid(bundled.test.images[:10], [str(i) for i in range(10)], ncols=4,
                           row_labels=["a", "b", "c"])
    assert len(fig.axes) == 12
    fig = plots.training_curves([{"epoch": 1, "loss": 5.0, "lr": 0.1, "knn_top1": None},
                                 {"epoch": 2, "loss": 4.5, "lr": 0.05, "knn_top1": 0.3}])
    assert len(fig.axes) == 3 and len(fig.axes[2].lines) == 1
    fig = plots.confusion(torch.eye(3, dtype=torch.long) * 5, ["a", "b", "c"])
    assert fig.axes[0].get_title() == "confusion matrix (test set)"
    fig = plots.bars({"x": 0.5, "y": 0.25}, "t")
    assert [p.get_height() for p in fig.axes[0].patches] == [0.5, 0.25]
    fig = plots.topk_figure(bundled.test.images[0], [("cat", 0.7), ("dog", 0.2)], "t")
    assert len(fig.axes[1].patches) == 2
    ax = plots.embedding_map(np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 10,
                             bundled.test.classes, "t", thumbnails=bundled.test.images[:20], n_thumbnails=5)
    assert len(ax.artists) == 5
    plt.close("all")


def test_augmentation_views_figure(bundled):
    fig = widgets.augmentation_views(bundled.test.images[:2], n_views=3)
    assert len(fig.axes) == 8
    plt.close("all")


def test_augmentation_explorer_redraws_on_change(bundled, monkeypatch):
    pytest.importorskip("ipywidgets")
    drawn = []  # (min crop scale, seed) of every redraw; outside a kernel the Output widget captures nothing
    real = widgets.augmentation_views
    monkeypatch.setattr(widgets, "augmentation_views",
                        lambda images, cfg, n, seed=0, **kw: drawn.append((cfg.min_scale, seed)) or real(images, cfg, n,
                                                                                                            seed=seed))
    box = widgets.augmentation_explorer(bundled.test.images[:1], n_views=2)
    scale = box.children[0].children[0].children[0]
    button = box.children[0].children[2]
    assert drawn[0] == (widgets.CIFAR_AUGMENT.min_scale, 0)  # drawn once for the default settings
    drawn.clear()
    scale.value = 0.5
    assert drawn == [(0.5, 0)]  # moving the slider redraws with its value
    button.click()
    assert drawn == [(0.5, 0), (0.5, 1)]  # "new views": same settings, the next seed
    plt.close("all")


def test_upload_predictor_classifies_bytes(classifier_ckpt, monkeypatch):
    pytest.importorskip("ipywidgets")
    from simclr_helpers.predict import load_classifier

    clf = load_classifier(classifier_ckpt)
    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 10, 10)).save(buf, "PNG")
    now = datetime.datetime.now(datetime.timezone.utc)
    value = ({"name": "red.png", "type": "image/png", "size": len(buf.getvalue()),
              "content": memoryview(buf.getvalue()), "last_modified": now},)
    name, content = widgets.read_upload(value)
    assert name == "red.png" and content == buf.getvalue()
    from simclr_helpers import data, predict

    decoded = []
    for module in (data, predict):  # wherever the upload path looks the decoder up
        monkeypatch.setattr(module, "open_image", lambda src, size=32, real=data.open_image: decoded.append(src)
                            or real(src, size))
    fig = widgets.predict_upload(clf, name, content, top_k=3)
    assert len(fig.axes[1].patches) == 3
    assert decoded == [content]  # decoded once: the chart shows the image the classifier saw
    assert widgets.predict_upload(clf, "bad.png", b"bad").startswith("bad.png: not an image file")
    box = widgets.upload_predictor(clf)
    shown = []
    monkeypatch.setattr(widgets, "predict_upload", lambda c, n, b, k=5: shown.append((n, bytes(b), k)) or "drawn")
    box.children[0].value = value  # the callback runs without a kernel, too
    assert shown == [("red.png", buf.getvalue(), 5)]  # the uploaded file itself is classified
    plt.close("all")


def test_notebook_setup_session(monkeypatch):
    monkeypatch.setenv("SIMCLR_PROFILE", "smoke")
    from simclr_helpers.notebook import setup

    session = setup(quiet=True)
    assert session.profile.name == "smoke" and session.device.type in ("cpu", "cuda")
    assert session.checkpoint_dir.name == "smoke"
    assert session.relative(session.checkpoint_dir / "last.pt") == "checkpoints/smoke/last.pt"


def test_reliability_diagram_draws_the_filled_bins():
    from simclr_helpers.evaluate import calibration

    cal = calibration(torch.tensor([0.05, 0.5, 0.52, 0.9]), torch.tensor([True, True, False, True]))
    ax = plots.reliability_diagram(cal)
    assert len(ax.patches) == 3 and "ECE" in ax.get_title()
    plt.close(ax.figure)
