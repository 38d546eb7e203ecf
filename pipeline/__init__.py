"""DAG glue shared by the stages: typed params, artifact paths, atomic writes, progress."""
