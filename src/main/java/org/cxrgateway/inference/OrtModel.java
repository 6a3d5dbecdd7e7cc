package org.cxrgateway.inference;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;

import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;

/**
 * One model package on one ONNX Runtime session ({@link SessionSettings}), created once, signature-checked against
 * the manifest and warmed up. run is not thread-safe by design: a single inference thread owns the model (its input
 * buffer is reused) and ONNX Runtime parallelises inside each run (intra-op threads). The guided graph is used by
 * one other thread at a time (Scorer.finish). At INT8 with a decision margin, a second session of the FP32 model scores
 * again, inside run, the images whose INT8 scores lie near a threshold ({@link DecisionGuard}).
 */
public final class OrtModel implements AutoCloseable {

    /** Outputs of one batch: logits [n, labels] and features [n, C, H, W], row-major. */
    public record Output(int n, float[] logits, float[] features) {
    }

    private final ModelPackage pkg;
    private final OrtEnvironment env;
    private final OrtSession session;
    private final EngineKind engine;
    private final Precision precision;
    private final SessionSettings settings;
    /** See inputBuffer; used by the one thread that runs the model. */
    private FloatBuffer input;
    private final int labels, featureC, featureHW, inputLen;
    private final long[] inputShape;
    private final Set<String> outputNames;
    private GuidedGraph guided; // set once in the constructor; not final so that a failing constructor can close what it opened
    /** INT8 with a decision margin: the FP32 model (model.onnx) that scores again the images near a threshold. */
    private OrtSession referee;
    private final DecisionGuard guard;
    /** Where the decision margin came from, for the load line (DecisionGuard.Margin). */
    private final String marginSource;
    /** See inputBuffer: the referee's input, on the thread that runs the model. */
    private FloatBuffer refereeInput;
    private final java.util.concurrent.atomic.AtomicLong refereed = new java.util.concurrent.atomic.AtomicLong();
    private boolean closed;
    /** Largest relative difference of the guided graph's warm-up logits from the model's (FP32: rounding only). */
    static final double GUIDED_LOGITS_BOUND = 1e-3;
    static final double GUIDED_LOGITS_BOUND_INT8 = 0.1;
    private static final org.jboss.logging.Logger LOG = org.jboss.logging.Logger.getLogger(OrtModel.class);

    public OrtModel(ModelPackage pkg, EngineKind engine, InferenceConfig cfg) {
        this(pkg, engine, SessionSettings.of(cfg), cfg.precision(), cfg);
    }

    public OrtModel(ModelPackage pkg, EngineKind engine, int intraOpThreads, InferenceConfig gpuCfg) {
        this(pkg, engine, intraOpThreads, Precision.fp32, gpuCfg);
    }

    public OrtModel(ModelPackage pkg, EngineKind engine, int intraOpThreads, Precision precision, InferenceConfig gpuCfg) {
        this(pkg, engine, SessionSettings.defaults(intraOpThreads), precision, gpuCfg);
    }

    /** At INT8, with the decision margin {@link DecisionGuard#margin} gives (gpuCfg may be null). */
    public OrtModel(ModelPackage pkg, EngineKind engine, SessionSettings settings, Precision precision, InferenceConfig gpuCfg) {
        this(pkg, engine, settings, precision,
                DecisionGuard.margin(gpuCfg != null ? gpuCfg.int8DecisionMargin() : java.util.Optional.empty(), pkg.manifest()),
                gpuCfg);
    }

    /**
     * int8DecisionMargin: at INT8, images with a score this close to a threshold (log-odds) are scored again at FP32
     * ({@link DecisionGuard}); 0 for none. Ignored at FP32.
     */
    public OrtModel(ModelPackage pkg, EngineKind engine, SessionSettings settings, Precision precision, double int8DecisionMargin,
                    InferenceConfig gpuCfg) {
        this(pkg, engine, settings, precision, new DecisionGuard.Margin(int8DecisionMargin, "given by the caller"), gpuCfg);
    }

