"""Probe: which inner stages of dlib's face network tell GAN faces from real ones on the families and sources the
study holds out, beside the face cue, and how far blur and resampling move them?

    python experiments/face_net_stages_probe.py --runs outputs/experiments/generalisation --variant context

dlib's face recognition ResNet (``irisgan.extraction.face_net``, ported from its own file) sees the face aligned at
150 px. After its stem come five residual stages (32, 64, 128, 256 and 256 channels, maps of 35, 17, 8, 4 and 2
px); each stage's maps are summarised by their mean and standard deviation over the image. For each fold of the
leave-one-out study (the fold's own training, validation and test photos, seed ``--seed``'s splits and iris
scores), a logistic regression on a stage (``S1``-``S5``), on a group of them (``S123``, ``S345``) or on all five
(``all``, what ``FaceView(inner=True)`` reads) is fitted on the training photos, standardised on the validation
photos, and scored alone, added to the descriptor's cue (``cue+``) and to the fused score (``fused+``: the cue and
the fold run's iris logit, as the shipped detector adds them). ``knn``: a nearest-neighbour score on all five
stages, standardised by the training photos (the mean distance to the 10 nearest real training photos minus that
to the 10 nearest generated ones), as the cue has one of the descriptor; ``fused+all+knn`` adds it to the shipped
detector's score with the inner logistic regression alone (the shipped cue has both: ``FaceCue.inner_neighbours``).

Each photo's stages are also computed on a blurred (σ 2 px) and a shrunk-to-a-quarter-and-enlarged copy of it
(``irisgan.data.degrade``); the mean change of the GAN test photos' score, in validation standard deviations,
says how much processing moves each variant (the texture part moved by -0.40 to -2.00 under blur).
Results: ``experiments/results/face_net_stages.md``.
"""

from __future__ import annotations

import numpy as np
import torch
from face_descriptor_probe import descriptors
from face_features_probe import auc_table, evaluated, fold_split, probe_arguments, record_aucs, study_folders
from study_stats import paired_line, write_results

from irisgan.data.degrade import degrade
from irisgan.extraction.descriptors import photo_descriptors
from irisgan.extraction.face_net import INNER_SIZE, STAGES, aligned_face, inner_features, load_face_net
from irisgan.extraction.manifest import read_manifest
from irisgan.models.face_cue import INNER_L2, NEIGHBOURS, fit_face_cue, fit_logistic, nearest_difference

COPIES = ("clean", "blur2", "resize0.25")
CACHE = "face_net_stages.npz"  # the three copies' inner features side by side
VARIANTS = {
    **{f"S{i}": [i] for i in range(1, 6)}, "S123": [1, 2, 3], "S345": [3, 4, 5], "all": [1, 2, 3, 4, 5],
}  # fmt: skip


def photo_stages(image: np.ndarray, face_box, landmarks) -> np.ndarray:
    """The inner features of the photo and of its processed copies, side by side."""
    net, out = load_face_net(), []
    for copy in COPIES:
        picture = image if copy == "clean" else degrade(image, copy)
        chip = torch.from_numpy(aligned_face(picture, face_box, np.asarray(landmarks, np.float64)))
        with torch.inference_mode():
            out.append(inner_features(net(chip.permute(2, 0, 1)[None])[1]).numpy()[0])
    return np.concatenate(out).astype(np.float32)


def stage_columns(stages: list[int]) -> np.ndarray:
    """The columns of ``inner_features`` that hold these stages (1-5): their means, then standard deviations."""
    edges = np.cumsum([0] + [2 * c for c, _, _ in STAGES])
    return np.concatenate([np.arange(edges[s - 1], edges[s]) for s in stages])


def stage_neighbours(fit: np.ndarray, labels: np.ndarray, k: int = NEIGHBOURS):
    """The mean distance to the ``k`` nearest real training photos minus that to the ``k`` nearest generated
    ones, in the training photos' standardised inner features (high: GAN), as the cue scores them."""
    mean, scale = fit.mean(0), fit.std(0) + 1e-9
    z = lambda f: ((f - mean) / scale).astype(np.float32)  # noqa: E731
    real, fake = z(fit[labels == 0]), z(fit[labels == 1])
    return lambda f: nearest_difference(z(f), real, fake, k)


