"""Writes the BENCHMARKS.md table from criterion's estimates and the peers' JSON."""

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def criterion_us(root, *path):
    estimates = Path(root, *path, "new", "estimates.json")
    return json.loads(estimates.read_text())["mean"]["point_estimate"] / 1000.0


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, {rustc}, Python {platform.python_version()}"


def fmt(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.2f} µs"


def main():
    crit, peers_file, command = sys.argv[1], sys.argv[2], sys.argv[3]
    peers = json.loads(Path(peers_file).read_text())
    ours = {
        "small": criterion_us(crit, "ingest", "verify_parse_split", "sample_2kb"),
        "large": criterion_us(crit, "ingest", "verify_parse_split", "1000_messages_3mb"),
        "floor_small": criterion_us(crit, "ingest", "floor_hmac_plus_json", "sample_2kb"),
        "floor_large": criterion_us(crit, "ingest", "floor_hmac_plus_json", "1000_messages_3mb"),
        "hash": criterion_us(crit, "hashing", "normalise_hash_user_record"),
        "floor_hash": criterion_us(crit, "hashing", "floor_sha256_hex_6_values"),
        "map_order": criterion_us(crit, "mapping", "order_signal"),
        "map_flow": criterion_us(crit, "mapping", "flow_signal"),
        "ser_1": criterion_us(crit, "capi_serialise", "1"),
        "ser_1000": criterion_us(crit, "capi_serialise", "1000"),
        "dispatch_10": criterion_us(crit, "dispatch", "batch_of_10_in_memory"),
    }
    rows = [
        ("verify+parse+split, 2 KB sample webhook", ours["small"], "pywa 4.5.0 validate + parse", peers["pywa_verify_parse_2kb"]),
        ("verify+parse+split, 3 MB / 1,000 messages", ours["large"], "pywa 4.5.0, the same 1,000 messages as 1,000 webhooks", peers["pywa_verify_parse_3mb_as_1000_posts"]),
        ("(same 3 MB bytes: pywa parses only the first of the 1,000 messages)", ours["large"], "pywa 4.5.0 on the same bytes", peers["pywa_verify_parse_3mb_same_bytes"]),
        ("floor: HMAC-SHA256 + serde_json parse, 2 KB", ours["floor_small"], "wacapi verify+parse+split", ours["small"]),
        ("floor: HMAC-SHA256 + serde_json parse, 3 MB", ours["floor_large"], "wacapi verify+parse+split", ours["large"]),
        ("normalise+hash one user record (6 fields)", ours["hash"], "facebook_business 26.0.3 Normalize", peers["facebook_business_normalise_hash_record"]),
        ("floor: SHA-256 hex of the 6 normalised values", ours["floor_hash"], "wacapi normalise+hash", ours["hash"]),
        ("mapping per signal (order)", ours["map_order"], "", None),
        ("mapping per signal (Flow, 5 hashed fields)", ours["map_flow"], "", None),
        ("CAPI request serialisation, 1 event", ours["ser_1"], "", None),
        ("CAPI request serialisation, 1,000 events", ours["ser_1000"], "", None),
        ("dispatcher core, one SQS batch of 10 records (in-memory store, request serialised, not sent)", ours["dispatch_10"], "", None),
        ("dispatcher core per event (the same, / 10; target ≤ 20 µs with I/O)", ours["dispatch_10"] / 10, "", None),
    ]
    # One change value of 1,000,000 contacts and 30,000 messages: linear since issue 23 (a
    # contact scan per message took 225 s on a 4.9 MB body of that shape).
    crowded = Path(crit, "split_crowded", "1m_contacts_30k_messages", "new", "estimates.json")
    if crowded.exists():
        rows.append(("split, one value of 1,000,000 contacts + 30,000 messages (225 s before issue 23's index)", criterion_us(crit, "split_crowded", "1m_contacts_30k_messages"), "", None))
    today = datetime.date.today().isoformat()
    print("# Benchmarks\n")
    print(f"Measured {today} with `{command}` on {machine()}.\n")
    print("| measure | wacapi | compared with | their figure | ratio (theirs / ours) |")
    print("|---|---|---|---|---|")
    for name, us, peer, theirs in rows:
        if theirs is None:
            print(f"| {name} | {fmt(us)} | | | |")
        else:
            print(f"| {name} | {fmt(us)} | {peer} | {fmt(theirs)} | {theirs / us:.1f}× |")
    print()
    print("Inputs are byte-identical on both sides: `examples/webhooks/01-text-from-ctwa-ad.json` and")
    print("the 1,000-message body (one message per change, as Meta batches them) that the criterion")
    print("bench writes to `target/bench-inputs/`. pywa reads only `entry[0].changes[0]` of a webhook,")
    print("so on the batched body it verifies the signature and builds 1 message, silently dropping")
    print("999; the row above it gives pywa the same 1,000 messages as 1,000 separate webhooks.")
    print("Rows without a peer have none that does the same work.")
    print()
    print("Since issue 24 each event is serialised once, by its destination, when it is mapped: the")
    print("mapping rows include that serialisation (they read 1.34 and 3.72 µs before it), and a")
    print("request's serialisation only joins the events already written (0.87 µs and 699.71 µs")
    print("before). The dispatcher core, which does both, is the row to compare across the change")
    print("(111.02 µs per batch of 10 before it, on 2026-12-02).")
    print()
    ceiling_ingest = peers["pywa_verify_parse_2kb"] / ours["floor_small"]
    ceiling_hash = peers["facebook_business_normalise_hash_record"] / ours["floor_hash"]
    print("How far a peer ratio can go: no implementation beats its floor, so the best possible ratio")
    print("is the peer's figure over the floor's: pywa over HMAC + JSON parse (2 KB) is "
          f"{ceiling_ingest:.1f}×;")
    print(f"facebook_business over six SHA-256 digests is {ceiling_hash:.1f}×. The 50× and 30× targets lie")
    print("beyond those ceilings: the peers' hot paths (hmac, hashlib, json) run in C, so what is left")
    print("to beat is Python's glue around them.")


if __name__ == "__main__":
    main()
