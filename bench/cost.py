#!/usr/bin/env python3
"""What wacapi costs on AWS per 1 million webhooks, from measured figures and list prices, and the
fixed monthly cost before the first webhook.

Usage: bench/cost.py [--webhooks N] [--detailed] [--ingest-ms 5.8] [--dispatch-ms 4.1] ...

--webhooks N prices a month of N webhooks (fixed cost included); without it the table is per
1 million webhooks and the fixed cost a line of its own, for the default metrics and for
--detailed (the module's detailed_metrics).

The custom metric series are counted from the code's metric catalogue
(shared/src/metrics/catalogue.json: every metric, its dimension sets by default and with detailed
metrics, and whether it is published with traffic or only on incidents), the alarms from
infra/monitoring.tf, the secrets from infra/secrets.tf: nothing about them is typed here.

Durations: --ingest-ms and --dispatch-ms are the functions' own time per invocation as measured by
tests/benches/lambda_footprint.rs against loopback services (BENCHMARKS.md); on AWS each service
call adds a network round trip (--aws-call-ms) and each Graph request Meta's latency
(--graph-ms), which dominate. Prices are us-east-1 list prices (see PRICES); pass --arm64 for
Graviton. Prints a markdown table.
"""

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "shared/src/metrics/catalogue.json"
MONITORING = ROOT / "infra/monitoring.tf"
SECRETS = ROOT / "infra/secrets.tf"
HOURS_PER_MONTH = 730

# us-east-1 list prices (USD), as published on the AWS pricing pages in 2025-2026 (DynamoDB
# on-demand after its November 2024 price cut). Check the AWS Pricing Calculator for your region.
PRICES = {
    "http_api_per_million": 1.00,  # API Gateway HTTP API, first 300 M requests/month
    "lambda_request_per_million": 0.20,
    "lambda_gb_s_x86": 0.0000166667,
    "lambda_gb_s_arm": 0.0000133334,
    "sqs_fifo_per_million": 0.50,  # per 64 KB request chunk
    "ddb_wru_per_million": 0.625,  # on-demand write request units
    "ddb_rru_per_million": 0.125,  # on-demand read request units
    "logs_ingest_per_gb": 0.50,
    "custom_metric_month": 0.30,  # first 10,000 metrics
    "secret_month": 0.40,
    "kms_key_month": 1.00,
    "alarm_metric_month": 0.10,  # standard-resolution alarm, per metric it reads
}


def metric_series(detailed, a):
    """(traffic series, incident series) the catalogue publishes, with each dimension taking
    its typical number of values (the catalogue's, overridden by the flags)."""
    cat = json.loads(CATALOGUE.read_text())
    values = dict(cat["values"])
    values.update({"Channel": a.channels, "Destination": a.destinations, "Rule": a.rules,
                   "EventName": a.event_names, "Key": a.match_keys})
    uses = {"events_api": a.events_api, "tiktok": a.destinations > 1}
    traffic = incident = 0
    for m in cat["metrics"]:
        if m.get("uses") and not uses[m["uses"]]:
            continue
        sets = m["sets"] + (m.get("detailed", []) if detailed else [])
        n = 0
        for dims in sets:
            count = 1
            for d in dims:
                count *= values[d]
            n += count
        if m["when"] == "traffic":
            traffic += n
        else:
            incident += n
    return traffic, incident


def _blocks(text, header):
    """The bodies of every block whose opening line matches `header` (brace-matched)."""
    out = []
    for match in re.finditer(header, text):
        depth, i = 0, text.index("{", match.start())
        start = i
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out.append(text[start + 1:i])
    return out


def _top_level_keys(inline):
    """How many `key = value` pairs an HCL object body holds at its own level."""
    depth, keys = 0, 0
    for match in re.finditer(r"[{}]|\b[a-z0-9_-]+\s*=(?!=)", inline):
        token = match.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
        elif depth == 0:
            keys += 1
    return keys


