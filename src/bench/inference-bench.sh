#!/usr/bin/env bash
# Inference benchmark (not a test). Our worker path (job message -> result message, DenseNet-121
# chest14, micro-batching, Grad-CAM; printed without and with guided Grad-CAM, the ratio to raw ORT is
# the one without: the same forward work) and engine, at FP32 and with the package's INT8 variant
# (quantize.py, made once per run, calibrated on 16 working images), against raw ONNX Runtime (same
# session settings, in the same JVM) and Debian PyTorch eager FP32 (same weights, batch and threads; its
# faster memory format), in one run: REPS interleaved repetitions (Java driver, then PyTorch), medians
# with min and max.
# Every ORT session (raw included) has the same SessionSettings; SPIN=0 turns intra-op spinning off for all.
# The worker path's jobs carry the working images the listener makes by default (1024x853, 8 bits, pixel encoding
# AUTO: raw); WORKING=WxH and PIXEL_ENCODING=RAW|DEFLATE|AUTO change them.
# The INT8 variant is quantize.py's default, the configuration whose fidelity the README states, timed alone (decision
# margin 0: what the INT8 graph costs; with the gateway's decision guard on a trained model: int8-guard-bench.sh); INT8_BLOCKS
# (float|uint8: quantize.py --blocks), INT8_FLOAT (conv names: --float; set but empty: every conv int8) and
# INT8_WEIGHT_BITS (7|8: --weight-bits; 8 on CPUs with VNNI only) change it.
#   src/bench/inference-bench.sh    (env: N=64 BATCH=8 THREADS=2 REPS=3 GUIDED_N=N/4 SPIN=1 [INT8_BLOCKS=...] [INT8_FLOAT=...]
#                                    [INT8_WEIGHT_BITS=7] [WORKING=853x1024] [PIXEL_ENCODING=AUTO])
cd "$(dirname "$0")/../.."
source src/bench/lib.sh
N=${N:-64}; BATCH=${BATCH:-8}; THREADS=${THREADS:-2}; REPS=${REPS:-3}; GUIDED_N=${GUIDED_N:-$(( N / 4 > BATCH ? N / 4 : BATCH ))}
WORK=target/bench/inference; mkdir -p "$WORK"
/usr/bin/python3 -c "import torch" 2>/dev/null || die "Debian python3-torch is not installed"
build_test_classpath "$WORK/cp.txt"
CP="target/test-classes:target/classes:$(cat "$WORK/cp.txt")"
rm -rf "$WORK/chest14-int8" # the INT8 variant is remade from the current package and quantize.py

get() { sed -n "s/^$1=//p" "$2" | tail -1; }
declare -a WORKER GUIDED ENGINE RAW TORCH INT8
for r in $(seq 1 "$REPS"); do
  java -Xmx2g -cp "$CP" org.cxrgateway.inference.InferenceBench "$N" "$BATCH" "$THREADS" "$WORK" "$GUIDED_N" \
      > "$WORK/java-$r.out" 2> "$WORK/java-$r.err" || { tail -30 "$WORK/java-$r.err" >&2; die "InferenceBench"; }
  PKG=$(get package_dir "$WORK/java-$r.out"); [ -n "$PKG" ] || die "InferenceBench printed no package_dir"
  OMP_NUM_THREADS=$THREADS /usr/bin/python3 src/bench/torch_bench.py "$PKG" "$N" "$BATCH" "$THREADS" \
      > "$WORK/torch-$r.out" 2> "$WORK/torch-$r.err" || { tail -30 "$WORK/torch-$r.err" >&2; die "torch_bench.py"; }
  WORKER+=("$(get worker_path_img_s "$WORK/java-$r.out")"); GUIDED+=("$(get worker_path_guided_img_s "$WORK/java-$r.out")"); ENGINE+=("$(get engine_img_s "$WORK/java-$r.out")")
  RAW+=("$(get raw_ort_img_s "$WORK/java-$r.out")"); TORCH+=("$(get torch_eager_img_s "$WORK/torch-$r.out")")
  INT8+=("$(get int8_engine_img_s "$WORK/java-$r.out")")
  for v in "${WORKER[-1]}" "${GUIDED[-1]}" "${ENGINE[-1]}" "${RAW[-1]}" "${TORCH[-1]}" "${INT8[-1]}"; do [ -n "$v" ] || die "a driver printed no figure (see $WORK)"; done
  echo "repetition $r: worker path ${WORKER[-1]} (with guided Grad-CAM ${GUIDED[-1]}), engine ${ENGINE[-1]}, INT8 engine ${INT8[-1]}, raw ORT ${RAW[-1]}, PyTorch ${TORCH[-1]} img/s ($(grep -h '^torch_c' "$WORK/torch-$r.out" | tr '\n' ' '))"
