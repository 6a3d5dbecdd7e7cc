#!/usr/bin/env bash
# Ingest benchmark: our listener (the packaged app, role "listener": C-STORE Success only after the file
# and its directory are fsynced) against dcmtk storescp writing the same files to disk (no fsync: it has
# none), in one run, each at its best configuration:
#   - TCP_NODELAY=1 in the environment of BOTH ends (Debian's dcmtk leaves Nagle on without it);
#   - the same PDU size: both receivers advertise MAX_PDU (our cxr.listener.max-pdu-length default),
#     storescu offers the same;
#   - interleaved runs (ours, storescp, ours, storescp ...), REPS repetitions, each receiver restarted
#     on an empty directory per repetition so that no run finds the previous run's files;
#   - serial (one association) and parallel (PAR concurrent associations; storescp --fork).
#   - each receiver warmed up before its timed window to its own best: ours with WARMUP instances (default
#     1000), so that our JVM-based receiver is measured as the long-running service it is, with its hot paths
#     compiled (perf of its timed window, 2-core machine: after 20 warm-up instances the JIT compiler threads
#     took ~40% of its CPU, after 400 ~28%, after 1000 ~13%; on the Zen 4 VM, 2026-12-07, one JVM into tmpfs, the
#     compilers still spent 120-140 ms of CPU in a 200-instance window after 1000, 170-210 after 2200 and 30 after
#     3200, while ours' rate did not move beyond the noise: 304 / 298 / 317 and 401 / 443 / 419 img/s in two runs, so
#     1000 stays); storescp, which has no JIT, with SCP_WARMUP
#     (default 20) of the same instances, because a long warm-up slows it: measured 2026-12-06 on a quiet
#     2-core machine, median of 3, storescp 425 img/s after 20, 345 after 200, 138 after 1000. Most of that was
#     this VM's memory (prefault, in lib.sh); with the memory backed, into tmpfs, in its default mode (before
#     --bit-preserving, below), it still ran at 244-306 after 1000 against 301-372 after 20. Its warm-up files are
#     synced before its timed window, as ours are already durable.
#   - each receiver's files deleted as soon as its run is counted, before the other receiver starts: storescp used
#     to run beside the 2.4 GB our run had just written, still in the page cache, and ran slower for it (4
#     associations, 2026-12-06: 218 img/s so, 462-608 with our files gone).
#     Rates still vary from run to run on this VM (storescp, one association, medians of two runs: 270 and 428).
#     Compare runs, not repetitions.
#   - and each receiver started on an emptied page cache holding only the files to send (settle, below), and timed
#     with the machine's free memory backed by the host (prefault, in lib.sh, right before its timed window: without
#     it the receiver that had written more since the settle ran slower for it, whatever its code);
#   - storescp with --bit-preserving: it then writes each data set as received, after the File Meta Information, as
#     ours does, instead of parsing it and encoding it again; it is its faster mode here (2026-12-06, both memory-backed,
#     3 interleaved runs each: into tmpfs 446-503 img/s against 301-372 without; to disk 339-619 against 256-411).
#   - reception alone: in the serial mode of each repetition, both receivers once more into tmpfs (RAM_DIR, default
#     /dev/shm; RAM=0 skips it), where writing is a memory copy and fsync returns at once: what separates them
#     without the disk. Before the prefault step ours ran there at 89-295 img/s from one run to the next
#     (2026-12-06, 19:55-20:45, interleaved pairs), by how much of the host's memory its writes had to fault in.
# Study assembly is kept out of the timed window (quiet period 10 min): this measures reception.
# Prints median, min and max images/s and the ratios of the medians, as two figures:
#   - raw: storescp as it runs, never syncing (its files are in the page cache, not on disk, when its
#     last response goes out), against ours, which answers each instance only once it is durable;
#   - equal durability: storescp until its files are durable, i.e. its run followed by `sync -f` on its
#     output directory (syncfs of that file system), inside the timed window. The same storescp run gives
#     both figures: the sync is timed apart and added, so the raw figure is not handicapped by it. syncfs also
#     flushes whatever else is dirty on that file system, so on a shared machine this figure favours us a
#     little; run it on a quiet machine.
#
#   src/bench/ingest-bench.sh   (env: N=200 REPS=3 PAR=4 WARMUP=1000 SCP_WARMUP=20 MAX_PDU=131072 WORK=target/bench/ingest RAM=1 RAM_DIR=/dev/shm
#                                PREFAULT_GIB=<twice the timed files' size + 1; 0: skip>
#                                PORT_BASE=<n>: take every port from n upwards instead of free ones, on shared machines;
#                                OURS_OPTS="-Dkey=value ...": extra settings for our listener, e.g. -Dcxr.spool.early-flush=0)
#
# Needs: java 17, maven, dcmtk, coreutils sync (-f), /usr/bin/python3 with pydicom + numpy.
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
N=${N:-200}; REPS=${REPS:-3}; PAR=${PAR:-4}; WARMUP=${WARMUP:-1000}; SCP_WARMUP=${SCP_WARMUP:-20}; MAX_PDU=${MAX_PDU:-131072}
WORK=${WORK:-target/bench/ingest}
JAR=target/quarkus-app/quarkus-run.jar
RAM=${RAM:-1}; RAM_DIR=${RAM_DIR:-/dev/shm}
if [ "$RAM" = 1 ]; then
  [ "$(stat -f -c %T "$RAM_DIR" 2>/dev/null)" = tmpfs ] || die "RAM_DIR=$RAM_DIR is not a tmpfs (RAM=0 skips the reception-alone runs)"
  RAM_WORK=$(mktemp -d "$RAM_DIR/cxr-ingest-bench.XXXXXX") || die "cannot make a folder in $RAM_DIR"
