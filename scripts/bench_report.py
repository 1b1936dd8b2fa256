#!/usr/bin/env python3
"""Turns the JSON figures of scripts/bench.sh into the Markdown table of the README and
target/bench/results.json. Usage: bench_report.py RESULTS_DIR CUSTOMERS SECONDS, or
bench_report.py --rebuild-only RESULTS_DIR CUSTOMERS (BENCH_REBUILD_ONLY=1)"""
import json
import os
import platform
import sys

rebuild_only = sys.argv[1] == "--rebuild-only"
if rebuild_only:
    results_dir, customers, seconds = sys.argv[2], int(sys.argv[3]), 0
else:
    results_dir, customers, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
machine = f"{os.cpu_count()} cores, {platform.machine()}, Linux {platform.release()}"


def load(name):
    with open(os.path.join(results_dir, name + ".json")) as handle:
        return json.load(handle)


def ratio(a, b):
    return a / b if b else 0.0


def table(title, rows):
    print(title + "\n")
    print("| scenario | measure | result | target | met |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['measure']} | {r['value']} | {r['target']} | {'yes' if r['met'] else 'no'} |")


def rebuild_rows(rebuild, consume, footprint, raw_json_bytes):
    """The rebuild's rate against a bare consumer, and what it left: peak RSS and disk, per customer."""
    rate = ratio(rebuild["eventsRead"], rebuild["seconds"])
    n = max(rebuild["customers"], 1)
    return rate, [
        {"scenario": f"rebuild: {rebuild['eventsRead']:,} events from offset 0", "measure": "events/s",
         "value": f"{rate:,.0f}/s ({rebuild['seconds']:.1f} s)", "target": "≥ 100,000/s", "met": rate >= 100_000},
        {"scenario": "ceiling: a bare consumer reading the topic", "measure": "events/s; rebuild / ceiling",
         "value": f"{consume['perSecond']:,.0f}/s; {ratio(rate, consume['perSecond']):.2f}",
         "target": "ratio ≥ 0.5", "met": ratio(rate, consume["perSecond"]) >= 0.5},
        {"scenario": "rebuild's peak RSS", "measure": "MiB; bytes per customer",
         "value": f"{footprint['peakRssKib'] / 1024:,.0f} MiB; {footprint['peakRssKib'] * 1024 / n:,.0f} B",
         "target": "≤ 512 MiB at 1M", "met": n > 1_000_000 or footprint["peakRssKib"] <= 512 * 1024},
        {"scenario": "rebuilt data dir", "measure": "bytes per customer; data dir / raw JSON",
         "value": f"{footprint['dataBytes'] / n:,.0f} B; {ratio(footprint['dataBytes'], raw_json_bytes):.2f}×",
         "target": "≤ 3×", "met": ratio(footprint["dataBytes"], raw_json_bytes) <= 3},
    ]


def replica_rows():
    """A snapshot of the read model, and a new replica's time to ready from it against from offset 0."""
    snapshot = load("snapshot")
    from_snapshot, from_zero = load("replica-from-snapshot"), load("replica-from-zero")
    return [
        {"scenario": f"snapshot of the read model ({snapshot['takenFrom']})", "measure": "seconds; MiB",
         "value": f"{snapshot['seconds']:.1f} s; {snapshot['bytes'] / 2**20:,.0f} MiB", "target": "", "met": True},
        {"scenario": "new replica from the snapshot (restore, catch up, /readyz 200)", "measure": "seconds; from snapshot / from offset 0",
         "value": f"{from_snapshot['seconds']:.1f} s; {ratio(from_snapshot['seconds'], from_zero['seconds']):.2f}",
         "target": "", "met": True},
        {"scenario": "new replica replaying the log from offset 0 (/readyz 200)", "measure": "seconds",
         "value": f"{from_zero['seconds']:.1f} s", "target": "", "met": True},
    ]