done
read -r w wmin wmax <<<"$(stats "${WORKER[@]}")"; read -r g gmin gmax <<<"$(stats "${GUIDED[@]}")"; read -r e emin emax <<<"$(stats "${ENGINE[@]}")"
read -r o omin omax <<<"$(stats "${RAW[@]}")"; read -r t tmin tmax <<<"$(stats "${TORCH[@]}")"
read -r q qmin qmax <<<"$(stats "${INT8[@]}")"
echo "DenseNet-121 224x224, batch $BATCH, $THREADS threads, $(get session_settings "$WORK/java-$REPS.out"), img/s over $REPS repetitions (median, min-max);"
echo "the worker path's jobs carry $(get worker_image "$WORK/java-$REPS.out") working images (WORKING, PIXEL_ENCODING; by default the listener's for a 3000x2500 detector):"
printf "  worker path, guided Grad-CAM (%s maps/image, %s images)  %7s (%s-%s)\n" \
  "$(get guided_maps_per_image "$WORK/java-$REPS.out")" "$GUIDED_N" "$g" "$gmin" "$gmax"
printf "  worker path     %7s (%s-%s)\n  engine          %7s (%s-%s)\n  INT8 engine     %7s (%s-%s)\n  raw ORT         %7s (%s-%s)\n  PyTorch eager   %7s (%s-%s)\n" \
  "$w" "$wmin" "$wmax" "$e" "$emin" "$emax" "$q" "$qmin" "$qmax" "$o" "$omin" "$omax" "$t" "$tmin" "$tmax"
echo "  INT8 engine / PyTorch eager: $(awk -v a="$q" -v b="$t" 'BEGIN { printf "%.2f", a / b }') (target >= 2; INT8 scheme $(get int8_scheme "$WORK/java-$REPS.out"), $(get int8_float_convs "$WORK/java-$REPS.out") convs float;"
echo "    the variant alone: the demo head sits at its thresholds, so the decision guard's cost is measured on a trained model, toolkit/bench/int8-guard-bench.sh)"
result fp32_worker_vs_torch "$(awk -v a="$w" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
echo "  worker path (no guided Grad-CAM) / raw ORT: $(awk -v a="$w" -v b="$o" 'BEGIN { printf "%.3f", a / b }') (target >= 0.95); with guided: $(awk -v a="$g" -v b="$o" 'BEGIN { printf "%.3f", a / b }')"
result fp32_worker_vs_raw_ort "$(awk -v a="$w" -v b="$o" 'BEGIN { printf "%.3f", a / b }')"
result fp32_worker_guided_vs_raw_ort "$(awk -v a="$g" -v b="$o" 'BEGIN { printf "%.2f", a / b }')"
result fp32_engine_vs_raw_ort "$(awk -v a="$e" -v b="$o" 'BEGIN { printf "%.2f", a / b }')"
result int8_engine_vs_torch "$(awk -v a="$q" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
result fp32_engine_vs_torch "$(awk -v a="$e" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
result int8_engine_img_s "$q"
result worker_path_img_s "$w"
result worker_path_guided_img_s "$g"
result torch_eager_img_s "$t"
result peak_rss_mb "$(get peak_rss_mb "$WORK/java-$REPS.out")"
result result_bytes_per_image "$(get result_bytes_per_image "$WORK/java-$REPS.out")"
