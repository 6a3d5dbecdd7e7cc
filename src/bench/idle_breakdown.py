#!/usr/bin/python3
"""Where idle studies' time goes, from the audit lines of a load.py work dir (run load.py with KEEP=1):

    KEEP=1 /usr/bin/python3 src/bench/load.py --idle --studies 20
    /usr/bin/python3 src/bench/idle_breakdown.py /tmp/cxr-load-XXXX

Per stage, the median and range over the studies: RECEIVED (last instance) -> QUEUED (quiet period, assembly) ->
SCORED (worker: prepare, engine, Grad-CAM and guided maps; publish) -> DELIVERED (delivery's hand-over, building,
sending; srs_ms when the PACS got the SRs first). Where the worker published a preview (preview_ms, before the guided
maps) and delivery sent its SRs (SRS_DELIVERED), the SRs' own path is shown too. Times are the log lines' (ms, one
clock for the three roles).
"""
import os
import re
import statistics
import sys


def seconds(hms):
    h, m, s = hms.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def main(work):
    events = {}
    for role in ("listener", "worker", "delivery"):
        with open(os.path.join(work, role + ".log"), errors="replace") as f:
            for line in f:
                m = re.match(r"(\d\d:\d\d:\d\d\.\d+) .*\[cx\.audit\].* (RECEIVED|QUEUED|SCORED|SRS_DELIVERED|DELIVERED) study=(\S+)(.*)", line)
                if m:
                    kv = dict(x.split("=", 1) for x in m.group(4).split() if "=" in x)
                    # the last RECEIVED of a study is its last instance
                    events.setdefault(m.group(3), {})[m.group(2)] = (seconds(m.group(1)), kv)
    rows = []
    for e in events.values():
        if not all(k in e for k in ("RECEIVED", "QUEUED", "SCORED", "DELIVERED")):
            continue
        (r, _), (q, qk), (s, sk), (d, dk) = e["RECEIVED"], e["QUEUED"], e["SCORED"], e["DELIVERED"]
        score, publish = int(sk["score_ms"]) / 1e3, int(sk["publish_ms"]) / 1e3
        build, send = int(dk["build_ms"]) / 1e3, int(dk["send_ms"]) / 1e3
        row = {
            "last instance -> job queued (quiet period, assembly)": q - r,
            "  assembly build": int(qk["build_ms"]) / 1e3,
            "  assembly publish": int(qk["publish_ms"]) / 1e3,
            # about 0 or below: the worker often has the job before the listener logs QUEUED (after the broker's ack)
            "job queued -> consumed by the worker": s - publish - score - q,
            "worker score": score,
            "  engine": float(sk["engine_ms"]) / 1e3,
        }
        if "post_ms" in sk:
            row["  prepare (decode, preprocess)"] = float(sk["prepare_ms"]) / 1e3
            row["  post (Grad-CAM, guided maps)"] = float(sk["post_ms"]) / 1e3
            row["    of which guided maps"] = float(sk["guided_ms"]) / 1e3
        row["result encode and publish"] = publish
        start = d - send - build  # delivery's attempt began about here
        row["result published -> delivery starts (consume, hand-over)"] = start - s
        row["delivery build (all objects)"] = build
        row["delivery send (all objects)"] = send
        if "SRS_DELIVERED" in e:
            # the preview's SRs: published after the engine and the Grad-CAMs, sent while the guided maps are made
            p, pk = e["SRS_DELIVERED"]
            consumed = s - publish - score
            row["worker: consumed -> preview to the producer (preview_ms)"] = int(sk.get("preview_ms", "-1")) / 1e3
            row["delivery: preview in -> its SRs acknowledged"] = int(pk["ms"]) / 1e3
            row["TOTAL last instance -> SRs acknowledged (preview)"] = p - r
            row["  of which worker consumed -> SRs acknowledged"] = p - consumed
        elif int(dk.get("srs_ms", "-1")) >= 0:
            row["delivery start -> SRs acknowledged (srs_ms)"] = int(dk["srs_ms"]) / 1e3
            row["TOTAL last instance -> SRs acknowledged"] = start - r + int(dk["srs_ms"]) / 1e3
        row["TOTAL last instance -> everything delivered"] = d - r
        rows.append(row)
    if not rows:
        raise SystemExit("no study with all four audit events in " + work)
    print(f"{len(rows)} studies, seconds: median (min - max)")
    for k in rows[0]:
        v = [x[k] for x in rows if k in x]
        print(f"  {k:58s} {statistics.median(v):6.3f}  ({min(v):.3f} - {max(v):.3f})")


if __name__ == "__main__":
    main(sys.argv[1])