if rebuild_only:
    produce, rebuild, consume = load("produce"), load("rebuild"), load("consume")
    footprint = load("rebuild-footprint")
    rate, rows = rebuild_rows(rebuild, consume, footprint, produce["customerJsonBytes"])
    rows.extend(replica_rows())
    table(f"Rebuild benchmark: {customers:,} customers' events produced straight to Kafka, {machine}, "
          "broker on the same machine.", rows)
    os.makedirs("target/bench", exist_ok=True)
    with open("target/bench/results.json", "w") as handle:
        json.dump({"customers": customers, "machine": machine, "produce": produce, "rebuild": rebuild,
                   "consume": consume, "footprint": footprint, "snapshot": load("snapshot"),
                   "replicaFromSnapshot": load("replica-from-snapshot"),
                   "replicaFromZero": load("replica-from-zero"), "table": rows}, handle, indent=2)
    sys.exit(0)

create, produce = load("create"), load("produce")
rebuild, consume = load("rebuild"), load("consume")
QUERY_KINDS = ("lastname", "email", "citystate", "get", "code")
queries = {kind: load("query-" + kind) for kind in QUERY_KINDS}
postgres = {kind: load("pg-" + kind) for kind in QUERY_KINDS}
footprint = load("footprint")
rebuild_rate, rebuild_table = rebuild_rows(rebuild, consume, load("rebuild-footprint"),
                                           footprint["rawJsonBytes"])
rows = []


def row(scenario, measure, value, target, met):
    rows.append({"scenario": scenario, "measure": measure, "value": value, "target": target, "met": met})


row("create over HTTP, 64 clients, acks=all", "creates/s; p50 / p99 / p99.9",
    f"{create['perSecond']:,.0f}/s; {create['p50Ms']:.1f} / {create['p99Ms']:.1f} / {create['p999Ms']:.1f} ms",
    "≥ 10,000/s", create["perSecond"] >= 10_000)
row("ceiling: the same events produced straight to Kafka", "events/s; create / ceiling",
    f"{produce['perSecond']:,.0f}/s; {ratio(create['perSecond'], produce['perSecond']):.2f}",
    "ratio ≥ 0.5", ratio(create["perSecond"], produce["perSecond"]) >= 0.5)
rows.extend(rebuild_table)
for kind, label in (("lastname", "lastName prefix (3 chars)"), ("email", "email"), ("citystate", "city + state")):
    query, pg = queries[kind], postgres[kind]
    row(f"find within an account by {label}, 32 clients", "req/s; p99; registry / PostgreSQL",
        f"{query['perSecond']:,.0f}/s; {query['p99Ms']:.2f} ms; {ratio(query['perSecond'], pg['perSecond']):.2f} "
        f"(PostgreSQL {pg['perSecond']:,.0f}/s)",
        "ratio ≥ 1.0", ratio(query["perSecond"], pg["perSecond"]) >= 1.0)
get = queries["get"]
row("get by id, 32 clients", "req/s; p99",
    f"{get['perSecond']:,.0f}/s; {get['p99Ms']:.2f} ms (PostgreSQL {postgres['get']['perSecond']:,.0f}/s)",
    "", True)
code = queries["code"]
row("find within an account by code (half the customers have codes of their own, the rest their id), 32 clients",
    "req/s; p99; registry / PostgreSQL",
    f"{code['perSecond']:,.0f}/s; {code['p99Ms']:.2f} ms; {ratio(code['perSecond'], postgres['code']['perSecond']):.2f} "
    f"(PostgreSQL {postgres['code']['perSecond']:,.0f}/s)",
    "ratio ≥ 1.0", ratio(code["perSecond"], postgres["code"]["perSecond"]) >= 1.0)
ceiling = load("query-healthz")
row("ceiling: GET /healthz (the HTTP stack's cheapest answer), 32 clients", "req/s; get / ceiling; email / ceiling",
    f"{ceiling['perSecond']:,.0f}/s; {ratio(get['perSecond'], ceiling['perSecond']):.2f}; "
    f"{ratio(queries['email']['perSecond'], ceiling['perSecond']):.2f}",
    "ratios ≥ 0.5", min(ratio(get["perSecond"], ceiling["perSecond"]),
                        ratio(queries["email"]["perSecond"], ceiling["perSecond"])) >= 0.5)