def main() -> None:
    parser = probe_arguments(__doc__)
    parser.add_argument("--l2", type=float, default=INNER_L2, help="the stage probes' L2 penalty")
    args = parser.parse_args()
    folds, folders, cache = study_folders(args.runs, args.variant, args.seed)
    desc = descriptors(cache)
    records = [r for r in read_manifest(cache).values() if r.get("landmarks") and r.get("face_box")]
    x_all = photo_descriptors(records, cache / CACHE, photo_stages)
    stages = {
        c: {r["path"]: v[i * INNER_SIZE : (i + 1) * INNER_SIZE] for r, v in zip(records, x_all, strict=True)}
        for i, c in enumerate(COPIES)
    }
    auc: dict[tuple[str, str], float] = {}
    shift: dict[tuple[str, str, str], float] = {}
    for fold, folder in evaluated(folders):
        fit, val, test, ran_val, ran_test = fold_split(folder, desc)
        x = lambda rows, d=desc: np.stack([d[r["photo"]] for r in rows])  # noqa: E731
        y = lambda rows: np.array([int(r["label"]) for r in rows])  # noqa: E731
        yf, yt = y(fit), y(test)
        cue = fit_face_cue(x(fit), yf, x(val), ran_val)
        cue_test, iris_test = cue.face_part(x(test)), cue.iris_part(ran_test)
        scores = {"cue": cue_test, "fused": cue_test + iris_test}
        for name, chosen in VARIANTS.items():
            cols = stage_columns(chosen)
            block = {c: {p: v[cols] for p, v in stages[c].items()} for c in COPIES}
            mean, scale, weight, bias = fit_logistic(x(fit, block["clean"]), yf, args.l2)
            v = ((x(val, block["clean"]) - mean) / scale) @ weight + bias

            def z(f: np.ndarray, m=mean, s=scale, w=weight, b=bias, v=v) -> np.ndarray:
                return ((((f - m) / s) @ w + b) - v.mean()) / v.std()

            alone = z(x(test, block["clean"]))
            scores[name], scores[f"cue+{name}"], scores[f"fused+{name}"] = (
                alone,
                cue_test + alone,
                scores["fused"] + alone,
            )
            for copy in COPIES[1:]:
                shift[name, copy, fold] = float(np.mean((z(x(test, block[copy])) - alone)[yt == 1]))
        # the nearest-neighbour score of all five stages, as the cue has one of the descriptor
        knn = stage_neighbours(x(fit, stages["clean"]), yf)
        v = knn(x(val, stages["clean"]))
        near = (knn(x(test, stages["clean"])) - v.mean()) / v.std()
        scores["knn"], scores["fused+all+knn"] = near, scores["fused+all"] + near
        shift["knn", "blur2", fold] = float(
            np.mean(((knn(x(test, stages["blur2"])) - v.mean()) / v.std() - near)[yt == 1])
        )
        generators = np.array([r.get("generator") or "" for r in test])
        record_aucs(auc, fold, scores, yt, generators)
    _, measured, table = auc_table(auc, folds)
    lines = [
        "# The inner stages of dlib's face network beside the face cue, on the study's folds",
        "",
        f"Folds of `{args.variant}` (seed {args.seed}: its splits, and its iris scores for `fused`); L2 {args.l2:g}.",
        f"Command: `python experiments/face_net_stages_probe.py --runs RUNS --variant {args.variant}`. What each",
        "method is: the script's docstring. AUC of the held-out family against the held-out real photos; on a",
        "real-source fold, of the held-out source against the test set's GAN photos.",
        "",
        *table,
    ]
    lines += [
        "",
        "Mean change of the GAN test photos' stage score when the stages are taken from a processed copy of each",
        "photo, in validation standard deviations, per fold (in the order of the table):",
        "",
    ]
    lines += [
        f"- {name}, {copy}: " + ", ".join(f"{shift[name, copy, f]:+.2f}" for f in measured)
        for name in VARIANTS
        for copy in COPIES[1:]
    ]
    lines.append("- knn, blur2: " + ", ".join(f"{shift['knn', 'blur2', f]:+.2f}" for f in measured))
    lines += ["", "Paired differences over the folds (95% bootstrap interval; wins):", ""]
    for name in VARIANTS:
        lines.append(
            paired_line(
                f"fused+{name} minus fused", [auc[f"fused+{name}", f] - auc["fused", f] for f in measured]
            )
        )
    lines.append(
        paired_line(
            "fused+all+knn minus fused+all", [auc["fused+all+knn", f] - auc["fused+all", f] for f in measured]
        )
    )
    write_results("face_net_stages.md", lines)


if __name__ == "__main__":
    main()
