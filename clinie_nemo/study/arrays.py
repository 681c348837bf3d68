"""submitit job arrays with given task ids (``--array=2-5,9``) instead of submitit's ``0..n-1``.

A stage array waits for its upstream array per task with ``--dependency=aftercorr:A``: "A task of this job
array can begin execution after the corresponding task ID in the specified job has completed successfully"
(sbatch(1), Slurm 22.05.8), and a job array's indexes may be any list, "--array=0,6,16-32" (same page).
Slurm has no per-task dependency inside one array's submission, so when the upstream array is partly
finished (its tasks 0-4 done, 5-999 still queued or running) the children of tasks 5-999 go out as ONE array
whose task ids are 5-999, each waiting for the upstream task with its own id, instead of one sbatch per
stage. submitit always numbers an array 0..n-1 (submitit 1.5.4 submitit/slurm/slurm.py:497) and each task
loads the pickle named after its own SLURM_ARRAY_TASK_ID (core/job_environment.py:57-83, core/submission.py:38-49),
so :class:`IndexedArrayExecutor` submits submitit's own script with the given ``--array`` (an
``additional_parameters`` entry replaces submitit's, slurm.py:503-504) and puts each pickle where the task
with that id reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from submitit.core import utils
from submitit.slurm.slurm import SlurmJob

from clinie_nemo.study.executor import index_spec


def submission_file(folder: str | Path, job_id: str) -> Path:
    """The sbatch script submitit submitted for ``job_id`` ("123" or an array task "123_4"): one per job or
    array, moved to the job's folder after sbatch (submitit 1.5.4 core/core.py:947-958, utils.JobPaths)."""
    return utils.JobPaths(folder, job_id=str(job_id).split("_", 1)[0]).submission_file


class IndexedArrayExecutor(submitit.SlurmExecutor):
    """submitit's SlurmExecutor; with ``task_ids`` set, a batch goes out as one array with those ids."""

    def __init__(self, folder: str | Path, python: str | None = None, task_ids: Sequence[int] | None = None) -> None:
        super().__init__(folder, python=python)
        self.task_ids = list(task_ids) if task_ids is not None else None

    def _internal_process_submissions(self, delayed_submissions: list[utils.DelayedSubmission]) -> list[Any]:
        ids = self.task_ids
        if ids is None:
            return super()._internal_process_submissions(delayed_submissions)
        if len(ids) != len(delayed_submissions) or ids != sorted(set(ids)) or (ids and ids[0] < 0):
            raise ValueError(f"task ids {ids} must be distinct, sorted, >= 0, one per submission")
        # submitit 1.5.4 slurm.py:321-351 (SlurmExecutor._internal_process_submissions), with ids for range(n)
        folder = utils.JobPaths.get_first_id_independent_folder(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        timeout_min = self.parameters.get("time", 5)
        pickle_paths = []
        for d in delayed_submissions:
            pickle_path = folder / f"{uuid.uuid4().hex}.pkl"
            d.set_timeout(timeout_min, self.max_num_timeout)
            d.dump(pickle_path)
            pickle_paths.append(pickle_path)
        n = len(ids)
        array_ex = submitit.SlurmExecutor(self.folder, self.max_num_timeout, python=self.python)
        array_ex.update_parameters(**self.parameters)
        array_ex.parameters["map_count"] = n  # submitit's array log names (%A_%a), slurm.py:496-499
        extra = dict(array_ex.parameters.get("additional_parameters") or {})
        extra["array"] = f"{index_spec(ids)}%{min(n, int(self.parameters.get('array_parallelism', 256)))}"
        array_ex.parameters["additional_parameters"] = extra
        self._throttle()
        first = array_ex._submit_command(self._submitit_command_str)  # the executor's python, slurm.py:344
        tasks = list(range(first.num_tasks))
        jobs = [SlurmJob(folder=self.folder, job_id=f"{first.job_id}_{t}", tasks=tasks) for t in ids]
        for job, pickle_path in zip(jobs, pickle_paths):
            job.paths.move_temporary_file(pickle_path, "submitted_pickle")
        return jobs