    private OrtModel(ModelPackage pkg, EngineKind engine, SessionSettings settings, Precision precision,
                     DecisionGuard.Margin margin, InferenceConfig gpuCfg) {
        double int8DecisionMargin = margin.logOdds();
        this.marginSource = margin.source();
        this.pkg = pkg;
        this.settings = settings;
        this.engine = engine;
        this.precision = precision;
        this.env = OrtEnvironment.getEnvironment();
        ModelManifest m = pkg.manifest();
        String where = "model package " + m.id();
        if (precision == Precision.int8 && engine != EngineKind.cpu) {
            // the QDQ graph is built for the CPU provider's QLinearConv; elsewhere it would run dequantised
            throw new ModelPackageException(where + ": cxr.inference.precision int8 needs cxr.inference.engine cpu, not " + engine);
        }
        if (precision == Precision.int8) {
            Int8Kernels.check(where, m.int8(), Int8Kernels.int32DotProducts());
            if (!(int8DecisionMargin >= 0 && int8DecisionMargin <= DecisionGuard.MAX_MARGIN)) {
                throw new ModelPackageException(where + ": cxr.inference.int8-decision-margin must be 0 (off) or a log-odds margin up to "
                        + DecisionGuard.MAX_MARGIN + ", not " + int8DecisionMargin);
            }
        }
        Path file = pkg.modelPath(precision);
        boolean guarded = precision == Precision.int8 && int8DecisionMargin > 0;
        try (OrtSession.SessionOptions opts = settings.options()) {
            if (engine != EngineKind.cpu) {
                ExecutionProviders.configure(opts, engine, gpuCfg, m);
            }
            if (guarded) {
                // the INT8 run and its referee's alternate: threads left spinning after one run took the cores from
                // the other (Int8GuardBench, trained 128² DenseNet-121, 32% of images refereed: 62-64 img/s with
                // spinning on, 93-94 with it stopped at the end of each run; FP32 and INT8 alone unchanged)
                opts.addConfigEntry(SessionSettings.FORCE_SPINNING_STOP_KEY, "1");
            }
            this.session = env.createSession(file.toString(), opts);
        } catch (OrtException e) {
            throw new ModelPackageException(where + ": ONNX Runtime cannot load " + file.getFileName() + ": " + e.getMessage(), e);
        }
        try {
            if (guarded) {
                guard = new DecisionGuard(m, int8DecisionMargin);
                try (OrtSession.SessionOptions opts = settings.options()) {
                    opts.addConfigEntry(SessionSettings.FORCE_SPINNING_STOP_KEY, "1");
                    referee = env.createSession(pkg.modelPath(Precision.fp32).toString(), opts);
                }
            } else {
                guard = null;
            }
            labels = m.labels().size();
            featureC = m.outputs().featureChannels();
            int fs = m.outputs().featureSize();
            featureHW = fs * fs;
            int c = m.input().channels(), s = m.input().size();
            inputLen = c * s * s;
            inputShape = new long[]{-1, c, s, s};
            checkSignature(where, m);
            outputNames = Set.of(m.outputs().logits(), m.outputs().features());
            if (m.guided() != null) {
                guided = new GuidedGraph(pkg.guidedPath(), GuidedGraph.Spec.of(m), where, settings);
            } else {
                guided = null;
                // once per package load: the reason, not a per-finding warning
                LOG.infof("model %s %s: the package has no guided graph (manifest field guided absent): findings get Grad-CAM only, no guided Grad-CAM",
                        m.id(), m.version());
            }
        } catch (RuntimeException | OrtException e) {
            closeQuietly();
            throw e instanceof ModelPackageException mpe ? mpe : new ModelPackageException(where + ": " + e.getMessage(), e);
        }
    }

