"""Core of the rollout orchestrator: the domain by concern, and the adapters to the systems it acts on.

``plan`` (what users write), ``lifecycle`` (where a rollout stands and goes next),
``analysis`` (measuring and judging), ``audience`` (who is admitted), ``reporting`` (what
people see); ``adapters``, ``data`` and ``sandbox`` reach real systems. This package holds no
Prefect code; ``flows`` and ``tasks`` build on it.
"""

__version__ = "0.1.0"
