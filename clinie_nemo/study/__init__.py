"""Leave-one-dataset-out studies on Slurm: config (:mod:`.config`), cells and the content-addressed job graph
(:mod:`.plan`), submission through submitit (:mod:`.submit`), the in-job stage runner (:mod:`.runner`),
status and cost (:mod:`.status`, :mod:`.cost`)."""
