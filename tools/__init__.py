"""Developer and study tools: applications beside ``stages/`` that are not part of the DVC DAG."""
