"""The study script's table, from a fake sweep (fast) and from the real command (slow)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "experiments"))
import bce_vs_bce_auc as study  # noqa: E402


def test_aggregate_builds_the_table_in_the_papers_layout(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (loss, ratio, seed, auc) in enumerate(
        [
            ("bce", "null", 1, 0.8),
            ("bce", "null", 2, 0.9),
            ("bce_auc", "0.25", 1, 0.95),
            ("bce_auc", "0.25", 2, 0.97),
        ]
    ):
        job = sweep / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(
            f"- loss={loss}\n- data.train_fake_to_real={ratio}\n- seed={seed}\n"
        )
        metrics = {key: 0.5 for _, key in study.COLUMNS}
        metrics["test/auroc"] = auc
        (job / "metrics.json").write_text(json.dumps(metrics))
    md = study.aggregate(sweep, "test", tmp_path / "results")
    text = md.read_text()
    assert "| Acc | Precision | Recall | F1 | AUC |" in text
    assert (
        "| balanced | bce | 2 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.500 +- 0.000 | 0.850 +- 0.071 |"
        in text
    )
    assert "| 1:4 | bce_auc | 2 |" in text
    assert (tmp_path / "results" / "bce_vs_bce_auc_test.csv").is_file()


@pytest.mark.slow
def test_study_command_runs_end_to_end(tmp_path):
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "experiments" / "bce_vs_bce_auc.py"),
            "--seeds",
            "1",
            "--results-dir",
            str(tmp_path),
            "experiment=smoke",
            f"paths.data_dir={tmp_path / 'data'}",
        ],
        cwd=ROOT,
        check=True,
    )
    assert "| 1:4 | bce_auc | 1 |" in (tmp_path / "bce_vs_bce_auc_quick.md").read_text()


def test_extraction_yield_table_counts_statuses_per_generator(tmp_path):
    import extraction_yield

    photos = tmp_path / "photos"
    rows = [
        ("real/a.jpg", 0, "ffhq", "ok"),
        ("real/b.jpg", 0, "ffhq", "no_face"),
        ("real/c.jpg", 0, "yonsei", "ok"),
        ("fake/d.jpg", 1, "tpdne", "eyes_hidden"),
        ("fake/e.jpg", 1, "tpdne", None),  # listed but never extracted
    ]
    lines = ["path,label,generator,source"] + [f'{p},{lab},{g},"repo, folder"' for p, lab, g, _ in rows]
    photos.mkdir()
    (photos / "sources.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    records = [
        {"path": str((photos / p).resolve()), "label": lab, "status": status}
        for p, lab, _, status in rows
        if status
    ]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    table = extraction_yield.yield_table(out, photos / "sources.csv")
    assert (
        "| generator | class | photos | pairs | yield | ok | no_face | eyes_hidden | not_extracted |" in table
    )
    assert "| `ffhq` | real | 2 | 1 | 50.0% | 1 | 1 | 0 | 0 |" in table
    assert "| `tpdne` | fake | 2 | 0 | 0.0% | 0 | 0 | 1 | 1 |" in table
    assert "| **all real** | real | 3 | 2 | 66.7% | 2 | 1 | 0 | 0 |" in table
    by_source = extraction_yield.yield_table(out, photos / "sources.csv", column="source")
    assert "| `repo, folder` | real | 3 | 2 | 66.7% |" in by_source


def test_paired_difference_and_ensemble_statistics():
    import numpy as np
    from study_stats import auroc, ensemble_auroc, paired_difference

    better = paired_difference([0.02, 0.03, 0.01, 0.04, 0.02])
    assert better["verdict"] == "A better" and better["a_wins"] == 5 and better["lo"] > 0
    assert paired_difference([0.05, -0.04, 0.01, -0.02])["verdict"].startswith("not resolved")
    assert paired_difference([-0.02, -0.03, -0.01])["verdict"] == "B better"
    assert paired_difference([0.5, 0.5])["verdict"].startswith("not resolved (fewer than 3")

    labels = np.array([0, 0, 1, 1])
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auroc(np.array([512.0, 1024.0, 1024.0, 2048.0]), labels) == 0.875  # any scale; ties count half
    # two runs that each misrank one pair; their mean ranks every pair right
    runs = [np.array([0.1, 0.6, 0.5, 0.9]), np.array([0.6, 0.1, 0.9, 0.5])]
    assert auroc(runs[0], labels) == 0.75 and ensemble_auroc(runs, labels) == 1.0
    with pytest.raises(ValueError, match="different test sets"):
        ensemble_auroc([runs[0], runs[1][:3]], labels)


def test_shortcut_table_scores_each_group_against_the_other_class():
    import shortcuts

    rows = [
        {"label": 0, "group": "ffhq", "size": 1.0},
        {"label": 0, "group": "ffhq", "size": 2.0},
        {"label": 1, "group": "gan-a", "size": 3.0},  # bigger than every real photo: a perfect shortcut
        {"label": 1, "group": "gan-b", "size": 1.5},  # between them: 0.5
    ]
    lines = shortcuts.table(rows)
    assert lines[2] == "| all | 4 | 0.75 |"
    assert "| GAN: gan-a | 1 | 1.00 |" in lines and "| GAN: gan-b | 1 | 0.50 |" in lines
    assert "| real: ffhq | 2 | 0.75 |" in lines


def _fake_fold(runs, name, gens_labels, scores, threshold=0.5, auc=0.9):
    """A finished study run: metrics.json and evaluate's scores over a test CSV with a generator column."""
    import numpy as np

    folder = runs / name
    (folder / "evaluate").mkdir(parents=True)
    csv_path = folder / "test.csv"
    rows = [f"p{i}.png,{label},{gen}" for i, (gen, label) in enumerate(gens_labels)]
    csv_path.write_text("path,label,generator\n" + "\n".join(rows) + "\n")
    (folder / "metrics.json").write_text(json.dumps({"test/auroc": auc, "val/auroc": 0.95, "epochs_run": 3}))
    np.save(folder / "evaluate" / "scores_ran.npy", np.asarray(scores, np.float32))
    (folder / "evaluate" / "metrics.json").write_text(
        json.dumps({"csv": str(csv_path), "methods": {"ran": {"threshold": threshold}}})
    )


