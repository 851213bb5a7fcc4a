"""Batched training-time augmentation of iris pairs, and self-supervised pseudo-fakes.

Everything here is a tensor operation over the whole batch, so it runs on the training device after the
batch is transferred (``IrisPairsDataModule.on_after_batch_transfer``), on a CPU or a GPU alike.

The cue the RAN learns is an *inconsistency between the two eyes*. So the augmentation splits in two:

* **Both eyes alike** (photometric jitter, down-scaling blur, noise, JPEG): these change how the photo was
  taken, never whether the eyes agree. Down-scaling matters most on real photos: the sources differ in size
  (1024 / 600 / 512 px), and an iris seen at half the resolution must not read as "GAN".
* **Each eye on its own** (a small shift and scale of each iris crop): the locator never centres both irises
  exactly alike, so this is variation real pairs have too. Colour or texture is never changed in one eye
  only: that *is* a GAN cue.

Pseudo-fakes (``PseudoFakes``) turn real pairs into positives by planting, in one eye only, what GAN eyes
get wrong: a corneal highlight that the other eye lacks, a pupil that is not elliptical, an iris colour or
texture that differs between the eyes (another person's iris blended in), a seam at the limbus. Every real
photo then yields a training positive from a distribution that no generator owns, the iris version of
training on blended real images (Li et al. 2020, Face X-ray; Shiohara and Yamasaki 2022).

Pair geometry (``irisgan.data.pairs_format.join_pair``): each iris crop is a square of side 1.2 x the iris
diameter, squeezed into one half of the 96x96 pair, so each iris is an upright ellipse centred in its half
with semi-axes about 0.42 x the half's width and 0.42 x its height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IRIS_AXIS = 0.42  # iris semi-axis over the half-pair's side (1 / (2 x 1.2) of the crop)
PSEUDO_FAKE_KINDS = ("highlight", "pupil", "iris_swap", "colour", "seam")


def _half_coords(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised coordinates of one half of the pair: (u, v) in [-1, 1], shape (1, 1, h, w // 2)."""
    half = w // 2
    v = torch.linspace(-1.0, 1.0, h, device=device).view(1, 1, h, 1).expand(1, 1, h, half)
    u = torch.linspace(-1.0, 1.0, half, device=device).view(1, 1, 1, half).expand(1, 1, h, half)
    return u, v


def _soft_ellipse(u, v, cx, cy, rx, ry, softness: float = 0.15) -> torch.Tensor:
    """Per-sample soft elliptical masks in [0, 1]; centre and radii are (N, 1, 1, 1) tensors."""
    d = ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2
    return torch.sigmoid((1.0 - d.sqrt()) / softness)


def _uniform(n: int, low: float, high: float, device, gen) -> torch.Tensor:
    return (torch.rand(n, 1, 1, 1, device=device, generator=gen) * (high - low) + low).float()


