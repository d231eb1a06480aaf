# Attack: requests past every cap (a 9,500-m-line autoDiscover offer; 300,000-item
# tracks/update and tracks/close): status, time, response size, and how long a
# concurrent GET /metrics waits. Prints one JSON object.
# usage: caps.py BIN PORT MPORT LOG
import os, sys, threading, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__))); from common import *
BIN, PORT, MPORT, LOG = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def offer_with_mlines(n):
    start = CHROME.index("m=audio"); end = CHROME.index("m=video")
    out = CHROME[:start].replace("a=group:BUNDLE 0 1\r\n", "") + CHROME[start:end]
    out += "".join(f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:m{i}\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n" for i in range(1, n))
    return out

p = start_server(BIN, PORT, MPORT, LOG)
res = {}
try:
    s, d, _ = api(PORT, "POST", "/sessions/new")
    sid = json.loads(d)["sessionId"]
    offer = offer_with_mlines(9500)
    body = json.dumps({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": [], "autoDiscover": True})
    res["offer_bytes"] = len(offer); res["body_bytes"] = len(body)
    mt = {}
    def metrics_during():
        time.sleep(0.3)
        try:
            _, dt = metrics(PORT, timeout=300); mt["metrics_s"] = round(dt, 3)
        except Exception as e: mt["metrics_err"] = repr(e)
    th = threading.Thread(target=metrics_during); th.start()
    c0 = cpu_ticks(p.pid)
    try:
        s, d, dt = api(PORT, "POST", f"/sessions/{sid}/tracks/new", body, timeout=180)
        res["9500_status"] = s; res["9500_time_s"] = round(dt, 3); res["9500_resp_bytes"] = len(d)
        try:
            j = json.loads(d); res["9500_resp_head"] = (j.get("errorCode"), str(j.get("errorDescription"))[:120], len(j.get("tracks") or []))
        except Exception: res["9500_resp_head"] = d[:200]
    except Exception as e: res["9500_err"] = repr(e)
    th.join(); res.update({"9500_" + k: v for k, v in mt.items()})
    res["9500_cpu_s"] = (cpu_ticks(p.pid) - c0) / CLK
    res["rss_kb_after_9500"] = rss_kb(p.pid)
    # fresh session for (b)
    s, d, _ = api(PORT, "POST", "/sessions/new"); sid2 = json.loads(d)["sessionId"]
    many = "[" + "{}," * 299999 + "{}]"
    for route in ["update", "close"]:
        for which, s_ in (("fresh", sid2), ("after9500", sid)):
            b = '{"tracks": %s, "force": true}' % many
            try:
                st, d, dt = api(PORT, "PUT", f"/sessions/{s_}/tracks/{route}", b, timeout=180)
                head = d[:160].decode(errors="replace")
                res[f"{route}_{which}"] = {"status": st, "time_s": round(dt, 3), "resp_bytes": len(d), "head": head}
            except Exception as e:
                res[f"{route}_{which}"] = {"err": repr(e)}
    _, dt = metrics(PORT); res["metrics_after_s"] = round(dt, 3)
    res["rss_kb_end"] = rss_kb(p.pid)
finally:
    stop_server(p)
print(json.dumps(res, indent=1))
