"""Where the Hydra configs live, for the entry points and for tests.

In a source checkout (editable install) the configs are the top-level ``conf/`` folder; a wheel
install carries the same files as ``irisgan/conf`` (see pyproject.toml). Entry points pass
``CONFIG_DIR`` to ``hydra.main`` so both layouts work without environment variables.
"""

from __future__ import annotations

from pathlib import Path


def _find_config_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"irisgan configs not found next to {here} (looked for conf/train.yaml)")


CONFIG_DIR: str = str(_find_config_dir())


def compose_config(name: str, overrides: list[str] | tuple[str, ...] = (), return_hydra_config: bool = False):
    """Compose one of irisgan's primary configs (train, extract, predict, evaluate) outside ``hydra.main``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def override_value(overrides: list[str] | tuple[str, ...], key: str) -> str | None:
    """The value the last of Hydra ``overrides`` gives ``key`` (``key=v``, ``+key=v`` or ``++key=v``), or None."""
    values = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").split("=", 1)[0] == key and "=" in o]
    return values[-1] if values else None
