"""Scale-out: Hydra sweeps sent to a SLURM cluster through hydra-submitit-launcher (the `slurm` extra)."""

import importlib.util

import pytest

from irisgan.config import compose_config

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install 'irisgan[slurm]')",
)


def test_submitit_slurm_launcher_composes_with_the_gpu_trainer():
    cfg = compose_config(
        "train",
        [
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=30",
            "hydra.launcher.tasks_per_node=2",
            "hydra.launcher.gpus_per_node=2",
            "trainer=ddp",
            "trainer.devices=2",
        ],
        return_hydra_config=True,
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.timeout_min) == ("gpu", 30)
    # one SLURM task per GPU: Lightning's DDP reads its rank from SLURM
    assert launcher.tasks_per_node == launcher.gpus_per_node == cfg.trainer.devices == 2
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "submitit_slurm"
    # jobs write under the sweep folder, which the launcher's own logs follow
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
