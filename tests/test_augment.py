"""The batched augmentation draws what lightly's SimCLRTransform draws, per image."""

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import RandomResizedCrop

from simclr_helpers.augment import (
    CIFAR_AUGMENT,
    AugmentConfig,
    BatchedSimCLRAugment,
    ViewParams,
    _jitter_op,
    apply_params,
    lightly_transform,
    sample_params,
    to_model_input,
)
from simclr_helpers.config import NORMALIZE

N = 20_000


@pytest.fixture(scope="module")
def params():
    return sample_params(N, 32, 32, CIFAR_AUGMENT, torch.Generator().manual_seed(0))


def test_crop_boxes_follow_torchvision(params):
    g = torch.manual_seed(0)
    del g
    ref = torch.tensor([RandomResizedCrop.get_params(torch.zeros(3, 32, 32), (0.08, 1.0), (3 / 4, 4 / 3))
                        for _ in range(4000)], dtype=torch.float)
    ours = torch.stack([params.top, params.left, params.height, params.width], 1)
    area_ours = (ours[:, 2] * ours[:, 3]) / 1024
    area_ref = (ref[:, 2] * ref[:, 3]) / 1024
    assert area_ours.min() >= 0.06 and area_ours.max() <= 1.0  # rounding of w, h at 32 px
    assert abs(area_ours.mean() - area_ref.mean()) < 0.02
    ratio = ours[:, 3] / ours[:, 2]
    # Boxes are whole pixels, so the ratio can exceed 4/3 by rounding, as in torchvision.
    assert ratio.min() >= (ref[:, 3] / ref[:, 2]).min() - 0.15 and ratio.max() <= 2.0
    assert abs(ratio.log().mean()) < 0.03
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= 32).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= 32).all()
    # Offsets are uniform over the valid range: mean of top/(32-h) is about 1/2.
    room = (32 - ours[:, 2]).clamp(min=1)
    assert abs((ours[:, 0] / room)[ours[:, 2] < 28].mean() - 0.5) < 0.03