    private void checkSignature(String where, ModelManifest m) throws OrtException {
        Map<String, NodeInfo> in = session.getInputInfo();
        Map<String, NodeInfo> out = session.getOutputInfo();
        if (!in.containsKey(m.input().name())) {
            throw new ModelPackageException(where + ": input.name '" + m.input().name() + "' is not an input of the ONNX model (inputs: " + in.keySet() + ")");
        }
        if (in.size() != 1) {
            throw new ModelPackageException(where + ": the ONNX model must have exactly one input, has " + in.keySet());
        }
        expectShape(where, "input", in.get(m.input().name()), new long[]{-1, m.input().channels(), m.input().size(), m.input().size()});
        NodeInfo logits = out.get(m.outputs().logits());
        if (logits == null) {
            throw new ModelPackageException(where + ": outputs.logits '" + m.outputs().logits() + "' is not an output of the ONNX model (outputs: " + out.keySet() + ")");
        }
        expectShape(where, "outputs.logits", logits, new long[]{-1, m.labels().size()});
        NodeInfo features = out.get(m.outputs().features());
        if (features == null) {
            throw new ModelPackageException(where + ": outputs.features '" + m.outputs().features() + "' is not an output of the ONNX model (outputs: " + out.keySet() + ")");
        }
        int fs = m.outputs().featureSize();
        expectShape(where, "outputs.features", features, new long[]{-1, m.outputs().featureChannels(), fs, fs});
        if (pkg.head().linear() && pkg.headWeight()[0].length != m.outputs().featureChannels()) {
            throw new ModelPackageException(where + ": head weights have " + pkg.headWeight()[0].length + " columns, outputs.featureChannels is " + m.outputs().featureChannels());
        }
    }

    /** Dimension 0 must be dynamic (batch); the others must equal the manifest where the model fixes them. */
    private static void expectShape(String where, String field, NodeInfo info, long[] want) {
        if (!(info.getInfo() instanceof TensorInfo t)) {
            throw new ModelPackageException(where + ": " + field + " '" + info.getName() + "' is not a tensor");
        }
        long[] got = t.getShape();
        boolean ok = got.length == want.length && got[0] < 0;
        for (int i = 1; ok && i < got.length; i++) {
            ok = got[i] < 0 || got[i] == want[i];
        }
        if (!ok) {
            throw new ModelPackageException(where + ": " + field + " '" + info.getName() + "' has shape " + Arrays.toString(got)
                    + " in the ONNX model, the manifest implies " + Arrays.toString(want).replace("-1", "batch") + " with a dynamic batch dimension");
        }
        if (t.type != ai.onnxruntime.OnnxJavaType.FLOAT) {
            throw new ModelPackageException(where + ": " + field + " '" + info.getName() + "' is " + t.type + ", expected FLOAT");
        }
    }

    /** Runs zero-filled batches of 1 and of maxBatch so that the first real batch pays no allocation or kernel-selection cost. */
    public void warmUp(int maxBatch) {
        // the sessions themselves: a warm-up image near a threshold must not count as refereed
        Output one = warmUp(session, maxBatch);
        if (precision == Precision.fp32) {
            checkHostHead(one);
        }
        if (referee != null) {
            checkHostHead(warmUp(referee, maxBatch));
        }
        if (guided != null) {
            checkGuidedLogits(one);
        }
    }

    /** Zero-filled batches of 1 and of maxBatch through one session: the batch of 1's output. */
    private Output warmUp(OrtSession s, int maxBatch) {
        FloatBuffer in = inputBuffer(1);
        in.put(new float[inputLen]);
        Output one = run(s, in.flip(), 1);
        if (maxBatch > 1) {
            in = inputBuffer(maxBatch);
            in.put(new float[inputLen * maxBatch]);
            run(s, in.flip(), maxBatch);
        }
        return one;
    }

