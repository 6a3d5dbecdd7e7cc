#!/usr/bin/env bash
# STOW-RS ingest benchmark: our POST /dicomweb/studies (the packaged app, role "listener": the 200 only after
# every part's file and directory are fsynced) against Orthanc's own STOW-RS (Debian's orthanc-dicomweb plugin,
# POST /dicom-web/studies; Orthanc's SyncStorageArea default fsyncs its storage area too), in one run, the same
# request bodies to both, each at its best configuration:
#   - the same multipart/related bodies of BATCH instances each, built once, posted by curl (one curl, so one
#     connection, per request, the same for both; no Expect: 100-continue round trip);
#   - Orthanc: no HTTP compression, no job persistence, storage uncompressed, default HTTP threads;
#     ours: the bearer token of a static ingest token (what a PACS would send), assembly out of the timed
#     window (quiet period 10 min), as in ingest-bench.sh;
#   - interleaved runs (ours, Orthanc, ours, Orthanc ...), REPS repetitions, each server restarted on an empty
#     directory per repetition; serial (one request at a time) and parallel (PAR concurrent clients);
#   - every run checked: every request 200, and the server holds N + warm-up instances afterwards;
#   - each server timed with the machine's free memory backed by the host (prefault, in lib.sh, right before its window).
# Prints median, min and max images/s and the ratios of the medians.
#
#   src/bench/stow-bench.sh   (env: N=100 BATCH=10 REPS=3 PAR=2 WORK=target/bench/stow
#                              PREFAULT_GIB=<twice the bodies' size + 1; 0: skip>
#                              OURS_OPTS="-Dkey=value ...": extra settings for ours, e.g. -Dcxr.spool.direct-io=false)
#
# Needs: java 17, maven, orthanc + orthanc-dicomweb, curl, /usr/bin/python3 with pydicom + numpy.
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
N=${N:-100}; BATCH=${BATCH:-10}; REPS=${REPS:-3}; PAR=${PAR:-2}
WORK=${WORK:-target/bench/stow}
JAR=target/quarkus-app/quarkus-run.jar
PY=/usr/bin/python3
PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
command -v Orthanc >/dev/null || die "orthanc is not installed"
[ -f "$PLUGIN" ] || die "orthanc-dicomweb is not installed ($PLUGIN)"
command -v curl >/dev/null || die "curl is not installed"
[ $((N % BATCH)) -eq 0 ] || die "N ($N) must be a multiple of BATCH ($BATCH)"

