"""SimCLR views: lightly's per-image PIL pipeline (the blog post's) and a batched tensor version.

Both follow the same recipe (SimCLR paper, CIFAR-10 settings of lightly's benchmark):
random resized crop (scale 0.08-1, ratio 3/4-4/3), horizontal flip (0.5), colour
jitter (probability 0.8, strength 0.5: brightness/contrast/saturation 0.4, hue 0.1,
in a random order), random greyscale (0.2), no blur, then normalisation.

Why a hand-written batched module: ``torchvision.transforms.v2`` and lightly's
``SimCLRTransform`` draw *one* set of random parameters per call, so applied to a
batch tensor every image would get the same crop and colours. The per-image PIL
path in DataLoader workers is correct but is the bottleneck on a 2-CPU runtime.
This module draws parameters per image and applies them to the whole batch with a
handful of tensor operations (one ``grid_sample`` for crop+flip), on CPU or GPU.
Notebook 02 shows views of both pipelines side by side; tests/test_augment.py
checks that the parameters follow the same distributions as torchvision's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import IMAGE_SIZE, NORMALIZE


@dataclass(frozen=True)
class AugmentConfig:
    """The knobs of SimCLR's augmentation (lightly's names in comments)."""

    size: int = IMAGE_SIZE  # input_size
    min_scale: float = 0.08  # min_scale
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_prob: float = 0.5  # hf_prob
    cj_prob: float = 0.8  # cj_prob
    cj_strength: float = 0.5  # cj_strength (lightly's CIFAR-10 benchmark)
    cj_bright: float = 0.8
    cj_contrast: float = 0.8
    cj_sat: float = 0.8
    cj_hue: float = 0.2
    gray_prob: float = 0.2  # random_gray_scale
    blur_prob: float = 0.0  # gaussian_blur (off for 32x32 images)
    blur_sigmas: tuple[float, float] = (0.1, 2.0)

    @property
    def jitter(self) -> tuple[float, float, float, float]:
        s = self.cj_strength
        return (s * self.cj_bright, s * self.cj_contrast, s * self.cj_sat, s * self.cj_hue)


CIFAR_AUGMENT = AugmentConfig()


def lightly_transform(config: AugmentConfig = CIFAR_AUGMENT, normalize: dict | None = None):
    """The blog post's pipeline: lightly's ``SimCLRTransform`` (PIL image in, two tensors out).

    Unlike the blog post's, it is given the course's normalisation (the one stored in
    checkpoints), CIFAR jitter strength and no blur.
    """
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(
        input_size=config.size, cj_prob=config.cj_prob, cj_strength=config.cj_strength,
        cj_bright=config.cj_bright, cj_contrast=config.cj_contrast, cj_sat=config.cj_sat,
        cj_hue=config.cj_hue, min_scale=config.min_scale, random_gray_scale=config.gray_prob,
        gaussian_blur=config.blur_prob, sigmas=config.blur_sigmas, hf_prob=config.hflip_prob,
        normalize=NORMALIZE if normalize is None else normalize,
    )


def normalize(x: torch.Tensor, stats: dict = NORMALIZE, inplace: bool = False) -> torch.Tensor:
    """Float images in [0, 1] -> normalised with the course's (or a checkpoint's) statistics."""
    mean = torch.tensor(stats["mean"], device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(stats["std"], device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std) if inplace else (x - mean) / std


def pad_crop_flip(images: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """The standard supervised CIFAR-10 augmentation, drawn per image: zero-pad by ``pad`` pixels, crop back to
    the original size at a random offset, flip horizontally with probability 1/2 (torchvision's
    ``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip()``, for a whole batch in one gather)."""
    n, _, h, w = images.shape
    dev = images.device
    padded = F.pad(images, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # (N, H + 2 pad, W + 2 pad, C)
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=dev)
    flip = torch.rand(n, 1, generator=generator, device=dev) < 0.5
    rows = dy + torch.arange(h, device=dev)
    cols = dx + torch.arange(w, device=dev)
    cols = torch.where(flip, cols.flip(1), cols)
    out = padded[torch.arange(n, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def to_model_input(images_uint8: torch.Tensor, stats: dict = NORMALIZE) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float, the deterministic evaluation transform."""
    return normalize(images_uint8.float().div_(255.0), stats)


