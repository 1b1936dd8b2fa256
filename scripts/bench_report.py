#!/usr/bin/env python3
"""Turns the JSON figures of scripts/bench.sh into the Markdown table of the README and
target/bench/results.json. Usage: bench_report.py RESULTS_DIR CUSTOMERS SECONDS"""
import json
import os
import platform
import sys

results_dir, customers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def load(name):
    with open(os.path.join(results_dir, name + ".json")) as handle:
        return json.load(handle)


def ratio(a, b):
    return a / b if b else 0.0


create, produce = load("create"), load("produce")
rebuild, consume = load("rebuild"), load("consume")
footprint = load("footprint")
queries = {kind: load("query-" + kind) for kind in ("lastname", "email", "citystate", "get")}
postgres = {kind: load("pg-" + kind) for kind in ("lastname", "email", "citystate", "get")}
rebuild_rate = ratio(rebuild["eventsRead"], rebuild["seconds"])
rows = []


def row(scenario, measure, value, target, met):
    rows.append({"scenario": scenario, "measure": measure, "value": value, "target": target, "met": met})


row("create over HTTP, 64 clients, acks=all", "creates/s; p50 / p99 / p99.9",
    f"{create['perSecond']:,.0f}/s; {create['p50Ms']:.1f} / {create['p99Ms']:.1f} / {create['p999Ms']:.1f} ms",
    "≥ 10,000/s; p99 ≤ 50 ms", create["perSecond"] >= 10_000 and create["p99Ms"] <= 50)
row("ceiling: the same events produced straight to Kafka", "events/s; create / ceiling",
    f"{produce['perSecond']:,.0f}/s; {ratio(create['perSecond'], produce['perSecond']):.2f}",
    "ratio ≥ 0.5", ratio(create["perSecond"], produce["perSecond"]) >= 0.5)
row(f"rebuild: {rebuild['eventsRead']:,} events from offset 0", "events/s",
    f"{rebuild_rate:,.0f}/s", "≥ 100,000/s", rebuild_rate >= 100_000)
row("ceiling: a bare consumer reading the topic", "events/s; rebuild / ceiling",
    f"{consume['perSecond']:,.0f}/s; {ratio(rebuild_rate, consume['perSecond']):.2f}",
    "ratio ≥ 0.5", ratio(rebuild_rate, consume["perSecond"]) >= 0.5)
for kind, label in (("lastname", "lastName prefix (3 chars)"), ("email", "email"), ("citystate", "city + state")):
    query, pg = queries[kind], postgres[kind]
    row(f"find within an account by {label}, 32 clients", "req/s; p99; registry / PostgreSQL",
        f"{query['perSecond']:,.0f}/s; {query['p99Ms']:.2f} ms; {ratio(query['perSecond'], pg['perSecond']):.2f} "
        f"(PostgreSQL {pg['perSecond']:,.0f}/s)",
        "p99 ≤ 5 ms; ratio ≥ 1.0", query["p99Ms"] <= 5 and ratio(query["perSecond"], pg["perSecond"]) >= 1.0)
get = queries["get"]
row("get by id, 32 clients", "req/s; p99",
    f"{get['perSecond']:,.0f}/s; {get['p99Ms']:.2f} ms (PostgreSQL {postgres['get']['perSecond']:,.0f}/s)",
    "p99 ≤ 2 ms", get["p99Ms"] <= 2)
disk_ratio = ratio(footprint["dataBytes"], footprint["rawJsonBytes"])
row(f"footprint at {customers:,} customers", "RSS; data dir / raw JSON",
    f"{footprint['rssKib'] / 1024:,.0f} MiB; {disk_ratio:.1f}×", "RSS ≤ 1 GiB; disk ≤ 3×",
    footprint["rssKib"] <= 1024 * 1024 and disk_ratio <= 3)

machine = f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}"
print(f"Benchmark: {customers:,} customers, {seconds} s per query scenario, {machine}, "
      "broker on the same machine.\n")
print("| scenario | measure | result | target | met |")
print("|---|---|---|---|---|")
for r in rows:
    print(f"| {r['scenario']} | {r['measure']} | {r['value']} | {r['target']} | {'yes' if r['met'] else 'no'} |")

os.makedirs("target/bench", exist_ok=True)
with open("target/bench/results.json", "w") as handle:
    json.dump({"customers": customers, "seconds": seconds, "machine": machine, "create": create,
               "produce": produce, "rebuild": rebuild, "consume": consume, "queries": queries,
               "postgres": postgres, "footprint": footprint, "table": rows}, handle, indent=2)
