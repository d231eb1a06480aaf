# Attack: a flood of sessions/new that never connect, then GET /metrics latency
# while they expire (the never-connected timeout is 60 s). Prints one JSON object.
# usage: session_flood.py BIN PORT MPORT LOG [N] [THREADS]
import os, sys, threading, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
N = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
T = int(sys.argv[6]) if len(sys.argv) > 6 else 8
p = start_server(BIN, PORT, MPORT, LOG)
res = {"N": N, "threads": T}
try:
    counter = {"ok": 0, "fail": 0}; lock = threading.Lock()
    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        for i in range(k):
            try:
                c.request("POST", f"/v1/apps/{APP}/sessions/new", body=b"", headers=HDR)
                r = c.getresponse(); r.read()
                with lock: counter["ok" if 200 <= r.status < 300 else "fail"] += 1
            except Exception:
                with lock: counter["fail"] += 1
                c.close(); c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        c.close()
    t0 = time.monotonic(); c0 = cpu_ticks(p.pid)
    ths = [threading.Thread(target=worker, args=(N // T,)) for _ in range(T)]
    for t in ths: t.start()
    for t in ths: t.join()
    res["flood_s"] = round(time.monotonic() - t0, 2); res.update(counter)
    res["flood_cpu_s"] = (cpu_ticks(p.pid) - c0) / CLK
    m, _ = metrics(PORT); res["metrics_after_flood"] = metric_lines(m, ("drop", "packets_in"))
    while time.monotonic() - t0 < 55: time.sleep(0.05)
    lat = []; errs = 0; cpus = []
    cw0 = cpu_ticks(p.pid); tw0 = time.monotonic()
    nxt = t0 + 55
    while time.monotonic() - t0 < 90:
        cpus.append((time.monotonic(), cpu_ticks(p.pid)))
        try:
            _, dt = metrics(PORT, timeout=35); lat.append(dt)
        except Exception: errs += 1
        nxt += 0.2
        s = nxt - time.monotonic()
        if s > 0: time.sleep(s)
        else: nxt = time.monotonic()
    cw1 = cpu_ticks(p.pid); tw1 = time.monotonic()
    lat.sort()
    pk = 0.0
    for i in range(len(cpus)):
        for j in range(i, len(cpus)):
            if cpus[j][0] - cpus[i][0] >= 1.0:
                pk = max(pk, (cpus[j][1] - cpus[i][1]) / CLK / (cpus[j][0] - cpus[i][0])); break
    res["cpu_peak_1s_pct"] = round(pk * 100, 1)
    res["polls"] = len(lat); res["poll_errs"] = errs
    res["max_ms"] = round(lat[-1] * 1000, 1); res["p99_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1)
    res["p50_ms"] = round(lat[len(lat) // 2] * 1000, 1)
    res["cpu_window_s"] = (cw1 - cw0) / CLK; res["window_s"] = round(tw1 - tw0, 1)
    res["cpu_pct_window"] = round(100 * (cw1 - cw0) / CLK / (tw1 - tw0), 1)
    m, _ = metrics(PORT); res["metrics_end"] = metric_lines(m, ("drop", "packets_in"))
    res["rss_kb_end"] = rss_kb(p.pid)
finally:
    stop_server(p)
print(json.dumps(res, indent=1))