updates = {mode: load("update-" + mode) for mode in ("unconditional", "conditional", "keyed")}
postgres["update"] = load("pg-update")
for mode, label in (("unconditional", "unconditional"), ("conditional", "GET, then If-Match"),
                    ("keyed", "with a new Idempotency-Key")):
    update = updates[mode]
    overtaken = f"; {update['overtaken']} overtaken (412)" if update["overtaken"] else ""
    row(f"update ({label}), 64 clients, random customers", "updates/s; p50 / p99; registry / PostgreSQL",
        f"{update['perSecond']:,.0f}/s; {update['p50Ms']:.1f} / {update['p99Ms']:.1f} ms; "
        f"{ratio(update['perSecond'], postgres['update']['perSecond']):.2f} "
        f"(PostgreSQL {postgres['update']['perSecond']:,.0f}/s){overtaken}",
        "no errors", update["errors"] == 0)
rows.extend(replica_rows())
disk_ratio = ratio(footprint["dataBytes"], footprint["rawJsonBytes"])
row(f"footprint at {customers:,} customers", "RSS; data dir / raw JSON",
    f"{footprint['rssKib'] / 1024:,.0f} MiB; {disk_ratio:.1f}×", "RSS ≤ 1 GiB; disk ≤ 3×",
    footprint["rssKib"] <= 1024 * 1024 and disk_ratio <= 3)

table(f"Benchmark: {customers:,} customers, {seconds} s per query scenario, {machine}, "
      "broker on the same machine.", rows)

# Open loop: each scenario at a constant arrival rate, a share of the peak its closed-loop run
# measured; latency from each request's intended start. Targets are read at 50 %.
OPEN_KINDS = (("get", "get by id", 2), ("email", "find by email", 5), ("lastname", "find by lastName prefix", 5),
              ("citystate", "find by city + state", 5), ("create", "create", None),
              ("update", "update (unconditional)", None), ("healthz", "GET /healthz (ceiling)", None))
PEAKS = {"healthz": ceiling, "create": create, "update": updates["unconditional"], **queries}
OPEN_SHARES = (25, 50, 80)
open_loop = {kind: {share: load(f"open-{kind}-{share}") for share in OPEN_SHARES} for kind, _, _ in OPEN_KINDS}
print("\nOpen loop: requests at a constant rate, a share of each scenario's closed-loop peak; "
      "latency p50 / p99 / p99.9 from each request's intended start.\n")
print("| scenario | peak (closed loop) | at 25 % | at 50 % | at 80 % | target at 50 % | met |")
print("|---|---|---|---|---|---|---|")
open_rows = []
for kind, label, p99_target in OPEN_KINDS:
    peak = PEAKS[kind]
    cells = []
    for share in OPEN_SHARES:
        run = open_loop[kind][share]
        errors = f", {run['errors']} errors" if run["errors"] else ""
        cells.append(f"{run['perSecond']:,.0f}/s: {run['p50Ms']:.2f} / {run['p99Ms']:.2f} / {run['p999Ms']:.2f} ms{errors}")
    at_half = open_loop[kind][50]
    met = p99_target is None or (at_half["p99Ms"] <= p99_target and at_half["errors"] == 0)
    target = f"p99 ≤ {p99_target} ms" if p99_target else ""
    print(f"| {label} | {peak['perSecond']:,.0f}/s | {' | '.join(cells)} | {target} | {'yes' if met else 'no'} |")
    open_rows.append({"scenario": label, "runs": open_loop[kind], "target": target, "met": met})

# The HTTP opponent (examples/opponent, a plain axum service on the same PostgreSQL): the same
# load generator, closed and open loop; each ratio is registry / opponent for throughput, and
# opponent / registry for p99 at 50 % (above 1: the registry answers sooner).
OPPONENT_KINDS = (("create", "create", create, None), ("get", "get by id", get, 1.0),
                  ("email", "find by email", queries["email"], 1.0),
                  ("lastname", "find by lastName prefix", queries["lastname"], 1.0),
                  ("citystate", "find by city + state", queries["citystate"], 1.0),
                  ("code", "find by code", code, 1.0),
                  ("update", "update (unconditional)", updates["unconditional"], None))
