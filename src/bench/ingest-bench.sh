#!/usr/bin/env bash
# Ingest benchmark: 200 synthetic 1024x1024 16-bit DX images sent with dcmtk storescu (TCP_NODELAY=1)
# to our listener (the packaged Quarkus app, role "listener": C-STORE success only after fsync of
# the file and its directory) and to dcmtk storescp writing to disk (no fsync), in one run.
# Prints images/s for both and the ratio ours / storescp.
#
#   src/bench/ingest-bench.sh   (env: N=200 WARMUP=20 WORK=target/bench SCP_OPTS="--max-pdu 131072" to
#                                 give storescp the same PDU size our listener advertises)
#
# Needs: java 17, dcmtk, /usr/bin/python3 with pydicom + numpy; builds the app if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-200}
WARMUP=${WARMUP:-20}
WORK=${WORK:-target/bench}
JAR=target/quarkus-app/quarkus-run.jar
PY=/usr/bin/python3

[ -f "$JAR" ] || mvn -q -DskipTests package
rm -rf "$WORK"
mkdir -p "$WORK/files" "$WORK/warm-ours" "$WORK/warm-scp" "$WORK/scp-out" "$WORK/app-data"
echo "generating $N + 2x$WARMUP synthetic DX files ..."
$PY src/test/python/dicom_fixtures.py bench "$WORK/files" "$N"
$PY src/test/python/dicom_fixtures.py bench "$WORK/warm-ours" "$WARMUP"
$PY src/test/python/dicom_fixtures.py bench "$WORK/warm-scp" "$WARMUP"

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
OURS_PORT=$(free_port)
SCP_PORT=$(free_port)

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

java -Dcxr.roles=listener -Dcxr.data-dir="$PWD/$WORK/app-data" -Dcxr.listener.port="$OURS_PORT" \
     -Dcxr.listener.bind-address=127.0.0.1 -Dquarkus.http.port=0 -jar "$JAR" > "$WORK/app.log" 2>&1 &
PIDS+=($!)
storescp ${SCP_OPTS:-} -aet STORESCP -od "$WORK/scp-out" "$SCP_PORT" > "$WORK/storescp.log" 2>&1 &
PIDS+=($!)

for i in $(seq 1 120); do
  if echoscu -aec CXRGATEWAY 127.0.0.1 "$OURS_PORT" >/dev/null 2>&1 && echoscu -aec STORESCP 127.0.0.1 "$SCP_PORT" >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done

send() { # aet port dir -> seconds
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$(TCP_NODELAY=1 storescu -v -aec "$1" 127.0.0.1 "$2" "$3"/*.dcm 2>&1)
  t1=$(date +%s.%N)
  local ok
  ok=$(grep -c 'Received Store Response (Success)' <<<"$out" || true)
  local expected
  expected=$(ls "$3"/*.dcm | wc -l)
  if [ "$ok" != "$expected" ]; then echo "only $ok of $expected stored by $1" >&2; echo "$out" | tail -20 >&2; exit 1; fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

echo "warm-up ($WARMUP images each) ..."
send CXRGATEWAY "$OURS_PORT" "$WORK/warm-ours" >/dev/null
send STORESCP "$SCP_PORT" "$WORK/warm-scp" >/dev/null

echo "measuring $N images each ..."
T_SCP=$(send STORESCP "$SCP_PORT" "$WORK/files")
T_OURS=$(send CXRGATEWAY "$OURS_PORT" "$WORK/files")

STORED=$(find "$WORK/app-data/spool/studies" -name '*.dcm' | wc -l)
[ "$STORED" -eq $((N + WARMUP)) ] || { echo "spool holds $STORED files, expected $((N + WARMUP))" >&2; exit 1; }

awk -v n="$N" -v ours="$T_OURS" -v scp="$T_SCP" 'BEGIN {
  printf "cxr-gateway listener (fsync before success): %6.1f images/s (%.2f s)\n", n / ours, ours
  printf "dcmtk storescp (no fsync):                   %6.1f images/s (%.2f s)\n", n / scp, scp
  printf "ratio ours / storescp: %.2f\n", scp / ours
}'
