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

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# median min max of the numbers given as arguments
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) exit 1
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "%.2f %.2f %.2f", m, v[1], v[NR] }'; }

# "RESULT key=value" lines are what run-all.sh collects into its table.
result() { echo "RESULT $1=$2"; }
