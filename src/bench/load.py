#!/usr/bin/python3
"""Load test of the whole product, scaled out by role, against a real PACS (Debian's Orthanc).

    /usr/bin/python3 src/bench/load.py [--studies 200] [--senders 4] [--size 512] [--mix 1:45,2:45,40:10]

Starts Orthanc (the PACS that receives the results) and the packaged gateway as three processes,
one per role: listener (with the embedded Kafka broker), worker (demo DenseNet-121 models) and
delivery (C-STORE to Orthanc). Several concurrent storescu senders then push one chest DX per
study. It prints studies/min, p50 and p95 end-to-end latency (last C-STORE of a study until both
of its SRs are in Orthanc), peak RSS of each role, and checks that every study sent was delivered
exactly once (counted by SOP Instance UID in Orthanc). Not a timed test: the figures go in the
closing note. Build first: mvn -DskipTests package.

    /usr/bin/python3 src/bench/load.py --idle [--studies 20]

Latency at idle instead: one study at a time, each sent only after the previous one's SRs arrived,
so no study waits behind another; prints p50/p95 from the end of the last C-STORE to the second SR
stored in Orthanc, against the target quiet period + 1 s. With KEEP=1 the work dir stays, and
src/bench/idle_breakdown.py WORKDIR prints where the time went, stage by stage, from the audit lines.

    /usr/bin/python3 src/bench/load.py --via-orthanc [--studies 1 --size 1024 --mix 200:1 --quiet-period 10s]

The studies go to Orthanc instead of the gateway, and Orthanc auto-routes them (a Lua OnStoredInstance
script, as in the end-to-end tests: every CR/DX it receives from a modality, one instance at a time, to the
gateway's listener); the results come back to the same Orthanc. Also prints the objects in Orthanc by kind
and series, and delivery's own counts (cxr_delivery_total, cxr_delivery_partial_jobs).
"""
import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "src", "test", "python"))
import dicom_fixtures  # noqa: E402  (synthetic chest phantoms, shared with the tests)
from pydicom.uid import generate_uid  # noqa: E402


_next_port = [int(os.environ.get("CXR_PORT_BASE", "0"))]