@dataclass
class PairAugment:
    """Both-eyes-alike and per-eye augmentation of float pairs in [0, 1], shape (N, 3, H, W).

    Args:
        p: probability that a pair is augmented at all.
        jitter: strength of brightness / contrast / saturation / gamma changes (0: none).
        downscale: (probability, smallest scale): down-and-up scaling of the whole pair.
        noise: (probability, largest sigma in 0-255 units).
        jpeg: (probability, lowest quality); CPU tensors only (skipped on other devices).
        eye_shift: largest shift of each iris crop, as a fraction of the half's side.
        eye_scale: largest relative zoom of each iris crop.
        grayscale: probability that a pair loses its colour (a grey photo must not read as real).
        colour_cast: largest per-channel gain change, a white-balance shift of the whole pair (studio light).
        sharpen: (probability, largest amount) of unsharp masking, each eye alike: the real sources' irises are
            enlarged into the pair and so softer than the large GAN irises, which are shrunk into it; sharpened
            real pairs keep "sharp" from reading as "GAN".
    """

    p: float = 0.8
    jitter: float = 0.2
    downscale: tuple[float, float] = (0.5, 0.35)
    noise: tuple[float, float] = (0.3, 6.0)
    jpeg: tuple[float, float] = (0.3, 50.0)
    eye_shift: float = 0.06
    eye_scale: float = 0.08
    grayscale: float = 0.0
    colour_cast: float = 0.0
    sharpen: tuple[float, float] = (0.0, 1.0)

    def __call__(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        n, dev = len(x), x.device
        active = torch.rand(n, device=dev, generator=gen) < self.p
        if not active.any():
            return x
        y = x.clone()
        idx = active.nonzero().flatten()
        y[idx] = self._photometric(y[idx], gen)
        y[idx] = self._colour(y[idx], gen)
        y[idx] = self._per_eye_geometry(y[idx], gen)
        y[idx] = self._sharpen(y[idx], gen)
        y[idx] = self._downscale(y[idx], gen)
        y[idx] = self._noise(y[idx], gen)
        y[idx] = self._jpeg(y[idx], gen)
        return y.clamp_(0.0, 1.0)

    def _photometric(self, x: torch.Tensor, gen) -> torch.Tensor:
        if self.jitter <= 0:
            return x
        n, dev, j = len(x), x.device, self.jitter
        brightness = _uniform(n, 1 - j, 1 + j, dev, gen)
        contrast = _uniform(n, 1 - j, 1 + j, dev, gen)
        saturation = _uniform(n, 1 - j, 1 + j, dev, gen)
        gamma = torch.exp(_uniform(n, -j, j, dev, gen))
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * saturation
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean
        return (x * brightness).clamp(0.0, 1.0) ** gamma

    def _colour(self, x: torch.Tensor, gen) -> torch.Tensor:
        n, dev = len(x), x.device
        if self.colour_cast > 0:
            gains = 1.0 + _uniform(n * 3, -self.colour_cast, self.colour_cast, dev, gen).view(n, 3, 1, 1)
            x = (x * gains).clamp(0.0, 1.0)
        if self.grayscale > 0:
            grey = torch.rand(n, device=dev, generator=gen) < self.grayscale
            if grey.any():
                # ITU-R BT.601 luma, as OpenCV's and PIL's grayscale conversions use
                weights = torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)
                x[grey] = (x[grey] * weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        return x

    def _per_eye_geometry(self, x: torch.Tensor, gen) -> torch.Tensor:
        if self.eye_shift <= 0 and self.eye_scale <= 0:
            return x
        n, _, h, w = x.shape
        half = w // 2
        out = []
        for k in range(2):
            part = x[..., k * half : (k + 1) * half]
            scale = 1.0 + _uniform(n, -self.eye_scale, self.eye_scale, x.device, gen).view(n)
            shift = _uniform(n * 2, -self.eye_shift, self.eye_shift, x.device, gen).view(n, 2) * 2
            theta = torch.zeros(n, 2, 3, device=x.device)
            theta[:, 0, 0] = 1.0 / scale
            theta[:, 1, 1] = 1.0 / scale
            theta[:, :, 2] = shift
            grid = F.affine_grid(theta, list(part.shape), align_corners=False)
            out.append(F.grid_sample(part, grid, mode="bilinear", padding_mode="border", align_corners=False))
        return torch.cat(out, dim=-1)

    def _sharpen(self, x: torch.Tensor, gen) -> torch.Tensor:
        prob, most = self.sharpen
        if prob <= 0 or most <= 0:
            return x
        from torchvision.transforms.functional import gaussian_blur

        n, half = len(x), x.shape[-1] // 2
        amount = _uniform(n, 0.0, most, x.device, gen)
        amount = amount * (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) < prob).float()
        # each half blurred on its own: the seam between the eyes is not an edge of either
        halves = torch.cat([x[..., :half], x[..., half:]])
        blurred = gaussian_blur(halves, kernel_size=[5, 5], sigma=[1.0, 1.0])
        blurred = torch.cat([blurred[:n], blurred[n:]], dim=-1)
        return (x + amount * (x - blurred)).clamp(0.0, 1.0)

    def _downscale(self, x: torch.Tensor, gen) -> torch.Tensor:
        prob, smallest = self.downscale
        if prob <= 0:
            return x
        n, _, h, w = x.shape
        chosen = (torch.rand(n, device=x.device, generator=gen) < prob).nonzero().flatten()
        # A few discrete scales: one interpolate call each, whatever the batch size.
        scales = torch.linspace(smallest, 0.85, 4).tolist()
        which = torch.randint(len(scales), (len(chosen),), device=x.device, generator=gen)
        for i, s in enumerate(scales):
            sel = chosen[which == i]
            if len(sel):
                small = F.interpolate(x[sel], scale_factor=s, mode="area")
                x[sel] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return x

    def _noise(self, x: torch.Tensor, gen) -> torch.Tensor:
        prob, sigma = self.noise
        if prob <= 0:
            return x
        n = len(x)
        on = (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) < prob).float()
        strength = _uniform(n, 0.0, sigma / 255.0, x.device, gen) * on
        noise = torch.randn(x.shape, device=x.device, generator=gen)
        return x + noise * strength

    def _jpeg(self, x: torch.Tensor, gen) -> torch.Tensor:
        prob, lowest = self.jpeg
        if prob <= 0 or x.device.type != "cpu":
            return x
        from torchvision.io import decode_jpeg, encode_jpeg

        chosen = (torch.rand(len(x), generator=gen) < prob).nonzero().flatten().tolist()
        if not chosen:
            return x
        qualities = torch.randint(int(lowest), 96, (len(chosen),), generator=gen).tolist()
        for i, q in zip(chosen, qualities, strict=True):
            u8 = (x[i].clamp(0, 1) * 255).round().to(torch.uint8)
            x[i] = decode_jpeg(encode_jpeg(u8, quality=q)).float() / 255.0
        return x


