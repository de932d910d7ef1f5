#!/usr/bin/env python3
"""Writes a synthetic Kamiyo JSONL import file for the import-throughput benchmark.

    bench/make_import_file.py --incidents 100000 --out /tmp/import.jsonl

Every record is a distinct hack (protocols x dates never collide within the merge
window), except that `--second-source` of them (a fraction) are reported again by a
second source under another spelling a day later, which the importer must merge. Half
carry a transaction hash. Deterministic for a given --seed.
"""
import argparse
import datetime
import json
import random

CHAINS = ["Ethereum", "BSC", "Arbitrum", "Polygon", "Optimism", "Base", "Avalanche", "Solana"]
TECHNIQUES = ["Reentrancy", "Price oracle manipulation", "Private key compromised",
              "Flash loan attack", "Access control", "Rug pull", "Phishing", "Logic error"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--protocols", type=int, default=5_000)
    parser.add_argument("--second-source", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    start = datetime.date(2015, 1, 1)
    per_protocol = {}
    with open(args.out, "w") as out:
        for n in range(args.incidents):
            protocol = n % args.protocols
            # Each protocol's hacks are 10 days apart: never within the 3-day window.
            k = per_protocol.get(protocol, 0)
            per_protocol[protocol] = k + 1
            date = start + datetime.timedelta(days=10 * k + rng.randrange(3))
            chain = CHAINS[rng.randrange(len(CHAINS))]
            record = {
                "source": "bench-a",
                "external_id": f"a-{n}",
                "protocol": f"Benchproto {protocol}",
                "chains": [chain],
                "date": date.isoformat(),
                "loss_usd": str(rng.randrange(1_000, 50_000_000)),
                "technique": TECHNIQUES[rng.randrange(len(TECHNIQUES))],
                "description": f"Synthetic incident {n} for the import benchmark.",
                "source_url": f"https://bench-a.example/{n}",
            }
            if rng.random() < 0.5 and chain != "Solana":
                record["tx_hashes"] = [f"0x{rng.getrandbits(256):064x}"]
            out.write(json.dumps(record) + "\n")
            if rng.random() < args.second_source:
                again = dict(record)
                again["source"] = "bench-b"
                again["external_id"] = f"b-{n}"
                again["protocol"] = f"BenchProto{protocol}"
                again["date"] = (date + datetime.timedelta(days=1)).isoformat()
                again.pop("tx_hashes", None)
                again["source_url"] = f"https://bench-b.example/{n}"
                out.write(json.dumps(again) + "\n")


if __name__ == "__main__":
    main()
