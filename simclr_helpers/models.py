"""Models: the ResNet-18 backbone (two stems), the SimCLR model, the linear classifier.

Notebook 01 takes the backbone apart; notebook 03 trains ``SimCLRModel``;
notebook 04 puts ``LinearClassifier`` on the frozen backbone.
"""

from __future__ import annotations

import torch
import torchvision
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from .runtime import seed_everything

STEMS = ("imagenet", "cifar")


def build_backbone(stem: str = "cifar") -> nn.Sequential:
    """ResNet-18 without its classifier: ``resnet.children()`` minus ``fc``, then flattened.

    ``stem="imagenet"`` keeps torchvision's 7x7 stride-2 convolution and max-pool (the
    blog post's backbone): a 32x32 image is 8x8 after the stem and 1x1 after layer4.
    ``stem="cifar"`` uses a 3x3 stride-1 convolution and no max-pool, the usual
    choice for 32x32 images: 32x32 after the stem, 4x4 after layer4.
    """
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose 'imagenet' or 'cifar'")
    resnet = torchvision.models.resnet18(weights=None)
    if stem == "cifar":
        resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        resnet.maxpool = nn.Identity()
    # children(): conv1, bn1, relu, maxpool, layer1..4, avgpool, fc -> drop fc.
    return nn.Sequential(*list(resnet.children())[:-1], nn.Flatten(1))


def random_init_backbone(stem: str, seed: int) -> nn.Sequential:
    """The random-init baseline of every comparison: the backbone SimCLR training starts from with ``seed``
    (every random generator seeded with it first, as ``train.training_setup`` does), untrained."""
    seed_everything(seed)
    return build_backbone(stem)


def random_init_model(stem: str, seed: int, projection_dim: int = 128) -> SimCLRModel:
    """The random-init SimCLR model, backbone and projection head, that training starts from with ``seed`` (as
    ``train.training_setup`` builds it), untrained. Its backbone is ``random_init_backbone(stem, seed)``."""
    seed_everything(seed)
    return SimCLRModel(stem=stem, projection_dim=projection_dim)


def feature_dim(backbone: nn.Module, size: int = 32) -> int:
    """Width of the backbone's output, measured with a dummy image (not assumed to be 512).

    The seed hard-coded 512 ("I don't know if it's always 512"): it is for ResNet-18
    and 34, but 2048 for ResNet-50. Asking the network is always right.
    """
    param = next(backbone.parameters())
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype))
    backbone.train(was_training)
    return int(out.flatten(1).shape[1])


class SimCLRModel(nn.Module):
    """Backbone + lightly's two-layer projection head (SimCLR's g(.))."""

    def __init__(self, stem: str = "cifar", projection_dim: int = 128, hidden_dim: int | None = None):
        super().__init__()
        self.backbone = build_backbone(stem)
        width = feature_dim(self.backbone)
        self.projection_head = SimCLRProjectionHead(width, hidden_dim or width, projection_dim)
        self.stem = stem
        self.feature_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))


class LinearClassifier(nn.Module):
    """A linear layer on a backbone; its input width is read from the backbone.

    ``forward`` runs the backbone as it is: gradients flow into it and BatchNorm updates its
    statistics unless the caller has frozen it *and* put it in eval mode (``evaluate.freeze``),
    which is what notebook 04 shows and the blog post missed.
    """

    def __init__(self, backbone: nn.Module, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(feature_dim(backbone), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


STAGE_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten")


@torch.no_grad()
def describe_stages(backbone: nn.Sequential, size: int = 32) -> list[dict]:
    """Every stage of a backbone from ``build_backbone``: name, output shape for one
    ``size`` x ``size`` image, parameters (notebook 01)."""
    x = torch.zeros(1, 3, size, size)
    was_training = backbone.training
    backbone.eval()
    rows = []
    for name, layer in zip(STAGE_NAMES, backbone):
        x = layer(x)
        rows.append({"stage": name, "module": type(layer).__name__, "shape": tuple(x.shape[1:]),
                     "params": count_parameters(layer)})
    backbone.train(was_training)
    return rows