fi
PY=/usr/bin/python3
command -v storescp >/dev/null || die "dcmtk is not installed (storescp)"

build_app
rm -rf "$WORK"; mkdir -p "$WORK/files" "$WORK/warm" "$WORK/warm-scp"
echo "generating $N synthetic 1024x1024 16-bit DX files (+ $WARMUP for the warm-ups, sent before each timed window: ours all, storescp the first $SCP_WARMUP) ..."
$PY src/test/python/dicom_fixtures.py bench "$WORK/files" "$N" || die "fixtures"
$PY src/test/python/dicom_fixtures.py bench "$WORK/warm" "$WARMUP" || die "fixtures"
[ "$SCP_WARMUP" -le "$WARMUP" ] || die "SCP_WARMUP must not exceed WARMUP"
# the first SCP_WARMUP by a bash slice: `ls | head` could end ls by SIGPIPE, which pipefail turns into a failed run
warm=("$WORK"/warm/*.dcm); for f in "${warm[@]:0:$SCP_WARMUP}"; do ln -s "$PWD/$f" "$WORK/warm-scp/"; done
for k in $(seq 0 $((PAR - 1))); do mkdir -p "$WORK/part$k"; done
i=0; for f in "$WORK"/files/*.dcm; do ln -s "$PWD/$f" "$WORK/part$((i % PAR))/"; i=$((i + 1)); done

PORT_BASE=${PORT_BASE:-}
NEXT_PORT=${PORT_BASE:-0}
# a port for the next receiver: a free one, or the next of PORT_BASE's (4 per run of ours: DICOM, Kafka x2, HTTP)
next_port() {
  if [ -z "$PORT_BASE" ]; then free_port; else echo "$NEXT_PORT"; fi
}
PID=""
stop() { [ -z "$PID" ] || { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; PID=""; }
trap 'stop; [ -z "${RAM_WORK:-}" ] || rm -rf "$RAM_WORK"' EXIT

wait_echo() { # aet port
  for _ in $(seq 1 240); do
    TCP_NODELAY=1 echoscu -aec "$1" 127.0.0.1 "$2" >/dev/null 2>&1 && return 0
    kill -0 "$PID" 2>/dev/null || die "$1 exited during start-up (see $WORK/*.log)"
    sleep 0.5
  done
  die "$1 did not answer C-ECHO on port $2"
}

start_ours() { # dir port
  local kp=0 cp=0 hp=0
  if [ -n "$PORT_BASE" ]; then kp=$(($2 + 1)); cp=$(($2 + 2)); hp=$(($2 + 3)); fi
  java -Xmx2g -XX:+ExitOnOutOfMemoryError -Dcxr.roles=listener -Dcxr.data-dir="$(realpath -m "$1")" -Dcxr.listener.port="$2" \
       -Dcxr.listener.bind-address=127.0.0.1 -Dcxr.listener.max-pdu-length="$MAX_PDU" -Dcxr.assembly.quiet-period=10m \
       -Dcxr.kafka.embedded.port="$kp" -Dcxr.kafka.embedded.controller-port="$cp" -Dquarkus.http.port="$hp" \
       ${OURS_OPTS:-} -jar "$JAR" > "$1.log" 2>&1 &
  PID=$!; wait_echo CXRGATEWAY "$2"
}

start_scp() { # dir port fork?
  mkdir -p "$1"
  TCP_NODELAY=1 storescp ${3:+--fork} --bit-preserving --max-pdu "$MAX_PDU" -aet STORESCP -od "$1" "$2" > "$1.log" 2>&1 &
  PID=$!; wait_echo STORESCP "$2"
}

send() { # aet port dir... -> seconds for all dirs, sent concurrently, one association each
  local aet=$1 port=$2; shift 2
  local t0 t1 pids=() d
  t0=$(date +%s.%N)
  for d in "$@"; do
    TCP_NODELAY=1 storescu --max-pdu "$MAX_PDU" -v -aec "$aet" 127.0.0.1 "$port" "$d"/*.dcm > "$d.$aet.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || die "storescu to $aet failed"; done
  t1=$(date +%s.%N)
  local ok=0 expected=0
  for d in "$@"; do
    ok=$((ok + $(grep -c 'Received Store Response (Success)' "$d.$aet.out" || true)))
    expected=$((expected + $(ls "$d"/*.dcm | wc -l)))
  done
  [ "$ok" -eq "$expected" ] || die "only $ok of $expected instances stored by $aet"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

count_spool() { find "$1/spool/studies" -name '*.dcm' | wc -l; }

# Each receiver starts from the same page cache: emptied where this user may (root), then holding only the files
# storescu sends. A full page cache slowed this VM's writes tenfold (2026-12-06: write(2) of 2 MiB into a new file
# 6.1 ms with 15 GB cached, 0.63 ms after dropping them; fsync 1.5-1.7 ms both times), and how full it was depended on
# what ran before the benchmark.
settle() {
  sync
  if [ -w /proc/sys/vm/drop_caches ] && echo 3 2>/dev/null > /proc/sys/vm/drop_caches; then :; else
    [ -n "${SETTLE_WARNED:-}" ] || echo "note: cannot drop the page cache (not root?): runs start from whatever it holds"
    SETTLE_WARNED=1
  fi
  cat "$WORK"/files/*.dcm "$WORK"/warm/*.dcm > /dev/null
}

# What a timed window allocates, backed by prefault (lib.sh) right before it: its files in the page cache, with room.
PREFAULT_GIB=${PREFAULT_GIB:-$(du -sbL "$WORK/files" | awk '{ printf "%.1f", 2 * $1 / 2^30 + 1 }')}

# The disk's ceiling for any receiver that answers each instance only once it is durable: the same files copied one
# by one, each fsynced with its directory before the next, no network and no parsing (a few lines of Python). On this
# VM the disk's rate for such writes moves between hours (2026-12-06: dd oflag=dsync of 2 MiB blocks 221-300 MB/s in
# one minute; the file fsync alone 1.44 ms per 2 MiB in another), and it, not the receiver, can bound ours.
fsync_ceiling() { # dir src... -> seconds
  mkdir -p "$1"
  $PY - "$@" <<'PY' || die "fsync ceiling"
import os, sys, time
out, files = sys.argv[1], sys.argv[2:]
d = os.open(out, os.O_RDONLY)
t0 = time.perf_counter()
for i, f in enumerate(files):
    with open(f, "rb") as src:
        data = src.read()
    fd = os.open(os.path.join(out, "%d.dcm" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    os.fsync(d)
print("%.4f" % (time.perf_counter() - t0))
PY
}

# seconds that `sync -f` takes on the directory's file system
sync_time() {
  local t0 t1
  t0=$(date +%s.%N)
  sync -f "$1" || die "sync -f $1"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

rate() { awk -v n="$N" -v t="$1" 'BEGIN { printf "%.2f", n / t }'; } # seconds for N instances -> img/s

# One timed run of ours: started on a new port with its data in $1, warmed up, then sent the folders that follow
# (one association each, concurrently); sets RATE. Its files go before the other receiver runs, so that neither
# starts beside the other's gigabytes of page cache.
time_ours() { # data-dir folder...
  local d=$1 t stored; shift
  settle
  port=$(next_port); NEXT_PORT=$((NEXT_PORT + 4))
  start_ours "$d" "$port"
  send CXRGATEWAY "$port" "$WORK/warm" >/dev/null
  prefault "$PREFAULT_GIB"
  t=$(send CXRGATEWAY "$port" "$@")
  stored=$(count_spool "$d")
  [ "$stored" -eq $((N + WARMUP)) ] || die "spool in $d holds $stored files, expected $((N + WARMUP))"
  stop
  rm -rf "$d"
  RATE=$(rate "$t")
}

# One timed run of storescp (fork: --fork) writing to $1, likewise; sets RATE, and DURABLE_RATE with its output's
# `sync -f` timed after the run (SYNC_S seconds).
time_scp() { # out-dir fork|"" folder...
  local d=$1 fork=$2 t stored; shift 2
  settle
  port=$(next_port); NEXT_PORT=$((NEXT_PORT + 1))
  start_scp "$d" "$port" "$fork"
  send STORESCP "$port" "$WORK/warm-scp" >/dev/null
  # the warm-up's files must not be flushed inside the timed window: sync them first
  sync -f "$d" || die "sync -f"
  prefault "$PREFAULT_GIB"
  t=$(send STORESCP "$port" "$@")
  SYNC_S=$(sync_time "$d")
  stop
  stored=$(find "$d" -type f | wc -l)
  [ "$stored" -ge $((N + SCP_WARMUP)) ] || die "storescp wrote $stored files to $d, expected $((N + SCP_WARMUP))"
  rm -rf "$d"
  RATE=$(rate "$t")
  DURABLE_RATE=$(awk -v n="$N" -v t="$t" -v s="$SYNC_S" 'BEGIN { printf "%.2f", n / (t + s) }')
}

declare -a OURS1 SCP1 OURSP SCPP SCPD1 SCPDP CEIL1 RAMO RAMS
PARTS=(); for k in $(seq 0 $((PAR - 1))); do PARTS+=("$WORK/part$k"); done
for r in $(seq 1 "$REPS"); do
  for mode in serial parallel; do
    if [ "$mode" = serial ]; then dirs=("$WORK/files"); else dirs=("${PARTS[@]}"); fi
    time_ours "$WORK/ours-$r-$mode" "${dirs[@]}"
    ours=$RATE
    if [ "$mode" = serial ]; then OURS1+=("$ours"); else OURSP+=("$ours"); fi

    time_scp "$WORK/scp-$r-$mode" "$([ "$mode" = parallel ] && echo fork)" "${dirs[@]}"
    scp=$RATE; scpd=$DURABLE_RATE; ts=$SYNC_S
    if [ "$mode" = serial ]; then SCP1+=("$scp"); SCPD1+=("$scpd"); else SCPP+=("$scp"); SCPDP+=("$scpd"); fi
    extra=""
    if [ "$mode" = serial ]; then
      settle
      prefault "$PREFAULT_GIB"
      tc=$(fsync_ceiling "$WORK/ceiling-$r" "$WORK"/files/*.dcm)
      rm -rf "$WORK/ceiling-$r"
      ceil=$(rate "$tc"); CEIL1+=("$ceil")
      extra=", the disk's fsync ceiling $ceil img/s"
      if [ "$RAM" = 1 ]; then # reception alone: the same pair into tmpfs
        time_ours "$RAM_WORK/ours-$r" "$WORK/files"; RAMO+=("$RATE")
        time_scp "$RAM_WORK/scp-$r" "" "$WORK/files"; RAMS+=("$RATE")
        extra="$extra; into tmpfs: cxr-gateway ${RAMO[-1]}, storescp ${RAMS[-1]} img/s"
      fi
    fi
    echo "repetition $r, $mode: cxr-gateway $ours img/s, storescp $scp img/s (until durable: $scpd img/s, sync -f ${ts} s)$extra; load $(cut -d' ' -f1-3 /proc/loadavg)"
  done
done

read -r o1 o1min o1max <<<"$(stats "${OURS1[@]}")"
read -r s1 s1min s1max <<<"$(stats "${SCP1[@]}")"
read -r op opmin opmax <<<"$(stats "${OURSP[@]}")"
read -r sp spmin spmax <<<"$(stats "${SCPP[@]}")"
read -r d1 d1min d1max <<<"$(stats "${SCPD1[@]}")"
read -r c1 c1min c1max <<<"$(stats "${CEIL1[@]}")"
read -r dp dpmin dpmax <<<"$(stats "${SCPDP[@]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
if [ "$RAM" = 1 ]; then
  read -r ro romin romax <<<"$(stats "${RAMO[@]}")"
  read -r rs rsmin rsmax <<<"$(stats "${RAMS[@]}")"
fi
echo "images/s over $REPS interleaved repetitions of $N 1024x1024 16-bit DX (median, min-max), warm-up: ours $WARMUP, storescp $SCP_WARMUP instances; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "  1 association:   cxr-gateway (fsync) %7s (%s-%s)   storescp        %7s (%s-%s)   storescp + sync -f %7s (%s-%s)\n" \
  "$o1" "$o1min" "$o1max" "$s1" "$s1min" "$s1max" "$d1" "$d1min" "$d1max"
printf "  %d associations:  cxr-gateway (fsync) %7s (%s-%s)   storescp --fork %7s (%s-%s)   storescp + sync -f %7s (%s-%s)\n" \
  "$PAR" "$op" "$opmin" "$opmax" "$sp" "$spmin" "$spmax" "$dp" "$dpmin" "$dpmax"
echo "ratios of the medians:"
echo "  raw (storescp never syncs):                        1 association $(ratio "$o1" "$s1"), $PAR associations $(ratio "$op" "$sp")"
echo "  equal durability (storescp's run + sync -f, timed): 1 association $(ratio "$o1" "$d1"), $PAR associations $(ratio "$op" "$dp")"
echo "  against the disk's fsync ceiling (the same files copied, each fsynced before the next: $c1 img/s, $c1min-$c1max): 1 association $(ratio "$o1" "$c1")"
if [ "$RAM" = 1 ]; then
  echo "  reception alone (both into tmpfs, 1 association): cxr-gateway $ro ($romin-$romax), storescp $rs ($rsmin-$rsmax): $(ratio "$ro" "$rs")"
fi
result ingest_serial_ratio "$(ratio "$o1" "$s1")"
result ingest_parallel_ratio "$(ratio "$op" "$sp")"
result ingest_serial_ratio_equal_durability "$(ratio "$o1" "$d1")"
result ingest_parallel_ratio_equal_durability "$(ratio "$op" "$dp")"
result ingest_serial_ours_img_s "$o1"
result ingest_serial_storescp_img_s "$s1"
result ingest_serial_storescp_durable_img_s "$d1"
result ingest_serial_fsync_ceiling_img_s "$c1"
result ingest_serial_ratio_fsync_ceiling "$(ratio "$o1" "$c1")"
result ingest_parallel_ours_img_s "$op"
result ingest_parallel_storescp_img_s "$sp"
result ingest_parallel_storescp_durable_img_s "$dp"
if [ "$RAM" = 1 ]; then
  result ingest_tmpfs_ours_img_s "$ro"
  result ingest_tmpfs_storescp_img_s "$rs"
  result ingest_tmpfs_ratio "$(ratio "$ro" "$rs")"
fi