def test_rates_and_factor_ranges(params):
    assert abs(params.flip.float().mean() - 0.5) < 0.02
    assert abs(params.jitter.float().mean() - 0.8) < 0.02
    assert abs(params.gray.float().mean() - 0.2) < 0.02
    assert not params.blur.any()  # CIFAR settings: no blur
    b, c, s, h = CIFAR_AUGMENT.jitter
    assert (b, c, s, h) == pytest.approx((0.4, 0.4, 0.4, 0.1))
    for name, lo, hi in (("brightness", 1 - b, 1 + b), ("contrast", 1 - c, 1 + c),
                         ("saturation", 1 - s, 1 + s), ("hue", -h, h)):
        v = getattr(params, name)
        assert v.min() >= lo and v.max() <= hi
        assert abs(v.mean() - (lo + hi) / 2) < 0.01 * (hi - lo) * 2
        assert v.std() == pytest.approx((hi - lo) / math.sqrt(12), rel=0.05)  # uniform
    # Every order of the four jitter operations occurs, about equally often (24 permutations).
    codes = (params.order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.bincount(codes, minlength=256)
    counts = counts[counts > 0]
    assert len(counts) == 24 and counts.min() > N / 24 * 0.8


def test_parameters_are_independent_across_the_batch(params):
    # Neighbouring images in a batch draw unrelated values (the transforms.v2 pitfall: all equal).
    for v in (params.brightness, params.hue, params.height.float(), params.flip.float()):
        a, b = v[:-1], v[1:]
        corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
        assert abs(corr) < 0.03
    assert len(torch.unique(params.brightness)) > N * 0.99


def test_views_differ_within_a_batch_even_for_identical_images(bundled):
    x = bundled.train.images[:1].repeat(64, 1, 1, 1)
    views = BatchedSimCLRAugment(generator=torch.Generator().manual_seed(0))(x)
    flat = views.flatten(1)
    dist = torch.cdist(flat, flat)
    assert (dist + torch.eye(64) * 1e9).min() > 0.1


def _identity_params(n, **over) -> ViewParams:
    f = torch.zeros(n, dtype=torch.bool)
    full = torch.full((n,), 32.0)
    base = dict(top=torch.zeros(n), left=torch.zeros(n), height=full, width=full, flip=f, jitter=f,
                brightness=torch.ones(n), contrast=torch.ones(n), saturation=torch.ones(n), hue=torch.zeros(n),
                order=torch.arange(4).repeat(n, 1), gray=f, blur=f, sigma=torch.ones(n))
    base.update(over)
    return ViewParams(**base)


def test_full_crop_is_identity_and_flip_mirrors(bundled):
    x = bundled.train.images[:8]
    xf = x.float() / 255
    out = apply_params(x, _identity_params(8))
    assert torch.allclose(out, xf, atol=1e-5)
    flipped = apply_params(x, _identity_params(8, flip=torch.ones(8, dtype=torch.bool)))
    assert torch.allclose(flipped, xf.flip(-1), atol=1e-5)


def test_crop_takes_the_box():
    img = torch.arange(32 * 32, dtype=torch.float).view(1, 1, 32, 32).repeat(1, 3, 1, 1) / 1024
    p = _identity_params(1, top=torch.tensor([8.0]), left=torch.tensor([4.0]), height=torch.tensor([16.0]),
                         width=torch.tensor([16.0]))
    out = apply_params(img, p, AugmentConfig(size=16))  # same scale: an exact crop
    assert torch.allclose(out, img[:, :, 8:24, 4:20], atol=1e-5)


@pytest.mark.parametrize("op,fn", [(0, TF.adjust_brightness), (1, TF.adjust_contrast),
                                   (2, TF.adjust_saturation), (3, TF.adjust_hue)])
def test_each_jitter_operation_matches_torchvision(bundled, op, fn):
    x = bundled.train.images[:16].float() / 255
    factors = torch.linspace(0.6, 1.4, 16) if op < 3 else torch.linspace(-0.1, 0.1, 16)
    ours = _jitter_op(op, x.clone(), factors)
    ref = torch.stack([fn(x[i], float(factors[i])) for i in range(16)])
    assert torch.allclose(ours, ref, atol=5e-4)  # float rounding of the grey mean


def test_views_equal_torchvision_applied_image_by_image(bundled):
    """Every step in each image's drawn order, through torchvision's functional ops, one image at a time."""
    n = 96
    x = bundled.train.images[:n]
    p = sample_params(n, 32, 32, CIFAR_AUGMENT, torch.Generator().manual_seed(3))
    assert p.jitter.any() and (~p.jitter).any() and p.gray.any() and p.flip.any()
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    factors = (p.brightness, p.contrast, p.saturation, p.hue)
    ref = []
    for i in range(n):
        y = TF.resized_crop(x[i].float() / 255, int(p.top[i]), int(p.left[i]), int(p.height[i]), int(p.width[i]),
                            [32, 32], antialias=False)
        y = TF.horizontal_flip(y) if p.flip[i] else y
        if p.jitter[i]:
            for op in p.order[i].tolist():
                y = ops[op](y, float(factors[op][i]))
        ref.append(TF.rgb_to_grayscale(y, num_output_channels=3) if p.gray[i] else y)
    ours = apply_params(x, p)
    # Differences come only from float rounding and torchvision's slightly different luma weights.
    assert (ours - torch.stack(ref)).abs().max() < 1e-3


def test_grayscale_output_has_equal_channels(bundled):
    x = bundled.train.images[:8]
    out = apply_params(x, _identity_params(8, gray=torch.ones(8, dtype=torch.bool)))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    ref = TF.rgb_to_grayscale(x.float() / 255, num_output_channels=3)
    assert torch.allclose(out, ref, atol=5e-4)  # torchvision rounds the luma weights differently


def test_blur_keeps_mean_and_smooths(bundled):
    cfg = AugmentConfig(blur_prob=1.0)
    x = bundled.train.images[:8]
    p = _identity_params(8, blur=torch.ones(8, dtype=torch.bool), sigma=torch.full((8,), 1.5))
    out = apply_params(x, p, cfg)
    xf = x.float() / 255
    assert torch.allclose(out.mean(dim=(2, 3)), xf.mean(dim=(2, 3)), atol=0.02)
    assert out.diff(dim=-1).abs().mean() < 0.6 * xf.diff(dim=-1).abs().mean()


def test_output_range_and_normalisation_match_lightly(bundled):
    from PIL import Image

    views = BatchedSimCLRAugment(generator=torch.Generator().manual_seed(0))(bundled.train.images[:512])
    t = lightly_transform()
    img = Image.fromarray(bundled.train.images[0].permute(1, 2, 0).numpy())
    ref = torch.stack([t(img)[0] for _ in range(64)])
    mean = torch.tensor(NORMALIZE["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(NORMALIZE["std"]).view(1, 3, 1, 1)
    lo, hi = ((0 - mean) / std), ((1 - mean) / std)
    for v in (views, ref):
        assert v.shape[1:] == (3, 32, 32) and v.dtype == torch.float32
        assert (v >= lo - 1e-4).all() and (v <= hi + 1e-4).all()
    # Both pipelines produce views whose pixel statistics agree (same recipe, same normalisation).
    assert abs(views.mean() - to_model_input(bundled.train.images[:512]).mean()) < 0.15
    assert float(views.std()) == pytest.approx(float(ref.std()), rel=0.35)


def test_lightly_transform_uses_course_settings():
    t = lightly_transform()
    text = repr(t.transforms[0].transform)
    assert "RandomResizedCrop" in text and "size=(32, 32)" in text
    assert "brightness=(0.6, 1.4)" in text and "hue=(-0.1, 0.1)" in text
    assert str(NORMALIZE["mean"][0]) in text


def test_pad_crop_flip_is_torchvisions_random_crop_and_flip_per_image():
    """Every output is the 32x32 window of the zero-padded image at its own offset, flipped or not, and the
    offsets and flips vary from image to image."""
    import torch.nn.functional as F

    from simclr_helpers.augment import pad_crop_flip

    g = torch.Generator().manual_seed(0)
    images = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    out = pad_crop_flip(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (4, 4, 4, 4))
    placements = set()
    for i in range(len(images)):
        match = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                 if torch.equal(out[i], (lambda w: w.flip(-1) if flip else w)(padded[i, :, dy:dy + 32, dx:dx + 32]))]
        assert match, f"image {i} is not a window of its padded image"
        placements.add(match[0])
    assert len(placements) > 20 and {flip for _, _, flip in placements} == {False, True}
