"""The face cue: two scores of dlib's 128-d face descriptor (``extraction.faces.face_descriptor``), a third of the
face's texture (``extraction.texture``), and their fusion with the iris score.

dlib's face recognition network was trained on real faces to tell identities apart, never on GAN faces. A linear
probe on its descriptor separates generated faces from real ones on generator families and real sources it never
saw better than the RAN does, and keeps its ranking on re-encoded, shrunk and grey photos; a nearest-neighbour
score against the training faces adds to it (``experiments/face_descriptor_probe.py``; ``experiments/README.md``,
seventh and eighth rounds). A linear probe on an ImageNet network's early layers, run on the grey aligned face (the optional
texture part), adds to both on the held-out folds, but blurred, resampled and super-resolved photos fool it (ninth
round), so the shipped cue leaves it out. The same network's inner layers (``extraction.face_net``: its five
stages' maps, averaged and spread) get the descriptor's pair of scores, a logistic regression and a
nearest-neighbour score; they lift the held-out GAN families most and barely move under blur (eleventh round), and
the shipped cue has them. The fused score is the sum of the parts, each standardised on validation photos, so
that none dominates by scale. The same neighbours tell how far a face lies from every training face
(``FaceCue.novelty``): a face farther out than most real validation photos is unfamiliar, and the decision rule
never calls it real with confidence (an unseen diffusion model's faces lie out there; twelfth round). So does a
face more vivid than most real validation photos (``FaceCue.vividness``: a logistic regression that tells the real
training photos from vivid copies of them, ``irisgan.data.degrade.vivid_copy``; an unseen diffusion model's faces
are vivid, GAN faces are not; thirteenth round).

A photo's *face features* are what a cue's ``FaceView`` names: dlib's descriptor of the face aligned with one or
more borders (``paddings``), each 128 numbers, then, with texture, the texture features (``extraction.texture``),
then, with inner, the inner features (``extraction.face_net``).
Descriptors of the same face at three borders (0.25, 0.1 and 0) side by side carry more than the one at dlib's
0.25 (experiments/README.md, tenth round); their average carries less.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

DESCRIPTOR_SIZE = 128
TEXTURE_SIZE = (
    152  # irisgan.extraction.texture.TEXTURE_SIZE (kept here: this module needs no torchvision model)
)
FEATURE_SIZE = DESCRIPTOR_SIZE + TEXTURE_SIZE
INNER_SIZE = 1472  # irisgan.extraction.face_net.INNER_SIZE: the five stages' means and standard deviations
# neighbours of the nearest-neighbour score: 3, 5 and 10 each lifted the study's held-out folds over the logistic
# regression alone; 10 kept every held-out real source at 10% false positives or fewer (experiments/README.md)
NEIGHBOURS = 10
# the texture probe's L2 penalty: 152 correlated features and about a thousand training photos want more than the
# descriptor's 1e-3 (1e-2 was the weakest of 1e-2, 0.1 and 1 tried, and the best on the held-out folds)
TEXTURE_L2 = 1e-2
# the inner probe's: 1,472 features; 1e-3, 1e-2 and 0.1 gave the study's folds alike (experiments/README.md)
INNER_L2 = 1e-2
# the vivid probe's: the inner probe's, untuned (experiments/vivid_probe.py)
VIVID_L2 = 1e-2
# the part weights' (a logistic regression of the validation photos' labels on the standardised parts): the inner
# probe's, untuned
PART_WEIGHTS_L2 = 1e-2
# a generator with fewer generated training photos than this shares one regression with the others like it
# (``generated_families``): too few faces for a regression of its own
FAMILY_MIN_PHOTOS = 20
# each part of FaceCue.parts and the field holding its validation mean and standard deviation
PART_STATS = {
    "face": "face_logit", "knn": "knn_score", "texture": "texture_logit", "inner": "inner_logit",
    "inner_knn": "inner_knn_score",
}  # fmt: skip


@dataclass(frozen=True)
class FaceView:
    """What a face cue reads of a photo's face: dlib's descriptor at each border of ``paddings`` (the aligned
    face's margin as a share of its size; 0.25 is dlib's own), then, with ``texture``, the texture features, then,
    with ``inner``, the inner features of dlib's network (``extraction.face_net``)."""

    paddings: tuple[float, ...] = (0.25,)
    texture: bool = False
    inner: bool = False

    def __post_init__(self) -> None:
        pads = tuple(float(p) for p in self.paddings)
        if not pads or any(not 0.0 <= p <= 2.0 for p in pads) or len(set(pads)) != len(pads):
            raise ValueError(f"FaceView: paddings must be distinct borders in [0, 2], got {self.paddings}")
        object.__setattr__(self, "paddings", pads)
        object.__setattr__(self, "texture", bool(self.texture))
        object.__setattr__(self, "inner", bool(self.inner))

    @property
    def descriptor_width(self) -> int:
        return DESCRIPTOR_SIZE * len(self.paddings)

    @property
    def width(self) -> int:
        """How many numbers the view has of a face."""
        return (
            self.descriptor_width + (TEXTURE_SIZE if self.texture else 0) + (INNER_SIZE if self.inner else 0)
        )

    @property
    def cache_name(self) -> str:
        """The file beside an extraction manifest that caches the view of its photos (the two views of the first
        detectors keep their files' names)."""
        if self.paddings == (0.25,) and not self.inner:
            return "face_features.npz" if self.texture else "face_descriptors.npz"
        pads = "_".join(f"{p:g}" for p in self.paddings)
        return (
            f"face_features_p{pads}"
            + ("_texture" if self.texture else "")
            + ("_inner" if self.inner else "")
            + ".npz"
        )

    @classmethod
    def parse(cls, paddings: str, texture: bool = False, inner: bool = False) -> FaceView:
        """``"0.25,0.1,0"`` -> FaceView((0.25, 0.1, 0.0)); a clear error for anything else."""
        try:
            pads = tuple(float(p) for p in str(paddings).split(","))
        except ValueError:
            raise ValueError(f"face crops {paddings!r}: comma-separated borders, e.g. 0.25,0.1,0") from None
        return cls(pads, texture, inner)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class FaceCue:
    """A fitted face cue and the fusion's standardisation of its parts.

    Two scores of a face descriptor, both high for GAN faces: a logistic regression (feature mean and scale,
    weights, bias), and a nearest-neighbour score against the training photos' descriptors (``neighbours``: the
    mean distance to the ``k`` nearest real faces minus that to the ``k`` nearest generated ones; none: left
    out), and a logistic regression on the face's texture features (``texture``: mean, scale, weight, bias; none:
    left out). The descriptor is dlib's at each border of ``paddings``, side by side (``FaceView``). Each part,
    and the iris network's logit, is standardised by its mean and standard deviation on the validation photos;
    the detector's logit is their sum, each weighted by ``part_weights`` when the cue has them.
    """

    mean: list[float]
    scale: list[float]
    weight: list[float]
    bias: float
    face_logit: tuple[float, float] = (0.0, 1.0)  # mean, standard deviation on the validation photos
    ran_logit: tuple[float, float] = (0.0, 1.0)
    k: int = 0
    real_neighbours: Any = None  # (n, 128) descriptors of the real training photos
    fake_neighbours: Any = None  # (m, 128) descriptors of the generated ones
    knn_score: tuple[float, float] = (0.0, 1.0)
    # a logistic regression on the texture features (mean, scale, weight, bias), none: left out
    texture: Any = None
    texture_logit: tuple[float, float] = (0.0, 1.0)
    paddings: tuple = (0.25,)  # the borders of the descriptors (a cue saved before them: dlib's)
    # a logistic regression on the inner features of dlib's network, none: left out
    inner: Any = None
    inner_logit: tuple[float, float] = (0.0, 1.0)
    # the training photos' inner features, standardised by the inner probe's mean and scale: (real, generated),
    # for a nearest-neighbour score like the descriptor's (stored in float16); none: left out
    inner_neighbours: Any = None
    inner_knn_score: tuple[float, float] = (0.0, 1.0)
    # how vivid a face looks: a logistic regression on all the view's features (mean, scale, weight, bias) that
    # tells real training photos from vivid copies of them; none: left out (not a score part: the rule reads it)
    vivid: Any = None
    # the fusion's weight of each standardised part (the names of ``parts`` and "iris"), from a logistic
    # regression of the validation photos' labels on them (``fit_part_weights``); none: each counts once
    part_weights: Any = None
    # one logistic regression per generated family against the real training photos, for the descriptor's and the
    # inner features' regressions: {"face" | "inner": [((mean, scale, weight, bias), (real mean, real sd)), ...]};
    # the part is then the largest of the families' logits, each z-scored on the real training photos
    # (``fit_family_probes``), so a face is generated when it looks like any family. None: one regression of
    # all generated photos against all real ones (the shipped recipe)
    family_probes: Any = None

    def __post_init__(self) -> None:
        self.paddings = self.view.paddings
        dw = self.view.descriptor_width
        sizes = {len(self.mean), len(self.scale), len(self.weight)}
        if sizes != {dw}:
            raise ValueError(f"FaceCue: mean, scale and weight need {dw} values each, got {sizes}")
        self.face_logit, self.ran_logit = tuple(self.face_logit), tuple(self.ran_logit)
        self.knn_score, self.texture_logit = tuple(self.knn_score), tuple(self.texture_logit)
        self.inner_logit, self.inner_knn_score = tuple(self.inner_logit), tuple(self.inner_knn_score)
        for name, size in (("texture", TEXTURE_SIZE), ("inner", INNER_SIZE), ("vivid", self.width)):
            probe = getattr(self, name)
            if probe is not None:
                m, sc, w, b = probe
                if {len(m), len(sc), len(w)} != {size}:
                    raise ValueError(f"FaceCue: the {name} probe needs {size} values per vector")
                setattr(
                    self,
                    name,
                    ([float(v) for v in m], [float(v) for v in sc], [float(v) for v in w], float(b)),
                )
        if self.k:
            # stored as tensors (a weights-only file holds no numpy arrays)
            self.real_neighbours, self.fake_neighbours = (
                np.asarray(torch.as_tensor(n).numpy() if n is not None else [], np.float32).reshape(-1, dw)
                for n in (self.real_neighbours, self.fake_neighbours)
            )
            if min(len(self.real_neighbours), len(self.fake_neighbours)) < self.k:
                raise ValueError(f"FaceCue: k={self.k} needs at least {self.k} neighbours of each class")
        if self.inner_neighbours is not None:
            if self.inner is None or not self.k or len(self.inner_neighbours) != 2:
                raise ValueError(
                    "FaceCue: inner neighbours need the inner probe, k > 0, and (real, generated)"
                )
            self.inner_neighbours = tuple(
                np.asarray(torch.as_tensor(n).float().numpy(), np.float32).reshape(-1, INNER_SIZE)
                for n in self.inner_neighbours
            )
            if min(len(n) for n in self.inner_neighbours) < self.k:
                raise ValueError(
                    f"FaceCue: k={self.k} needs at least {self.k} inner neighbours of each class"
                )
        if self.family_probes is not None:
            self.family_probes = self._checked_family_probes(dict(self.family_probes))
        if self.part_weights is not None:
            weights = {str(k): float(v) for k, v in dict(self.part_weights).items()}
            expected = {*self.part_names, "iris"}
            if set(weights) != expected or not all(np.isfinite(v) for v in weights.values()):
                raise ValueError(
                    f"FaceCue: part_weights needs a finite weight for each of {sorted(expected)}, got {weights}"
                )
            self.part_weights = weights

    def _checked_family_probes(self, probes: dict) -> dict:
        sizes = {"face": self.view.descriptor_width, "inner": INNER_SIZE if self.inner is not None else None}
        out = {}
        for part, families in probes.items():
            if sizes.get(part) is None or not families:
                raise ValueError(
                    f"FaceCue: family probes are for the 'face' and (with inner features) 'inner' parts, "
                    f"one or more each; got {part!r} with {len(families or [])}"
                )
            out[part] = []
            for (m, sc, w, b), (rm, rs) in families:
                if {len(m), len(sc), len(w)} != {sizes[part]}:
                    raise ValueError(f"FaceCue: a {part} family probe needs {sizes[part]} values per vector")
                probe = ([float(v) for v in m], [float(v) for v in sc], [float(v) for v in w], float(b))
                out[part].append((probe, (float(rm), float(rs))))
        return out

    def _family_max(self, part: str, x: np.ndarray) -> np.ndarray:
        """The largest of the part's family probes' logits, each z-scored on the real training photos."""
        return np.max([(_linear(probe, x) - rm) / rs for probe, (rm, rs) in self.family_probes[part]], axis=0)

    def to_dict(self) -> dict:
        """Plain values and tensors: what a weights-only file can hold."""
        out = asdict(self)
        for key in ("real_neighbours", "fake_neighbours"):
            out[key] = None if out[key] is None else torch.from_numpy(np.asarray(out[key], np.float32))
        if out["inner_neighbours"] is not None:
            # standardised values: float16 keeps them to 1e-3 at half the size
            out["inner_neighbours"] = tuple(
                torch.from_numpy(np.asarray(n, np.float16)) for n in out["inner_neighbours"]
            )
        return out

    @property
    def view(self) -> FaceView:
        """What the cue reads of a face."""
        return FaceView(tuple(self.paddings), self.texture is not None, self.inner is not None)

    @property
    def width(self) -> int:
        """How many numbers of a photo's face features the cue reads."""
        return self.view.width

    def _checked(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float64)
        # dlib's one descriptor leads the descriptor-and-texture features, so a cue of it alone reads those too;
        # any other width is another view's
        fits = x.ndim == 2 and (
            x.shape[1] == self.width or (self.view == FaceView() and x.shape[1] == FEATURE_SIZE)
        )
        if not fits:
            raise ValueError(f"FaceCue: needs (N, {self.width}) face features ({self.view}), got {x.shape}")
        return x

    def face_logits(self, descriptors: np.ndarray) -> np.ndarray:
        """The logistic regression's logit of (N, ``view.descriptor_width``) descriptors (high: GAN); wider face
        features are read up to their descriptor."""
        dw = self.view.descriptor_width
        if self.family_probes is not None and "face" in self.family_probes:
            return self._family_max("face", self._checked(descriptors)[:, :dw])
        x = (self._checked(descriptors)[:, :dw] - np.asarray(self.mean)) / np.asarray(self.scale)
        return x @ np.asarray(self.weight) + self.bias

    def texture_logits(self, features: np.ndarray) -> np.ndarray:
        """The texture probe's logit of (N, ``view.width``) face features (high: GAN)."""
        dw = self.view.descriptor_width
        return _linear(self.texture, self._checked(features)[:, dw : dw + TEXTURE_SIZE])

    def inner_logits(self, features: np.ndarray) -> np.ndarray:
        """The inner probe's logit of (N, ``view.width``) face features (high: GAN): their last ``INNER_SIZE``."""
        if self.family_probes is not None and "inner" in self.family_probes:
            return self._family_max("inner", self._checked(features)[:, self.width - INNER_SIZE :])
        _, _, w, b = self.inner
        return self._inner_z(features) @ np.asarray(w) + b

    def inner_knn_scores(self, features: np.ndarray) -> np.ndarray:
        """The nearest-neighbour score of the inner features (high: GAN): the mean distance to the ``k`` nearest
        real training photos minus that to the ``k`` nearest generated ones, in the inner probe's standardisation."""
        return nearest_difference(self._inner_z(features, np.float32), *self.inner_neighbours, self.k)

    def _inner_z(self, features: np.ndarray, dtype=np.float64) -> np.ndarray:
        """The inner features in the inner probe's standardisation: what its logistic regression weighs, and where
        the inner neighbours are kept (float32, as they are)."""
        m, sc, _, _ = self.inner
        x = (self._checked(features)[:, self.width - INNER_SIZE :] - np.asarray(m)) / np.asarray(sc)
        return np.asarray(x, dtype)

    def novelty(self, features: np.ndarray) -> np.ndarray:
        """How far each face lies from the training faces: the mean distance of its inner features to the ``k``
        nearest training photos of either class. A new generator, camera or population lies farther out than the
        validation photos; the unseen GAN families of the study lie nearer (GAN faces are average faces)."""
        if self.inner_neighbours is None:
            raise ValueError("FaceCue: novelty needs the inner neighbours (a cue fitted with --face-inner)")
        every = np.concatenate(self.inner_neighbours)
        return nearest_mean(self._inner_z(features, np.float32), every, self.k).double().numpy()

    def vividness(self, features: np.ndarray) -> np.ndarray:
        """How vivid each face looks (high: saturated, contrasty, sharpened, as many diffusion faces are): the
        vivid probe's logit of (N, ``view.width``) face features."""
        if self.vivid is None:
            raise ValueError("FaceCue: vividness needs the vivid probe (a cue fitted with vivid copies)")
        return _linear(self.vivid, self._checked(features)[:, : self.width])

    def knn_scores(self, descriptors: np.ndarray) -> np.ndarray:
        """Mean distance to the ``k`` nearest real training faces minus that to the ``k`` nearest generated ones
        (high: GAN). Euclidean, the distance dlib's descriptor was trained for."""
        x = np.asarray(self._checked(descriptors)[:, : self.view.descriptor_width], np.float32)
        return nearest_difference(x, self.real_neighbours, self.fake_neighbours, self.k)

    @property
    def part_names(self) -> tuple[str, ...]:
        """The names of the face's parts (``parts``), in their order."""
        return tuple(
            name
            for name, present in (
                ("face", True), ("knn", bool(self.k)), ("texture", self.texture is not None),
                ("inner", self.inner is not None), ("inner_knn", self.inner_neighbours is not None),
            )
            if present
        )  # fmt: skip

    def part_weight(self, name: str) -> float:
        """The fusion's weight of a standardised part (a name of ``parts``, or "iris")."""
        return 1.0 if self.part_weights is None else self.part_weights[name]

    def standardised_parts(self, descriptors: np.ndarray) -> dict[str, np.ndarray]:
        """``parts``, each standardised by the cue's validation statistics of it (before any weight)."""
        out = {}
        for name, v in self.parts(descriptors).items():
            mean, sd = getattr(self, PART_STATS[name])
            out[name] = (v - mean) / sd
        return out

    def parts(self, descriptors: np.ndarray) -> dict[str, np.ndarray]:
        """The face's scores before standardisation: ``face`` (the logistic regression's logit), ``knn`` and
        ``texture`` and ``inner`` and ``inner_knn`` when the cue has them (``part_names``)."""
        scorers = {
            "face": self.face_logits, "knn": self.knn_scores, "texture": self.texture_logits,
            "inner": self.inner_logits, "inner_knn": self.inner_knn_scores,
        }  # fmt: skip
        return {name: scorers[name](descriptors) for name in self.part_names}

    def face_part(self, descriptors: np.ndarray) -> np.ndarray:
        """The face's share of the detector's logit: its scores (``parts``), each standardised by the cue's
        statistics of it and weighted (``part_weight``), summed."""
        total = 0.0
        for name, z in self.standardised_parts(descriptors).items():
            total = total + self.part_weight(name) * z
        return total

    def standardised_iris(self, ran_p: np.ndarray) -> np.ndarray:
        """The iris network's logit, standardised by the cue's validation statistics of it (before any weight)."""
        rm, rs = self.ran_logit
        return (logit(ran_p) - rm) / rs

    def iris_part(self, ran_p: np.ndarray) -> np.ndarray:
        """The irises' share of the detector's logit: the iris network's standardised logit, weighted."""
        return self.part_weight("iris") * self.standardised_iris(ran_p)

    def face_probability(self, descriptors: np.ndarray) -> np.ndarray:
        """The face alone as a number in [0, 1] (float32, as thresholds are stored): the sigmoid of ``face_part``,
        for photos whose irises give no pair."""
        return (1.0 / (1.0 + np.exp(-self.face_part(descriptors)))).astype(np.float32)

    def fused_logits(self, ran_p: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """The detector's logit of N photos (the iris network's P(GAN), their descriptors): the sum of the
        standardised face scores and iris logit."""
        return self.face_part(descriptors) + self.iris_part(ran_p)

    def fused_probability(self, ran_p: np.ndarray, descriptors: np.ndarray) -> np.ndarray:
        """The fused score as a number in [0, 1]: the sigmoid of ``fused_logits``."""
        return 1.0 / (1.0 + np.exp(-self.fused_logits(ran_p, descriptors)))


def nearest_difference(x: np.ndarray, real: np.ndarray, fake: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row of ``x`` to its ``k`` nearest ``real`` rows minus that to its ``k``
    nearest ``fake`` rows."""
    return (nearest_mean(x, real, k) - nearest_mean(x, fake, k)).double().numpy()


def nearest_mean(x: np.ndarray, reference: np.ndarray, k: int) -> torch.Tensor:
    """Mean Euclidean distance of each row of ``x`` to its ``k`` nearest ``reference`` rows (float32)."""
    distances = torch.cdist(torch.from_numpy(x), torch.from_numpy(reference))
    return distances.topk(k, dim=1, largest=False).values.mean(dim=1)


def _linear(probe: tuple, x: np.ndarray) -> np.ndarray:
    """A stored logistic regression's (mean, scale, weight, bias) logit of features ``x``."""
    m, sc, w, b = probe
    return ((x - np.asarray(m)) / np.asarray(sc)) @ np.asarray(w) + b


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L2-regularised logistic regression on standardised features: (mean, scale, weight, bias)."""
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if len(np.unique(y)) != 2:
        raise ValueError("a logistic fit needs examples of both classes")
    mean, scale = x.mean(0), x.std(0) + 1e-9
    lin = torch.nn.Linear(x.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    xt, yt = torch.tensor((x - mean) / scale), torch.tensor(y, dtype=torch.float64)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(lin(xt).squeeze(1), yt)
        loss = loss + l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mean, scale, lin.weight.detach().numpy()[0], float(lin.bias.detach())


def fit_face_cue(
    fit_descriptors: np.ndarray,
    fit_labels: np.ndarray,
    val_descriptors: np.ndarray,
    val_ran_p: np.ndarray,
    l2: float = 1e-3,
    k: int = NEIGHBOURS,
    texture_l2: float = TEXTURE_L2,
    paddings: tuple[float, ...] = (0.25,),
    inner_l2: float = INNER_L2,
    inner_neighbours: bool = True,
    val_labels: np.ndarray | None = None,
    fit_families: np.ndarray | None = None,
) -> FaceCue:
    """Fit the probe on the training photos (and keep their descriptors as neighbours, ``k`` > 0, at most as
    many as the smaller class has), and standardise each part on the validation photos (their descriptors and
    the RAN's P(GAN) of their pairs, which neither the RAN nor the probe trained on). The features' width says
    which view they are (``FaceView``: ``paddings``, the borders of the descriptors side by side, and the texture
    and inner features or not); each extra block gets a probe of its own, and the inner features a
    nearest-neighbour score too, as the descriptor has (``inner_neighbours``; the training photos kept in the inner
    probe's standardisation). ``val_labels``: the validation photos' labels, which then weigh the parts
    (``fit_part_weights``); none: each part counts once. ``fit_families``: each training photo's generated
    family (``generated_families``; ignored for the real ones), which then give the descriptor's and the inner
    features' regressions one probe per family (``fit_family_probes``); none: one probe each."""
    fit_descriptors, fit_labels = np.asarray(fit_descriptors, np.float32), np.asarray(fit_labels).astype(int)
    width = fit_descriptors.shape[1] if fit_descriptors.ndim == 2 else 0
    views = {v.width: v for v in (FaceView(paddings, t, i) for t in (False, True) for i in (False, True))}
    if width not in views:
        raise ValueError(
            f"fit_face_cue: face features of {len(FaceView(paddings).paddings)} crop(s) are "
            f"{', '.join(map(str, sorted(views)))} wide (without and with texture and inner features), got {width}"
        )
    view = views[width]
    dw = view.descriptor_width
    probe = lambda x, l2_: tuple(np.asarray(v).tolist() for v in fit_logistic(x, fit_labels, l2_))  # noqa: E731
    texture = probe(fit_descriptors[:, dw : dw + TEXTURE_SIZE], texture_l2) if view.texture else None
    fit_inner = fit_descriptors[:, width - INNER_SIZE :]
    inner = probe(fit_inner, inner_l2) if view.inner else None
    fit_descriptors = fit_descriptors[:, :dw]
    mean, scale, weight, bias = fit_logistic(fit_descriptors, fit_labels, l2)
    real, fake = fit_descriptors[fit_labels == 0], fit_descriptors[fit_labels == 1]
    k = min(int(k), len(real), len(fake))  # a small training set has fewer neighbours of a class to offer
    neighbours = (real, fake) if k else (None, None)
    inner_near = None
    if inner is not None and k and inner_neighbours:
        z = (fit_inner - np.asarray(inner[0])) / np.asarray(inner[1])
        # rounded as the weights file stores them, so that the fitted cue scores as the saved one does
        inner_near = tuple(z[fit_labels == c].astype(np.float16).astype(np.float32) for c in (0, 1))
    family_probes = None
    if fit_families is not None:
        family_probes = {"face": fit_family_probes(fit_descriptors, fit_labels, fit_families, l2)}
        if inner is not None:
            family_probes["inner"] = fit_family_probes(fit_inner, fit_labels, fit_families, inner_l2)
    cue = FaceCue(mean.tolist(), scale.tolist(), weight.tolist(), bias, k=k, real_neighbours=neighbours[0],
                  fake_neighbours=neighbours[1], texture=texture, paddings=view.paddings, inner=inner,
                  inner_neighbours=inner_near, family_probes=family_probes)  # fmt: skip
    standardise(cue, cue.parts(val_descriptors), val_ran_p)
    if val_labels is not None:
        cue.part_weights = fit_part_weights(cue, val_descriptors, val_ran_p, val_labels)
    return cue


def generated_families(
    generators: list[str], labels: np.ndarray, min_photos: int = FAMILY_MIN_PHOTOS, copies: int = 0
) -> np.ndarray:
    """Each photo's family for ``fit_family_probes``: its generator label, or "other" for a generator with fewer
    than ``min_photos`` generated photos here (they share one probe); "" for the real photos. ``copies``: the last
    ``copies`` rows of ``labels`` are vivid copies of real photos (``ensemble --face-vivid``), a family of their
    own, which have no generator."""
    labels = np.asarray(labels).astype(int)
    if len(generators) + copies != len(labels):
        raise ValueError(f"{len(generators)} generators and {copies} copies for {len(labels)} labels")
    generators = np.array([str(g) for g in generators] + ["vivid copy"] * copies, dtype=object)
    counts = {g: int(np.sum((generators == g) & (labels == 1))) for g in set(generators[labels == 1])}
    return np.array(
        [
            "" if y == 0 else (g if counts[g] >= min_photos else "other")
            for g, y in zip(generators, labels, strict=True)
        ],
        dtype=object,
    )


def fit_family_probes(x: np.ndarray, labels: np.ndarray, families: np.ndarray, l2: float) -> list:
    """One logistic regression per generated family against all the real photos, each with its logit's mean and
    standard deviation on those real photos: [((mean, scale, weight, bias), (real mean, real sd)), ...]. One line
    between all real and all generated faces is pulled towards the largest families; the largest of the
    families' z-scored logits asks whether a face looks like any of them."""
    x, labels, families = (
        np.asarray(x, np.float64),
        np.asarray(labels).astype(int),
        np.asarray(families, object),
    )
    real = labels == 0
    out = []
    for family in sorted(set(families[labels == 1])):
        pick = real | ((labels == 1) & (families == family))
        probe = fit_logistic(x[pick], labels[pick], l2)
        logits = _linear(probe, x[real])
        out.append(
            (tuple(np.asarray(v).tolist() for v in probe), (float(logits.mean()), float(logits.std() + 1e-9)))
        )
    return out


def fit_part_weights(
    cue: FaceCue,
    val_descriptors: np.ndarray,
    val_ran_p: np.ndarray,
    val_labels: np.ndarray,
    l2: float = PART_WEIGHTS_L2,
) -> dict[str, float]:
    """The fusion's weight of each of the cue's standardised parts and the iris network's: a logistic regression
    of the validation photos' labels on them, each weight on the standardised part's own scale. The parts are
    fitted on the training photos, so the validation photos tell how far each one carries to photos it did not
    fit; on the study's folds this lifted every unseen GAN family a little, but it was not shipped: a blurred copy
    of a caught GAN photo became a confident real (experiments/README.md, fourteenth round)."""
    z = {**cue.standardised_parts(val_descriptors), "iris": cue.standardised_iris(val_ran_p)}
    names = list(z)
    labels = np.asarray(val_labels).astype(int)
    if len(labels) != len(z["iris"]):
        raise ValueError(f"fit_part_weights: {len(labels)} labels for {len(z['iris'])} validation photos")
    _, scale, weight, _ = fit_logistic(np.stack([z[n] for n in names], 1), labels, l2)
    return {n: float(w / sc) for n, w, sc in zip(names, weight, scale, strict=True)}


def fit_vividness(real: np.ndarray, copies: np.ndarray, l2: float = VIVID_L2) -> tuple:
    """The vivid probe: a logistic regression on face features of real photos (0) and of vivid copies of the
    same photos (1), so that it learns the look, not the faces; as ``FaceCue.vivid`` stores it."""
    real, copies = np.asarray(real, np.float32), np.asarray(copies, np.float32)
    if real.shape != copies.shape or not len(real):
        raise ValueError(f"fit_vividness: one copy per real photo, got {real.shape} and {copies.shape}")
    y = np.r_[np.zeros(len(real)), np.ones(len(copies))]
    return tuple(np.asarray(v).tolist() for v in fit_logistic(np.concatenate([real, copies]), y, l2))


def standardise(cue: FaceCue, parts: dict[str, np.ndarray], val_ran_p: np.ndarray) -> None:
    """Set the cue's standardisation from the validation photos' unstandardised scores (``FaceCue.parts``) and
    the iris network's P(GAN) of their pairs."""
    stats = lambda v: (float(np.mean(v)), float(np.std(v) + 1e-9))  # noqa: E731
    for name, v in parts.items():
        setattr(cue, PART_STATS[name], stats(v))
    cue.ran_logit = stats(logit(val_ran_p))
