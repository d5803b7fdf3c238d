"""Training: the trainer mixed into ``tritonnn.Model`` and what it is built from (data sources, per-output
compile arguments, the per-batch step runner). Import the modules themselves: ``tritonnn.trainers.trainer``,
``.data``, ``.compile_utils``, ``.step_runner``."""