@dataclass
class PseudoFakes:
    """Plant a GAN-eye inconsistency in one eye of real pairs and relabel them GAN (1).

    Args:
        rate: fraction of the real pairs of each batch that become pseudo-fakes.
        kinds: which inconsistencies to plant (one per pseudo-fake, drawn uniformly).
        iris_margin: the margin the pairs' crops were cut with (``pair.iris_margin``): the wider the crop, the
            smaller the iris in it, and every planted change shrinks with it so that it lands on the iris.
    """

    rate: float = 0.3
    kinds: tuple[str, ...] = PSEUDO_FAKE_KINDS
    iris_margin: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"pseudo-fake rate must be in [0, 1], got {self.rate}")
        if not 0.0 <= self.iris_margin <= 2.0:
            raise ValueError(f"pseudo-fake iris_margin must be in [0, 2], got {self.iris_margin}")
        # The planters' sizes are for the iris-only crop (margin 0.1, the iris spans 1 / 1.2 of the half).
        self.scale = 1.2 / (1.0 + 2.0 * self.iris_margin)
        unknown = set(self.kinds) - set(PSEUDO_FAKE_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"unknown pseudo-fake kinds {sorted(unknown)}; valid: {list(PSEUDO_FAKE_KINDS)}")
        self.kinds = tuple(self.kinds)

    def __call__(
        self, x: torch.Tensor, labels: torch.Tensor, gen: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Float pairs in [0, 1] and labels in; (pairs, labels, mask of the pairs changed) out."""
        dev = x.device
        real = (labels == 0).nonzero().flatten()
        changed = torch.zeros(len(x), dtype=torch.bool, device=dev)
        if self.rate <= 0 or len(real) == 0:
            return x, labels, changed
        pick = real[torch.rand(len(real), device=dev, generator=gen) < self.rate]
        if len(pick) == 0:
            return x, labels, changed
        x, labels = x.clone(), labels.clone()
        kind_of = torch.randint(len(self.kinds), (len(pick),), device=dev, generator=gen)
        eye_of = torch.randint(2, (len(pick),), device=dev, generator=gen)
        for k, kind in enumerate(self.kinds):
            for eye in (0, 1):
                sel = pick[(kind_of == k) & (eye_of == eye)]
                if len(sel):
                    x[sel] = getattr(self, f"_{kind}")(x, sel, eye, real, gen)
        labels[pick] = 1.0
        changed[pick] = True
        return x.clamp_(0.0, 1.0), labels, changed

    # Each planter returns the new pairs for ``sel``, changing the half ``eye`` (0 = left, 1 = right).
    @staticmethod
    def _blend(x_sel: torch.Tensor, eye: int, new_half: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        half = x_sel.shape[-1] // 2
        out = x_sel.clone()
        part = out[..., eye * half : (eye + 1) * half]
        out[..., eye * half : (eye + 1) * half] = part * (1 - mask) + new_half * mask
        return out

    @staticmethod
    def _geometry(x_sel: torch.Tensor):
        n, _, h, w = x_sel.shape
        u, v = _half_coords(h, w, x_sel.device)
        return n, u, v

    def _highlight(self, x, sel, eye, real, gen) -> torch.Tensor:
        """A corneal highlight in one eye that the other eye does not share: a bright soft spot."""
        xs = x[sel]
        n, u, v = self._geometry(xs)
        dev = xs.device
        angle = _uniform(n, 0, 2 * math.pi, dev, gen)
        dist = _uniform(n, 0.0, 0.6, dev, gen) * IRIS_AXIS * 2 * self.scale
        cx, cy = dist * torch.cos(angle), dist * torch.sin(angle)
        rx = _uniform(n, 0.05, 0.16, dev, gen) * self.scale
        ry = rx * _uniform(n, 0.6, 1.8, dev, gen)
        mask = _soft_ellipse(u, v, cx, cy, rx, ry, softness=0.25) * _uniform(n, 0.6, 1.0, dev, gen)
        white = torch.ones_like(xs[..., : xs.shape[-1] // 2])
        return self._blend(xs, eye, white, mask)

    def _pupil(self, x, sel, eye, real, gen) -> torch.Tensor:
        """A pupil that is not an ellipse: a dark blob with a wobbling outline, off centre."""
        xs = x[sel]
        n, u, v = self._geometry(xs)
        dev = xs.device
        r0 = _uniform(n, 0.12, 0.28, dev, gen) * self.scale
        cx, cy = (_uniform(n, -0.12, 0.12, dev, gen) * self.scale for _ in range(2))
        theta = torch.atan2(v - cy, u - cx)
        wobble = torch.zeros_like(theta)
        for harmonic in (2, 3, 5):
            amp = _uniform(n, 0.0, 0.25, dev, gen)
            phase = _uniform(n, 0, 2 * math.pi, dev, gen)
            wobble = wobble + amp * torch.cos(harmonic * theta + phase)
        radius = r0 * (1 + wobble)
        d = ((u - cx) ** 2 + ((v - cy) * 0.5) ** 2).sqrt()  # the half is squeezed 2:1 horizontally
        mask = torch.sigmoid((radius * 0.5 - d) / (0.02 * self.scale))
        dark = torch.full_like(xs[..., : xs.shape[-1] // 2], 0.03)
        return self._blend(xs, eye, dark, mask * _uniform(n, 0.7, 1.0, dev, gen))

    def _iris_swap(self, x, sel, eye, real, gen) -> torch.Tensor:
        """Another person's iris (same side) blended into one eye: colour and texture disagree."""
        xs = x[sel]
        n, u, v = self._geometry(xs)
        dev = xs.device
        if len(x) < 2:
            return self._colour(x, sel, eye, real, gen)  # no other person in the batch
        # Any other pair of the batch, never the pair itself.
        donors = (sel + torch.randint(1, len(x), (n,), device=dev, generator=gen)) % len(x)
        half = xs.shape[-1] // 2
        donor_half = x[donors][..., eye * half : (eye + 1) * half]
        # Match the donor's overall brightness to the eye it replaces, so only colour and texture differ.
        target = xs[..., eye * half : (eye + 1) * half]
        donor_half = donor_half * (
            target.mean(dim=(1, 2, 3), keepdim=True)
            / donor_half.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        )
        r = _uniform(n, 0.75, 0.95, dev, gen) * IRIS_AXIS * 2 * self.scale
        mask = _soft_ellipse(u, v, 0.0, 0.0, r, r, softness=0.12)
        return self._blend(xs, eye, donor_half, mask)

    def _colour(self, x, sel, eye, real, gen) -> torch.Tensor:
        """The iris of one eye in another hue, saturation or brightness (heterochromia GANs produce)."""
        xs = x[sel]
        n, u, v = self._geometry(xs)
        dev = xs.device
        half = xs.shape[-1] // 2
        part = xs[..., eye * half : (eye + 1) * half]
        # Each channel 12-35% up or down: far enough from the other eye to be a real disagreement.
        sign = torch.randint(2, (n, 3, 1, 1), device=dev, generator=gen).float() * 2 - 1
        gains = 1 + sign * _uniform(n * 3, 0.12, 0.35, dev, gen).view(n, 3, 1, 1)
        recoloured = (part * gains).clamp(0, 1)
        r = _uniform(n, 0.7, 0.95, dev, gen) * IRIS_AXIS * 2 * self.scale
        mask = _soft_ellipse(u, v, 0.0, 0.0, r, r, softness=0.12)
        return self._blend(xs, eye, recoloured, mask)

    def _seam(self, x, sel, eye, real, gen) -> torch.Tensor:
        """A hard ring at the limbus or an iris texture that is smeared: the outline GANs get wrong."""
        xs = x[sel]
        n, u, v = self._geometry(xs)
        dev = xs.device
        half = xs.shape[-1] // 2
        part = xs[..., eye * half : (eye + 1) * half]
        r = _uniform(n, 0.7, 1.0, dev, gen) * IRIS_AXIS * 2 * self.scale
        d = (u**2 + v**2).sqrt()
        ring = torch.exp(-(((d - r) / (0.035 * self.scale)) ** 2))
        shade = _uniform(n, -0.2, 0.2, dev, gen)
        # Smear: the iris replaced by a blurred copy of itself inside the ring.
        blurred = F.avg_pool2d(part, kernel_size=5, stride=1, padding=2, count_include_pad=False)
        inside = _soft_ellipse(u, v, 0.0, 0.0, r, r, softness=0.1)
        smeared = part * (1 - inside) + blurred * inside
        return self._blend(xs, eye, (smeared + shade * ring).clamp(0, 1), torch.ones_like(ring))
