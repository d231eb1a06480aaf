"""Turns the comparison's JSON reports into bench-results/compare.md and
compare.png (CPU µs per forwarded packet and p99 latency against
subscribers). Usage: report.py RESULTS_DIR "10 50 100" """
import json
import os
import sys

out, counts = sys.argv[1], [int(s) for s in sys.argv[2].split()]
servers = [("switchboard", "switchboard"), ("janus-default", "Janus (default threading)"),
           ("janus-loops2", "Janus (event_loops = 2)")]


def load(name, s):
    path = os.path.join(out, f"{name}-{s}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


rows = []
machine = None
modes = set()
for s in counts:
    for name, label in servers:
        r = load(name, s)
        if r is None:
            rows.append(f"| {s} | {label} | failed | | | | | | |")
            continue
        machine = machine or r.get("machine")
        modes.add((r.get("gro", False), r.get("busy_poll", False)))
        lat = r["latency_us"]
        rows.append(
            f"| {s} | {label} | {r['forwarded_pps']:.0f} | {fmt(r.get('server_cpu_us_per_packet'), '.2f')} "
            f"| {lat['p50']} | {lat['p99']} | {r['loss_ratio'] * 100:.3f} % | {r['payload_mismatches']} "
            f"| {r['loadgen_cpu_s'] / max(r['duration_s'], 1e-9) * 100:.0f} % |")
    sw, j2 = load("switchboard", s), load("janus-loops2", s)
    if sw and j2 and sw.get("server_cpu_us_per_packet") and j2.get("server_cpu_us_per_packet"):
        ratio = j2["server_cpu_us_per_packet"] / sw["server_cpu_us_per_packet"]
        rows.append(f"| {s} | Janus (event_loops = 2) / switchboard, CPU per packet | | {ratio:.1f}x | | | | | |")

with open(os.path.join(out, "compare.md"), "w") as f:
    f.write("# switchboard vs Janus: 1 publisher (1500 kbit/s VP8-like video, 1200-byte packets, + Opus-like audio) x S subscribers\n\n")
    if machine:
        f.write(f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores. Server pinned to core 0, load generator to core 1, "
                "inside a network namespace on loopback addresses.\n\n")
    for gro, busy in sorted(modes):
        f.write(f"Load generator: UDP GRO {'on' if gro else 'off'}, busy polling {'on' if busy else 'off'}.\n\n")
    f.write("| subscribers | server | forwarded pps | server CPU µs/packet | p50 latency µs | p99 latency µs | loss | payload mismatches | loadgen CPU |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, label in servers:
        xs, cpu, p99 = [], [], []
        for s in counts:
            r = load(name, s)
            if r and r.get("server_cpu_us_per_packet") is not None:
                xs.append(s)
                cpu.append(r["server_cpu_us_per_packet"])
                p99.append(r["latency_us"]["p99"] / 1000)
        a.plot(xs, cpu, marker="o", label=label)
        b.plot(xs, p99, marker="o", label=label)
    a.set_xlabel("subscribers")
    a.set_ylabel("server CPU µs per forwarded packet")
    a.set_yscale("log")
    b.set_xlabel("subscribers")
    b.set_ylabel("p99 latency (ms)")
    b.set_yscale("log")
    a.legend()
    a.grid(True, alpha=0.3)
    b.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "compare.png"), dpi=110)
except ImportError:
    print("matplotlib missing: no plot", file=sys.stderr)