def test_cross_generator_table_keeps_diffusion_apart_and_reports_held_out_real_sources(tmp_path):
    import cross_generator as cg

    runs = tmp_path / "runs"
    for family in cg.FAMILIES:
        _fake_fold(runs, cg.run_name("augment", "bce_auc", "balanced", 0, family), [("ffhq", 0), (family, 1)],
                   [0.2, 0.8], auc=0.9)  # fmt: skip
    _fake_fold(runs, cg.run_name("augment", "bce_auc", "balanced", 0, "stable-diffusion-2.1"),
               [("ffhq", 0), ("stable-diffusion-2.1", 1)], [0.6, 0.4], auc=0.2)  # fmt: skip
    _fake_fold(runs, cg.run_name("augment", "bce_auc", "balanced", 0, "sd-adults"),
               [("ffhq", 0), ("stable-diffusion-2.1", 1)], [0.2, 0.8], auc=0.7)  # fmt: skip
    # the held-out studio: 4 photos, one above the threshold; GAN photos score high, diffusion low
    _fake_fold(
        runs, cg.run_name("augment", "bce_auc", "balanced", 0, "real-london"),
        [("london-face-lab", 0)] * 4 + [("boredhumans", 1)] * 2 + [("stable-diffusion-2.1", 1)] * 2,
        [0.1, 0.2, 0.3, 0.7, 0.9, 0.8, 0.25, 0.05], threshold=0.5, auc=0.7,
    )  # fmt: skip
    # the band the run's ensemble would choose (cached as the study caches it)
    (runs / cg.run_name("augment", "bce_auc", "balanced", 0, "real-london") / "band.json").write_text(
        json.dumps({"band": [0.15, 0.75]})
    )
    text = cg.aggregate(runs, tmp_path / "results", "study").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| variant | loss | ratio | seeds |"))
    assert "stable-diffusion-2.1 | sd-adults | sd-children | GAN mean | GAN worst" in header
    row = next(line for line in text.splitlines() if line.startswith("| augment | bce_auc | balanced | 1 |"))
    # diffusion and its subject folds apart: the GAN mean and worst stay 0.900
    assert "| 0.200 | 0.700 | - | 0.900 | 0.900 |" in row
    assert "## Held-out real sources" in text
    studio = next(line for line in text.splitlines() if "| london-face-lab |" in line)
    # FPR 1/4 at 0.5; AUC vs GAN 1.0 (0.8, 0.9 above every real); vs diffusion (0.25 above 2 of 4, 0.05 none): 2/8
    assert "| 4 | 0.250 | 1.000 | 0.250 |" in studio
    # banded: no studio photo from 0.75 on, 3 of 4 inside [0.15, 0.75); both GAN photos caught, none called real
    assert studio.endswith("| 0.000 | 0.750 | 1.000 | 0.000 |")


