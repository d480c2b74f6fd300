"""A local stand-in for the Stripe HTTP API, spoken to by the real ``stripe`` SDK.

Why a real HTTP server instead of mocking the SDK: the bugs we care about
(double-charging a customer, losing usage, retrying the wrong way) live in the
interaction between our code, the SDK's retry/idempotency machinery and what
Stripe enforces on the wire.  Mocking SDK methods would skip all of that.  So
this fake accepts the SDK's real form-encoded requests and enforces the rules
Stripe enforces:

* the secret key (``Authorization: Bearer ...``) -- 401 otherwise;
* ``Idempotency-Key`` replay (same key + same request -> the stored response,
  marked ``Idempotent-Replayed: true``; same key + different request -> 400
  ``idempotency_error``).  As documented by Stripe, a result is only stored once
  the endpoint started executing: validation failures are not stored;
* meter-event ``identifier`` uniqueness and the timestamp window (at most 35
  days in the past, 5 minutes in the future);
* unknown parameters are rejected (``parameter_unknown``), with the list of
  known parameters taken from the installed SDK's own ``stripe.params``
  TypedDicts, so a typo in our code fails here as it would against Stripe.

Where the fake is deliberately *stricter* than Stripe it says so in the
docstring of the endpoint (e.g. meter-event payload checks that Stripe only
reports asynchronously).  Requests are processed one at a time under a single
lock, so tests see a linearizable history; Stripe's 409 for two *concurrent*
requests with the same idempotency key is therefore not modelled.

Typical use::

    with FakeStripeServer(meters={"translated_chars": "mtr_test_chars"}) as fake:
        client = fake.client()
        customer = fake.add_customer(email="a@example.com")
        client.v1.billing.meter_events.create(params={...})
        assert len(fake.meter_events) == 1
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import json
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import stripe
import stripe.params as sp
import stripe.params.billing as sp_billing
import stripe.params.billing_portal as sp_portal
import stripe.params.checkout as sp_checkout

__all__ = [
    "DEFAULT_API_KEY",
    "FakeStripeServer",
    "RecordedRequest",
    "make_event",
    "parse_form",
    "signed_webhook",
]

JSONDict = dict[str, Any]

DEFAULT_API_KEY = "sk_test_fake_stripe_server"

#: Meter events may be back-dated by at most 35 calendar days ...
METER_EVENT_MAX_AGE_SECONDS = 35 * 24 * 3600
#: ... and be at most 5 minutes in the future (Stripe API reference).
METER_EVENT_MAX_FUTURE_SECONDS = 5 * 60
#: Stripe documents idempotency keys as "up to 255 characters long".
IDEMPOTENCY_KEY_MAX_LENGTH = 255
#: ``identifier`` and ``event_name`` are both documented with "Max length: 100".
METER_EVENT_FIELD_MAX_LENGTH = 100

_ID_ALPHABET = string.ascii_letters + string.digits


# --------------------------------------------------------------------------- #
# Errors and small helpers
# --------------------------------------------------------------------------- #


class _ApiError(Exception):
    """An error response in Stripe's ``{"error": {...}}`` shape.

    Raised inside endpoint code; the dispatcher turns it into the HTTP
    response.  Raising (rather than returning) keeps validation code linear.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> JSONDict:
        error: JSONDict = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def _missing(param: str) -> _ApiError:
    return _ApiError(
        400,
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
    )


