"""An experiment's ``confounds:``: training settings its variants differ in on purpose.

``confounds: {train.lr: "bi_shared diverges at the reference's lr"}`` (key -> reason). The
report keeps such a pair's interval and marks it "confounded (declared): train.lr" instead of
"not comparable" (``ablations/report/comparable.py``); each run's record keeps the
declaration (``RunRecord.confounds``). Checked on load: a key must be a science key of the run
config (one that can make runs differ), not the seed or the axis, with a non-empty reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablations.schema.config import NOT_SCIENCE, ConfigError, RunConfig, flatten, to_dict

SEED_KEY = "train.seed"


def _config_keys() -> list[str]:
    return sorted(flatten(to_dict(RunConfig())))


def parse_confounds(raw: Any, axis_key: str, source: str, path: str) -> dict[str, str]:
    """The validated mapping (``{}`` when absent); a one-line ``ConfigError`` naming the file,
    the key path and the valid keys otherwise."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        example = "{train.lr: why the variants need different ones}"
        raise ConfigError(f"{source}: {path}: expected a mapping key -> reason, e.g. "
                          f"{example}, got {raw!r}")  # fmt: skip
    every = _config_keys()
    keys = [k for k in every if k not in NOT_SCIENCE and k != SEED_KEY]
    out = {}
    for key, reason in raw.items():
        where = f"{path}.{key}"
        if key not in keys:
            section = str(key).split(".", 1)[0]
            near = [k for k in keys if k.startswith(f"{section}.")] or keys
            why = "unknown key"
            if key == SEED_KEY:
                why = "the seed differs by design (statistics pair on it)"
            elif key in every:
                why = "not a science key (it never makes runs differ)"
            raise ConfigError(f"{source}: {where}: {why}; valid: {', '.join(near)}")
        if key == axis_key:
            raise ConfigError(f"{source}: {where}: the axis itself is the design, not a "
                              "confound; valid: any other science key")  # fmt: skip
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: {where}: expected a reason (a non-empty string), "
                              f"got {reason!r}")  # fmt: skip
        out[str(key)] = reason.strip()
    return out
