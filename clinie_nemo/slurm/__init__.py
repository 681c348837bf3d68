"""Slurm support: pure sbatch rendering (:mod:`clinie_nemo.slurm.sbatch`)."""