def test_subject_folds_split_the_diffusion_faces_into_two_groups_and_hold_out_one():
    import cross_generator as cg

    from irisgan.data.face_folders import _held_out, read_face_csv

    if not cg.DEFAULT_CSV.is_file():
        pytest.skip(f"faces_train not found at {cg.DEFAULT_CSV}")
    rows = [r for r in read_face_csv(cg.DEFAULT_CSV) if r["generator"] in cg.DIFFUSION]
    groups = {fold: [r for r in rows if _held_out(r, holdout)] for fold, holdout in cg.SUBJECTS.items()}
    assert all(groups.values()) and sum(map(len, groups.values())) == len(rows)  # each face in one group
    assert not any(_held_out(r, cg.SUBJECTS["sd-adults"]) for r in read_face_csv(cg.DEFAULT_CSV)
                   if r["generator"] not in cg.DIFFUSION)  # fmt: skip
    cmd = cg.train_command(cg.DEFAULT_CSV, "context", "bce_auc", "balanced", 0, "sd-adults", 1, [])
    assert "data.holdout=[stable-diffusion-2.1/sdfd_an*,stable-diffusion-2.1/sdfd_gf*," in " ".join(cmd)


def test_cross_generator_pairs_variants_on_the_held_out_real_sources(tmp_path):
    import cross_generator as cg

    runs = tmp_path / "runs"
    photos = [("london-face-lab", 0)] * 4 + [("boredhumans", 1)] * 2
    # augment: one studio photo over the threshold, one GAN photo below two real ones (AUC 6/8)
    _fake_fold(runs, cg.run_name("augment", "bce_auc", "balanced", 0, "real-london"), photos,
               [0.1, 0.2, 0.4, 0.7, 0.9, 0.3])  # fmt: skip
    # sharpen: no studio photo over it, every GAN photo above every real one
    _fake_fold(runs, cg.run_name("sharpen", "bce_auc", "balanced", 0, "real-london"), photos,
               [0.1, 0.2, 0.3, 0.4, 0.9, 0.8])  # fmt: skip
    # a variant built on context is paired with context, not augment
    _fake_fold(runs, cg.run_name("context", "bce_auc", "balanced", 0, "real-london"), photos,
               [0.1, 0.2, 0.4, 0.7, 0.9, 0.3])  # fmt: skip
    _fake_fold(runs, cg.run_name("wide", "bce_auc", "balanced", 0, "real-london"), photos,
               [0.1, 0.2, 0.3, 0.4, 0.9, 0.8])  # fmt: skip
    # the paper's question on the held-out sources too: context with plain BCE, every GAN photo above every real
    _fake_fold(runs, cg.run_name("context", "bce", "balanced", 0, "real-london"), photos,
               [0.1, 0.2, 0.3, 0.4, 0.9, 0.8])  # fmt: skip
    banded = [(n, "bce_auc") for n in ("augment", "sharpen", "context", "wide")] + [("context", "bce")]
    for name, loss in banded:
        (runs / cg.run_name(name, loss, "balanced", 0, "real-london") / "band.json").write_text(
            json.dumps({"band": [0.15, 0.75]})
        )
    text = cg.aggregate(runs, tmp_path / "results", "study").read_text()
    assert "## Paired comparisons on the held-out real sources" in text
    assert "| wide, bce_auc, balanced | context, bce_auc, balanced | 1 | +0.250 |" in text
    assert "| wide, bce_auc, balanced | augment" not in text
    # BCE+AUC minus BCE: AUC 0.75 - 1.0, FPR 0.25 - 0.0
    assert (
        "| context, bce_auc, balanced | context, bce, balanced | 1 | -0.250 | [-0.250, -0.250] | 0/1 | +0.250 "
        "| [+0.250, +0.250] | 0/1 |"
    ) in text
    row = next(
        line for line in text.splitlines() if line.startswith("| sharpen, bce_auc, balanced | augment")
    )
    # AUC 1.0 - 0.75, FPR 0.0 - 0.25, one matched run
    assert row == (
        "| sharpen, bce_auc, balanced | augment, bce_auc, balanced | 1 | +0.250 | [+0.250, +0.250] | 1/1 | -0.250 "
        "| [-0.250, -0.250] | 1/1 |"
    )


def test_every_study_variant_composes_and_says_what_the_network_sees():
    """A variant's overrides are real config keys (a typo would fail every fold after minutes of waiting), and
    each names its colour setting, whatever experiment=faces ships."""
    import cross_generator as cg
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for variant in cg.VARIANTS:
            for ratio in cg.RATIOS.values():
                overrides = ["experiment=faces", "stage=ran", *cg.variant_overrides(variant), *ratio]
                cfg = compose("train", overrides=overrides)
                expected = variant if variant in ("luminance", "relative") else "rgb"
                assert cfg.model.colour == expected, variant
                # every context variant keeps the shipped crop; the crop-width study's own widths
                margins = {"wide": 1.0, "mid": 0.3, "undistorted": 0.6}
                if variant.startswith("context"):
                    margins[variant] = 0.6
                assert cfg.data.iris_margin == margins.get(variant, 0.1), variant
                shape = (64, 128) if variant == "undistorted" else (96, None)
                assert (cfg.model.pair_size, cfg.model.pair_width) == shape, variant
                assert cg.baseline(variant) in cg.VARIANTS, variant
                arch = "patch" if variant == "context_patch" else "ran"
                assert cfg.model.net.get("arch", "ran") == arch, variant
                swa = 4 if variant == "context_swa" else None
                assert cfg.callbacks.weight_average.start_epoch == swa, variant
        shipped = compose("train", overrides=["experiment=faces", "stage=ran"])
        assert shipped.model.colour == "rgb"  # the held-out real sources did better with colour


