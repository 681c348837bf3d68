"""Probe for tests/engines/test_nemo_contract.py: our nemo-engine overrides through the REAL NeMo 2.4.0 start-up path on CPU.

Run as ``python -m tests.nemo_contract_probe SITE CONFIG_DIR CELLS_JSON RESULTS_JSONL`` (a cell may name its own
``config_dir``) with SITE (the pinned
nemo_toolkit 2.4.0, lightning 2.4.0, hydra-core 1.3.2, omegaconf 2.3.0, ... of tools/contract_env.sh nemo) put
first on sys.path. For each cell (a list of Hydra overrides as the engine renders them) it runs what
examples/nlp/language_modeling/tuning/megatron_gpt_finetuning.py (NeMo v2.4.0, :54-60) runs before it restores
the .nemo model, with NeMo's own functions:

    @hydra_runner(config_path="conf", config_name="megatron_gpt_finetuning_config")   # :54
    def main(cfg):
        trainer = MegatronLMPPTrainerBuilder(cfg).create_trainer()                      # :59
        exp_manager(trainer, cfg.exp_manager)                                           # :60

``hydra_runner`` (nemo/core/config/hydra_runner.py:54-134) parses the command line with Hydra's own argument
parser and override grammar and composes the example YAML (struct mode: Hydra refuses ``key=`` for a key the
YAML lacks and ``+key`` for one it has). The builder builds the Lightning 2.4.0 Trainer from ``**cfg.trainer``
(megatron_trainer_builder.py:203: Lightning's own argument checks), and exp_manager runs its checks
(error_checks, check_resume, check_explicit_log_dir, configure_checkpointing with the max_epochs /
check_val_every_n_epoch comparison at exp_manager.py:1365-1370).

Only difference from a cluster run: the probe appends ``trainer.accelerator=cpu`` (no GPU here; Lightning
refuses accelerator=gpu without CUDA). Nothing else is replaced. One JSON line per cell: ok, or the error.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    site, config_dir, cells_path, out_path = argv
    sys.path.insert(0, site)
    import logging as std_logging

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from nemo.collections.nlp.parts import nlp_overrides
    from nemo.collections.nlp.parts.megatron_trainer_builder import MegatronLMPPTrainerBuilder
    from nemo.core.config import hydra_runner
    from nemo.utils.exp_manager import exp_manager
    from omegaconf import OmegaConf

    # apex is GPU-only (not installable here). In NeMo v2.4.0 its absence only flips this flag
    # (nlp_overrides.py:76-85, set by importing nemo.core.optim.distributed_adam, which imports apex and reads
    # Transformer Engine's version), and NLPDDPStrategy.__init__ refuses to start without it (:219-223). The
    # Trainer/exp_manager path runs no apex code: say "apex present", as it is in the NeMo container.
    nlp_overrides.HAVE_APEX = True

    os.environ["HYDRA_FULL_ERROR"] = "1"  # raise the real exception instead of printing it and exiting 1
    std_logging.disable(std_logging.WARNING)
    cells = json.loads(Path(cells_path).read_text(encoding="utf-8"))

    def force_added_existing(overrides: list[str], conf: str) -> list[str]:
        """``++key`` overrides whose key the YAML already has.

        Hydra's grammar (hydra-core 1.3.2 core/override_parser/types.py:187-191 OverrideType: CHANGE ``key=``,
        ADD ``+key``, FORCE_ADD ``++key``) and its struct-mode composition (_internal/config_loader_impl.py:336-395
        _apply_overrides_to_config) refuse CHANGE of a missing key ("Could not override", :393) and ADD of an
        existing one ("Could not append to config", :380). FORCE_ADD never fails, so a misspelt ``++key`` would
        pass silently: ours must name keys the YAML lacks."""
        base = OmegaConf.load(Path(conf) / "megatron_gpt_finetuning_config.yaml")
        parsed = OverridesParser.create().parse_overrides(overrides)
        return [o.key_or_group for o in parsed if o.type == OverrideType.FORCE_ADD
                and OmegaConf.select(base, o.key_or_group, default="<absent>") != "<absent>"]

    import lightning
    import nemo

    with open(out_path, "w", encoding="utf-8") as out:
        out.write(json.dumps({"nemo": nemo.__version__, "lightning": lightning.__version__,
                              "nemo_file": nemo.__file__}) + "\n")
        for cell in cells:
            seen: dict = {}
            conf = cell.get("config_dir", config_dir)

            @hydra_runner(config_path=conf, config_name="megatron_gpt_finetuning_config")
            def task(cfg, seen=seen) -> None:
                seen["missing"] = sorted(OmegaConf.missing_keys(cfg))  # ??? keys no override set
                trainer = MegatronLMPPTrainerBuilder(cfg).create_trainer()
                log_dir = exp_manager(trainer, cfg.exp_manager)
                seen.update(log_dir=str(log_dir), max_epochs=trainer.max_epochs, max_steps=trainer.max_steps,
                            check_val_every_n_epoch=trainer.check_val_every_n_epoch,
                            val_check_interval=trainer.val_check_interval,
                            callbacks=sorted(type(c).__name__ for c in trainer.callbacks))

            GlobalHydra.instance().clear()
            sys.argv = ["megatron_gpt_finetuning.py", f"--config-path={conf}",
                        "--config-name=megatron_gpt_finetuning_config", *cell["overrides"], "trainer.accelerator=cpu"]
            row: dict = {"id": cell["id"], "force_added_existing": force_added_existing(cell["overrides"], conf)}
            try:
                task()
                row.update(ok=True, **seen)
            except BaseException as e:  # hydra exits via SystemExit on a bad override
                row.update(ok=False, error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-3000:])
            out.write(json.dumps(row, default=str) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
