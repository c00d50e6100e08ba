"""Core of the rollout orchestrator: the plan model, bucketing, errors and adapters.

This package holds no Prefect code; ``flows`` and ``tasks`` build on it.
"""

__version__ = "0.1.0"