OPPONENT_FILES = {"create": "opponent-create", "update": "opponent-update-unconditional"}
opponent = {kind: load(OPPONENT_FILES.get(kind, "opponent-query-" + kind)) for kind, _, _, _ in OPPONENT_KINDS}
print("\nAgainst the HTTP opponent (a plain axum + tokio-postgres service on the same PostgreSQL, "
      "same routes, JSON and load generator): throughput in a closed loop, p99 at 50 % of each "
      "one's own peak in an open loop.\n")
print("| scenario | registry | opponent | registry / opponent | p99 at 50 %: registry; opponent | "
      "opponent p99 / registry p99 | target | met |")
print("|---|---|---|---|---|---|---|---|")
opponent_rows = []
for kind, label, ours, target in OPPONENT_KINDS:
    theirs = opponent[kind]
    throughput = ratio(ours["perSecond"], theirs["perSecond"])
    latency_cells, latency_ratio = "", ""
    if kind != "code":
        ours_open, theirs_open = load(f"open-{kind}-50"), load(f"opponent-open-{kind}-50")
        latency_cells = f"{ours_open['p99Ms']:.2f}; {theirs_open['p99Ms']:.2f} ms"
        latency_ratio = f"{ratio(theirs_open['p99Ms'], ours_open['p99Ms']):.2f}"
    errors = theirs["errors"]
    # An opponent that failed requests voids the comparison.
    met = errors == 0 and (target is None or throughput >= target)
    print(f"| {label} | {ours['perSecond']:,.0f}/s | {theirs['perSecond']:,.0f}/s"
          f"{f' ({errors} errors)' if errors else ''} | {throughput:.2f} | {latency_cells} | {latency_ratio} | "
          f"{f'≥ {target:.1f}' if target else ''} | {'yes' if met else 'no'} |")
    opponent_rows.append({"scenario": label, "opponent": theirs, "throughputRatio": throughput,
                          "target": target, "met": met})
print("\nThe opponent in the open loop, p50 / p99 / p99.9 at shares of its own peak:\n")
print("| scenario | peak (closed loop) | at 25 % | at 50 % | at 80 % |")
print("|---|---|---|---|---|")
for kind, label, _, _ in OPPONENT_KINDS:
    if kind == "code":
        continue
    cells = []
    for share in OPEN_SHARES:
        run = load(f"opponent-open-{kind}-{share}")
        errors = f", {run['errors']} errors" if run["errors"] else ""
        cells.append(f"{run['perSecond']:,.0f}/s: {run['p50Ms']:.2f} / {run['p99Ms']:.2f} / {run['p999Ms']:.2f} ms{errors}")
    print(f"| {label} | {opponent[kind]['perSecond']:,.0f}/s | {' | '.join(cells)} |")

os.makedirs("target/bench", exist_ok=True)
with open("target/bench/results.json", "w") as handle:
    json.dump({"customers": customers, "seconds": seconds, "machine": machine, "create": create,
               "produce": produce, "rebuild": rebuild, "consume": consume, "queries": queries,
               "updates": updates, "postgres": postgres, "footprint": footprint,
               "snapshot": load("snapshot"), "replicaFromSnapshot": load("replica-from-snapshot"),
               "replicaFromZero": load("replica-from-zero"), "ceiling": ceiling, "openLoop": open_rows,
               "opponent": opponent_rows, "table": rows}, handle, indent=2)

# A broken opponent would make every ratio against it meaningless: the run fails instead.
failed = [row["scenario"] for row in opponent_rows if row["opponent"]["errors"]]
if failed:
    sys.exit(f"bench: the HTTP opponent failed requests ({', '.join(failed)}): see opponent.log")
