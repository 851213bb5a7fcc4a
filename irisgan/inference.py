"""Loading a trained classifier for inference, and scoring iris pairs in batches."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from irisgan.checkpoints import CLASSIFIER, CheckpointError, load_checkpoint, stamp_kind
from irisgan.config import override_value
from irisgan.data.pairs_format import is_grayscale, pair_shape
from irisgan.models.face_cue import FaceCue
from irisgan.training.classifier import RANClassifier

log = logging.getLogger(__name__)

__all__ = [
    "build_classifier",
    "CheckpointError",
    "configure_inference",
    "DecisionRule",
    "decision_summary",
    "is_grayscale_pair",
    "face_flags",
    "pairs_grayscale",
    "decide_and_summarise",
    "export_weights",
    "fuse_face_cue",
    "stored_face_rule",
    "FACE_ONLY",
    "load_classifier",
    "check_pair_shape",
    "pair_overrides",
    "stored_pair_margin",
    "stored_pair_shape",
    "resolve_checkpoint",
    "save_weights",
    "member_scores",
    "score_members",
    "score_pairs",
]

INFERENCE_PRECISIONS = ("32", "bf16")
# What a weights-only file keeps of a classifier's hyper-parameters: what rebuilds it for inference.
# What a classifier needs to score as it was trained (with the defaults of runs saved before a key existed):
# weights files keep these and the decision rule, and build_classifier builds from them.
INFERENCE_HPARAMS = {
    "net": None, "threshold_method": "gmean", "channels_last": True, "flip_tta": False, "members": 1, "colour": "rgb",
    "pair_margin": 0.1, "pair_size": 96, "pair_width": None,
}  # fmt: skip
EXPORTED_HPARAMS = (*INFERENCE_HPARAMS, "decision", "face_cue")
# The detector that ships inside the package (``make model``; see the README): used when no ckpt= is given.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "ran_faces.pt"


def resolve_checkpoint(path: str | Path | None) -> Path:
    """``path``, or the shipped detector when ``path`` is None or empty."""
    if path is None or str(path) == "":
        if not SHIPPED_WEIGHTS.is_file():
            raise FileNotFoundError(
                f"no ckpt= given and no shipped detector at {SHIPPED_WEIGHTS}: pass ckpt=PATH, or train one "
                "with `make model`"
            )
        return SHIPPED_WEIGHTS
    return Path(path)


def export_weights(ckpt_path: str | Path, out_path: str | Path, meta: dict | None = None) -> Path:
    """A weights-only copy of a classifier checkpoint: the RAN, its normalisation and threshold, its shape.

    No optimizer state, no metric state: what ``predict`` needs, a few MB, loadable with ``weights_only``.
    ``meta`` (training data, command, metrics) travels along as plain values.
    """
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    return save_weights(ckpt["state_dict"], ckpt.get("hyper_parameters") or {}, out_path, meta)


def save_weights(state: dict, hparams: dict, out_path: str | Path, meta: dict | None = None) -> Path:
    """Write a classifier's inference state (no metric or loss state) as a stamped weights-only file."""
    from irisgan.data.pairs_format import write_bytes_atomic

    weights = {
        "state_dict": {k: v for k, v in state.items() if not k.startswith(("val_", "test_", "criterion."))},
        "hyper_parameters": {k: hparams[k] for k in EXPORTED_HPARAMS if k in hparams},
        "meta": meta or {},
    }
    stamp_kind(weights, CLASSIFIER)
    buf = io.BytesIO()
    torch.save(weights, buf)
    write_bytes_atomic(out_path, buf.getvalue())
    return Path(out_path)


def stored_pair_margin(model: RANClassifier, requested: float | str | None = None) -> float:
    """The margin around each iris box to cut a photo's pair with for ``model``: the one its training pairs were
    cut with, or ``requested`` when given (with a warning when the two differ)."""
    stored = float(model.hparams.get("pair_margin", INFERENCE_HPARAMS["pair_margin"]))
    if requested is None:
        return stored
    if float(requested) != stored:
        log.warning(
            "pair.iris_margin=%s: this detector was trained on pairs cut with pair.iris_margin=%s",
            requested,
            stored,
        )
    return float(requested)


