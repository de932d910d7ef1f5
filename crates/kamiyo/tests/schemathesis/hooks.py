"""Schemathesis hooks for crates/kamiyo/tests/schemathesis.rs.

Every test case comes from a client address of its own (`X-Forwarded-For`, which the
test's servers trust): anonymous callers may make 10 requests a minute per address, and an
address may fail authentication 10 times a minute, so from one address the runs would
test little but 429 answers after their first seconds.

A listing's `cursor` is opaque: only a `next_cursor` that the server gave for the same
`sort` and `order` is valid, which no JSON Schema can say. A positive test case (one the
document says must be accepted) therefore gets a cursor made the way the server makes
them (kamiyo-store's `Cursor::encode`: hex of `sort|order|value|id`) for its own sort and
order; negative cases keep whatever was generated.
"""

import itertools

import schemathesis
from schemathesis.generation.modes import GenerationMode

LISTINGS = {"/api/exploits", "/api/exploits.csv", "/api/feed.atom"}


def cursor_for(sort: str, order: str) -> str:
    key = {"amount": "a", "sources": "s"}.get(sort.strip(), "d")
    value = {"a": "1000.00", "s": "2"}.get(key, "2020-01-01T00:00:00+00:00")
    plain = f"{key}|{order.strip()[:1] or 'd'}|{value}|1"
    return plain.encode().hex()


_clients = itertools.count(1)


def next_client() -> str:
    n = next(_clients)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@schemathesis.hook
def map_case(context, case):
    headers = dict(case.headers or {})
    headers["X-Forwarded-For"] = next_client()
    case.headers = headers
    query = case.query
    meta = case.meta
    if (
        case.operation.path in LISTINGS
        and query
        and "cursor" in query
        and meta is not None
        and meta.generation.mode == GenerationMode.POSITIVE
    ):
        query["cursor"] = cursor_for(str(query.get("sort", "date")), str(query.get("order", "desc")))
    return case
