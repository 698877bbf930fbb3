"""Prediction: a classifier checkpoint and any image file in, top-k classes out.

Notebook 06 teaches it. The image is opened with ``data.open_image`` (any mode
converted to RGB, EXIF rotation applied, resized the way the model saw CIFAR-10:
shorter side to 32, central square) and normalised with the statistics stored in
the checkpoint, the same the backbone was pretrained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .augment import to_model_input
from .checkpoints import ClassifierRecord
from .data import open_image, pil_to_uint8
from .errors import ImageError
from .models import build_backbone


@dataclass
class Classifier:
    model: nn.Module  # backbone + linear layer, eval mode
    classes: list[str]
    normalize: dict
    image_size: int
    record: ClassifierRecord

    @torch.no_grad()
    def probabilities(self, images_uint8: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        x = to_model_input(images_uint8.to(device), self.normalize)
        return self.model(x).float().softmax(dim=1).cpu()


def load_classifier(path: str | Path, device: str | None = None) -> Classifier:
    """A classifier checkpoint (written by ``evaluate --method linear``, or ``reference``), ready in eval mode."""
    return classifier_from_record(ClassifierRecord.load(path), device)


def classifier_from_record(record: ClassifierRecord, device: str | None = None) -> Classifier:
    """The network a classifier record describes, in eval mode."""
    backbone = build_backbone(record.stem)
    backbone.load_state_dict(record.backbone)
    fc = nn.Linear(record.fc["weight"].shape[1], record.fc["weight"].shape[0])
    fc.load_state_dict(record.fc)
    model = nn.Sequential(backbone, fc).eval()
    if device:
        model = model.to(device)
    return Classifier(model, list(record.classes), dict(record.normalize), record.image_size, record)


@dataclass
class Prediction:
    image: str
    top: list[tuple[str, float]] | None  # (class, probability), best first
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"{self.image}: error: {self.error}"
        return f"{self.image}: " + ", ".join(f"{c} {p:.1%}" for c, p in self.top)

    def to_dict(self) -> dict:
        if self.error:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "top": [{"class": c, "probability": round(p, 6)} for c, p in self.top]}


def predict_image(classifier: Classifier, image, top_k: int = 5) -> list[tuple[str, float]]:
    """Top-k (class, probability) for one image: a path, bytes, or a PIL image."""
    from PIL import Image

    if isinstance(image, Image.Image):
        from .data import resize_center, to_rgb

        pil = resize_center(to_rgb(image), classifier.image_size)
    else:
        pil = open_image(image, classifier.image_size)
    probs = classifier.probabilities(torch.from_numpy(pil_to_uint8(pil))[None])[0]
    values, index = probs.topk(min(top_k, len(classifier.classes)))
    return [(classifier.classes[i], float(v)) for v, i in zip(values, index)]


def predict_files(classifier: Classifier, paths: list[str | Path], top_k: int = 5) -> list[Prediction]:
    """Predict every file; a file that cannot be read gets an error entry and the rest go on."""
    results = []
    for path in paths:
        try:
            results.append(Prediction(str(path), predict_image(classifier, path, top_k)))
        except ImageError as exc:
            results.append(Prediction(str(path), None, exc.reason))
    return results
