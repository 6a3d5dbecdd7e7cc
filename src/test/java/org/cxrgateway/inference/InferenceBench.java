package org.cxrgateway.inference;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import org.cxrgateway.ingest.WorkingImageDecoder;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.WorkingImagePixels;
import org.cxrgateway.schema.v2.WorkingImage;
import org.cxrgateway.testing.ConfigDefaults;

import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** Benchmark driver for src/bench/inference-bench.sh (not a test): prints key=value lines. */
public final class InferenceBench {

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        int batch = Integer.parseInt(args[1]);
        int threads = Integer.parseInt(args[2]);
        Path work = Path.of(args[3]);
        // images through the worker path with guided Grad-CAM (it is ~10x the forward pass per image: a smaller run)
        int guidedN = args.length > 4 ? Integer.parseInt(args[4]) : Math.max(batch, n / 4);
        // every session, the raw baseline's too, at the same documented settings; SPIN=0 turns spinning off for all
        SessionSettings settings = new SessionSettings(threads, !"0".equals(System.getenv("SPIN")), true);
        System.out.println("session_settings=" + settings);
        ModelPackage chest = ModelPackage.builtIn("chest14", work);
        ModelPackage covid = ModelPackage.builtIn("covid3", work);
        OrtModel model = new OrtModel(chest, EngineKind.cpu, settings, Precision.fp32, null);
        OrtModel model2 = new OrtModel(covid, EngineKind.cpu, settings, Precision.fp32, null);
        model.warmUp(batch);
        model2.warmUp(batch);
        // INT8=0 (driver only, not inference-bench.sh): no INT8 engine, for measuring the worker path where
        // quantize.py cannot run; int8_engine_img_s is then not printed
        boolean withInt8 = !"0".equals(System.getenv("INT8"));
        // the variant alone (decision margin 0): the demo head puts every probability at its threshold, so the decision
        // guard would score every image again at FP32; its cost on a trained model is toolkit/bench/int8-guard-bench.sh's
        OrtModel int8 = withInt8 ? new OrtModel(int8Variant(chest, work), EngineKind.cpu, settings, Precision.int8, 0, null) : null;
        if (int8 != null) {
            int8.warmUp(batch);
        }
        System.out.println("peak_rss_mb_both_models=" + vmHwmMb());

        // Worker path: job message bytes -> decode -> preprocess -> batched ORT -> CAM -> result message bytes, chest14
        // alone as in the raw ORT comparison. Without guided Grad-CAM (the figure compared with raw ORT: the same
        // forward work), and with it at the product's default (ModelRegistry: cxr.report.max-secondary-captures
        // guided maps per image and model, one guided-graph run of forward + K backward passes per image).
        // The working images as the listener makes them by default: 1024 x 853 (a 3000 x 2500 detector's image at
        // cxr.assembly.working-long-side), 8 bits, encoded by cxr.assembly.pixel-encoding's default (AUTO: raw, as it
        // fits the payload cap), with films' variety and noise. WORKING=WxH and PIXEL_ENCODING=RAW|DEFLATE|AUTO change
        // them: the worker's host time per image (inflating, decoding, preprocessing) grows with them.
        String[] size = System.getenv().getOrDefault("WORKING", "853x1024").split("x");
        int ww = Integer.parseInt(size[0]), wh = Integer.parseInt(size[1]);
        WorkingImageDecoder.Encoding encoding = WorkingImageDecoder.Encoding.valueOf(System.getenv().getOrDefault("PIXEL_ENCODING", "AUTO"));
        List<byte[]> jobs = new ArrayList<>();
        String workerImage = null;
        for (int i = 0; i < n; i++) {
            String uid = "1.2.826.9." + i;
            WorkingImage film = Fixtures.variedImage(ww, wh, 8, i);
            WorkingImage img = WorkingImageDecoder.encode(ww, wh, 8, WorkingImagePixels.bytes(film.getPixels()), encoding, MAX_PAYLOAD_BYTES_DEFAULT);
            workerImage = ww + "x" + wh + " " + img.getEncoding();
            jobs.add(MessageCodec.encode(InferenceWorkerTest.job(uid, MessageCodec.SCHEMA_VERSION, List.of(InferenceWorkerTest.image(uid + ".1", img)))));
        }
        System.out.println("worker_image=" + workerImage);
        Scorer guided = new Scorer(List.of(model), MAX_SECONDARY_CAPTURES_DEFAULT);
        double[] withGuided = workerPath(guided, jobs.subList(0, Math.min(guidedN, n)), batch);
        System.out.printf("worker_path_guided_img_s=%.2f%nguided_images=%d%nguided_maps_per_image=%.2f%nguided_ms_per_map=%.1f%n",
                withGuided[0], Math.min(guidedN, n), guided.guidedClasses() / (2.0 * Math.min(guidedN, n)),
                guided.guidedMs() / Math.max(1, guided.guidedClasses()));

