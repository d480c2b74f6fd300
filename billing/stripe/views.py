"""``POST /api/v1/billing/stripe/webhook/``: Stripe's door into the back office.

A plain Django view, not DRF: the signature covers the raw body, so nothing may parse
it first, and there is no session or token to check. It answers fast: verify, store once
by event id, queue processing after commit.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing.stripe.webhook_intake import WebhookRejected, webhook_event_receive
from core.errors import error_body


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    try:
        pk, created = webhook_event_receive(
            body=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except WebhookRejected as exc:
        # A signature problem blames the header; a signed event we cannot read, the body.
        blamed = "body" if exc.reason == "malformed" else "Stripe-Signature"
        return JsonResponse(
            error_body(
                status_code=400,
                code=exc.reason,
                message=str(exc),
                fields=[{"field": blamed, "code": exc.reason, "message": str(exc)}],
            ),
            status=400,
        )
    return JsonResponse({"received": True, "duplicate": not created})
