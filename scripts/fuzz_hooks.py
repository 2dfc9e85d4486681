"""schemathesis hooks for scripts/fuzz: the few failures that are not the API's.

Each rule below drops one precise kind of failure and says why; every other failure fails
the run.
"""

import atexit
import collections
import sys

import schemathesis

DROPPED = collections.Counter()


@atexit.register
def _report():
    for (reason, what), count in sorted(DROPPED.items()):
        print(f"fuzz_hooks: dropped {count} x {what}: {reason}", file=sys.stderr)


def _is_utf8(value) -> bool:
    """Whether `value` (a body, or a header value as `requests` puts it on the wire) is UTF-8."""
    if value is None:
        return True
    if isinstance(value, str):
        try:
            value = value.encode("latin-1")  # how `requests` encodes a str header value
        except UnicodeEncodeError:
            return True  # sent as UTF-8
    try:
        bytes(value).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _emulator_refused_non_utf8(response) -> bool:
    """`cargo lambda watch` cannot put a body or a header value that is not UTF-8 into an API
    Gateway event (JSON): it answers 500 itself (a problem+json body sent as text/plain) and
    the function is never invoked. The API never sees such a request, so this is the local
    emulator's failure, not the API's."""
    content_type = ",".join(response.headers.get("content-type", []))
    request = response.request
    body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
    return (
        response.status_code == 500
        and content_type.startswith("text/plain")
        and b"httpstatuses.com/500" in response.content
        and not (_is_utf8(body) and all(_is_utf8(v) for v in request.headers.values()))
    )


def _error_code(response):
    try:
        return response.json()["error"]["code"]
    except Exception:
        return None


def _state_dependent_refusal(failure, case, response) -> bool:
    """`positive_data_acceptance` takes every schema-valid request to be acceptable, but two
    inputs are valid only against server state no schema can describe: a `cursor` must be one
    the server issued (any other string is `400 invalid_cursor`), `If-Match` must name the
    post's current version (any other is `412 precondition_failed`), and an `Idempotency-Key`
    must not have been used by this user for another request (the fuzzer sends one key with
    many bodies: `422 idempotency_key_reused`). Exactly those refusals, on requests that carry
    that input, are dropped."""
    if failure.code != "ST202":
        return False
    code = _error_code(response)
    if response.status_code == 400 and code == "invalid_cursor":
        return bool(case.query) and "cursor" in case.query
    if response.status_code == 412 and code == "precondition_failed":
        return any(name.lower() == "if-match" for name in (case.headers or {}))
    if response.status_code == 422 and code == "idempotency_key_reused":
        return any(name.lower() == "idempotency-key" for name in (case.headers or {}))
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if response is None:
        return True
    if _emulator_refused_non_utf8(response):
        reason = "cargo lambda watch refused a body or header that is not UTF-8"
    elif _state_dependent_refusal(failure, case, response):
        reason = f"{response.status_code} {_error_code(response)} for a schema-valid but state-dependent input"
    else:
        return True
    DROPPED[(reason, f"{failure.code} on {case.method.upper()} {case.operation.path}")] += 1
    return False
