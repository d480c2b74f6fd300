"""Celery entry points: thin, they load by id and call a service."""

from celery import shared_task

from accounts import password_reset


@shared_task(
    name="accounts.send_password_reset",
    ignore_result=True,
    autoretry_for=(OSError,),  # SMTP trouble (smtplib's errors are OSErrors)
    retry_backoff=30,
    max_retries=5,
)
def send_password_reset(user_id: int) -> bool:
    return password_reset.password_reset_send(user_id=user_id)
