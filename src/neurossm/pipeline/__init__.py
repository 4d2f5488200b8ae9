"""Orchestration above the layers: executors that run a run's units, and the run's summary."""
