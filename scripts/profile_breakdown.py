"""Breaks folded perf stacks (inferno-collapse-perf: "frame;frame;... count") down by component.

Each sample is charged to one *component*, the piece of work it was done for: the innermost
frame that names a specific one (the DynamoDB SDK, redis-rs, authentication, logging, ...), so
the allocator's time inside the DynamoDB call is the DynamoDB call's and the SDK's time inside
the handler is the SDK's; a sample with no specific frame goes to the innermost general one
(the Runtime API client, tokio). The same sample is counted again under its *kind* of work,
decided by its innermost frame that names one (allocation, kernel, hashing, JSON, ...). Prints
both as tables of shares, and the kinds inside the biggest components.

Kernel time on a VM's software clock (cpu-clock, no hardware counters) lands where the kernel
re-enables interrupts (`_raw_spin_unlock_irqrestore`, `finish_task_switch`): it is the cost of
blocking and waking (each network wait), not of those functions themselves.
"""

import re
import sys
from collections import Counter, defaultdict

# Specific components: the innermost frame matching one wins.
COMPONENTS = [
    ("DynamoDB call (SDK: request, SigV4, HTTP, response)", r"aws_sdk_dynamodb|aws_smithy|aws_sigv4|aws_runtime|aws_credential_types|shared::store::dynamo"),
    ("Redis call (redis-rs)", r"redis::|shared::cache::connection|shared::cache::client"),
    ("authentication (token, cache-aside, checks)", r"shared::auth|shared::cache|jsonwebtoken"),
    ("logging (tracing JSON line)", r"tracing_subscriber|tracing_core::|tracing::span|tracing::__macro_support"),
    ("metrics (EMF)", r"metrics_cloudwatch_embedded|shared::metrics|metrics::"),
    ("event decoding (lambda_http)", r"lambda_http::deserializer|lambda_http::request|aws_lambda_events|query_map"),
    ("response (lambda_http)", r"lambda_http::response|LambdaResponse|IntoResponse"),
    ("handler, routing, domain", r"posts_fn::|users_fn::|comments_fn::|shared::http|shared::store|shared::domain"),
]
# General components, for samples no specific frame claims: the innermost match wins.
GENERAL = [
    ("Runtime API client (long poll, answer)", r"lambda_runtime|lambda_runtime_api_client|hyper::|hyper_util::|http::"),
    ("tokio scheduler and I/O driver (epoll, wake-ups)", r"tokio::|mio::"),
]

# Kinds of work: the innermost frame matching one wins.
KINDS = [
    ("allocator (malloc, free)", r"malloc|_int_free|\bfree\b|cfree|realloc|_int_realloc|mi_|__rust_alloc|__rust_dealloc|__rdl_"),
    ("kernel (syscalls, network, scheduling)", r"\[kernel|\[k\]|entry_SYSCALL|do_syscall|__x64_sys|sys_|tcp_|ip_|skb|schedule"),
    ("hashing (SHA-256, HMAC)", r"sha2|sha256|Sha256|hmac|Hmac|aws_lc"),
    ("JSON (serde_json)", r"serde_json"),
    ("formatting (core::fmt)", r"core::fmt"),
    ("memcpy, memmove", r"memcpy|memmove|memset"),
]


def classify(frames, patterns):
    """The name of the innermost frame's pattern, among `patterns`."""
    for frame in reversed(frames):
        for name, pattern in patterns:
            if re.search(pattern, frame):
                return name
    return None


def main():
    components, kinds = Counter(), Counter()
    within = defaultdict(Counter)
    total = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        frames = stack.split(";")
        component = classify(frames, COMPONENTS) or classify(frames, GENERAL) or "other"
        kind = classify(frames, KINDS) or "other code"
        components[component] += n
        kinds[kind] += n
        within[component][kind] += n
        total += n
    if not total:
        print("no samples")
        return
    print(f"{total} samples")
    print("| component | share |")
    print("| --- | ---: |")
    for name, n in components.most_common():
        print(f"| {name} | {100 * n / total:.1f}% |")
    print()
    print("| kind of work | share |")
    print("| --- | ---: |")
    for name, n in kinds.most_common():
        print(f"| {name} | {100 * n / total:.1f}% |")
    for name, _ in components.most_common(3):
        print()
        print(f"within {name}:")
        for kind, n in within[name].most_common():
            print(f"  {kind}: {100 * n / total:.1f}% of all")


if __name__ == "__main__":
    main()