def test_copies_per_family_finds_each_copys_pairs_the_photos_as_they_are_first(tmp_path):
    import copies_per_family

    runs = [tmp_path / "a", tmp_path / "b"]
    for run, names in zip(runs, (["jpeg50", "grayscale"], ["grayscale", "vivid1"]), strict=True):
        for where in [run / "extracted", *(run / "photo_robustness" / n / "extracted" for n in names)]:
            where.mkdir(parents=True)
            (where / "pairs.csv").write_text("path,label\n")
    found = copies_per_family.copies(runs)
    # the first run's photos as they are, then each copy once (the first run's), in name order per run
    assert list(found) == ["clean", "grayscale", "jpeg50", "vivid1"]
    assert found["grayscale"] == runs[0] / "photo_robustness" / "grayscale" / "extracted" / "pairs.csv"
    with pytest.raises(SystemExit, match="run evaluate faces=DIR first"):
        copies_per_family.copies([tmp_path / "none"])
    # a photo's family, with or without the index evaluate puts before each copy's name
    assert copies_per_family.family_of("/data/fake/sdfd_anB-90.jpg") == "sdfd"
    assert (
        copies_per_family.family_of("/ev/photo_robustness/jpeg50/photos/fake/00136_sdfd_anB-90.png") == "sdfd"
    )
    assert copies_per_family.family_of("/data/real/00136_x.jpg") == "00136"  # the photo's own name is kept


def test_skin_tone_shares_carry_a_wilson_interval():
    import numpy as np
    import skin_tone

    lo, hi = skin_tone.wilson(5, 20)
    assert 0.1 < lo < 0.25 < hi < 0.5  # around 25%, wide for 20 photos
    assert skin_tone.wilson(0, 20)[0] == pytest.approx(0.0, abs=1e-12)
    assert skin_tone.share(np.array([True, False, False, False])) == "1/4 (25%, 5-70)"
    assert skin_tone.share(np.array([], bool)) == "-"


def test_loss_pairs_match_runs_inside_a_batch_only_and_compare_replicates(tmp_path):
    import loss_pairs

    header = "variant,loss,ratio,seed,family,test_auc,test_acc_at_thr,val_auc,epochs,wall_s\n"

    def batch(name, rows):
        path = tmp_path / f"{name}.csv"
        path.write_text(
            header
            + "".join(f"context,{loss},balanced,{s},{f},{a},0.5,0.8,12,300\n" for loss, s, f, a in rows)
        )
        return loss_pairs.read_batch(path)

    old = batch("old", [("bce_auc", 0, "boredhumans", 0.80), ("bce", 0, "boredhumans", 0.70),
                        ("bce_auc", 1, "real-ffhq", 0.60), ("bce_auc", 2, "boredhumans", 0.75)])  # fmt: skip
    new = batch("new", [("bce_auc", 2, "boredhumans", 0.65), ("bce", 2, "boredhumans", 0.70),
                        ("bce", 1, "real-ffhq", 0.50)])  # fmt: skip
    pairs = loss_pairs.loss_pairs({"old": old, "new": new})
    # old's seed-1 BCE+AUC run has no BCE twin in its own batch: new's BCE run of that fold does not pair with it
    assert [(n, k[2], k[3], round(d, 3)) for n, k, d in pairs] == [
        ("old", 0, "boredhumans", 0.1),
        ("new", 2, "boredhumans", -0.05),
    ]
    text = "\n".join(loss_pairs.lines_for({"old": old, "new": new}, {"old": old}))
    assert "| context, balanced | unseen GAN families | 2 | +0.025 |" in text
    assert "held-out real sources" not in text.split("Per pair")[0]
    # the replicate section compares the runs both batches made: new's seed-2 BCE+AUC run against old's
    assert "`new` against `old`" in text and "| 0.650 | 0.750 | -0.100 |" in text
    assert "`old` against `old`" not in text
    with pytest.raises(ValueError, match="twin"):
        loss_pairs.lines_for({"new": batch("lone", [("bce_auc", 0, "boredhumans", 0.7)])}, {})
