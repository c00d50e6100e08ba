"""The rollout plan: what users write, as pydantic models.

Every model forbids unknown keys and every field carries a description, which
``rollout.plan.reference`` turns into the README's plan reference. Checks that
span several fields of one model live in the section's module as validators; checks that span the
whole plan (gate references, ramp order across phases) live in
``rollout.plan.loader`` so that each problem can name its exact path.
"""

from rollout.plan.model.backup import BackupSettings
from rollout.plan.model.base import NAME_PATTERN, BsonType, ReadOnlyPipeline, StrictModel
from rollout.plan.model.checks import (
    BackfillCheck,
    CustomCheck,
    DuplicatesCheck,
    Expectation,
    OrphansCheck,
    Preflight,
    RequiredFieldsCheck,
)
from rollout.plan.model.deploy import VERSION_PLACEHOLDER, DeployCommand, DeployTarget, DeployWebhook
from rollout.plan.model.flag_targets import FlagdTarget, FlagStoreTarget, UnleashTarget
from rollout.plan.model.gates import (
    AccuracyMeasure,
    BuiltinSli,
    ComparedMetric,
    Comparison,
    DataGate,
    DriftMeasure,
    Gate,
    PipelineMeasure,
)
from rollout.plan.model.phases import (
    CLOCK,
    WEEKDAYS,
    Allowlist,
    Approval,
    DeployWindow,
    Freeze,
    Phase,
    PilotStores,
    RampStep,
    Schedule,
    Weekday,
    Window,
    checklist_field,
)
from rollout.plan.model.plan import DEFAULT_EVENTS, Notification, NotifyEvent, Plan
from rollout.plan.model.rollback import (
    CacheInvalidation,
    Release,
    RestoreSettings,
    RollbackSettings,
    UserPopulation,
    Watch,
)
from rollout.plan.model.targets import (
    KubernetesTarget,
    MongoTarget,
    PrometheusTarget,
    RouterSettings,
    S3Target,
    ServiceTarget,
    SliSettings,
    SmokeRequest,
    Targets,
)

__all__ = [
    "CLOCK",
    "DEFAULT_EVENTS",
    "NAME_PATTERN",
    "VERSION_PLACEHOLDER",
    "WEEKDAYS",
    "AccuracyMeasure",
    "Allowlist",
    "Approval",
    "BackfillCheck",
    "BackupSettings",
    "BsonType",
    "BuiltinSli",
    "CacheInvalidation",
    "ComparedMetric",
    "Comparison",
    "CustomCheck",
    "DataGate",
    "DeployCommand",
    "DeployTarget",
    "DeployWebhook",
    "DeployWindow",
    "DriftMeasure",
    "DuplicatesCheck",
    "Expectation",
    "FlagStoreTarget",
    "FlagdTarget",
    "Freeze",
    "Gate",
    "KubernetesTarget",
    "MongoTarget",
    "Notification",
    "NotifyEvent",
    "OrphansCheck",
    "Phase",
    "PilotStores",
    "PipelineMeasure",
    "Plan",
    "Preflight",
    "PrometheusTarget",
    "RampStep",
    "ReadOnlyPipeline",
    "Release",
    "RequiredFieldsCheck",
    "RestoreSettings",
    "RollbackSettings",
    "RouterSettings",
    "S3Target",
    "Schedule",
    "ServiceTarget",
    "SliSettings",
    "SmokeRequest",
    "StrictModel",
    "Targets",
    "UnleashTarget",
    "UserPopulation",
    "Watch",
    "Weekday",
    "Window",
    "checklist_field",
]
