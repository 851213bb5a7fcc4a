"""Every console script in pyproject.toml starts as the installed command would (its ``main()``, no args)."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

# tomllib is Python 3.11+; the [project.scripts] table is simple enough to read with a pattern.
_TABLE = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
SCRIPTS = dict(re.findall(r'^([\w-]+) = "([\w.:]+)"$', _TABLE, re.MULTILINE))


def test_every_entry_point_has_a_console_script():
    assert set(SCRIPTS) == {f"irisgan-{n}" for n in ("train", "extract", "predict", "evaluate", "bench")}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_runs_its_main(name, tmp_path):
    module, func = SCRIPTS[name].split(":")
    # What the generated console-script wrapper does: import the function, call it with no arguments.
    flags = ["--help"] if name == "irisgan-bench" else ["--cfg", "job"]
    code = f"import sys; from {module} import {func}; sys.argv = [{name!r}, *{flags!r}]; sys.exit({func}())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {"train": "stage_name:", "extract": "faces:", "predict": "ckpt:", "evaluate": "ckpt:"}
    assert expected.get(name.removeprefix("irisgan-"), "usage:") in proc.stdout