def stored_pair_shape(model: RANClassifier) -> tuple[int, int]:
    """(height, width) of the pairs ``model`` was trained on: square 96 x 96 for runs saved before the shape
    was recorded."""
    return pair_shape(
        model.hparams.get("pair_size", INFERENCE_HPARAMS["pair_size"]),
        model.hparams.get("pair_width", INFERENCE_HPARAMS["pair_width"]),
    )


def check_pair_shape(
    model: RANClassifier, images: np.ndarray | torch.Tensor, where: object = "the pairs"
) -> None:
    """A clear error when pairs of another shape than the detector's reach it: the network would score them,
    wrongly."""
    shape, expected = tuple(images.shape[-2:]), stored_pair_shape(model)
    if shape != expected:
        raise ValueError(
            f"{where}: pairs are {shape[0]} x {shape[1]} pixels (height x width) but this detector was trained on "
            f"{expected[0]} x {expected[1]} pairs: cut them with pair.size={expected[0]} pair.width={expected[1]}"
        )


def pair_overrides(model: RANClassifier, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Extractor ``overrides`` plus how the detector's pairs were cut: its margin, unless they set one, and its
    pair shape, which they may only repeat."""
    requested = override_value(overrides, "pair.iris_margin")
    margin = stored_pair_margin(model, requested)
    out = list(overrides) if requested is not None else [*overrides, f"pair.iris_margin={margin}"]
    height, width = stored_pair_shape(model)
    for key, value in (("pair.size", height), ("pair.width", width)):
        asked = override_value(overrides, key)
        if asked is not None and str(asked) not in ("null", str(value)):
            raise ValueError(f"{key}={asked}: this detector scores pairs cut with {key}={value}")
    return [*out, f"pair.size={height}", f"pair.width={width}"]


def build_classifier(hparams: dict, **overrides) -> RANClassifier:
    """An untrained ``RANClassifier`` of the shape and inference settings stored in ``hparams``."""
    stored = {key: hparams.get(key, default) for key, default in INFERENCE_HPARAMS.items()}
    return RANClassifier(**{**stored, **overrides})


def load_classifier(
    path: str | Path | None,
    device: str | torch.device = "cpu",
    precision: str = "32",
    compile: bool = False,
    flip_tta: bool | None = None,
) -> RANClassifier:
    """A ``RANClassifier`` in eval mode with its stored threshold and normalisation.

    ``precision="bf16"`` scores under bf16 autocast (fast on GPUs and CPUs with bf16 instructions, emulated
    and about 10x slower on AVX2-only CPUs); ``compile=True`` wraps the network in ``torch.compile`` (the
    first batch of each shape pays the compilation). See ``python -m irisgan.bench --compile``.
    ``flip_tta`` None keeps the checkpoint's setting, under which its threshold was chosen; True or False
    overrides it (the AUC stays comparable, the threshold was chosen for the other scores).

    The checkpoint is read with ``weights_only=True`` (no arbitrary pickled code), and only irisgan's own
    classes are built from it: its loss and optimizer entries are not instantiated.
    """
    ckpt = load_checkpoint(resolve_checkpoint(path), CLASSIFIER)
    state, hparams = ckpt["state_dict"], ckpt.get("hyper_parameters") or {}
    model = build_classifier(hparams, **({} if flip_tta is None else {"flip_tta": bool(flip_tta)}))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("val_", "test_"))]
    if missing:
        raise CheckpointError(
            f"{path}: the RAN weights do not match the stored configuration (missing {missing[:5]})"
        )
    model = model.eval().to(device)
    # The uncertain band and the members' largest agreed spread (irisgan.ensemble chooses them on validation
    # pairs); a plain training checkpoint has none and decides at its threshold alone.
    model.decision = hparams.get("decision")
    # A detector built with `irisgan.ensemble --face-cue` adds the face descriptor's logit to the pair's: its
    # threshold and band are those of the fused score (fuse_face_cue).
    model.face_cue = load_face_cue(path, hparams.get("face_cue"))
    configure_inference(model, precision, compile)
    return model


def load_face_cue(path, stored: dict | None) -> FaceCue | None:
    """The detector's face cue from its stored fields, or None; a clear error for a cue this version cannot read
    (fields it does not know: saved by another version of irisgan; or values that do not fit together)."""
    if not stored:
        return None
    unknown = sorted(set(stored) - {f.name for f in fields(FaceCue)})
    if unknown:
        raise CheckpointError(
            f"{path}: its face cue has fields this version of irisgan does not know ({', '.join(unknown)}); it was "
            "saved by another version: rebuild it with irisgan.ensemble --face-cue, or use that version"
        )
    try:
        return FaceCue(**stored)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its face cue cannot be read: {error}") from None


def configure_inference(model: RANClassifier, precision: str = "32", compile: bool = False) -> RANClassifier:
    """Set how ``model.predict_proba`` runs: autocast precision and ``torch.compile`` of the network."""
    precision = str(precision)
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision {precision!r} unknown; valid choices: {list(INFERENCE_PRECISIONS)}")
    model.inference_dtype = torch.bfloat16 if precision == "bf16" else None
    if compile and not hasattr(model.net, "_orig_mod"):  # not compiled already
        model.net = torch.compile(model.net)
    return model


@torch.inference_mode()
def score_pairs(model: RANClassifier, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """P(GAN) of (N, 3, 96, 96) uint8 pairs."""
    images = torch.as_tensor(images)
    device = next(model.parameters()).device
    # A compiled network sees one batch shape: the last, shorter batch is padded (eval mode, so the padding
    # changes no score) instead of paying a second compilation.
    pad_last = hasattr(model.net, "_orig_mod") and len(images) > batch_size
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i : i + batch_size]
        n = len(chunk)
        if pad_last and n < batch_size:
            chunk = torch.cat([chunk, chunk.new_zeros((batch_size - n, *chunk.shape[1:]))])
        out.append(model.predict_proba(chunk.to(device)).float().cpu()[:n])
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


@torch.inference_mode()
def member_scores(
    model: RANClassifier, images: np.ndarray | torch.Tensor, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """P(GAN) of (N, 3, 96, 96) uint8 pairs, and each ensemble member's own P(GAN), shape (members, N).

    The score is the ensemble's (mean logit), as ``score_pairs`` gives it; a single network is one member.
    One pass over the views and members gives both.
    """
    images = torch.as_tensor(images)
    device = next(model.parameters()).device
    probs, members = [], []
    for i in range(0, len(images), batch_size):
        logits = model.member_logits(images[i : i + batch_size].to(device)).cpu()
        probs.append(torch.sigmoid(logits.mean(dim=1)).mean(dim=0))
        members.append(torch.sigmoid(logits).mean(dim=0))
    if not probs:
        return np.zeros(0, np.float32), np.zeros((1, 0), np.float32)
    return torch.cat(probs).numpy(), torch.cat(members, dim=1).numpy()


def score_members(
    model: RANClassifier, images: np.ndarray | torch.Tensor, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray | None]:
    """P(GAN) of (N, 3, 96, 96) uint8 pairs and the standard deviation of the members' P(GAN) (None for one net)."""
    probs, members = member_scores(model, images, batch_size)
    if not len(probs):
        return probs, None
    return probs, members.std(axis=0) if model.hparams.get("members", 1) > 1 else None


def fuse_face_cue(model: RANClassifier, iris_p: np.ndarray, descriptors: np.ndarray | None) -> np.ndarray:
    """The detector's P(GAN) from its iris network's P(GAN) of N pairs and the face features of their photos
    (``face_cue.FEATURE_SIZE`` wide; a cue without texture reads the first 128): the fused score when the detector
    carries a face cue, the iris score unchanged when it does not."""
    cue = getattr(model, "face_cue", None)
    if cue is None:
        return np.asarray(iris_p)
    if descriptors is None or len(descriptors) != len(iris_p):
        raise ValueError(
            f"this detector scores the face beside the irises: {len(iris_p)} pairs need as many face descriptors "
            f"({0 if descriptors is None else len(descriptors)} given)"
        )
    return cue.fused_probability(iris_p, descriptors).astype(np.float32)


# statuses of a photo whose face and landmarks were found, but not a pair: the face cue can still score it
FACE_ONLY = ("iris_too_small", "no_left_iris", "no_right_iris", "no_irises", "eyes_hidden")


def stored_face_rule(model: RANClassifier) -> DecisionRule | None:
    """The rule a detector with a face cue applies to the face alone (``ensemble --face-cue`` chose it on the
    validation photos), or None."""
    face_only = (getattr(model, "decision", None) or {}).get("face_only")
    if getattr(model, "face_cue", None) is None or not face_only:
        return None
    # an unfamiliar or vivid face is never a confident real by the face alone either
    return DecisionRule(
        face_only["threshold"],
        tuple(face_only["band"]),
        max_novelty=model.decision.get("max_novelty"),
        max_vividness=model.decision.get("max_vividness"),
    )


def face_flags(
    model: RANClassifier, descriptors: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What the decision rule reads of N photos' faces: how far each lies from the detector's training faces
    (``FaceCue.novelty``) and how vivid it looks (``FaceCue.vividness``); each None for a detector that cannot tell
    (no face cue, or one without the inner neighbours or the vivid probe)."""
    cue = getattr(model, "face_cue", None)
    if cue is None or descriptors is None or not len(descriptors):
        return None, None
    novelty = cue.novelty(descriptors) if cue.inner_neighbours is not None else None
    return novelty, cue.vividness(descriptors) if cue.vivid is not None else None


def is_grayscale_pair(pair: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 iris pair has lost its colour (a grayscale photo)."""
    return is_grayscale(pair)


def pairs_grayscale(images: np.ndarray) -> list[bool]:
    """``is_grayscale_pair`` of each (N, 3, H, W) uint8 pair."""
    return [is_grayscale_pair(img.transpose(1, 2, 0)) for img in images]


def _beyond(value, bound: float | None):
    """``value > bound`` (a number or an array of them), or None when either is missing."""
    return None if value is None or bound is None else np.asarray(value) > bound


@dataclass(frozen=True)
class DecisionRule:
    """real / GAN / uncertain from a score: the threshold, the uncertain band and the members' spread.

    A score inside ``band`` (``lo <= p < hi``) is uncertain, and so is one whose ensemble members disagree by
    more than ``max_spread``. A grayscale pair lacks the colour cues a colour detector was trained on: it can still
    be called GAN with confidence (from ``hi`` on), never real. A detector that sees the grey level only
    (``luminance``, model.colour) scores a grey photo as its colour original, so the rule does not apply to it.
    An unfamiliar face, whose ``novelty`` (``FaceCue.novelty``: its distance from the training faces) is above
    ``max_novelty``, is never a confident real either: a new generator's faces are what a detector waves through.
    Nor is a vivid face, whose ``vividness`` (``FaceCue.vividness``) is above ``max_vividness``: an unseen diffusion
    model's faces are more saturated, contrasty and sharp than most photographs.
    """

    threshold: float
    band: tuple[float, float] | None = None
    max_spread: float | None = None
    luminance: bool = False
    max_novelty: float | None = None
    max_vividness: float | None = None

    @classmethod
    def of(cls, model: RANClassifier) -> DecisionRule:
        stored = getattr(model, "decision", None) or {}
        band = stored.get("band")
        return cls(
            float(model.threshold),
            tuple(band) if band else None,
            stored.get("max_spread"),
            model.luminance,
            stored.get("max_novelty"),
            stored.get("max_vividness"),
        )

    def decide(
        self,
        p_gan: float,
        spread: float | None = None,
        grayscale: bool = False,
        novelty: float | None = None,
        vividness: float | None = None,
    ) -> tuple[str, list[str]]:
        """(decision, reasons): the reasons say why a decision is ``uncertain`` (empty otherwise)."""
        lo, hi = self.band or (self.threshold, self.threshold)
        reasons = []
        if lo <= p_gan < hi:
            reasons.append(f"score in the uncertain band [{lo:.3f}, {hi:.3f})")
        if spread is not None and self.max_spread is not None and spread > self.max_spread:
            reasons.append(f"ensemble members disagree (spread {spread:.3f} > {self.max_spread:.3f})")
        # a grey or unfamiliar photo keeps a confident GAN call, never gets a real one
        short_of_gan = p_gan < max(hi, self.threshold)
        if grayscale and not self.luminance and short_of_gan:
            reasons.append("grayscale: colour cues unavailable")
        if self.is_unfamiliar(novelty) and short_of_gan:
            reasons.append(f"unfamiliar face (novelty {novelty:.1f} > {self.max_novelty:.1f})")
        if self.is_vivid(vividness) and short_of_gan:
            reasons.append(f"vivid face (vividness {vividness:.2f} > {self.max_vividness:.2f})")
        if reasons:
            return "uncertain", reasons
        return ("GAN" if p_gan >= self.threshold else "real"), []

    def is_unfamiliar(self, novelty: float | None) -> bool:
        """Whether a face's novelty is beyond the rule's bound (never, without either)."""
        return bool(_beyond(novelty, self.max_novelty))

    def unfamiliar(self, novelty: np.ndarray | None) -> np.ndarray | None:
        """``is_unfamiliar`` of N faces, or None when the rule or the detector cannot tell."""
        return _beyond(novelty, self.max_novelty)

    def is_vivid(self, vividness: float | None) -> bool:
        """Whether a face's vividness is beyond the rule's bound (never, without either)."""
        return bool(_beyond(vividness, self.max_vividness))

    def vivid(self, vividness: np.ndarray | None) -> np.ndarray | None:
        """``is_vivid`` of N faces, or None when the rule or the detector cannot tell."""
        return _beyond(vividness, self.max_vividness)

    def decide_each(
        self,
        probs: np.ndarray,
        spread: np.ndarray | None = None,
        grayscale: list[bool] | np.ndarray | None = None,
        novelty: np.ndarray | None = None,
        vividness: np.ndarray | None = None,
    ) -> list[str]:
        """The decision of each of N scores, with what is known of each (None: nothing of that kind)."""
        at = lambda a, i: None if a is None else float(a[i])  # noqa: E731
        return [
            self.decide(
                float(p), at(spread, i), grayscale is not None and bool(grayscale[i]), at(novelty, i),
                at(vividness, i),
            )[0]
            for i, p in enumerate(probs)
        ]  # fmt: skip

    def decide_pairs(
        self,
        probs: np.ndarray,
        spread: np.ndarray | None,
        images: np.ndarray,
        novelty: np.ndarray | None = None,
        vividness: np.ndarray | None = None,
    ) -> list[str]:
        """The decision of each (N, 3, H, W) uint8 pair, as ``predict`` makes it (``novelty`` and ``vividness``:
        of their faces, from ``face_flags``)."""
        if len(probs) != len(images):
            raise ValueError(f"decide_pairs: {len(probs)} scores for {len(images)} pairs")
        return self.decide_each(probs, spread, pairs_grayscale(images), novelty, vividness)

    def record(self) -> dict:
        return {"threshold": self.threshold, "band": list(self.band) if self.band else None,
                "max_spread": self.max_spread, "luminance": self.luminance,
                "max_novelty": self.max_novelty, "max_vividness": self.max_vividness}  # fmt: skip


def decide_and_summarise(
    rule: DecisionRule,
    probs: np.ndarray,
    spread: np.ndarray | None,
    grayscale: list[bool] | np.ndarray | None,
    labels: np.ndarray,
    novelty: np.ndarray | None = None,
    vividness: np.ndarray | None = None,
) -> tuple[list[str], dict]:
    """The decisions of N scored photos as ``predict`` makes them (``DecisionRule.decide_each``; ``novelty`` and
    ``vividness`` from ``face_flags``), and their ``decision_summary``."""
    decisions = rule.decide_each(probs, spread, grayscale, novelty, vividness)
    return decisions, decision_summary(decisions, labels, rule.unfamiliar(novelty), rule.vivid(vividness))


def decision_summary(
    decisions: list[str],
    labels: np.ndarray,
    unfamiliar: np.ndarray | None = None,
    vivid: np.ndarray | None = None,
) -> dict:
    """Shares of GAN / real / uncertain per class, and the accuracy of the confident calls; with ``unfamiliar``
    and ``vivid`` (which photos' faces are), the share of such faces per class."""
    decisions, labels = np.asarray(decisions), np.asarray(labels).astype(int)
    out: dict = {}
    for label, name in ((1, "gan"), (0, "real")):
        mine = decisions[labels == label]
        for d in ("GAN", "real", "uncertain"):
            out[f"{name}_called_{d.lower()}"] = float((mine == d).mean()) if len(mine) else None
    confident = decisions != "uncertain"
    out["uncertain_share"] = float((~confident).mean()) if len(decisions) else None
    called = decisions[confident] == "GAN"
    out["acc_outside_band"] = float((called == (labels[confident] == 1)).mean()) if confident.any() else None
    for flag, flags in (("unfamiliar", unfamiliar), ("vivid", vivid)):
        if flags is None:
            continue
        flags = np.asarray(flags, bool)
        for label, name in ((1, "gan"), (0, "real")):
            mine = flags[labels == label]
            out[f"{name}_{flag}"] = float(mine.mean()) if len(mine) else None
    return out
