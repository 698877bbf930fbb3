import torch
from torch import nn

from simclr_helpers.models import LinearClassifier, SimCLRModel, build_backbone, feature_dim


def _shapes(backbone):
    x = torch.zeros(2, 3, 32, 32)
    out = []
    for layer in backbone:
        x = layer(x)
        out.append(tuple(x.shape[1:]))
    return out


def test_imagenet_stem_shrinks_cifar_images_to_1x1():
    shapes = _shapes(build_backbone("imagenet").eval())
    assert shapes[0] == (64, 16, 16) and shapes[3] == (64, 8, 8)  # conv1 stride 2, then max-pool
    assert shapes[7] == (512, 1, 1)  # layer4
    assert shapes[-1] == (512,)


def test_cifar_stem_keeps_resolution():
    backbone = build_backbone("cifar").eval()
    assert isinstance(backbone[0], nn.Conv2d) and backbone[0].kernel_size == (3, 3) and backbone[0].stride == (1, 1)
    assert isinstance(backbone[3], nn.Identity)
    shapes = _shapes(backbone)
    assert shapes[3] == (64, 32, 32) and shapes[7] == (512, 4, 4)


def test_fc_is_dropped_and_width_is_measured():
    backbone = build_backbone("imagenet")
    assert not any(isinstance(m, nn.Linear) for m in backbone.modules())
    assert feature_dim(backbone) == 512
    backbone.train()
    feature_dim(backbone)
    assert backbone.training  # mode restored


def test_linear_classifier_reads_width_from_backbone():
    wide = nn.Sequential(nn.Conv2d(3, 40, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    clf = LinearClassifier(wide, 7)
    assert clf.fc.in_features == 40 and clf(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_simclr_model_projects_to_128():
    model = SimCLRModel(stem="imagenet").eval()
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 128)
    assert model.feature_dim == 512


def test_the_random_init_baseline_is_where_pretraining_starts_from_the_same_seed(bundled):
    """One builder for every random-init baseline (runs, ablations, label efficiency): the same seed gives the
    same weights, and they are the weights SimCLR training starts from with that seed."""
    from simclr_helpers.config import get_profile
    from simclr_helpers.models import random_init_backbone
    from simclr_helpers.train import training_setup

    a, b, other = (random_init_backbone("imagenet", seed) for seed in (3, 3, 4))
    start = training_setup(get_profile("smoke").with_overrides(batch_size=16), bundled.train.images[:32], "cpu",
                           seed=3).model.backbone.state_dict()
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]) and torch.equal(value, start[name]), name
    assert not torch.equal(a[0].weight, other[0].weight)


def test_the_random_init_model_is_where_pretraining_starts_head_included(bundled):
    from simclr_helpers.config import get_profile
    from simclr_helpers.models import random_init_backbone, random_init_model
    from simclr_helpers.train import training_setup

    profile = get_profile("smoke").with_overrides(batch_size=16)
    model = random_init_model("imagenet", 3, profile.projection_dim)
    start = training_setup(profile, bundled.train.images[:32], "cpu", seed=3).model.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, start[name]), name
    backbone = random_init_backbone("imagenet", 3).state_dict()
    assert all(torch.equal(v, backbone[k]) for k, v in model.backbone.state_dict().items())
