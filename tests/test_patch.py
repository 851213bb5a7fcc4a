import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from irisgan.inference import load_classifier, save_weights, score_pairs
from irisgan.models.patch import PatchConfig, PatchNet
from irisgan.models.ran import NetEnsemble, ResidualAttentionNet, build_net
from irisgan.training.classifier import RANClassifier
from tests.test_configs import cfg_of

SMALL = {"arch": "patch", "stem_channels": 4, "stage_channels": [4, 8], "blocks": [1, 1]}


def test_each_patch_logit_sees_only_its_receptive_field():
    torch.manual_seed(0)
    net = PatchNet().eval()
    field = net.config.receptive_field
    assert field == 33
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        before = net.patch_logits(x)
        assert before.shape == (1, 1, 24, 24)  # two halvings
        y = x.clone()
        y[..., 60:, 60:] = torch.randn_like(y[..., 60:, 60:])  # change the bottom-right corner only
        after = net.patch_logits(y)
    # output (0, 0) covers input pixels up to field // 2 from the corner: untouched
    torch.testing.assert_close(after[..., :5, :5], before[..., :5, :5])
    assert not torch.allclose(after[..., -3:, -3:], before[..., -3:, -3:])
    # the pair's score is the mean of its patch logits
    torch.testing.assert_close(net(x), before.mean(dim=(1, 2, 3)))


def test_build_net_picks_the_architecture_and_rejects_bad_shapes():
    assert isinstance(build_net(SMALL), PatchNet)
    assert isinstance(build_net({"stem_channels": 4, "stage_channels": [8, 8, 8], "head_channels": 16}),
                      ResidualAttentionNet)  # fmt: skip
    ensemble = NetEnsemble(SMALL, members=2)
    assert all(isinstance(m, PatchNet) for m in ensemble.members)
    with pytest.raises(ValueError, match="one entry per stage"):
        PatchConfig(stage_channels=(8, 16), blocks=(1,))
    with pytest.raises(TypeError):
        build_net({**SMALL, "head_channels": 32})  # a RAN field is no patch field


def test_model_patch_composes_with_the_shared_classifier_settings():
    cfg = cfg_of("model=patch", "data=faces")
    net = OmegaConf.to_container(cfg.model.net, resolve=True)
    assert PatchConfig(**net) == PatchConfig()
    assert cfg.model._target_ == "irisgan.training.classifier.RANClassifier"
    assert cfg.model.pair_margin == cfg.data.iris_margin and cfg.model.colour == "rgb"


def test_patch_detector_travels_with_its_weights(tmp_path):
    model = RANClassifier(net=SMALL, flip_tta=True).eval()
    pairs = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 96, 96), dtype=np.uint8))
    save_weights(model.state_dict(), dict(model.hparams), tmp_path / "patch.pt")
    loaded = load_classifier(tmp_path / "patch.pt")
    assert isinstance(loaded.net, PatchNet) and loaded.net.attention_modules() == []
    np.testing.assert_allclose(score_pairs(loaded, pairs), score_pairs(model, pairs), atol=1e-6)


def test_a_patch_detector_explains_with_its_patch_scores(tmp_path):
    import json
    from pathlib import Path

    from PIL import Image
    from skimage import data

    from tests.conftest import run_cli

    net = PatchNet(SMALL).eval()
    net.record_maps()
    with torch.no_grad():
        net(torch.randn(2, 3, 96, 96))
    [(title, scores)] = net.explanation_maps()
    assert title.startswith("P(GAN) per") and scores.shape == (2, 1, 48, 48)
    assert 0 <= float(scores.min()) and float(scores.max()) <= 1

    model = RANClassifier(net=SMALL).eval()
    save_weights(model.state_dict(), dict(model.hparams), tmp_path / "patch.pt")
    (tmp_path / "photos").mkdir()
    Image.fromarray(data.astronaut()).save(tmp_path / "photos" / "astronaut.png")
    run_cli(
        "irisgan.predict", f"ckpt={tmp_path / 'patch.pt'}", f"images={tmp_path / 'photos'}", "explain=true",
        "hydra.run.dir=pred", cwd=tmp_path,
    )  # fmt: skip
    [record] = map(json.loads, (tmp_path / "pred" / "predictions.jsonl").open())
    assert record["status"] == "ok" and 0 <= record["p_gan"] <= 1
    assert (tmp_path / "pred" / record["explanation"]).stat().st_size > 5000
    assert Path(record["path"]).name == "astronaut.png"
