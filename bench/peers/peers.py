"""Peer measurements on the very inputs wacapi's criterion benches use.

- pywa: X-Hub-Signature-256 validation (webhook_update_validator) plus update parsing into typed
  objects (webhook_update_handler with a message handler registered), per webhook body. pywa
  builds one message per change and needs contacts to carry `user_id`, so the 1,000-message body
  has one message per change and BSUIDs (as Meta sends them); the script checks every message
  was parsed.
- facebook_business: Normalize.normalize_field (normalise + SHA-256) over one user record
  (phone, email, first name, last name, city, zip), per record.

Prints one JSON object: {"name": microseconds_per_operation, ...}.
"""

import hashlib
import hmac
import json
import logging
import sys
import time
from pathlib import Path

SECRET = b"bench-app-secret"
RECORD = [
    ("ph", "+1 (650) 555-1234"),
    ("em", " Sheena.Nelson@Example.com "),
    ("fn", "Sheena"),
    ("ln", "Nelson"),
    ("ct", "Menlo Park"),
    ("zp", "94025-1234"),
]


def per_op(fn, min_seconds=2.0, min_iterations=20):
    """Mean microseconds per call, after a warm-up."""
    for _ in range(3):
        fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and n >= min_iterations:
            return elapsed / n * 1e6


def pywa_client():
    from pywa import WhatsApp

    return WhatsApp(
        phone_id="106540352242922",
        token="bench-token",
        server=None,
        app_secret=SECRET.decode(),
        verify_token="bench-verify",
        validate_updates=True,
        skip_duplicate_updates=False,
        filter_updates=False,
    )


def split_per_message(body):
    """The same messages as one webhook body per message (what pywa can take whole)."""
    doc = json.loads(body)
    out = []
    for entry in doc["entry"]:
        for change in entry["changes"]:
            single = {"object": doc["object"], "entry": [{"id": entry["id"], "changes": [change]}]}
            out.append(json.dumps(single, separators=(",", ":")).encode())
    return out


def pywa_many(bodies):
    """pywa validating and parsing each body of a list (one message each)."""
    from pywa import handlers

    wa = pywa_client()
    seen = []
    wa.add_handlers(handlers.MessageHandler(lambda _client, msg: seen.append(msg.id)))
    signed = [(b, "sha256=" + hmac.new(SECRET, b, hashlib.sha256).hexdigest()) for b in bodies]

    def once():
        for body, signature in signed:
            assert wa.webhook_update_validator(body, signature) is None
            wa.webhook_update_handler(body)

    once()
    assert len(seen) == len(bodies), f"pywa parsed {len(seen)} of {len(bodies)} messages"
    return per_op(once)


def pywa_ingest(body, expected=None):
    from pywa import handlers

    wa = pywa_client()
    seen = []
    wa.add_handlers(handlers.MessageHandler(lambda _client, msg: seen.append(msg.id)))
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()

    def once():
        assert wa.webhook_update_validator(body, signature) is None
        wa.webhook_update_handler(body)

    once()
    if expected is None:
        doc = json.loads(body)
        expected = sum(
            len(change["value"].get("messages", []))
            for entry in doc["entry"]
            for change in entry["changes"]
        )
    assert len(seen) == expected, f"pywa parsed {len(seen)} of {expected} messages"
    return per_op(once)


def facebook_business_hashing():
    from facebook_business.adobjects.serverside.normalize import Normalize

    def once():
        for key, value in RECORD:
            Normalize.normalize_field(key, value)

    return per_op(once)


def main():
    root = Path(__file__).resolve().parents[2]
    logging.disable(logging.CRITICAL)
    small = (root / "examples/webhooks/01-text-from-ctwa-ad.json").read_bytes()
    large = (root / "target/bench-inputs/1000_messages_3mb.json").read_bytes()
    results = {
        "pywa_verify_parse_2kb": pywa_ingest(small),
        # pywa reads only entry[0].changes[0]: on these bytes it parses 1 message of 1,000.
        "pywa_verify_parse_3mb_same_bytes": pywa_ingest(large, expected=1),
        "pywa_verify_parse_3mb_as_1000_posts": pywa_many(split_per_message(large)),
        "facebook_business_normalise_hash_record": facebook_business_hashing(),
    }
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