def alarm_metrics():
    """Metrics read by the module's alarms (an alarm is billed per metric it reads)."""
    text = MONITORING.read_text()
    locals_text = "".join(_blocks(text, r"(?m)^locals \{"))
    wacapi_alarms = _blocks(locals_text, r"wacapi_alarms\s*=\s*\{")[0]
    named = _top_level_keys(wacapi_alarms)
    total = 0
    for body in _blocks(text, r'resource "aws_cloudwatch_metric_alarm"'):
        instances = 1
        each = re.search(r"for_each\s*=\s*(local\.wacapi_alarms|\{)", body)
        if each and each.group(1).startswith("local"):
            instances = named
        elif each:
            inline = _blocks(body[each.start():], r"for_each\s*=\s*\{")[0]
            instances = _top_level_keys(inline)
        metrics = max(1, len(re.findall(r"(?m)^\s*metric\s*\{", body)))
        total += instances * metrics
    return total


def fixed_costs(detailed, a):
    traffic, incident = metric_series(detailed, a)
    series = traffic + incident * a.incident_hours / HOURS_PER_MONTH
    secrets = len(re.findall(r'(?m)^resource "aws_secretsmanager_secret"', SECRETS.read_text()))
    alarms = alarm_metrics()
    return [
        (f"custom metrics: {traffic} series published with traffic"
         + (f", {incident} on incidents ({a.incident_hours:g} h a month each)" if a.incident_hours else
            f" ({incident} more only on incidents, billed by the hour)"),
         series * PRICES["custom_metric_month"]),
        (f"{secrets} secrets", secrets * PRICES["secret_month"]),
        ("alarm topic KMS key", PRICES["kms_key_month"]),
        (f"{alarms} alarm metrics", alarms * PRICES["alarm_metric_month"]),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--webhooks", type=float, default=None,
                   help="webhooks in a month: print that month's cost, fixed cost included")
    p.add_argument("--detailed", action="store_true",
                   help="the module's detailed_metrics: breakdowns by event name, rule and match key")
    p.add_argument("--channels", type=int, default=1, help="channels in use (WhatsApp, Messenger, Instagram)")
    p.add_argument("--destinations", type=int, default=1, help="2 with a TikTok event set")
    p.add_argument("--events-api", type=int, default=1, choices=[0, 1], help="POST /events in use")
    p.add_argument("--event-names", type=int, default=4, help="event names sent in a month (detailed)")
    p.add_argument("--rules", type=int, default=4, help="rules that fire in a month (detailed)")
    p.add_argument("--match-keys", type=int, default=4, help="match keys sent (detailed)")
    p.add_argument("--incident-hours", type=float, default=0,
                   help="hours a month the incident-only metrics are published")
    p.add_argument("--signals-per-webhook", type=float, default=1.0, help="messages per webhook")
    p.add_argument("--click-keys", type=float, default=3,
                   help="keys a click is written under (2 identities, plus its click id with an automatic_events rule, as the shipped configurations have)")
    p.add_argument("--clicks-per-signal", type=float, default=0.3, help="share of messages carrying an ad click")
    p.add_argument("--events-per-signal", type=float, default=0.3, help="events the rules produce per signal")
    p.add_argument("--records-per-batch", type=float, default=3.0, help="SQS records per dispatch invocation")
    p.add_argument("--aggregates-per-batch", type=float, default=1.9,
                   help="distinct report aggregates a batch adds to (its events' ad/rule/event keys and skip reasons)")
    p.add_argument("--ingest-ms", type=float, default=5.8, help="measured warm ingest invocation, loopback")
    p.add_argument("--dispatch-ms", type=float, default=3.6, help="measured dispatch CPU per 10-record batch (lambda_footprint)")
    p.add_argument("--aws-call-ms", type=float, default=8.0, help="one SQS/DynamoDB call's round trip on AWS")
    p.add_argument("--graph-ms", type=float, default=200.0, help="one Graph API request's latency")
    p.add_argument("--memory-mb", type=float, default=256)
    p.add_argument("--log-kb-per-webhook", type=float, default=1.5, help="JSON logs and EMF documents")
    p.add_argument("--bsp-markup-per-message", type=float, default=0.002,
                   help="illustrative per-message markup of a BSP's conversion tracking, to compare")
    p.add_argument("--arm64", action="store_true")
    a = p.parse_args()

    month = a.webhooks is not None
    n = a.webhooks if month else 1_000_000
    signals = n * a.signals_per_webhook
    batches = signals / a.records_per_batch
    events = signals * a.events_per_signal
    clicks = signals * a.clicks_per_signal
    gb = a.memory_mb / 1024
    gb_s_price = PRICES["lambda_gb_s_arm" if a.arm64 else "lambda_gb_s_x86"]

    # Ingest: one SQS SendMessageBatch per webhook (plus the secret, cached).
    ingest_ms = a.ingest_ms + a.aws_call_ms
    # Dispatch per batch: one BatchGetItem, one TransactWriteItems claiming, one TransactWriteItems
    # marking sent and adding to the report, one Graph request (when the batch has events), the
    # DLQ untouched in the common case.
    dispatch_ms = a.dispatch_ms + 3 * a.aws_call_ms + (a.graph_ms if events else 0)

    rows = [
        ("API Gateway HTTP API", f"{n:,.0f} requests", n / 1e6 * PRICES["http_api_per_million"]),
        ("Lambda requests", f"{n + batches:,.0f} invocations",
         (n + batches) / 1e6 * PRICES["lambda_request_per_million"]),
        ("Lambda ingest duration", f"{n * ingest_ms / 1000 * gb:,.0f} GB-s ({ingest_ms:.1f} ms each)",
         n * ingest_ms / 1000 * gb * gb_s_price),
        ("Lambda dispatch duration", f"{batches * dispatch_ms / 1000 * gb:,.0f} GB-s ({dispatch_ms:.0f} ms per batch)",
         batches * dispatch_ms / 1000 * gb * gb_s_price),
        # send batch per webhook; the event source's receive and delete per batch.
        ("SQS FIFO requests", f"{n + 2 * batches:,.0f} requests",
         (n + 2 * batches) / 1e6 * PRICES["sqs_fifo_per_million"]),
        # A click: a transactional write (2 WRU) under each of ~3 keys (two identities and, with
        # an automatic_events rule, its click id: --click-keys); an event: a claim and a sent mark
        # (2 WRU each, transactional); a lookup: a consistent read of ~2 keys.
        ("DynamoDB writes", f"{clicks * 2 * a.click_keys + events * 4:,.0f} WRU",
         (clicks * 2 * a.click_keys + events * 4) / 1e6 * PRICES["ddb_wru_per_million"]),
        # The conversion report: each batch ADDs to its aggregates (items under 1 KB, 2 WRU each
        # in the marking transaction).
        ("DynamoDB report aggregates", f"{batches * a.aggregates_per_batch * 2:,.0f} WRU",
         batches * a.aggregates_per_batch * 2 / 1e6 * PRICES["ddb_wru_per_million"]),
        ("DynamoDB reads", f"{events * 2:,.0f} RRU", events * 2 / 1e6 * PRICES["ddb_rru_per_million"]),
        ("CloudWatch Logs", f"{n * a.log_kb_per_webhook / 1e6:,.2f} GB",
         n * a.log_kb_per_webhook / 1e6 * PRICES["logs_ingest_per_gb"]),
    ]
    variable = sum(r[2] for r in rows)
    fixed = fixed_costs(a.detailed, a)
    fixed_total = sum(f[1] for f in fixed)
    setting = "detailed metrics" if a.detailed else "default metrics"
    print(f"| {'a month of ' if month else 'per '}{n:,.0f} webhooks ({a.signals_per_webhook:g} message each, {a.events_per_signal:g} event per message, "
          f"{'arm64' if a.arm64 else 'x86_64'}, {a.memory_mb:.0f} MB, {setting}) | volume | USD |")
    print("|---|---|---|")
    for name, volume, cost in rows:
        print(f"| {name} | {volume} | {cost:,.2f} |")
    if month:
        for name, cost in fixed:
            print(f"| fixed: {name} | | {cost:,.2f} |")
        print(f"| **total for the month** | | **{variable + fixed_total:,.2f}** |")
        print(f"| of which fixed (before the first webhook) | | {fixed_total:,.2f} |")
    else:
        print(f"| **total, per {n:,.0f} webhooks** | | **{variable:,.2f}** |")
        print(f"| fixed per month ({setting}): {', '.join(f[0] for f in fixed)} | | {fixed_total:,.2f} |")
        other = fixed_costs(not a.detailed, a)
        print(f"| fixed per month with {'default' if a.detailed else 'detailed'} metrics instead: {other[0][0]} | | {sum(f[1] for f in other):,.2f} |")
    bsp = signals * a.bsp_markup_per_message
    print(f"| for comparison: a per-message markup of ${a.bsp_markup_per_message:g} on the same messages | | {bsp:,.2f} |")


if __name__ == "__main__":
    main()
