"""`python -m irisgan.bench`: its JSON, and the inference worker on the path predict/evaluate use.

Timings are printed, never asserted: these tests check that the benchmark runs and reports what it says.
"""

import json

from tests.conftest import run_cli


def test_bench_reports_the_machine_and_its_matmul_reference(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli(
        "irisgan.bench", "--skip", "train,inference,extract,predict", "--out", str(out), cwd=tmp_path
    )
    printed = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert printed == json.loads(out.read_text())
    assert printed["machine"]["cpu_cores"] >= 1 and isinstance(printed["machine"]["bf16_native"], bool)
    assert printed["matmul_gflops"]["fp32"] > 0 and printed["matmul_gflops"]["bf16"] > 0
    # the paper RAN: about 1 GFLOP a forward pass, 3x that to train
    assert 0.8 < printed["ran_gflops_per_pair"]["forward"] < 1.2
    assert (
        abs(printed["ran_gflops_per_pair"]["training"] - 3 * printed["ran_gflops_per_pair"]["forward"])
        < 0.005
    )


def test_inference_worker_times_fp32_and_a_single_bf16_probe(tmp_path):
    proc = run_cli(
        "irisgan.bench",
        "--worker",
        "inference",
        "--batch-size",
        "4",
        "--seconds",
        "0",
        "--no-compile",
        cwd=tmp_path,
    )
    fp32 = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fp32["pairs_per_s_fp32"] > 0 and fp32["first_batch_s_fp32"] > 0
    proc = run_cli(
        "irisgan.bench",
        "--worker",
        "inference",
        "--batch-size",
        "2",
        "--bf16-inference",
        "--warmup",
        "0",
        "--seconds",
        "0",
        "--no-compile",
        cwd=tmp_path,
    )
    bf16 = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(bf16) == {"pairs_per_s_bf16", "first_batch_s_bf16"}
    assert bf16["pairs_per_s_bf16"] == 2 / bf16["first_batch_s_bf16"]


def test_bench_times_the_model_make_train_trains():
    from irisgan.bench_workers import trained_model
    from irisgan.config import compose_config

    model = trained_model()
    cfg = compose_config("train", ["stage=ran", "loss=bce_auc"])
    assert model.hparams.optimizer["_target_"] == cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert model.hparams.net == dict(cfg.model.net) and model.net.config.zero_init_residual
    assert type(model.criterion).__name__ == "BCEAUCLoss"