def free_port():
    """A free TCP port: the next free one from CXR_PORT_BASE when set (engineers sharing a machine each keep to
    their own range), else one the kernel picks."""
    while _next_port[0]:
        port = _next_port[0]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, data=None):
    req = urllib.request.Request(url, data=data.encode() if data else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wait_http(url, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise SystemExit("not ready: " + url)


def peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--size", type=int, default=512, help="rows and columns of each synthetic DX")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--idle", action="store_true", help="one study at a time: latency at idle")
    ap.add_argument("--mix", default="1:1",
                    help="images per study and their share, e.g. 1:45,2:45,40:10 (each study is sent in one association)")
    ap.add_argument("--quiet-period", default="1s", help="cxr.assembly.quiet-period of the listener")
    ap.add_argument("--via-orthanc", action="store_true",
                    help="send the studies to Orthanc, which auto-routes each DX to the gateway (Lua OnStoredInstance)")
    args = ap.parse_args()
    if args.idle and "--studies" not in sys.argv:
        args.studies = 20

    jar = os.path.join(ROOT, "target", "quarkus-app", "quarkus-run.jar")
    if not os.path.exists(jar):
        raise SystemExit("build first: mvn -DskipTests package")
    work = tempfile.mkdtemp(prefix="cxr-load-")
    procs = []
    try:
        # --- the PACS ---
        o_dicom, o_http = free_port(), free_port()
        listener_port, kafka_port, kafka_ctl = free_port(), free_port(), free_port()
        cfg = {
            "Name": "load-pacs", "StorageDirectory": f"{work}/orthanc", "IndexDirectory": f"{work}/orthanc",
            "DicomAet": "ORTHANC", "DicomPort": o_dicom, "HttpPort": o_http, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "DicomModalities": {"cxr": ["CXRGATEWAY", "127.0.0.1", listener_port]},
        }
        if args.via_orthanc:
            # what modalities send is forwarded, never what the gateway sends back (EndToEndPeers.AUTO_ROUTE)
            with open(f"{work}/route.lua", "w") as f:
                f.write("""function OnStoredInstance(instanceId, tags, metadata, origin)
  local modality = tags['Modality']
  if origin['RequestOrigin'] == 'DicomProtocol' and origin['RemoteAet'] ~= 'CXRGATEWAY'
     and (modality == 'CR' or modality == 'DX') then
    SendToModality(instanceId, 'cxr')
  end
end
""")
            cfg["LuaScripts"] = [f"{work}/route.lua"]
        with open(f"{work}/orthanc.json", "w") as f:
            json.dump(cfg, f)
        # the PACS at its best: Debian's Orthanc uses Debian's dcmtk network layer, which leaves Nagle on unless
        # TCP_NODELAY=1 is in its environment; measured here, 14 objects over one association took 0.86 s with
        # Nagle and 0.26-0.40 s without (about 40 ms of delayed ACK per object)
        procs.append(("orthanc", subprocess.Popen(["/usr/sbin/Orthanc", f"{work}/orthanc.json"],
                                                  env=dict(os.environ, TCP_NODELAY="1"),
                                                  stdout=open(f"{work}/orthanc.log", "w"), stderr=subprocess.STDOUT)))
        wait_http(f"http://127.0.0.1:{o_http}/system")

        # --- the gateway, one process per role ---
        common = [f"-Dcxr.kafka.request-timeout=30s"]
        roles = {
            "listener": [f"-Dcxr.kafka.embedded.port={kafka_port}", f"-Dcxr.kafka.embedded.controller-port={kafka_ctl}",
                         f"-Dcxr.listener.port={listener_port}", f"-Dcxr.assembly.quiet-period={args.quiet_period}"],
            "worker": [f"-Dcxr.kafka.bootstrap-servers=127.0.0.1:{kafka_port}"],
            "delivery": [f"-Dcxr.kafka.bootstrap-servers=127.0.0.1:{kafka_port}",
                         "-Dcxr.delivery.pacs.orthanc.host=127.0.0.1", f"-Dcxr.delivery.pacs.orthanc.port={o_dicom}",
                         "-Dcxr.delivery.pacs.orthanc.called-ae=ORTHANC"],
        }
        http_ports = {}
        for role, opts in roles.items():
            http_ports[role] = free_port()
            cmd = ["java", "-Xmx2g", f"-Dcxr.roles={role}", f"-Dcxr.data-dir={work}/{role}",
                   f"-Dquarkus.http.port={http_ports[role]}"] + common + opts + ["-jar", jar]
            procs.append((role, subprocess.Popen(cmd, stdout=open(f"{work}/{role}.log", "w"), stderr=subprocess.STDOUT)))
            # the listener owns the broker: the others start once it is up
            wait_http(f"http://127.0.0.1:{http_ports[role]}/q/health/ready", timeout=300)
        print(f"PACS and gateway roles ready (work dir {work})", flush=True)

        # --- the studies ---
        mix = [(int(n), int(w)) for n, w in (part.split(":") for part in args.mix.split(","))]
        cycle = [n for n, w in mix for _ in range(w)]
        files = []
        images = 0
        sent_sops = set()
        for i in range(args.studies):
            study = generate_uid()
            paths = []
            # one phantom per study (its images differ by UIDs): a 3000x3000 phantom takes seconds to make
            pixels = dicom_fixtures.phantom(args.size, args.size, 12, seed=i).tobytes()
            for k in range(cycle[i % len(cycle)]):
                ds = dicom_fixtures.base(dicom_fixtures.DX, "DX", study, args.size, args.size, 12)
                ds.InstanceNumber = k + 1
                ds.PixelData = pixels
                sent_sops.add(ds.SOPInstanceUID)
                path = f"{work}/study-{i:04d}-{k:03d}.dcm"
                ds.save_as(path, write_like_original=False)
                paths.append(path)
            images += len(paths)
            files.append((study, paths))
        print(f"{args.studies} studies, {images} images (mix {args.mix})", flush=True)

        sent_at = {}
        failures = []
        env = dict(os.environ, TCP_NODELAY="1")
        lock = threading.Lock()

        def send(item):
            study, paths = item
            target = ["-aet", "MODALITY", "-aec", "ORTHANC", "127.0.0.1", str(o_dicom)] if args.via_orthanc \
                else ["-aec", "CXRGATEWAY", "127.0.0.1", str(listener_port)]
            r = subprocess.run(["storescu"] + target + paths,
                               env=env, capture_output=True, text=True)
            with lock:
                sent_at[study] = time.time()
            if r.returncode != 0:
                print(f"BENCH FAILED: storescu failed for {study}: {r.stdout}{r.stderr}", file=sys.stderr)
                failures.append(study)

        # --- watch the PACS for the SRs (two per study: chest14 and covid3) ---
        arrived = {}
        srs_per_study = {}
        sr_images = {}
        seen = set()
        since = 0

        def watch(until_count, deadline):
            nonlocal since
            while len(arrived) < until_count and time.time() < deadline:
                changes = http_json(f"http://127.0.0.1:{o_http}/changes?since={since}&limit=1000")
                # an SR has arrived when Orthanc's change feed first lists it: the time of this answer, taken
                # before the tags are read, so reading them does not count as latency
                seen_at = time.time()
                for ch in changes["Changes"]:
                    if ch["ChangeType"] == "NewInstance" and ch["ID"] not in seen:
                        seen.add(ch["ID"])
                        tags = http_json(f"http://127.0.0.1:{o_http}/instances/{ch['ID']}/simplified-tags")
                        if tags.get("Modality") == "SR":
                            st = tags["StudyInstanceUID"]
                            # the SR covers its whole study: count the images its evidence references
                            full = http_json(f"http://127.0.0.1:{o_http}/instances/{ch['ID']}/tags?simplify")
                            # (the evidence lists the derived SCs and maps too: count the images sent)
                            refs = sum(1 for ev in full.get("CurrentRequestedProcedureEvidenceSequence", [])
                                       for series in ev.get("ReferencedSeriesSequence", [])
                                       for ref in series.get("ReferencedSOPSequence", [])
                                       if ref.get("ReferencedSOPInstanceUID") in sent_sops)
                            sr_images.setdefault(st, []).append(refs)
                            srs_per_study[st] = srs_per_study.get(st, 0) + 1
                            if srs_per_study[st] == 2:
                                arrived[st] = seen_at
                since = changes["Last"]
                if changes["Done"]:
                    # at idle the feed is read every 10 ms (a local HTTP GET of a few hundred bytes), so arrival is
                    # seen within about 10 ms of Orthanc indexing the SR; under load every 200 ms is plenty
                    time.sleep(0.01 if args.idle else 0.2)

        start = time.time()
        deadline = start + args.timeout
        if args.idle:
            for k, f in enumerate(files):
                send(f)
                watch(k + 1, min(deadline, time.time() + 120))
                if len(arrived) != k + 1:
                    raise SystemExit(f"BENCH FAILED: study {k + 1} was not delivered within 120 s")
                time.sleep(1.0)  # idle between studies
        else:
            sender_pool = ThreadPoolExecutor(max_workers=args.senders)
            futures = [sender_pool.submit(send, f) for f in files]
            watch(args.studies, deadline)
            for f in futures:
                f.result()
            sender_pool.shutdown()
        elapsed = time.time() - start
        if args.via_orthanc:
            # a study split by the routing would bring a later revision: look a while longer for more SRs
            watch(float("inf"), time.time() + 20)

        latencies = sorted(arrived[s] - sent_at[s] for s in arrived if s in sent_at)
        stats = http_json(f"http://127.0.0.1:{o_http}/statistics")
        # nearest rank: the smallest latency with at least a fraction q of the studies at or below it (p95 of 20 is
        # the 19th, not the slowest)
        p = lambda q: latencies[max(0, math.ceil(q * len(latencies)) - 1)] if latencies else float("nan")
        print(f"studies sent {args.studies}, delivered {len(arrived)} "
              f"({stats['CountInstances']} instances in the PACS, unique SOP Instance UIDs)")
        print(f"throughput {len(arrived) / elapsed * 60:.1f} studies/min ({images / elapsed * 60:.0f} images/min) over "
              f"{elapsed:.1f} s with {args.senders} concurrent senders, {args.size}x{args.size} 12-bit DX, mix {args.mix}")
        print(f"RESULT {'idle' if args.idle else 'load'}_studies_per_min={len(arrived) / elapsed * 60:.1f}")
        print(f"end-to-end latency p50 {p(0.50):.2f} s, p95 {p(0.95):.2f} s"
              + (f" (one study at a time, quiet period {args.quiet_period}; target p95 <= quiet period + 1 s)" if args.idle else ""))
        if args.idle:
            print("latencies in order of size (s): " + " ".join(f"{x:.2f}" for x in latencies))
        mode = "idle" if args.idle else "load"
        print(f"RESULT {mode}_latency_p50_s={p(0.50):.2f}")
        print(f"RESULT {mode}_latency_p95_s={p(0.95):.2f}")
        for role, proc in procs:
            if role != "orthanc":
                print(f"peak RSS {role}: {peak_rss_mb(proc.pid):.0f} MB")
        # the message-size bound, as the producers saw it (gauge cxr_kafka_largest_message_bytes{topic})
        largest = 0
        for role in ("listener", "worker"):
            if role not in http_ports:
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{http_ports[role]}/q/metrics", timeout=30) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith("cxr_kafka_largest_message_bytes{"):
                        print(f"largest message produced by {role}: {line}")
                        largest = max(largest, int(float(line.rsplit(" ", 1)[1])))
        print(f"RESULT {mode}_largest_message_bytes={largest} (limit 1048576)")
        if args.via_orthanc:
            kinds = {}
            for iid in http_json(f"http://127.0.0.1:{o_http}/instances"):
                t = http_json(f"http://127.0.0.1:{o_http}/instances/{iid}/simplified-tags")
                k = (t.get("Modality"), t.get("SOPClassUID"), t.get("SeriesDescription", ""))
                kinds[k] = kinds.get(k, 0) + 1
            for (modality, sop_class, series), n in sorted(kinds.items(), key=lambda x: str(x[0])):
                print(f"in Orthanc: {n} x {modality} {sop_class} '{series}'")
            with urllib.request.urlopen(f"http://127.0.0.1:{http_ports['delivery']}/q/metrics", timeout=30) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(("cxr_delivery_total{", "cxr_delivery_partial_jobs", "cxr_delivery_pending{")):
                        print(f"delivery: {line}")
        sizes = {study: len(paths) for study, paths in files}
        partial = {s: refs for s, refs in sr_images.items() if any(r != sizes.get(s) for r in refs)}
        print(f"every SR references all images of its study: {not partial}"
              + (f" (mismatches: {dict(list(partial.items())[:5])})" if partial else ""))
        ok = (not failures and len(arrived) == args.studies and all(v == 2 for v in srs_per_study.values())
              and not partial)
        print("delivered == sent, exactly once" if ok else "MISMATCH: delivered != sent")
        return 0 if ok else 1
    finally:
        for _, proc in reversed(procs):
            proc.terminate()
        for _, proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