@dataclass
class ViewParams:
    """Per-image random parameters of one batch of views (all tensors of length B)."""

    top: torch.Tensor  # crop box in pixels of the source image (float)
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    flip: torch.Tensor  # bool
    jitter: torch.Tensor  # bool: colour jitter applied
    brightness: torch.Tensor  # factors, meaningful where jitter is True
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    order: torch.Tensor  # (B, 4) permutation of the four jitter operations
    gray: torch.Tensor  # bool
    blur: torch.Tensor  # bool
    sigma: torch.Tensor


def _uniform(lo: float, hi: float, n: int, g: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def sample_crops(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                 generator: torch.Generator | None = None, device=None, attempts: int = 10):
    """torchvision's ``RandomResizedCrop.get_params``, for ``n`` images at once.

    Each image tries ``attempts`` (area, log-ratio) draws and keeps the first box that
    fits; images where none fits take torchvision's fallback (the central crop with
    the ratio clamped to the allowed range).
    """
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    target_area = area * _uniform(scale[0], scale[1], n * attempts, generator, device).view(n, attempts)
    aspect = torch.exp(_uniform(log_r[0], log_r[1], n * attempts, generator, device)).view(n, attempts)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = torch.argmax(ok.int(), dim=1)  # first valid attempt (0 if none, masked below)
    any_ok = ok.any(dim=1)
    w = w.gather(1, first[:, None]).squeeze(1)
    h = h.gather(1, first[:, None]).squeeze(1)
    # Fallback: central crop (torchvision's rule).
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fh, fw = height, round(height * ratio[1])
    else:
        fw, fh = width, height
    w = torch.where(any_ok, w, torch.full_like(w, fw))
    h = torch.where(any_ok, h, torch.full_like(h, fh))
    # torch.randint(0, H - h + 1): an integer offset drawn uniformly.
    u = torch.rand(2, n, generator=generator, device=device)
    top = torch.floor(u[0] * (height - h + 1)).clamp(max=height - h)
    left = torch.floor(u[1] * (width - w + 1)).clamp(max=width - w)
    top = torch.where(any_ok, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(any_ok, left, torch.full_like(left, (width - fw) // 2))
    return top, left, h, w


def sample_params(n: int, height: int, width: int, config: AugmentConfig = CIFAR_AUGMENT,
                  generator: torch.Generator | None = None, device=None) -> ViewParams:
    """Draw every random choice of ``n`` views, independently per image."""
    top, left, h, w = sample_crops(n, height, width, (config.min_scale, 1.0), config.ratio, generator, device)
    b, c, s, hue = config.jitter
    coin = torch.rand(4, n, generator=generator, device=device)
    order = torch.argsort(torch.rand(n, 4, generator=generator, device=device), dim=1)
    return ViewParams(
        top=top, left=left, height=h, width=w,
        flip=coin[0] < config.hflip_prob,
        jitter=coin[1] < config.cj_prob,
        brightness=_uniform(max(0.0, 1 - b), 1 + b, n, generator, device),
        contrast=_uniform(max(0.0, 1 - c), 1 + c, n, generator, device),
        saturation=_uniform(max(0.0, 1 - s), 1 + s, n, generator, device),
        hue=_uniform(-hue, hue, n, generator, device),
        order=order,
        gray=coin[2] < config.gray_prob,
        blur=coin[3] < config.blur_prob,
        sigma=_uniform(config.blur_sigmas[0], config.blur_sigmas[1], n, generator, device),
    )


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L")


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (_LUMA[0] * x[:, 0:1] + _LUMA[1] * x[:, 1:2] + _LUMA[2] * x[:, 2:3])


def _blend(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend, ratio * a + (1 - ratio) * b clamped to [0, 1], in place in ``a``."""
    r = ratio.view(-1, 1, 1, 1)
    return a.mul_(r).add_((1 - r) * b).clamp_(0, 1)


def _hue_constants(x: torch.Tensor) -> torch.Tensor:
    # Per channel (R, G, B): centre, sign and offset of the piecewise-linear pure-hue ramp.
    return torch.tensor([[3.0, 2.0, 4.0], [1.0, -1.0, -1.0], [-1.0, 2.0, 2.0]],
                        device=x.device, dtype=x.dtype).view(3, 1, 3, 1, 1)


def _shift_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_hue (RGB -> HSV, rotate H, -> RGB), with a shift per image.

    Written for speed on whole batches, with the same values as torchvision: element-wise
    max/min instead of reductions, hue in sextants h6 in [0, 6) from channel differences,
    and the closed form of HSV -> RGB: each channel is min + chroma * ramp(h6), where the
    ramps are the pure hues |h6 - 3| - 1 (R), 2 - |h6 - 2| (G), 2 - |h6 - 4| (B), clamped
    to [0, 1]. Saturation and value never change, as in torchvision.
    """
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    cr = maxc - minc  # chroma; 0 for greys, whose hue then does not matter
    h6 = torch.where(maxc == r, g - b,
                     torch.where(maxc == g, (b - r).add_(cr, alpha=2.0), (r - g).add_(cr, alpha=4.0)))
    h6.div_(cr.clamp(min=1e-12)).add_((6.0 * shift).view(-1, 1, 1))  # hue in sextants, rotated
    h6 = torch.remainder(h6, 6.0)
    centre, sign, offset = _hue_constants(x)
    ramp = (h6.unsqueeze(1) - centre).abs_().mul_(sign).add_(offset).clamp_(0, 1)
    return ramp.mul_(cr.unsqueeze(1)).add_(minc.unsqueeze(1))


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    n, c, h, w = x.shape
    k = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(k.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (n, K)
    weight = kernel.repeat_interleave(c, dim=0)  # (n*c, K)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, weight.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, weight.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def _jitter_op(op: int, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """One of torchvision's four colour-jitter operations, with a factor per image (may modify ``x``)."""
    if op == 0:  # brightness
        return x.mul_(factor.view(-1, 1, 1, 1)).clamp_(0, 1)
    if op == 1:  # contrast: blend with the image's mean grey level
        return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)
    if op == 2:  # saturation: blend with the image's grey version
        return _blend(x, _gray(x), factor)
    return _shift_hue(x, factor)


def _colour_jitter(x: torch.Tensor, p: ViewParams) -> torch.Tensor:
    """The four jitter operations in each image's own random order, in place on ``x``.

    At each of the four positions, brightness and contrast run together as one pass over
    the whole batch: both are a per-image affine map a * x + t followed by a clamp (a = 1,
    t = 0 for images doing something else there, which leaves them exactly unchanged).
    Saturation and hue need per-pixel work, so they run only on the images that scheduled
    them at that position (gathered with index_select, written back with index_copy_).
    """
    slots = torch.where(p.jitter[:, None], p.order, -1)  # (B, 4): operation at each position, -1 none
    scale = torch.where(slots == 0, p.brightness[:, None], torch.where(slots == 1, p.contrast[:, None], 1.0))
    weight = torch.where(slots == 1, 1.0 - p.contrast[:, None], 0.0)  # of the mean grey level
    luma = torch.tensor(_LUMA, device=x.device, dtype=x.dtype)
    for pos in range(4):
        shift = (x.mean(dim=(2, 3)) @ luma).mul_(weight[:, pos])  # (1 - c) * mean grey, for contrast
        x.mul_(scale[:, pos].view(-1, 1, 1, 1)).add_(shift.view(-1, 1, 1, 1)).clamp_(0, 1)
        slot = slots[:, pos]
        for op, factor in ((2, p.saturation), (3, p.hue)):
            idx = torch.nonzero(slot == op).flatten()
            if idx.numel():
                x.index_copy_(0, idx, _jitter_op(op, x.index_select(0, idx), factor.index_select(0, idx)))
    return x


def _box_coords(start: torch.Tensor, length: torch.Tensor, extent: int, u: torch.Tensor) -> torch.Tensor:
    """grid_sample coordinates in [-1, 1] of the output pixel centres ``u`` (fractions of the box).

    A pixel centre at fraction u of the box samples the source at start + length * u - 0.5
    (pixel units), clamped into the box: torchvision crops first and then resizes, so the
    border pixels of the box are repeated rather than blended with pixels outside it.
    """
    start, length = start[:, None].to(u.dtype), length[:, None].to(u.dtype)
    pos = torch.clamp(torch.addcmul(start - 0.5, length, u), min=start, max=start + length - 1)
    return pos.mul_(2.0 / extent).add_(1.0 / extent - 1.0)


def _crop_flip(images: torch.Tensor, p: ViewParams, size: int) -> torch.Tensor:
    """Crop + resize + flip of a uint8 or float batch as one bilinear resample; float in [0, 1] out.

    The same values as torchvision's ``resized_crop`` (bilinear, no antialiasing: a crop of a
    32x32 image is only ever enlarged) and ``hflip``, for a whole batch with one box per image.
    The map is axis-aligned, so the grid is built from two vectors per image.
    """
    x = images.float()
    n, _, height, width = x.shape
    u = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size
    gx = _box_coords(p.left, p.width, width, torch.where(p.flip[:, None], 1.0 - u, u))  # (B, size) columns
    gy = _box_coords(p.top, p.height, height, u.expand(n, -1))  # (B, size) rows
    grid = torch.empty(n, size, size, 2, device=x.device, dtype=x.dtype)
    grid[..., 0], grid[..., 1] = gx[:, None, :], gy[:, :, None]
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (out.mul_(1 / 255.0) if images.dtype == torch.uint8 else out).clamp_(0, 1)


def _blur_radius(config: AugmentConfig) -> int:
    # lightly blurs with PIL's GaussianBlur(radius=sigma); a kernel of +-3 sigma.
    return max(1, min(config.size // 2 - 1, int(math.ceil(3 * config.blur_sigmas[1]))))


def apply_params(images: torch.Tensor, p: ViewParams, config: AugmentConfig = CIFAR_AUGMENT) -> torch.Tensor:
    """Apply drawn parameters to a uint8 or float batch; returns float views in [0, 1]."""
    x = _crop_flip(images, p, config.size)
    x = _colour_jitter(x, p)
    idx = torch.nonzero(p.gray).flatten()
    if idx.numel():
        x.index_copy_(0, idx, _gray(x.index_select(0, idx)).expand(-1, 3, -1, -1))
    if bool(p.blur.any()):
        x = torch.where(p.blur.view(-1, 1, 1, 1), _gaussian_blur(x, p.sigma.to(x.dtype), _blur_radius(config)), x)
    return x


class BatchedSimCLRAugment(torch.nn.Module):
    """SimCLR views for a whole uint8 batch, every image with its own random parameters.

    >>> aug = BatchedSimCLRAugment()
    >>> views = aug(images_uint8)  # (B, 3, 32, 32) float, normalised

    """

    def __init__(self, config: AugmentConfig = CIFAR_AUGMENT, stats: dict = NORMALIZE,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.stats = stats
        self.generator = generator

    def sample(self, images: torch.Tensor) -> ViewParams:
        n, _, h, w = images.shape
        return sample_params(n, h, w, self.config, self.generator, images.device)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, normalized: bool = True) -> torch.Tensor:
        x = apply_params(images, self.sample(images), self.config)
        return normalize(x, self.stats, inplace=True) if normalized else x
