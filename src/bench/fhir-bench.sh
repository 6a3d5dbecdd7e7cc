#!/usr/bin/env bash
# FHIR delivery benchmark (not a test): HTTP requests and delivery time per report for HAPI FHIR
# (transaction) and Medplum (ordered, auto), interleaved repetitions, medians with min and max.
#   src/bench/fhir-bench.sh    (env: N=20 REPS=3)
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
N=${N:-20}; REPS=${REPS:-3}
WORK=target/bench/fhir; mkdir -p "$WORK"
command -v node >/dev/null || die "node is not installed (bin/setup --test)"
npm ci --prefix src/test/node/medplum --no-audit --no-fund --loglevel=error || die "npm ci (Medplum test peer)"
build_test_classpath "$WORK/cp.txt"
java -cp "target/test-classes:target/classes:$(cat "$WORK/cp.txt")" org.cxrgateway.delivery.FhirDeliveryBench "$N" "$REPS" \
    > "$WORK/out.txt" 2> "$WORK/err.txt" || { tail -30 "$WORK/err.txt" >&2; die "FhirDeliveryBench"; }
grep -v '^RESULT' "$WORK/out.txt"
grep '^RESULT' "$WORK/out.txt" || die "FhirDeliveryBench printed no RESULT"
