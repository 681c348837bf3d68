"""Engine nemo: check the rendered Hydra overrides against the NeMo example YAML they are passed to, before launch.

Runs in the container's interpreter (like the version preflight in :mod:`clinie_nemo.engines.nemo`), where NeMo's
hydra-core and omegaconf and the example YAML (``<nemo_root>/<config_path>/<config_name>.yaml``) are. It composes
the YAML with the overrides through Hydra's own parser and loader (``hydra.compose``: the ConfigLoaderImpl that
NeMo's hydra_runner uses, so the same struct-mode rules: ``key=`` for a key the YAML lacks fails with "Could not
override", ``+key`` for one it has with "Could not append to config"; hydra-core 1.3.2
_internal/config_loader_impl.py:336-395), then requires every ``++key`` to be new (Hydra's FORCE_ADD adds or
overrides and never fails, so a misspelt one would pass silently) and every mandatory ``???`` key to be set.
A problem stops the run with exit 2 before any GPU is taken. When the YAML is not there (not in a NeMo
container) the check says so and leaves the launch to fail on its own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.progress import say
from clinie_nemo.engines.spec import NemoScriptConfig

CHECK = r'''
import json, sys
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from omegaconf import OmegaConf

conf_dir, name, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
problems = []
base = OmegaConf.to_container(OmegaConf.load(f"{conf_dir}/{name}.yaml"), resolve=False)


def exists(key):
    node = base
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


try:
    parsed = OverridesParser.create().parse_overrides(overrides)
    problems += [f"++{o.key_or_group}: the YAML already has this key; use {o.key_or_group}=..."
                 for o in parsed if o.type == OverrideType.FORCE_ADD and exists(o.key_or_group)]
    with initialize_config_dir(config_dir=conf_dir, version_base=None):
        cfg = compose(config_name=name, overrides=overrides)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        problems.append("mandatory key(s) left at ??? by the overrides: " + ", ".join(missing))
except Exception as e:
    problems.append(" ".join(str(e).split()))
print(json.dumps(problems))
'''


def script_overrides(cmd: Sequence[str]) -> list[str]:
    """The Hydra overrides of a rendered NeMo launch line (everything after ``--config-name=``)."""
    first = next((i + 1 for i, c in enumerate(cmd) if c.startswith("--config-name=")), len(cmd))
    return list(cmd[first:])


def check_overrides(script: NemoScriptConfig, cmd: Sequence[str], python: str = "python",
                    env: Mapping[str, str] | None = None) -> bool:
    """Compose ``script``'s example YAML with ``cmd``'s overrides in ``python``; ConfigError (exit 2) naming the
    YAML and every problem. Returns False (and says why) when the YAML is not there, True when checked."""
    conf_dir = Path(script.nemo_root) / script.config_path
    yaml_path = conf_dir / f"{script.config_name}.yaml"
    if not yaml_path.is_file():
        say(f"engine nemo: {yaml_path} not found, overrides not checked against it (not in a NeMo container?)")
        return False
    try:
        res = subprocess.run([python, "-c", CHECK, str(conf_dir), script.config_name,
                              json.dumps(script_overrides(cmd))], capture_output=True, text=True, timeout=300,
                             env=None if env is None else dict(env))
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"engine nemo: cannot run {python} to check the overrides ({e})") from None
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise ConfigError(f"engine nemo: checking the overrides against {yaml_path} failed with {python} ({last})")
    problems = json.loads(lines[-1])
    if problems:
        raise ConfigError(f"engine nemo: the overrides do not fit {yaml_path}:\n  " + "\n  ".join(problems))
    return True