    /**
     * The host head (Grad-CAM's) run on the warm-up features must give the model's logits: a manifest naming the
     * wrong initializers, or a head that is not what the graph computes, would explain another function. FP32 only
     * (an INT8 graph's logits carry its quantisation error): the FP32 model or the INT8 variant's referee.
     */
    private void checkHostHead(Output model) {
        float[] host = pkg.head().logits(model.features(), 0);
        double worst = 0;
        for (int c = 0; c < labels; c++) {
            double a = model.logits()[c];
            worst = Math.max(worst, Math.abs(a - host[c]) / Math.max(1.0, Math.abs(a)));
        }
        if (!(worst <= GUIDED_LOGITS_BOUND)) {
            close();
            throw new ModelPackageException("model package " + pkg.manifest().id() + ": head: the host head (" + pkg.head() + ") gives logits "
                    + String.format(java.util.Locale.ROOT, "%.3g", worst) + " (relative) from the model's on the warm-up image:"
                    + " the manifest's head is not the one the graph runs, and Grad-CAM would explain another function");
        }
    }

    /**
     * The guided graph's forward logits on the warm-up image must be the model's: a graph built from other
     * weights (another version of the package, a different head) passes the shape check but explains another
     * model. Refused like a bad signature. The INT8 variant is compared with the FP32 guided graph, so its
     * bound allows the quantisation error (Int8FidelityTest), still far below another model's O(1) difference.
     * The difference is taken relative to the largest logit, not label by label: the quantisation error is spread
     * over the whole vector, and a logit near zero would otherwise carry it alone (a trained 192x192 DenseNet-121,
     * INT8 on the flat warm-up image: logits up to 31.0, one of 0.11 moved by 0.17; relative to 31, 0.02).
     */
    private void checkGuidedLogits(Output model) {
        double bound = precision == Precision.int8 ? GUIDED_LOGITS_BOUND_INT8 : GUIDED_LOGITS_BOUND;
        GuidedGraph.Result r = guided.run(new float[inputLen], 0, new int[]{0});
        double worst = 0, scale = 1.0;
        for (int c = 0; c < labels; c++) {
            worst = Math.max(worst, Math.abs(model.logits()[c] - r.logits()[c]));
            scale = Math.max(scale, Math.abs(model.logits()[c]));
        }
        worst /= scale;
        if (!(worst <= bound)) {
            close();
            throw new ModelPackageException("model package " + pkg.manifest().id() + ": guided.file: its logits differ from the model's by "
                    + String.format(java.util.Locale.ROOT, "%.3g", worst) + " (relative) on the warm-up image: the guided graph does not carry this model's weights");
        }
    }

    /** The guided-backpropagation graph, or null when the package ships none. */
    public GuidedGraph guided() {
        return guided;
    }

    /** input holds n images of [C, size, size]. */
    public Output run(float[] input, int n) {
        FloatBuffer in = inputBuffer(n);
        in.put(input, 0, n * inputLen);
        return runBuffer(n);
    }

    /** One image of [C, size, size] per array. */
    public Output run(java.util.List<float[]> images) {
        int n = images.size();
        FloatBuffer in = inputBuffer(n);
        for (float[] im : images) {
            if (im.length != inputLen) {
                throw new IllegalArgumentException("an input of " + im.length + " values, the model takes " + inputLen);
            }
            in.put(im);
        }
        return runBuffer(n);
    }

    /**
     * The reused direct input buffer, cleared, holding at least n images: ONNX Runtime reads a direct buffer in place,
     * where a heap array would be copied into a new direct buffer on every run. Grows to the largest batch seen.
     */
    private FloatBuffer inputBuffer(int n) {
        input = atLeast(input, n);
        return input;
    }

    /** b, or a new direct buffer where b is null or holds fewer than n images; cleared. */
    private FloatBuffer atLeast(FloatBuffer b, int n) {
        if (b == null || b.capacity() < n * inputLen) {
            b = java.nio.ByteBuffer.allocateDirect(n * inputLen * Float.BYTES).order(java.nio.ByteOrder.nativeOrder()).asFloatBuffer();
        }
        b.clear();
        return b;
    }

