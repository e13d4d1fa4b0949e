"""The email queue's definition (the seed's `email-queue`)."""

from __future__ import annotations

from synthbox.config import Settings
from synthbox.jobs.spec import QueueSpec
from synthbox.mail.delivery import make_deliver
from synthbox.mail.service import EMAIL_QUEUE, SEND
from synthbox.mail.transport import SmtpPool, parse_servers


def email_queue_spec(settings: Settings) -> QueueSpec:
    """5 workers, 10 jobs/s across instances, 3 attempts with exponential backoff from
    1 minute, completed kept 24 h, failed 7 d."""
    pool = SmtpPool(parse_servers(settings.smtp_url), settings.smtp_timeout,
                    settings.smtp_ca_file)
    deliver = make_deliver(pool, settings.email_domain_limits)
    return QueueSpec(name=EMAIL_QUEUE, handlers={SEND: deliver}, concurrency=5,
                     rate_limit_max=10, rate_limit_duration=1.0, attempts=3,
                     backoff_type="exponential", backoff_delay=60.0,
                     keep_completed_age=24 * 3600.0, keep_completed_count=1000,
                     keep_failed_age=7 * 24 * 3600.0, on_stop=pool.close_all,
                     internal=True)
