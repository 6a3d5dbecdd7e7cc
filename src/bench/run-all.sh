#!/usr/bin/env bash
# Runs every benchmark (ingest vs storescp, STOW-RS vs Orthanc's STOW-RS, inference vs ONNX Runtime and PyTorch, FHIR delivery per
# server and write mode, idle latency through Orthanc) on this machine and prints one table of their
# RESULT figures. Any failed step stops it with a non-zero exit. Takes about 15-25 minutes on 2 cores.
#   src/bench/run-all.sh
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
OUT=target/bench/run-all; mkdir -p "$OUT"
run() { # name command...
  local name=$1; shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.log" || die "$name failed (see $OUT/$name.log)"
  grep -q '^RESULT ' "$OUT/$name.log" || die "$name printed no RESULT"
}
run ingest src/bench/ingest-bench.sh
run stow src/bench/stow-bench.sh
run inference src/bench/inference-bench.sh
run fhir src/bench/fhir-bench.sh
build_app
run idle /usr/bin/python3 src/bench/load.py --idle --studies 20
echo
echo "| figure | value | conditions |"
echo "|---|---|---|"
cond() { case $1 in
  ingest_*) echo "N=${N:-200} 1024x1024 16-bit DX, TCP_NODELAY=1 both ends, PDU 131072, storescp --bit-preserving, free memory prefaulted right before each timed window, median of ${REPS:-3} interleaved runs; ours fsyncs before Success; *_equal_durability and *_durable: storescp timed until sync -f on its output returned; *_fsync_ceiling: the same files copied one by one, each fsynced with its directory; ingest_tmpfs_*: both receivers into tmpfs, 1 association (reception without the disk)" ;;
  stow_*) echo "N=${N:-100} 1024x1024 16-bit DX, ${BATCH:-10} per request, same bodies, free memory prefaulted right before each timed window, median of ${REPS:-3} interleaved runs; both fsync (ours before the 200, Orthanc SyncStorageArea)" ;;
  fp32_*|int8_*|worker_*|torch_*|peak_*|result_*) echo "DenseNet-121 224x224, batch 8, 2 threads, median of 3 interleaved runs; PyTorch at its faster memory format" ;;
  fhir_*) echo "TestResults report (4 Observations, 4 Media), ${N:-20} reports per combination, median of ${REPS:-3} interleaved runs, loopback" ;;
  idle_*) echo "one 512x512 DX study at a time, 20 in sequence, last C-STORE to both SRs in Orthanc, quiet period 1 s" ;;
  *) echo "" ;;
esac; }
cat "$OUT"/*.log | sed -n 's/^RESULT //p' | while IFS='=' read -r k v; do echo "| $k | $v | $(cond "$k") |"; done