        // engine only: our OrtModel.run vs the raw ONNX Runtime API, same session options, same tensors
        int len = model.inputLength();
        float[] input = new float[batch * len];
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) r.nextGaussian();
        }
        int rounds = Math.max(1, n / batch);
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions o = settings.options();
             MicroBatcher plain = new MicroBatcher(new Scorer(List.of(model)), batch, java.time.Duration.ofMillis(50))) {
            try (OrtSession raw = env.createSession(chest.modelPath().toString(), o)) {
                // Alternate the four (raw ORT, our engine at FP32 and at INT8, the worker path of n jobs), several
                // times, and compare medians: the machine is shared and noisy, and a figure taken at another moment
                // than its baseline's compares two moments, not two paths. The raw side reads both outputs into
                // Java arrays too, as any caller of the engine must.
                int reps = 5;
                double[] workerS = new double[reps];
                long resultBytes = 0;
                double[] rawS = new double[reps];
                double[] ourS = new double[reps];
                double[] int8S = new double[reps];
                for (int k = -1; k < reps; k++) {
                    long t0 = System.nanoTime();
                    for (int i = 0; i < rounds; i++) {
                        try (OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(input), new long[]{batch, 3, 224, 224});
                             OrtSession.Result res = raw.run(Map.of("input", t))) {
                            for (var output : res) {
                                FloatBuffer fb = ((OnnxTensor) output.getValue()).getFloatBuffer();
                                fb.get(new float[fb.remaining()]);
                            }
                        }
                    }
                    double rawRound = (System.nanoTime() - t0) / 1e9;
                    t0 = System.nanoTime();
                    for (int i = 0; i < rounds; i++) {
                        model.run(input, batch);
                    }
                    double ourRound = (System.nanoTime() - t0) / 1e9;
                    t0 = System.nanoTime();
                    for (int i = 0; int8 != null && i < rounds; i++) {
                        int8.run(input, batch);
                    }
                    double int8Round = (System.nanoTime() - t0) / 1e9;
                    t0 = System.nanoTime();
                    resultBytes = workerPass(plain, jobs);
                    double workerRound = (System.nanoTime() - t0) / 1e9;
                    if (k >= 0) { // k = -1 warms all up, the worker path's decoding, preprocessing, CAM and encoding too
                        workerS[k] = workerRound;
                        rawS[k] = rawRound;
                        ourS[k] = ourRound;
                        int8S[k] = int8Round;
                    }
                }
                java.util.Arrays.sort(workerS);
                java.util.Arrays.sort(rawS);
                java.util.Arrays.sort(ourS);
                java.util.Arrays.sort(int8S);
                double rawMedian = rawS[reps / 2];
                double ourMedian = ourS[reps / 2];
                System.out.printf("worker_path_img_s=%.2f%nresult_bytes_per_image=%d%n", n / workerS[reps / 2],
                        resultBytes / n);
                System.out.printf("raw_ort_img_s=%.2f%nengine_img_s=%.2f%nengine_overhead_pct=%.1f%n",
                        rounds * batch / rawMedian, rounds * batch / ourMedian, 100 * (ourMedian - rawMedian) / rawMedian);
                if (int8 != null) {
                    System.out.printf("int8_engine_img_s=%.2f%nint8_scheme=%s%nint8_float_convs=%d%n", rounds * batch / int8S[reps / 2],
                            int8.pkg().manifest().int8().scheme(), int8.pkg().manifest().int8().floatConvs().size());
                }
            }
        }
        System.out.println("peak_rss_mb=" + vmHwmMb());
        System.out.println("package_dir=" + chest.dir().toAbsolutePath());
        model.close();
        model2.close();
        if (int8 != null) {
            int8.close();
        }
    }

    /** AssemblyConfig's default cxr.assembly.max-payload-bytes. */
    static final int MAX_PAYLOAD_BYTES_DEFAULT = Integer.parseInt(
            ConfigDefaults.of(org.cxrgateway.ingest.AssemblyConfig.class, "maxPayloadBytes"));

    /** ReportConfig's default cxr.report.max-secondary-captures, which ModelRegistry passes to the Scorer. */
    static final int MAX_SECONDARY_CAPTURES_DEFAULT = Integer.parseInt(
            ConfigDefaults.of(org.cxrgateway.report.ReportConfig.class, "maxSecondaryCaptures"));

    /**
     * The jobs through a MicroBatcher twice (the first pass warms the JIT: decode, preprocessing, CAM, encode; the
     * engine-only comparison also times only warm runs), the second timed: img/s and result bytes per image.
     */
    static double[] workerPath(Scorer scorer, List<byte[]> jobs, int batch) throws Exception {
        double[] out = new double[2];
        try (MicroBatcher b = new MicroBatcher(scorer, batch, java.time.Duration.ofMillis(50))) {
            for (int pass = 0; pass < 2; pass++) {
                long t0 = System.nanoTime();
                long bytes = workerPass(b, jobs);
                out[0] = jobs.size() / ((System.nanoTime() - t0) / 1e9);
                out[1] = bytes / (double) jobs.size();
            }
        }
        return out;
    }

    /** One pass of the job messages through the batcher, each result encoded as the worker sends it: the result bytes. */
    static long workerPass(MicroBatcher b, List<byte[]> jobs) throws Exception {
        List<CompletableFuture<byte[]>> results = new ArrayList<>();
        for (byte[] bytes : jobs) {
            results.add(b.submit(MessageCodec.decodeJob(bytes)).thenApply(MessageCodec::encode));
        }
        long total = 0;
        for (var f : results) {
            total += f.get().length;
        }
        return total;
    }

    /**
     * chest14 with its INT8 variant, in work/chest14-int8: made once (quantize.py, calibrated on 16 working
     * images, Int8FidelityTest's kind) and reused by later repetitions; inference-bench.sh removes it at its start.
     */
    static ModelPackage int8Variant(ModelPackage pkg, Path work) throws Exception {
        Path dir = work.resolve(pkg.manifest().id() + "-int8");
        if (!Files.isRegularFile(dir.resolve(QUANTIZED))) {
            Files.createDirectories(dir);
            try (var files = Files.list(pkg.dir())) {
                for (Path f : files.toList()) {
                    Files.copy(f, dir.resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                }
            }
            // INT8_BLOCKS (quantize.py --blocks), INT8_WEIGHT_BITS (--weight-bits) and INT8_FLOAT (--float, names split
            // on blanks; set but empty: every conv int8); unset: quantize.py's defaults
            String floats = System.getenv("INT8_FLOAT"), bits = System.getenv("INT8_WEIGHT_BITS");
            Py.quantize(dir, Fidelity.preprocess(pkg, Int8FidelityTest.images(16, 2000)), work, System.getenv("INT8_BLOCKS"),
                    bits == null || bits.isBlank() ? null : Integer.valueOf(bits.strip()),
                    floats == null ? null : floats.isBlank() ? new String[0] : floats.strip().split("\\s+"));
        }
        return ModelPackage.open(dir, work);
    }

    private static final String QUANTIZED = "model.int8.onnx";

    static long vmHwmMb() throws Exception {
        for (String l : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (l.startsWith("VmHWM:")) {
                return Long.parseLong(l.replaceAll("\\D+", "")) / 1024;
            }
        }
        return -1;
    }
}
