"""The only place that talks to Stripe.

Everything goes through the real ``stripe`` SDK's ``StripeClient`` (never the global
key), with the API version pinned (``STRIPE_API_VERSION``) and the base address taken
from ``STRIPE_API_BASE`` so tests point it at a local stand-in. Every POST carries an
idempotency key chosen by the caller from something stable (a row id, an identifier),
so a retry after a lost answer repeats the request instead of doing it twice.

One error type, ``StripeGatewayError``, says whether trying again can help. Services a
person calls wrap their work in ``stripe_errors_for_caller`` so that person is told
"try again shortly" or "ops has the details", never Stripe's own words.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from django.conf import settings
from stripe.params.billing import MeterEventSummaryListParams

from core.errors import ApplicationError, ErrorKind

DUPLICATE_METER_EVENT = "An event already exists with identifier"

log = logging.getLogger(__name__)


class StripeGatewayError(Exception):
    """Stripe did not do what we asked. ``retryable`` says whether the same request may
    succeed later (network, 5xx, rate limits, lock contention) or never will (a bad key,
    a bad parameter, an unknown customer)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.code = code
        self.body = body or {}
        # Stripe's id of the failed request: find it in Stripe's dashboard (Developers → Logs).
        self.request_id = request_id


class StripeUnavailable(ApplicationError):
    """Stripe could not be reached or was busy: the same request may work in a minute."""

    kind = ErrorKind.UNAVAILABLE
    message = "Stripe is not reachable right now; try again in a minute."


class StripeRefused(ApplicationError):
    """Stripe refused and will keep refusing; the details are for ops, not the caller."""

    kind = ErrorKind.UPSTREAM
    code = "stripe_error"
    message = "Stripe refused the request; the ops team has the details."


@contextmanager
def stripe_errors_for_caller() -> Iterator[None]:
    """Inside (or on a function, as a decorator), a ``StripeGatewayError`` becomes what
    the person who asked is told."""
    try:
        yield
    except StripeGatewayError as exc:
        raise (StripeUnavailable() if exc.retryable else StripeRefused()) from exc


@dataclass(frozen=True)
class MeterEventResult:
    """Stripe's answer to a meter event: ``duplicate`` when Stripe already had an event
    with this identifier (it was delivered before; nothing was added)."""

    duplicate: bool
    body: dict[str, Any]


def _plain(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj)


def _translate(exc: stripe.StripeError) -> StripeGatewayError:
    status = exc.http_status
    headers = {str(k).lower(): v for k, v in (exc.headers or {}).items()}
    should_retry = headers.get("stripe-should-retry")
    if isinstance(exc, stripe.APIConnectionError):
        retryable = True
    elif should_retry in ("true", "false"):
        retryable = should_retry == "true"
    elif isinstance(exc, stripe.RateLimitError) or status in (409, 429):
        retryable = True
    elif isinstance(exc, stripe.APIError) or (status is not None and status >= 500):
        retryable = True
    else:
        retryable = False
    error = (exc.json_body or {}).get("error") if isinstance(exc.json_body, dict) else None
    message = (error or {}).get("message") or str(exc) or exc.__class__.__name__
    request_id = exc.request_id or None
    # A repeated meter event is Stripe saying "delivered before": not a failure.
    duplicate = status == 400 and str(message).startswith(DUPLICATE_METER_EVENT)
    log.log(
        logging.INFO if duplicate else logging.WARNING,
        "Stripe %s error (%s, code %s, request %s, %s): %s",
        status or "connection",
        exc.__class__.__name__,
        exc.code or "-",
        request_id or "none: no answer",
        "retryable" if retryable else "not retryable",
        message,
    )
    return StripeGatewayError(
        f"Stripe {status or 'connection'} error: {message}" + (f" (request {request_id})" if request_id else ""),
        retryable=retryable,
        status=status,
        code=exc.code,
        body=exc.json_body if isinstance(exc.json_body, dict) else None,
        request_id=request_id,
    )


