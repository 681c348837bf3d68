"""Stage 6, study: leave-one-dataset-out studies on Slurm. Config (:mod:`.config`), cells and the
content-addressed job graph (:mod:`.plan`), sbatch text (:mod:`.sbatch`, a pure function), submission
through submitit (:mod:`.submit`, :mod:`.arrays`), the in-job stage runner (:mod:`.runner`), status and
cost (:mod:`.status`, :mod:`.cost`).

Imports: core, mixture, engines, evaluation (rules). Imported by: commands, demo.
"""