def _no_such(kind: str, object_id: str, *, param: str = "id", status: int = 400) -> _ApiError:
    return _ApiError(
        status,
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _known_params(*typed_dicts: Any) -> frozenset[str]:
    """Top-level parameter names the SDK's TypedDicts declare for an endpoint.

    The SDK mixes request *options* (``api_key``, ``idempotency_key``, ...) into
    some params TypedDicts; those never go on the wire, so they are removed.
    """
    options = stripe.RequestOptions.__required_keys__ | stripe.RequestOptions.__optional_keys__
    names: set[str] = set()
    for typed_dict in typed_dicts:
        names |= set(typed_dict.__required_keys__ | typed_dict.__optional_keys__)
    return frozenset(names - options)


def _check_known(params: Mapping[str, Any], known: frozenset[str]) -> None:
    for name in params:
        if name not in known:
            raise _ApiError(
                400,
                f"Received unknown parameter: {name}",
                code="parameter_unknown",
                param=name,
            )


def _as_str(params: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _missing(name)
        return None
    if not isinstance(value, str):
        raise _ApiError(400, f"Invalid string: {name}", code="parameter_invalid_string", param=name)
    return value


def _as_int(value: Any, param: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    raise _ApiError(400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)


def _as_bool(value: Any, param: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise _ApiError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def _as_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _ApiError(400, f"Invalid object: {param}", code="parameter_invalid_object", param=param)
    return dict(value)


def _merge_metadata(current: dict[str, str], update: Any) -> dict[str, str]:
    """Stripe merges metadata on update; an empty value deletes that key and
    ``metadata=""`` clears everything."""
    if update == "":
        return {}
    merged = dict(current)
    for key, value in _as_metadata(update).items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _as_list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _ApiError(400, f"Invalid array: {param}", code="parameter_invalid_array", param=param)
    return value


def _add_interval(timestamp: int, interval: str, count: int) -> int:
    """Advance a Unix timestamp by ``count`` billing intervals (calendar-aware
    for months/years, clamping the day like Stripe's billing anchors do)."""
    start = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    if interval == "day":
        return int((start + dt.timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + dt.timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


# --------------------------------------------------------------------------- #
# Form decoding
# --------------------------------------------------------------------------- #

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SUBKEY_RE = re.compile(r"\[([^\[\]]*)\]")
#: Hash-valued params whose keys are user data: never turn them into lists,
#: even if a key happens to look like an index (``metadata[0]=...``).
_MAP_PARAMS = frozenset({"metadata", "payload"})


def parse_form(encoded: str) -> JSONDict:
    """Decode Stripe's bracketed form encoding into nested dicts and lists.

    ``payload[value]=3&line_items[0][price]=p&expand[0]=x`` becomes
    ``{"payload": {"value": "3"}, "line_items": [{"price": "p"}],
    "expand": ["x"]}``.  All leaves stay strings, as on the wire; endpoints
    coerce (and reject) values themselves, the way Stripe does.
    Raises ``_ApiError`` (400) for malformed keys.
    """
    root: JSONDict = {}
    for raw_key, value in parse_qsl(encoded, keep_blank_values=True):
        match = _KEY_RE.match(raw_key)
        if match is None:
            raise _ApiError(400, f"Invalid parameter name: {raw_key}", code="parameter_invalid_string")
        parts = [match.group(1), *_SUBKEY_RE.findall(match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {}) if part else None
            if not isinstance(child, dict):
                raise _ApiError(400, f"Invalid parameter name: {raw_key}", code="parameter_invalid_string")
            node = child
        last = parts[-1] or str(len(node))  # "a[]=x" appends
        if isinstance(node.get(last), dict):
            raise _ApiError(400, f"Invalid parameter name: {raw_key}", code="parameter_invalid_string")
        node[last] = value
    listified = _listify(root, "")
    assert isinstance(listified, dict)
    return listified


def _listify(node: Any, name: str) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: (v if name in _MAP_PARAMS else _listify(v, k)) for k, v in node.items()}
    if name in _MAP_PARAMS or not converted or not all(k.isdigit() for k in converted):
        return converted
    indexes = sorted(int(k) for k in converted)
    if indexes != list(range(len(indexes))):
        raise _ApiError(400, f"Invalid array: {name}", code="parameter_invalid_array", param=name)
    return [converted[str(i)] for i in indexes]


# --------------------------------------------------------------------------- #
# Public data types and webhook helpers
# --------------------------------------------------------------------------- #


class RecordedRequest(NamedTuple):
    """One request as the fake saw it (params already decoded)."""

    method: str
    path: str
    params: JSONDict
    idempotency_key: str | None


def make_event(
    event_type: str,
    data_object: Mapping[str, Any],
    *,
    previous_attributes: Mapping[str, Any] | None = None,
    created: int | None = None,
) -> JSONDict:
    """Build a Stripe ``event`` (snapshot) payload for webhook tests.

    Pair it with :func:`signed_webhook` so webhook views are exercised with the
    exact bytes + signature Stripe would deliver.
    """
    data: JSONDict = {"object": copy.deepcopy(dict(data_object))}
    if previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(dict(previous_attributes))
    return {
        "id": _new_id("evt_"),
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()) if created is None else created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def signed_webhook(
    payload: Mapping[str, Any], secret: str, timestamp: int | None = None
) -> tuple[bytes, str]:
    """Return ``(body, Stripe-Signature header)`` for a webhook delivery.

    Signing goes through the SDK's own ``WebhookSignature.generate_signature_header``
    (``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<body>">``) so the test signature
    can't drift from what ``stripe.Webhook.construct_event`` verifies.
    ``timestamp`` lets tests produce stale signatures (tolerance is 300 s).
    """
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=timestamp
    )
    return body, header


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


@dataclass
class _Response:
    status: int
    body: JSONDict
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _StoredIdempotentResult:
    method: str
    path: str
    params: JSONDict
    response: _Response
    request_id: str


@dataclass
class _InjectedFailure:
    status: int
    after_commit: bool


_Handler = Callable[[JSONDict, tuple[str, ...]], JSONDict]

_CUSTOMER_CREATE = _known_params(sp.CustomerCreateParams)
_CUSTOMER_RETRIEVE = _known_params(sp.CustomerRetrieveParams)
_PRICE_RETRIEVE = _known_params(sp.PriceRetrieveParams)
_SUBSCRIPTION_CREATE = _known_params(sp.SubscriptionCreateParams)
_SUBSCRIPTION_UPDATE = _known_params(sp.SubscriptionUpdateParams)
_SUBSCRIPTION_RETRIEVE = _known_params(sp.SubscriptionRetrieveParams)
_SUBSCRIPTION_CANCEL = _known_params(sp.SubscriptionCancelParams)
_CHECKOUT_CREATE = _known_params(sp_checkout.SessionCreateParams)
_CHECKOUT_RETRIEVE = _known_params(sp_checkout.SessionRetrieveParams)
_PORTAL_CREATE = _known_params(sp_portal.SessionCreateParams)
_METER_EVENT_CREATE = _known_params(sp_billing.MeterEventCreateParams)
_METER_LIST = _known_params(sp_billing.MeterListParams)
_METER_RETRIEVE = _known_params(sp_billing.MeterRetrieveParams)
_SUMMARY_LIST = _known_params(sp_billing.MeterEventSummaryListParams)

_PRORATION_BEHAVIORS = frozenset({"always_invoice", "create_prorations", "none"})
_CHECKOUT_MODES = frozenset({"payment", "setup", "subscription"})
_INTERVALS = frozenset({"day", "week", "month", "year"})


class FakeStripeServer:
    """In-memory Stripe API on ``http://127.0.0.1:<random port>``.

    Args:
        api_key: the only secret key accepted (``Authorization: Bearer``).
        meters: ``{event_name: meter_id}`` -- billing meters (``sum``
            aggregation, default payload keys) that exist from the start and
            survive :meth:`reset`.  More via :meth:`add_meter`.
        clock: source of "now" (Unix seconds).  Inject a fake clock to test
            the meter-event timestamp window or billing periods.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        meters: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self._clock = clock
        self._initial_meters = dict(meters or {})
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = [
            ("POST", re.compile(r"/v1/billing/meter_events"), self._create_meter_event),
            ("GET", re.compile(r"/v1/billing/meters"), self._list_meters),
            ("GET", re.compile(r"/v1/billing/meters/([^/]+)"), self._retrieve_meter),
            ("GET", re.compile(r"/v1/billing/meters/([^/]+)/event_summaries"), self._list_event_summaries),
            ("POST", re.compile(r"/v1/customers"), self._create_customer),
            ("GET", re.compile(r"/v1/customers/([^/]+)"), self._retrieve_customer),
            ("GET", re.compile(r"/v1/prices/([^/]+)"), self._retrieve_price),
            ("POST", re.compile(r"/v1/checkout/sessions"), self._create_checkout_session),
            ("GET", re.compile(r"/v1/checkout/sessions/([^/]+)"), self._retrieve_checkout_session),
            ("POST", re.compile(r"/v1/billing_portal/sessions"), self._create_portal_session),
            ("POST", re.compile(r"/v1/subscriptions"), self._create_subscription),
            ("GET", re.compile(r"/v1/subscriptions/([^/]+)"), self._retrieve_subscription),
            ("POST", re.compile(r"/v1/subscriptions/([^/]+)"), self._update_subscription),
            ("DELETE", re.compile(r"/v1/subscriptions/([^/]+)"), self._cancel_subscription),
        ]
        self._init_state()

    # ----------------------------------------------------------- lifecycle --

    def start(self) -> FakeStripeServer:
        """Bind an ephemeral port and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("FakeStripeServer is already running")
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeStripeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL to pass as ``base_addresses={"api": ...}``."""
        if self._httpd is None:
            raise RuntimeError("FakeStripeServer is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def client(self, api_key: str | None = None, **kwargs: Any) -> stripe.StripeClient:
        """A real ``stripe.StripeClient`` aimed at this server.

        Every base address (api, connect, files, meter_events) points here so
        a call to an unmodelled endpoint gets a 404 rather than leaking to the
        real Stripe.  ``kwargs`` go to ``StripeClient`` (e.g.
        ``max_network_retries=0``).
        """
        base = {"api": self.url, "connect": self.url, "files": self.url, "meter_events": self.url}
        return stripe.StripeClient(api_key or self.api_key, base_addresses=base, **kwargs)

    # ------------------------------------------------------- test helpers --

    def reset(self) -> None:
        """Forget everything except the constructor's meters (test isolation)."""
        with self._lock:
            self._init_state()

    def fail_next(self, n: int = 1, status: int = 500, *, after_commit: bool = False) -> None:
        """Make the next ``n`` requests answer ``status`` (an ``api_error``).

        By default the failure happens *before* the endpoint runs -- nothing
        is recorded or stored under the idempotency key, so an SDK retry goes
        through (a transient outage).  With ``after_commit=True`` the request
        is fully processed (event recorded, result stored under its
        idempotency key) but the client still gets the error: the "Stripe did
        it but the response was lost" case that causes double charges when a
        caller retries with a *new* idempotency key.
        """
        if n < 0 or status < 500:
            raise ValueError("fail_next needs n >= 0 and a 5xx status")
        with self._lock:
            self._failures.extend(_InjectedFailure(status, after_commit) for _ in range(n))

    @property
    def meter_events(self) -> list[JSONDict]:
        """Accepted ``billing.meter_event`` objects, in acceptance order."""
        with self._lock:
            return copy.deepcopy(self._meter_events)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (including rejected ones), in order."""
        with self._lock:
            return list(self._requests)

    @property
    def customers(self) -> dict[str, JSONDict]:
        with self._lock:
            return copy.deepcopy(self._customers)

    @property
    def subscriptions(self) -> dict[str, JSONDict]:
        with self._lock:
            return copy.deepcopy(self._subscriptions)

    @property
    def checkout_sessions(self) -> dict[str, JSONDict]:
        with self._lock:
            return copy.deepcopy(self._checkout_sessions)

    @property
    def meters(self) -> dict[str, JSONDict]:
        with self._lock:
            return copy.deepcopy(self._meters)

    def add_meter(
        self,
        event_name: str,
        *,
        meter_id: str | None = None,
        formula: str = "sum",
        display_name: str | None = None,
        customer_payload_key: str = "stripe_customer_id",
        value_payload_key: str = "value",
    ) -> JSONDict:
        """Create a ``billing.meter`` (``formula``: sum, count or last)."""
        if formula not in ("sum", "count", "last"):
            raise ValueError(f"unsupported meter formula: {formula}")
        with self._lock:
            now = self._now()
            meter: JSONDict = {
                "id": meter_id or _new_id("mtr_test_"),
                "object": "billing.meter",
                "created": now,
                "customer_mapping": {"event_payload_key": customer_payload_key, "type": "by_id"},
                "default_aggregation": {"formula": formula},
                "display_name": display_name or event_name,
                "event_name": event_name,
                "event_time_window": None,
                "livemode": False,
                "status": "active",
                "status_transitions": {"deactivated_at": None},
                "updated": now,
                "value_settings": {"event_payload_key": value_payload_key},
            }
            self._meters[meter["id"]] = meter
            return copy.deepcopy(meter)

    def add_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        customer_id: str | None = None,
    ) -> JSONDict:
        """Create a customer directly (no HTTP request is logged)."""
        with self._lock:
            customer = self._build_customer(
                {"email": email, "name": name, "metadata": dict(metadata or {})}, customer_id
            )
            return copy.deepcopy(customer)

    def add_price(
        self,
        *,
        price_id: str | None = None,
        unit_amount: int | None = None,
        unit_amount_decimal: str | None = None,
        currency: str = "eur",
        interval: str | None = "month",
        interval_count: int = 1,
        usage_type: str = "licensed",
        meter: str | None = None,
        lookup_key: str | None = None,
        product: str | None = None,
    ) -> JSONDict:
        """Create a price.  ``interval=None`` makes a one-time price;
        ``usage_type="metered"`` needs ``meter`` (a meter id), as in Stripe."""
        if interval is not None and interval not in _INTERVALS:
            raise ValueError(f"unsupported interval: {interval}")
        if usage_type == "metered" and (interval is None or meter is None):
            raise ValueError("metered prices must be recurring and reference a meter")
        if unit_amount is not None and unit_amount_decimal is None:
            unit_amount_decimal = str(unit_amount)
        with self._lock:
            if meter is not None and meter not in self._meters:
                raise ValueError(f"unknown meter: {meter}")
            price: JSONDict = {
                "id": price_id or _new_id("price_"),
                "object": "price",
                "active": True,
                "billing_scheme": "per_unit",
                "created": self._now(),
                "currency": currency,
                "livemode": False,
                "lookup_key": lookup_key,
                "metadata": {},
                "nickname": None,
                "product": product or _new_id("prod_", 14),
                "recurring": None
                if interval is None
                else {
                    "interval": interval,
                    "interval_count": interval_count,
                    "meter": meter,
                    "usage_type": usage_type,
                },
                "tax_behavior": "unspecified",
                "type": "one_time" if interval is None else "recurring",
                "unit_amount": unit_amount,
                "unit_amount_decimal": unit_amount_decimal,
            }
            self._prices[price["id"]] = price
            return copy.deepcopy(price)

    def add_subscription(
        self,
        customer: str,
        prices: str | Sequence[str],
        *,
        status: str = "active",
        metadata: Mapping[str, str] | None = None,
        subscription_id: str | None = None,
    ) -> JSONDict:
        """Create a subscription directly (customer and prices must exist)."""
        price_ids = [prices] if isinstance(prices, str) else list(prices)
        with self._lock:
            if customer not in self._customers:
                raise ValueError(f"unknown customer: {customer}")
            items = [{"price": p} for p in price_ids]
            try:
                sub = self._build_subscription(customer, items, dict(metadata or {}), subscription_id)
            except _ApiError as exc:
                raise ValueError(exc.message) from exc
            sub["status"] = status
            return copy.deepcopy(sub)

    def set_subscription_status(self, subscription_id: str, status: str) -> JSONDict:
        """Flip a subscription's status (e.g. ``past_due``) as Stripe would
        after a failed payment."""
        with self._lock:
            sub = self._subscriptions[subscription_id]
            sub["status"] = status
            if status == "canceled":
                sub["canceled_at"] = sub["ended_at"] = self._now()
            return copy.deepcopy(sub)

    def checkout_line_items(self, session_id: str) -> list[JSONDict]:
        """The line items a Checkout Session was created with (price, quantity if any)."""
        with self._lock:
            return copy.deepcopy(self._checkout_extras[session_id]["line_items"])

    def complete_checkout_session(self, session_id: str) -> JSONDict:
        """Simulate the customer paying: for ``mode=subscription`` create the
        subscription (metadata from ``subscription_data.metadata``, as Stripe
        does) and mark the session complete.  Returns the session, ready for
        ``make_event("checkout.session.completed", ...)``."""
        with self._lock:
            session = self._checkout_sessions[session_id]
            if session["status"] != "open":
                raise ValueError(f"checkout session {session_id} is {session['status']}")
            if session["customer"] is None:
                customer = self._build_customer({"email": session["customer_email"]}, None)
                session["customer"] = customer["id"]
            if session["mode"] == "subscription":
                extra = self._checkout_extras[session_id]
                items = [
                    {"price": li["price"], **({"quantity": str(li["quantity"])} if "quantity" in li else {})}
                    for li in extra["line_items"]
                ]
                sub_metadata = _as_metadata((extra.get("subscription_data") or {}).get("metadata"))
                sub = self._build_subscription(session["customer"], items, sub_metadata, None)
                session["subscription"] = sub["id"]
            session["status"] = "complete"
            session["payment_status"] = "paid"
            return copy.deepcopy(session)

    # ------------------------------------------------------------ internals --

    def _init_state(self) -> None:
        self._meter_events: list[JSONDict] = []
        self._identifiers: set[str] = set()
        self._requests: list[RecordedRequest] = []
        self._idempotency: dict[str, _StoredIdempotentResult] = {}
        self._failures: list[_InjectedFailure] = []
        self._customers: dict[str, JSONDict] = {}
        self._prices: dict[str, JSONDict] = {}
        self._subscriptions: dict[str, JSONDict] = {}
        self._checkout_sessions: dict[str, JSONDict] = {}
        self._checkout_extras: dict[str, JSONDict] = {}
        self._meters: dict[str, JSONDict] = {}
        for event_name, meter_id in self._initial_meters.items():
            self.add_meter(event_name, meter_id=meter_id)

    def _now(self) -> int:
        return int(self._clock())

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Response:
        """Process one HTTP request (``headers`` keys lower-cased); the socket
        layer only does I/O.

        Kept separate from the handler class so the whole request pipeline
        runs under one lock: injected failure -> auth -> idempotency replay ->
        endpoint -> idempotency store.
        """
        with self._lock:
            response = self._handle_locked(method, target, headers, body)
        response.headers.setdefault("Request-Id", _new_id("req_", 14))
        response.headers["Stripe-Version"] = headers.get("stripe-version") or stripe.api_version
        return response

    def _handle_locked(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Response:
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        idempotency_key = headers.get("idempotency-key") if method == "POST" else None
        try:
            encoded = body.decode("utf-8") if method == "POST" else split.query
            params = parse_form(encoded)
        except (_ApiError, UnicodeDecodeError) as exc:
            self._requests.append(RecordedRequest(method, path, {}, idempotency_key))
            if isinstance(exc, _ApiError):
                return _Response(exc.status, exc.body(), exc.headers)
            return _Response(400, _ApiError(400, "Request body is not valid UTF-8.").body())
        self._requests.append(RecordedRequest(method, path, copy.deepcopy(params), idempotency_key))

        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not failure.after_commit:
            return self._failure_response(failure)

        try:
            self._authenticate(headers.get("authorization"))
            response = self._replay_or_execute(method, path, params, idempotency_key)
        except _ApiError as exc:
            response = _Response(exc.status, exc.body(), exc.headers)
        if idempotency_key is not None:
            response.headers["Idempotency-Key"] = idempotency_key
        if failure is not None:
            return self._failure_response(failure)
        return response

    @staticmethod
    def _failure_response(failure: _InjectedFailure) -> _Response:
        error = _ApiError(
            failure.status,
            "An unknown error occurred (injected by FakeStripeServer.fail_next).",
            error_type="api_error",
        )
        return _Response(failure.status, error.body())

    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            raise _ApiError(
                401,
                "You did not provide an API key. Provide it in the Authorization header "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            key.strip().encode(), self.api_key.encode()
        ):
            shown = key.strip()[-4:] if len(key.strip()) > 8 else ""
            raise _ApiError(401, f"Invalid API Key provided: {'*' * 8}{shown}")

    def _replay_or_execute(
        self, method: str, path: str, params: JSONDict, idempotency_key: str | None
    ) -> _Response:
        if idempotency_key is not None:
            if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
                raise _ApiError(
                    400,
                    f"Idempotency keys may be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters long.",
                    param="Idempotency-Key",
                )
            stored = self._idempotency.get(idempotency_key)
            if stored is not None:
                if (stored.method, stored.path, stored.params) != (method, path, params):
                    raise _ApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same endpoint and "
                        f"parameters they were first used with. Try a key other than '{idempotency_key}' "
                        "if you meant to execute a different request.",
                        error_type="idempotency_error",
                    )
                replay = copy.deepcopy(stored.response)
                replay.headers.pop("Request-Id", None)  # a replay is a new request
                replay.headers["Idempotent-Replayed"] = "true"
                replay.headers["Original-Request"] = stored.request_id
                return replay

        handler, groups = self._route(method, path)
        # Errors raised by handlers are validation failures: Stripe stores a
        # result only once the endpoint has begun executing, so they propagate
        # without being stored and a corrected retry with the same key works.
        body = handler(params, groups)
        request_id = _new_id("req_", 14)
        response = _Response(200, body, {"Request-Id": request_id})
        if idempotency_key is not None:
            self._idempotency[idempotency_key] = _StoredIdempotentResult(
                method, path, copy.deepcopy(params), copy.deepcopy(response), request_id
            )
        return response

    def _route(self, method: str, path: str) -> tuple[_Handler, tuple[str, ...]]:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is not None and route_method == method:
                return handler, match.groups()
        raise _ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). FakeStripeServer does not model this endpoint.",
        )

    # --------------------------------------------------------- meter events --

    def _create_meter_event(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        """``POST /v1/billing/meter_events``.

        Stricter than Stripe on purpose: Stripe validates the payload's
        customer/value keys *asynchronously* (a ``v1.billing.meter.error_report_triggered``
        event later), which a test would never see; here they are a 400.
        Events for an ``event_name`` without a meter are accepted, as Stripe
        does (they just never show up in summaries).
        """
        _check_known(params, _METER_EVENT_CREATE)
        event_name = _as_str(params, "event_name", required=True)
        assert event_name is not None
        if len(event_name) > METER_EVENT_FIELD_MAX_LENGTH:
            raise _ApiError(400, "event_name is too long (max 100 characters).", param="event_name")
        payload = params.get("payload")
        if payload is None or payload == "":
            raise _missing("payload")
        if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
            raise _ApiError(400, "Invalid object: payload", code="parameter_invalid_object", param="payload")

        meter = next((m for m in self._meters.values() if m["event_name"] == event_name), None)
        customer_key = meter["customer_mapping"]["event_payload_key"] if meter else "stripe_customer_id"
        value_key = meter["value_settings"]["event_payload_key"] if meter else "value"
        if not payload.get(customer_key):
            raise _missing(f"payload[{customer_key}]")
        if value_key not in payload:
            raise _missing(f"payload[{value_key}]")
        try:
            value = Decimal(payload[value_key])
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite():
            raise _ApiError(
                400,
                f"payload[{value_key}] must be a number, got '{payload[value_key]}'.",
                param=f"payload[{value_key}]",
            )

        now = self._now()
        timestamp = (
            now if params.get("timestamp") in (None, "") else _as_int(params["timestamp"], "timestamp")
        )
        if timestamp < now - METER_EVENT_MAX_AGE_SECONDS:
            raise _ApiError(
                400,
                f"Timestamp {timestamp} is too far in the past: "
                "meter events must be within the past 35 days.",
                param="timestamp",
            )
        if timestamp > now + METER_EVENT_MAX_FUTURE_SECONDS:
            raise _ApiError(
                400,
                f"Timestamp {timestamp} is too far in the future: "
                "meter events may be at most 5 minutes ahead.",
                param="timestamp",
            )

        identifier = _as_str(params, "identifier") or str(uuid.uuid4())
        if len(identifier) > METER_EVENT_FIELD_MAX_LENGTH:
            raise _ApiError(400, "identifier is too long (max 100 characters).", param="identifier")
        if identifier in self._identifiers:
            # Message and the should-retry header as Stripe returns them
            # (observed 400 invalid_request_error). The error ``code`` is not
            # in Stripe's public reference; "duplicate_meter_event" is the value
            # integrations match on -- prefer checking status + message.
            raise _ApiError(
                400,
                f"An event already exists with identifier {identifier}.",
                code="duplicate_meter_event",
                param="identifier",
                headers={"Stripe-Should-Retry": "false"},
            )

        event: JSONDict = {
            "object": "billing.meter_event",
            "created": now,
            "event_name": event_name,
            "identifier": identifier,
            "livemode": False,
            "payload": dict(payload),
            "timestamp": timestamp,
        }
        self._identifiers.add(identifier)
        self._meter_events.append(event)
        return copy.deepcopy(event)

    def _meter_or_404(self, meter_id: str) -> JSONDict:
        meter = self._meters.get(meter_id)
        if meter is None:
            raise _no_such("billing.meter", meter_id, status=404)
        return meter

    def _list_meters(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        _check_known(params, _METER_LIST)
        status = _as_str(params, "status")
        meters = [m for m in self._meters.values() if status is None or m["status"] == status]
        limit = self._limit(params)
        return self._list_object("/v1/billing/meters", meters[:limit], has_more=len(meters) > limit)

    def _retrieve_meter(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _METER_RETRIEVE)
        return copy.deepcopy(self._meter_or_404(groups[0]))

    def _list_event_summaries(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        """``GET /v1/billing/meters/{id}/event_summaries``.

        Aggregates accepted events of the meter's ``event_name`` for one
        customer over ``[start_time, end_time)`` (both must sit on minute
        boundaries, or hour/day boundaries with ``value_grouping_window``).
        A window without events yields ``aggregated_value`` 0.
        """
        _check_known(params, _SUMMARY_LIST)
        meter = self._meter_or_404(groups[0])
        customer = _as_str(params, "customer", required=True)
        for name in ("start_time", "end_time"):
            if params.get(name) in (None, ""):
                raise _missing(name)
        start = _as_int(params["start_time"], "start_time")
        end = _as_int(params["end_time"], "end_time")
        window = _as_str(params, "value_grouping_window")
        step = {None: 60, "hour": 3600, "day": 86400}.get(window)
        if step is None:
            raise _ApiError(400, f"Invalid value_grouping_window: {window}", param="value_grouping_window")
        for name, value in (("start_time", start), ("end_time", end)):
            if value % step:
                raise _ApiError(
                    400, f"{name} must be aligned with {window or 'minute'} boundaries.", param=name
                )
        if start >= end:
            raise _ApiError(400, "start_time must be before end_time.", param="start_time")

        bounds = [(start, end)] if window is None else [(t, t + step) for t in range(start, end, step)]
        summaries = [
            {
                "id": _new_id("mtrusg_test_"),
                "object": "billing.meter_event_summary",
                "aggregated_value": self._aggregate(meter, customer, lo, hi),
                "end_time": hi,
                "livemode": False,
                "meter": meter["id"],
                "start_time": lo,
            }
            for lo, hi in bounds
        ]
        limit = self._limit(params)
        url = f"/v1/billing/meters/{meter['id']}/event_summaries"
        return self._list_object(url, summaries[:limit], has_more=len(summaries) > limit)

    def _aggregate(self, meter: JSONDict, customer: str | None, start: int, end: int) -> float:
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        events = [
            e
            for e in self._meter_events
            if e["event_name"] == meter["event_name"]
            and e["payload"].get(customer_key) == customer
            and start <= e["timestamp"] < end
        ]
        formula = meter["default_aggregation"]["formula"]
        if formula == "count":
            return float(len(events))
        if not events:
            return 0.0
        if formula == "last":
            latest = max(range(len(events)), key=lambda i: (events[i]["timestamp"], i))
            return float(Decimal(events[latest]["payload"][value_key]))
        return float(sum(Decimal(e["payload"][value_key]) for e in events))

    # ------------------------------------------------------------ customers --

    def _build_customer(self, fields: Mapping[str, Any], customer_id: str | None) -> JSONDict:
        customer: JSONDict = {
            "id": customer_id or _new_id("cus_", 14),
            "object": "customer",
            "address": None,
            "balance": 0,
            "created": self._now(),
            "currency": None,
            "default_source": None,
            "delinquent": False,
            "description": fields.get("description"),
            "discount": None,
            "email": fields.get("email"),
            "invoice_prefix": _new_id("", 8).upper(),
            "invoice_settings": {
                "custom_fields": None,
                "default_payment_method": None,
                "footer": None,
                "rendering_options": None,
            },
            "livemode": False,
            "metadata": dict(fields.get("metadata") or {}),
            "name": fields.get("name"),
            "next_invoice_sequence": 1,
            "phone": fields.get("phone"),
            "preferred_locales": [],
            "shipping": None,
            "tax_exempt": "none",
            "test_clock": None,
        }
        self._customers[customer["id"]] = customer
        return customer

    def _create_customer(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        _check_known(params, _CUSTOMER_CREATE)
        fields = {name: _as_str(params, name) for name in ("email", "name", "description", "phone")}
        fields["metadata"] = _as_metadata(params.get("metadata"))
        return copy.deepcopy(self._build_customer(fields, None))

    def _retrieve_customer(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _CUSTOMER_RETRIEVE)
        customer = self._customers.get(groups[0])
        if customer is None:
            raise _no_such("customer", groups[0], status=404)
        return copy.deepcopy(customer)

    def _existing_customer(self, customer_id: str) -> None:
        if customer_id not in self._customers:
            raise _no_such("customer", customer_id, param="customer")

    # --------------------------------------------------------------- prices --

    def _retrieve_price(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _PRICE_RETRIEVE)
        price = self._prices.get(groups[0])
        if price is None:
            raise _no_such("price", groups[0], status=404)
        return copy.deepcopy(price)

    def _price_for_item(self, item: Any, param: str) -> tuple[JSONDict, int | None]:
        """Validate one ``line_items[i]`` / ``items[i]`` entry -> (price, quantity).

        Stripe rejects a quantity on metered prices (usage comes from meter
        events) and, in Checkout, requires one for licensed prices.
        """
        if not isinstance(item, dict):
            raise _ApiError(400, f"Invalid object: {param}", code="parameter_invalid_object", param=param)
        price_id = _as_str(item, "price")
        if price_id is None:
            raise _missing(f"{param}[price]")
        price = self._prices.get(price_id)
        if price is None:
            raise _no_such("price", price_id, param=f"{param}[price]")
        quantity = (
            None if item.get("quantity") in (None, "") else _as_int(item["quantity"], f"{param}[quantity]")
        )
        metered = price["recurring"] is not None and price["recurring"]["usage_type"] == "metered"
        if metered and quantity is not None:
            raise _ApiError(
                400,
                "Quantity should not be specified where usage_type is `metered`. "
                f"Remove quantity from {param}.",
                param=f"{param}[quantity]",
            )
        return price, quantity

    # -------------------------------------------------------- subscriptions --

    def _build_item(
        self, subscription_id: str, price: JSONDict, quantity: int | None, start: int
    ) -> JSONDict:
        recurring = price["recurring"]
        metered = recurring["usage_type"] == "metered"
        return {
            "id": _new_id("si_", 14),
            "object": "subscription_item",
            "created": start,
            # Since API version 2025-03-31.basil the billing period lives on
            # the item, not on the subscription.
            "current_period_start": start,
            "current_period_end": _add_interval(start, recurring["interval"], recurring["interval_count"]),
            "discounts": [],
            "metadata": {},
            "price": copy.deepcopy(price),
            "quantity": None if metered else (1 if quantity is None else quantity),
            "subscription": subscription_id,
            "tax_rates": [],
        }

    def _resolve_items(self, items: Any, param: str) -> list[tuple[JSONDict, int | None]]:
        resolved = []
        for index, item in enumerate(_as_list(items, param)):
            price, quantity = self._price_for_item(item, f"{param}[{index}]")
            if price["recurring"] is None:
                raise _ApiError(
                    400,
                    f"The price specified ({price['id']}) is not recurring; "
                    "subscriptions need recurring prices.",
                    param=f"{param}[{index}][price]",
                )
            resolved.append((price, quantity))
        return resolved

    @staticmethod
    def _check_items(sub: JSONDict) -> None:
        prices = [item["price"]["id"] for item in sub["items"]["data"]]
        if not prices:
            raise _ApiError(400, "A subscription must have at least one item.", param="items")
        if len(set(prices)) != len(prices):
            raise _ApiError(400, "Cannot add multiple subscription items with the same price.", param="items")

    def _build_subscription(
        self, customer: str, items: Any, metadata: dict[str, str], subscription_id: str | None
    ) -> JSONDict:
        now = self._now()
        sub_id = subscription_id or _new_id("sub_", 14)
        resolved = self._resolve_items(items, "items")
        data = [self._build_item(sub_id, price, quantity, now) for price, quantity in resolved]
        sub: JSONDict = {
            "id": sub_id,
            "object": "subscription",
            "billing_cycle_anchor": now,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "collection_method": "charge_automatically",
            "created": now,
            "currency": resolved[0][0]["currency"] if resolved else None,
            "customer": customer,
            "default_payment_method": None,
            "description": None,
            "discounts": [],
            "ended_at": None,
            "items": {
                "object": "list",
                "data": data,
                "has_more": False,
                "total_count": len(data),
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "latest_invoice": None,
            "livemode": False,
            "metadata": metadata,
            "start_date": now,
            "status": "active",
            "test_clock": None,
            "trial_end": None,
            "trial_start": None,
        }
        self._check_items(sub)
        self._subscriptions[sub_id] = sub
        return sub

    def _subscription_or_404(self, subscription_id: str) -> JSONDict:
        sub = self._subscriptions.get(subscription_id)
        if sub is None:
            raise _no_such("subscription", subscription_id, status=404)
        return sub

    def _create_subscription(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        _check_known(params, _SUBSCRIPTION_CREATE)
        customer = _as_str(params, "customer", required=True)
        assert customer is not None
        self._existing_customer(customer)
        if params.get("items") in (None, ""):
            raise _missing("items")
        self._check_proration(params)
        sub = self._build_subscription(customer, params["items"], _as_metadata(params.get("metadata")), None)
        if params.get("cancel_at_period_end") not in (None, ""):
            sub["cancel_at_period_end"] = _as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
        return copy.deepcopy(sub)

    def _retrieve_subscription(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _SUBSCRIPTION_RETRIEVE)
        return copy.deepcopy(self._subscription_or_404(groups[0]))

    @staticmethod
    def _check_proration(params: JSONDict) -> None:
        behavior = params.get("proration_behavior")
        if behavior is not None and behavior not in _PRORATION_BEHAVIORS:
            raise _ApiError(
                400,
                f"Invalid proration_behavior: must be one of {', '.join(sorted(_PRORATION_BEHAVIORS))}",
                code="parameter_invalid_string",
                param="proration_behavior",
            )

    def _update_subscription(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        """``POST /v1/subscriptions/{id}``: items are updated by ``items[i][id]``
        (price/quantity/metadata, or ``deleted=true``) or added when no id is
        given.  Validation happens on a copy, so a rejected update changes
        nothing -- the way a failed Stripe request leaves the object alone."""
        _check_known(params, _SUBSCRIPTION_UPDATE)
        current = self._subscription_or_404(groups[0])
        if current["status"] == "canceled" and set(params) - {"metadata", "cancellation_details", "expand"}:
            raise _ApiError(
                400, "A canceled subscription can only update its cancellation_details and metadata."
            )
        self._check_proration(params)
        sub = copy.deepcopy(current)
        now = self._now()

        if params.get("items") not in (None, ""):
            by_id = {item["id"]: item for item in sub["items"]["data"]}
            for index, entry in enumerate(_as_list(params["items"], "items")):
                param = f"items[{index}]"
                if not isinstance(entry, dict):
                    raise _ApiError(
                        400, f"Invalid object: {param}", code="parameter_invalid_object", param=param
                    )
                item_id = _as_str(entry, "id")
                if item_id is None:
                    ((price, quantity),) = self._resolve_items([entry], "items")
                    new_item = self._build_item(sub["id"], price, quantity, now)
                    new_item["metadata"] = _as_metadata(entry.get("metadata"), f"{param}[metadata]")
                    sub["items"]["data"].append(new_item)
                    continue
                item = by_id.get(item_id)
                if item is None:
                    raise _no_such("subscription item", item_id, param=f"{param}[id]")
                if entry.get("deleted") not in (None, "") and _as_bool(entry["deleted"], f"{param}[deleted]"):
                    sub["items"]["data"].remove(item)
                    continue
                if "price" in entry:
                    ((price, quantity),) = self._resolve_items([entry], "items")
                    item["price"] = copy.deepcopy(price)
                    metered = price["recurring"]["usage_type"] == "metered"
                    keep = item["quantity"] or 1
                    item["quantity"] = None if metered else (keep if quantity is None else quantity)
                elif entry.get("quantity") not in (None, ""):
                    if item["price"]["recurring"]["usage_type"] == "metered":
                        raise _ApiError(
                            400,
                            "Quantity should not be specified where usage_type is `metered`.",
                            param=f"{param}[quantity]",
                        )
                    item["quantity"] = _as_int(entry["quantity"], f"{param}[quantity]")
                if "metadata" in entry:
                    item["metadata"] = _merge_metadata(item["metadata"], entry["metadata"])
            sub["items"]["total_count"] = len(sub["items"]["data"])
            self._check_items(sub)

        if "metadata" in params:
            sub["metadata"] = _merge_metadata(sub["metadata"], params["metadata"])
        if params.get("cancel_at_period_end") not in (None, ""):
            sub["cancel_at_period_end"] = _as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
            sub["cancel_at"] = (
                max(i["current_period_end"] for i in sub["items"]["data"])
                if sub["cancel_at_period_end"]
                else None
            )
        self._subscriptions[sub["id"]] = sub
        return copy.deepcopy(sub)

    def _cancel_subscription(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _SUBSCRIPTION_CANCEL)
        sub = self._subscription_or_404(groups[0])
        if sub["status"] == "canceled":
            raise _ApiError(400, f"Subscription {sub['id']} is already canceled.")
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["ended_at"] = self._now()
        return copy.deepcopy(sub)

    # ------------------------------------------------------------- checkout --

    def _create_checkout_session(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        """``POST /v1/checkout/sessions``: customer and prices must exist;
        ``mode=subscription`` needs recurring prices; licensed prices need a
        quantity and metered ones must not have one."""
        _check_known(params, _CHECKOUT_CREATE)
        mode = _as_str(params, "mode", required=True)
        if mode not in _CHECKOUT_MODES:
            raise _ApiError(
                400, f"Invalid mode: must be one of {', '.join(sorted(_CHECKOUT_MODES))}", param="mode"
            )
        customer = _as_str(params, "customer")
        customer_email = _as_str(params, "customer_email")
        if customer is not None and customer_email is not None:
            raise _ApiError(400, "You may only specify one of these parameters: customer, customer_email.")
        if customer is not None:
            self._existing_customer(customer)
        client_reference_id = _as_str(params, "client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > 200:
            raise _ApiError(
                400, "client_reference_id must be at most 200 characters.", param="client_reference_id"
            )

        line_items: list[JSONDict] = []
        raw_items = params.get("line_items")
        if mode != "setup":
            if raw_items in (None, ""):
                raise _missing("line_items")
            for index, raw in enumerate(_as_list(raw_items, "line_items")):
                param = f"line_items[{index}]"
                price, quantity = self._price_for_item(raw, param)
                metered = price["recurring"] is not None and price["recurring"]["usage_type"] == "metered"
                if not metered and quantity is None:
                    raise _missing(f"{param}[quantity]")
                line_items.append(
                    {"price": price["id"], **({} if quantity is None else {"quantity": quantity})}
                )
            prices = [self._prices[li["price"]] for li in line_items]
            if mode == "subscription" and not any(p["recurring"] for p in prices):
                raise _ApiError(
                    400,
                    "You must provide at least one recurring price in `subscription` mode when using prices.",
                    param="line_items",
                )
            if mode == "payment" and any(p["recurring"] for p in prices):
                raise _ApiError(
                    400,
                    "You specified `payment` mode but passed a recurring price. "
                    "Use `subscription` mode instead.",
                    param="line_items",
                )

        now = self._now()
        session_id = _new_id("cs_test_", 58)
        session: JSONDict = {
            "id": session_id,
            "object": "checkout.session",
            "cancel_url": _as_str(params, "cancel_url"),
            "client_reference_id": client_reference_id,
            "created": now,
            "currency": self._prices[line_items[0]["price"]]["currency"] if line_items else None,
            "customer": customer,
            "customer_email": customer_email,
            "expires_at": now + 24 * 3600,
            "invoice": None,
            "livemode": False,
            "metadata": _as_metadata(params.get("metadata")),
            "mode": mode,
            "payment_intent": None,
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "status": "open",
            "subscription": None,
            "success_url": _as_str(params, "success_url"),
            "ui_mode": _as_str(params, "ui_mode") or "hosted",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self._checkout_sessions[session_id] = session
        self._checkout_extras[session_id] = {
            "line_items": line_items,
            "subscription_data": copy.deepcopy(params.get("subscription_data")),
        }
        return copy.deepcopy(session)

    def _retrieve_checkout_session(self, params: JSONDict, groups: tuple[str, ...]) -> JSONDict:
        _check_known(params, _CHECKOUT_RETRIEVE)
        session = self._checkout_sessions.get(groups[0])
        if session is None:
            raise _no_such("checkout.session", groups[0], status=404)
        return copy.deepcopy(session)

    def _create_portal_session(self, params: JSONDict, _: tuple[str, ...]) -> JSONDict:
        _check_known(params, _PORTAL_CREATE)
        customer = _as_str(params, "customer", required=True)
        assert customer is not None
        self._existing_customer(customer)
        session_id = _new_id("bps_", 24)
        return {
            "id": session_id,
            "object": "billing_portal.session",
            "configuration": _as_str(params, "configuration") or "bpc_default_fake",
            "created": self._now(),
            "customer": customer,
            "flow": None,
            "livemode": False,
            "locale": _as_str(params, "locale"),
            "on_behalf_of": None,
            "return_url": _as_str(params, "return_url"),
            "url": f"https://billing.stripe.com/p/session/test_{session_id[4:]}",
        }

    # --------------------------------------------------------------- lists --

    @staticmethod
    def _limit(params: JSONDict) -> int:
        if params.get("limit") in (None, ""):
            return 10
        limit = _as_int(params["limit"], "limit")
        if not 1 <= limit <= 100:
            raise _ApiError(400, "limit must be between 1 and 100.", param="limit")
        return limit

    @staticmethod
    def _list_object(url: str, data: list[JSONDict], *, has_more: bool) -> JSONDict:
        return {"object": "list", "data": copy.deepcopy(data), "has_more": has_more, "url": url}


class _RequestHandler(BaseHTTPRequestHandler):
    """Socket-level glue: read the request, hand it to the fake, write JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's session expects
    server_version = "FakeStripe/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: FakeStripeServer = self.server.fake  # type: ignore[attr-defined]
        headers = {key.lower(): value for key, value in self.headers.items()}
        response = fake.handle(self.command, self.path, headers, body)
        payload = json.dumps(response.body, indent=2).encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request stderr logging; use ``FakeStripeServer.requests``."""