class StripeClient:
    """Our small Stripe API: what billing needs, nothing else."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        max_network_retries: int | None = None,
    ) -> None:
        api_key = api_key if api_key is not None else settings.STRIPE_SECRET_KEY
        if not api_key:
            raise StripeGatewayError("STRIPE_SECRET_KEY is not configured", retryable=False)
        base = api_base if api_base is not None else settings.STRIPE_API_BASE
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=api_version or settings.STRIPE_API_VERSION,
            base_addresses={"api": base, "connect": base, "files": base, "meter_events": base} if base else {},
            max_network_retries=(
                settings.STRIPE_MAX_NETWORK_RETRIES if max_network_retries is None else max_network_retries
            ),
            # Every request has a deadline (the SDK would wait 80 s).
            http_client=stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        )

    # --- customers ----------------------------------------------------------------

    def customer_create(
        self, *, name: str, email: str | None, metadata: dict[str, str], idempotency_key: str
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "metadata": metadata}
        if email:
            params["email"] = email
        return self._post(self._client.v1.customers.create, params, idempotency_key)

    # --- meter events -------------------------------------------------------------

    def meter_event_create(
        self, *, event_name: str, customer_id: str, value: int, identifier: str, timestamp: datetime
    ) -> MeterEventResult:
        """Report usage. Stripe answers a repeated ``identifier`` with a 400 "An event
        already exists with identifier ..."; that means it was delivered before."""
        params = {
            "event_name": event_name,
            "payload": {"stripe_customer_id": customer_id, "value": str(value)},
            "identifier": identifier,
            "timestamp": int(timestamp.timestamp()),
        }
        try:
            body = self._post(self._client.v1.billing.meter_events.create, params, f"meter-{identifier}")
        except StripeGatewayError as exc:
            message = str((exc.body.get("error") or {}).get("message", ""))
            if exc.status == 400 and message.startswith(DUPLICATE_METER_EVENT):
                return MeterEventResult(duplicate=True, body=exc.body)
            raise
        return MeterEventResult(duplicate=False, body=body)

    def meter_event_total(self, *, meter_id: str, customer_id: str, start: datetime, end: datetime) -> int:
        """Stripe's aggregated value of a meter for a customer over [start, end)."""
        params: MeterEventSummaryListParams = {
            "customer": customer_id,
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
        }
        try:
            page = self._client.v1.billing.meters.event_summaries.list(meter_id, params=params)
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return int(sum(summary.aggregated_value for summary in page.data))

    # --- subscriptions, checkout, portal ---------------------------------------------

    def subscription_retrieve(self, subscription_id: str) -> dict[str, Any]:
        try:
            return _plain(self._client.v1.subscriptions.retrieve(subscription_id))
        except stripe.StripeError as exc:
            raise _translate(exc) from exc

    def subscription_update_items(
        self,
        *,
        subscription_id: str,
        items: list[dict[str, Any]],
        proration_behavior: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Change a subscription's items in one request: ``{"id", "price"}`` swaps an
        item's price, ``{"id", "deleted": True}`` removes an item, ``{"price"}`` adds one
        (metered prices get no quantity). ``proration_behavior`` applies to the flat price;
        usage on meters is billed from meter events, so removing a metered item needs no
        ``clear_usage``."""
        params = {"items": items, "proration_behavior": proration_behavior}
        return self._post(
            lambda params, options: self._client.v1.subscriptions.update(
                subscription_id, params=params, options=options
            ),
            params,
            idempotency_key,
        )

    def checkout_session_create(
        self,
        *,
        customer_id: str,
        price_id: str,
        success_url: str,
        cancel_url: str,
        metadata: dict[str, str],
        client_reference_id: str,
        idempotency_key: str,
        metered_price_ids: Sequence[str] = (),
        billing_cycle_anchor: int | None = None,
    ) -> dict[str, Any]:
        subscription_data: dict[str, Any] = {"metadata": metadata}
        if billing_cycle_anchor is not None:
            subscription_data["billing_cycle_anchor"] = billing_cycle_anchor
        params = {
            "mode": "subscription",
            "customer": customer_id,
            # The flat monthly price once; metered prices carry no quantity (usage comes
            # from meter events), as Stripe requires.
            "line_items": [{"price": price_id, "quantity": 1}] + [{"price": p} for p in metered_price_ids],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "metadata": metadata,
            "subscription_data": subscription_data,
        }
        return self._post(self._client.v1.checkout.sessions.create, params, idempotency_key)

    def portal_session_create(
        self, *, customer_id: str, return_url: str, idempotency_key: str
    ) -> dict[str, Any]:
        params = {"customer": customer_id, "return_url": return_url}
        return self._post(self._client.v1.billing_portal.sessions.create, params, idempotency_key)

    # --- plumbing -------------------------------------------------------------------

    @staticmethod
    def _post(method: Any, params: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        if not idempotency_key:
            raise ValueError("every POST to Stripe needs an idempotency key")
        try:
            result = method(params=params, options={"idempotency_key": idempotency_key[:255]})
        except stripe.StripeError as exc:
            raise _translate(exc) from exc
        return _plain(result)


def stripe_client() -> StripeClient:
    """A client configured from settings (a new one per call: cheap, and settings may
    change in tests)."""
    return StripeClient()
