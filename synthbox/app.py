"""Assemble the process: the engine, the queues it runs and the schemas of the domains.

The engine (`synthbox/jobs/`) knows no domain. Each domain brings its queues and its
migrations here, as Faktory's server registers its subsystems; `serve`, the CLI, the
Python API and the doctor all build their engine with `build_engine`.
"""

from __future__ import annotations

from synthbox.accounts import audit
from synthbox.accounts.models import MIGRATIONS as ACCOUNT_MIGRATIONS
from synthbox.alerting.evaluate import AlertEvaluator
from synthbox.alerting.models import MIGRATIONS as ALERT_MIGRATIONS
from synthbox.alerting.rules import sync_config
from synthbox.config import Settings, SettingsError
from synthbox.errors import InputError
from synthbox.faktory.models import MIGRATIONS as FAKTORY_MIGRATIONS
from synthbox.faktory.server import FaktoryListener
from synthbox.jobs.engine import Engine
from synthbox.jobs.periodic import Periodic
from synthbox.jobs.spec import QueueRegistry
from synthbox.mail.models import MIGRATIONS as MAIL_MIGRATIONS
from synthbox.mail.service import EMAIL_QUEUE, EmailService
from synthbox.orchestration.models import MIGRATIONS as ORCHESTRATION_MIGRATIONS
from synthbox.queues import register_builtin_queues
from synthbox.userqueues.catalog import UserQueues, split_config, user_queues
from synthbox.userqueues.definitions import Definition
from synthbox.userqueues.models import MIGRATIONS as USER_QUEUE_MIGRATIONS

DOMAIN_MIGRATIONS = (*ACCOUNT_MIGRATIONS, *MAIL_MIGRATIONS, *ORCHESTRATION_MIGRATIONS,
                     *ALERT_MIGRATIONS, *USER_QUEUE_MIGRATIONS, *FAKTORY_MIGRATIONS)


def build_registry(settings: Settings) -> QueueRegistry:
    """The queues SynthBox ships with, configured from `settings`."""
    return _registry(settings)[0]


def _registry(settings: Settings) -> tuple[QueueRegistry, list[Definition]]:
    """The built-in queues with the settings file's options, and the user queues it
    defines (checked: a bad one is a SettingsError naming its field)."""
    registry = QueueRegistry()
    register_builtin_queues(registry, settings)
    try:
        overrides, definitions = split_config(settings.queues,
                                              {spec.name for spec in registry})
        registry.configure(overrides)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return registry, definitions


def build_engine(settings: Settings, namespace: str | None = None) -> Engine:
    """The engine over every built-in queue and every user queue (from the settings file
    and the records), its records migrated (no workers started)."""
    registry, definitions = _registry(settings)
    engine = Engine(settings, registry, DOMAIN_MIGRATIONS, namespace,
                    record=audit.record_by)
    try:
        UserQueues(engine, definitions)
    except ValueError as exc:
        engine.close()
        raise SettingsError(str(exc)) from None
    return engine


def email_service(engine: Engine) -> EmailService:
    return EmailService(engine.service(EMAIL_QUEUE), engine.settings.mail_from)


def alert_evaluator(engine: Engine) -> AlertEvaluator:
    """The settings file's alert rules in the records, and what checks every rule."""
    try:
        sync_config(engine.settings.alerts, list(engine.queues))
    except InputError as exc:
        raise SettingsError(str(exc)) from None
    return AlertEvaluator(engine, email_service(engine).send)


def definitions_sync(engine: Engine) -> Periodic:
    """The task that applies queue definitions changed at run time (every instance)."""
    return user_queues(engine).periodic()


def faktory_listener(engine: Engine) -> FaktoryListener | None:
    """The Faktory protocol listener when `faktory_address` is set (bound, not started)."""
    if not engine.settings.faktory_address:
        return None
    return FaktoryListener(engine, engine.settings)