    /** The n images in the input buffer through the model, and the images near a threshold again through the referee. */
    private Output runBuffer(int n) {
        Output out = run(session, input.flip(), n);
        if (guard == null) {
            return out;
        }
        int[] near = guard.nearThreshold(out.logits(), n);
        if (near.length == 0) {
            return out;
        }
        refereeInput = atLeast(refereeInput, near.length);
        FloatBuffer image = input.duplicate();
        for (int i : near) {
            image.clear().limit((i + 1) * inputLen).position(i * inputLen);
            refereeInput.put(image);
        }
        Output fp32 = run(referee, refereeInput.flip(), near.length);
        int fl = featureC * featureHW;
        for (int k = 0; k < near.length; k++) {
            System.arraycopy(fp32.logits(), k * labels, out.logits(), near[k] * labels, labels);
            System.arraycopy(fp32.features(), k * fl, out.features(), near[k] * fl, fl);
        }
        refereed.addAndGet(near.length);
        return out;
    }

    private Output run(OrtSession s, FloatBuffer in, int n) {
        long[] shape = inputShape.clone();
        shape[0] = n;
        try (OnnxTensor t = OnnxTensor.createTensor(env, in, shape);
             OrtSession.Result r = s.run(Map.of(pkg.manifest().input().name(), t), outputNames)) {
            float[] logits = floats(r, pkg.manifest().outputs().logits(), n * labels);
            float[] features = floats(r, pkg.manifest().outputs().features(), n * featureC * featureHW);
            return new Output(n, logits, features);
        } catch (OrtException e) {
            throw new IllegalStateException("model " + pkg.manifest().id() + ": inference failed: " + e.getMessage(), e);
        }
    }

    /** One float output of a run, checked for the size the caller expects (the model and the guided graph). */
    static float[] floats(OrtSession.Result r, String name, int expected) throws OrtException {
        OnnxValue v = r.get(name).orElseThrow(() -> new IllegalStateException("output " + name + " missing"));
        FloatBuffer fb = ((OnnxTensor) v).getFloatBuffer();
        if (fb.remaining() != expected) {
            throw new IllegalStateException("output " + name + " has " + fb.remaining() + " values, expected " + expected);
        }
        float[] out = new float[expected];
        fb.get(out);
        return out;
    }

    public ModelPackage pkg() {
        return pkg;
    }

    public EngineKind engine() {
        return engine;
    }

    public Precision precision() {
        return precision;
    }

    /**
     * Images scored again at FP32 by the INT8 decision guard since the model was loaded (warm-up not counted);
     * 0 at FP32 or without a margin.
     */
    public long refereedImages() {
        return refereed.get();
    }

    /** Forgets the images refereed so far: the scoring path's warm-up (ModelRegistry) is no study's. */
    void clearRefereedImages() {
        refereed.set(0);
    }

    /** The INT8 decision margin in force, 0 when none (FP32, or cxr.inference.int8-decision-margin 0). */
    public double decisionMargin() {
        return guard == null ? 0 : guard.margin();
    }

    /** Where {@link #decisionMargin} came from: the setting, the package's measured margin, or the default. */
    String decisionMarginSource() {
        return marginSource;
    }

    /** The ONNX Runtime settings of this model's sessions (its guided graph's too). */
    public SessionSettings settings() {
        return settings;
    }

    public int inputLength() {
        return inputLen;
    }

    public int labels() {
        return labels;
    }

    public int featureChannels() {
        return featureC;
    }

    public int featureSize() {
        return pkg.manifest().outputs().featureSize();
    }

    private void closeQuietly() {
        // twice when a failed warm-up closed the model and the registry's shutdown closes what it loaded
        if (closed) {
            return;
        }
        closed = true;
        if (guided != null) {
            guided.close();
        }
        for (OrtSession s : new OrtSession[]{referee, session}) {
            try {
                if (s != null) {
                    s.close();
                }
            } catch (OrtException ignored) {
                // already failing; the original error is the useful one
            }
        }
    }

    @Override
    public void close() {
        closeQuietly();
    }
}
