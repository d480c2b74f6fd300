"""Who is asking, from where: the request context that audit records pick up."""

from __future__ import annotations

import contextvars
import functools
import ipaddress
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    # The request itself, for the rare hook (a model signal) that must know who is acting:
    # request.user is only set later in the middleware chain.
    request: Any = None


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "request_context", default=RequestContext()  # noqa: B039 (frozen, so immutable)
)


def current() -> RequestContext:
    return _current.get()


def bind(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


@functools.lru_cache(maxsize=4096)  # a process sees the same few addresses over and over
def normalize_ip(value: str | None) -> str | None:
    """The address in its one canonical text form (what PostgreSQL's inet prints, so the
    audit record hashes as stored), or None when it is not an address at all."""
    if not value:
        return None
    try:
        # No zone ids ("fe80::1%eth0"): PostgreSQL's inet has none.
        return str(ipaddress.ip_address(value.strip().split("%")[0]))
    except ValueError:
        return None
