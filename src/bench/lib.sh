# Shared by the benchmark scripts (sourced, not run). Every step fails loudly: a benchmark that
# prints a ratio after a failed step is a false result.
set -eEuo pipefail

die() { echo "BENCH FAILED: $*" >&2; exit 1; }
trap 'die "line $LINENO: $BASH_COMMAND (exit $?)"' ERR

# The packaged app, built online as a fresh clone would (no -o: a new local repository lacks plugins).
build_app() {
  mkdir -p target
  mvn -B -q -DskipTests package > target/bench-build.log 2>&1 || { tail -40 target/bench-build.log >&2; die "mvn package"; }
}

# Test classes plus the full test classpath, from the build itself.
build_test_classpath() { # out-file
  mkdir -p target "$(dirname "$1")"
  mvn -B -q -DskipTests test-compile dependency:build-classpath -Dmdep.includeScope=test -Dmdep.outputFile="$1" \
      > target/bench-cp.log 2>&1 || { tail -40 target/bench-cp.log >&2; die "mvn test-compile dependency:build-classpath"; }
  [ -s "$1" ] || die "empty classpath file $1"
}

# Free memory that the host has taken back costs a fault on the host at its first touch. On this VM (a balloon with free
# page reporting) that made every write into new page cache 7x slower once the memory freed last was used up
# (2026-12-06, 2 MiB files into tmpfs after dropping the caches: 1310 files/s for the first 2.6 GB, then 186), so a
# server was measured at a speed set by how much had been written since, not by its code (ingest-bench, both into tmpfs
# after the same 1000 warm-up instances: ours 105-130 img/s, storescp 111-120; with the memory backed, ours 318-390,
# storescp 301-372). Writing that many GiB of anonymous memory and freeing it leaves as much free memory backed, but
# only for seconds: the guest reports what is free to the host again, so it is done right before each timed window, not
# before a server's start and warm-up (ours to disk after a prefault before its start: 96-199 img/s; right before its
# window: 244-287). On a machine without such a balloon it is a memset. 0 skips it.
prefault() { # GiB
  [ "$1" != 0 ] || return 0
  local free
  free=$(awk '/^MemAvailable:/ { printf "%.1f", $2 / 2^20 - 1 }' /proc/meminfo)
  awk -v w="$1" -v f="$free" 'BEGIN { exit !(w > f) }' && die "prefault of $1 GiB exceeds the available memory ($free GiB); set PREFAULT_GIB lower (0: skip)"
  /usr/bin/python3 -c 'import sys, numpy; numpy.ones(int(float(sys.argv[1]) * 2**30), numpy.uint8)' "$1" || die "prefault"
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# median min max of the numbers given as arguments
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) exit 1
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "%.2f %.2f %.2f", m, v[1], v[NR] }'; }

# "RESULT key=value" lines are what run-all.sh collects into its table.
result() { echo "RESULT $1=$2"; }