build_app
rm -rf "$WORK"; mkdir -p "$WORK/files" "$WORK/warm" "$WORK/bodies" "$WORK/warm-bodies"
echo "generating $N synthetic 1024x1024 16-bit DX files (+ $BATCH for warm-up), bodies of $BATCH instances ..."
$PY src/test/python/dicom_fixtures.py bench "$WORK/files" "$N" || die "fixtures"
$PY src/test/python/dicom_fixtures.py bench "$WORK/warm" "$BATCH" || die "fixtures"
BOUNDARY=cxr-bench-7f3a91
$PY - "$WORK/files" "$WORK/bodies" "$WORK/warm" "$WORK/warm-bodies" "$BATCH" "$BOUNDARY" <<'PYEOF' || die "bodies"
import os, sys
def bodies(src, out, batch, boundary):
    files = sorted(f for f in os.listdir(src) if f.endswith(".dcm"))
    for k in range(0, len(files), batch):
        with open(os.path.join(out, "body-%04d.bin" % (k // batch)), "wb") as o:
            for f in files[k:k + batch]:
                o.write(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n")
                o.write(open(os.path.join(src, f), "rb").read())
                o.write(b"\r\n")
            o.write(b"--" + boundary.encode() + b"--\r\n")
bodies(sys.argv[1], sys.argv[2], int(sys.argv[5]), sys.argv[6])
bodies(sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
PYEOF
TOKEN=$($PY -c 'import secrets; print(secrets.token_hex(24))')
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
CT="multipart/related; type=\"application/dicom\"; boundary=$BOUNDARY"

PID=""
stop() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; PID=""; }
trap stop EXIT

wait_http() { # name url
  for _ in $(seq 1 240); do
    curl -sf -o /dev/null "$2" && return 0
    kill -0 "$PID" 2>/dev/null || die "$1 exited during start-up (see $WORK/*.log)"
    sleep 0.5
  done
  die "$1 did not answer $2"
}

start_ours() { # dir port
  java -Xmx2g -XX:+ExitOnOutOfMemoryError -Dcxr.roles=listener -Dcxr.data-dir="$PWD/$1" \
       -Dcxr.listener.port=0 -Dcxr.listener.bind-address=127.0.0.1 -Dcxr.assembly.quiet-period=10m \
       -Dcxr.kafka.embedded.port=0 -Dcxr.kafka.embedded.controller-port=0 -Dquarkus.http.port="$2" \
       -Dcxr.http.auth.tokens.bench.sha256="$TOKEN_SHA" -Dcxr.http.auth.tokens.bench.roles=ingest \
       ${OURS_OPTS:-} -jar "$JAR" > "$1.log" 2>&1 &
  PID=$!; wait_http cxr-gateway "http://127.0.0.1:$2/q/health/ready"
}

start_orthanc() { # dir port
  mkdir -p "$1"
  cat > "$1.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$PWD/$1/storage", "IndexDirectory": "$PWD/$1/index",
  "HttpPort": $2, "DicomPort": $(free_port), "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "HttpCompressionEnabled": false, "SaveJobs": false, "StorageCompression": false,
  "Plugins": ["$PLUGIN"], "DicomWeb": { "Enable": true, "Root": "/dicom-web/" } }
JSON
  Orthanc "$1.json" > "$1.log" 2>&1 &
  PID=$!; wait_http orthanc "http://127.0.0.1:$2/system"
}

post_all() { # url auth-header body... -> posts them one after the other; every answer must be 200
  local url=$1 auth=$2 b code; shift 2
  for b in "$@"; do
    code=$(curl -sS -o "$b.resp" -w '%{http_code}' -X POST -H "Content-Type: $CT" -H "Accept: application/dicom+json" \
           -H "Expect:" ${auth:+-H "$auth"} --data-binary @"$b" "$url") || die "curl to $url failed"
    [ "$code" = 200 ] || die "$url answered $code: $(head -c 300 "$b.resp")"
  done
}

send() { # url auth -> seconds for all bodies, PAR concurrent clients (1 for serial)
  local url=$1 auth=$2 clients=$3 t0 t1 pids=() k
  local bodies=("$WORK"/bodies/*.bin)
  t0=$(date +%s.%N)
  for k in $(seq 0 $((clients - 1))); do
    local mine=()
    for i in "${!bodies[@]}"; do [ $((i % clients)) -eq "$k" ] && mine+=("${bodies[$i]}"); done
    post_all "$url" "$auth" "${mine[@]}" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "a client posting to $url failed"; done
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

# what a timed window allocates, backed right before it: the bodies read and the server's files, with room
PREFAULT_GIB=${PREFAULT_GIB:-$(du -sb "$WORK/bodies" | awk '{ printf "%.1f", 2 * $1 / 2^30 + 1 }')}
declare -a OURS1 ORTH1 OURSP ORTHP
WARM=$BATCH
for r in $(seq 1 "$REPS"); do
  for mode in serial parallel; do
    clients=1; [ "$mode" = parallel ] && clients=$PAR
    port=$(free_port)
    start_ours "$WORK/ours-$r-$mode" "$port"
    url="http://127.0.0.1:$port/dicomweb/studies"
    post_all "$url" "Authorization: Bearer $TOKEN" "$WORK"/warm-bodies/*.bin
    prefault "$PREFAULT_GIB"
    t=$(send "$url" "Authorization: Bearer $TOKEN" "$clients")
    stored=$(find "$WORK/ours-$r-$mode/spool/studies" -name '*.dcm' | wc -l)
    [ "$stored" -eq $((N + WARM)) ] || die "our spool holds $stored files, expected $((N + WARM))"
    stop
    ours=$(awk -v n="$N" -v t="$t" 'BEGIN { printf "%.2f", n / t }')

    port=$(free_port)
    start_orthanc "$WORK/orthanc-$r-$mode" "$port"
    url="http://127.0.0.1:$port/dicom-web/studies"
    post_all "$url" "" "$WORK"/warm-bodies/*.bin
    prefault "$PREFAULT_GIB"
    t=$(send "$url" "" "$clients")
    stored=$(curl -sf "http://127.0.0.1:$port/statistics" | $PY -c 'import json,sys; print(json.load(sys.stdin)["CountInstances"])')
    [ "$stored" -eq $((N + WARM)) ] || die "Orthanc holds $stored instances, expected $((N + WARM))"
    stop
    orth=$(awk -v n="$N" -v t="$t" 'BEGIN { printf "%.2f", n / t }')
    if [ "$mode" = serial ]; then OURS1+=("$ours"); ORTH1+=("$orth"); else OURSP+=("$ours"); ORTHP+=("$orth"); fi
    echo "repetition $r, $mode: cxr-gateway $ours img/s, Orthanc STOW-RS $orth img/s"
  done
  rm -rf "$WORK"/ours-$r-* "$WORK"/orthanc-$r-*
done

read -r o1 o1min o1max <<<"$(stats "${OURS1[@]}")"
read -r s1 s1min s1max <<<"$(stats "${ORTH1[@]}")"
read -r op opmin opmax <<<"$(stats "${OURSP[@]}")"
read -r sp spmin spmax <<<"$(stats "${ORTHP[@]}")"
echo "STOW-RS images/s over $REPS interleaved repetitions of $N 1024x1024 16-bit DX, $BATCH per request (median, min-max):"
printf "  1 client:   cxr-gateway %7s (%s-%s)   Orthanc %7s (%s-%s)\n" "$o1" "$o1min" "$o1max" "$s1" "$s1min" "$s1max"
printf "  %d clients:  cxr-gateway %7s (%s-%s)   Orthanc %7s (%s-%s)\n" "$PAR" "$op" "$opmin" "$opmax" "$sp" "$spmin" "$spmax"
result stow_serial_ratio "$(awk -v a="$o1" -v b="$s1" 'BEGIN { printf "%.2f", a / b }')"
result stow_parallel_ratio "$(awk -v a="$op" -v b="$sp" 'BEGIN { printf "%.2f", a / b }')"
result stow_serial_ours_img_s "$o1"
result stow_serial_orthanc_img_s "$s1"
result stow_parallel_ours_img_s "$op"
result stow_parallel_orthanc_img_s "$sp"
