package org.cxrgateway.inference;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;

import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;

/**
 * The guided-backpropagation graph of a package (src/main/python/guided_backprop.py) on its own ONNX
 * Runtime session: one image and K class indices in, d logit_c / d input under the guided-ReLU rule out.
 * The signature is checked against the model at load, naming the manifest field that does not fit.
 * Not thread-safe, like {@link OrtModel}.
 */
public final class GuidedGraph implements AutoCloseable {

    /** What the graph must look like: names from the manifest, sizes from the model. */
    public record Spec(String image, String classes, String gradient, String logits, int channels, int size, int labels) {

        static Spec of(ModelManifest m) {
            ModelManifest.Guided g = m.guided();
            return new Spec(g.inputs().image(), g.inputs().classes(), g.outputs().gradient(), g.outputs().logits(),
                    m.input().channels(), m.input().size(), m.labels().size());
        }
    }

    /** gradient holds [K, C, S, S] row-major; logits the forward logits of the image. */
    public record Result(float[] gradient, float[] logits) {
    }

    private final OrtEnvironment env;
    private final OrtSession session;
    private final Spec spec;
    private final int inputLen;

    /** where names the package in errors; the graph file may reference the model's external weights. */
    public GuidedGraph(Path file, Spec spec, String where, int intraOpThreads) {
        this(file, spec, where, SessionSettings.defaults(intraOpThreads));
    }

    /** The model's session settings (OrtModel passes its own). */
    public GuidedGraph(Path file, Spec spec, String where, SessionSettings settings) {
        this(file, spec, where, settings, OrtSession.SessionOptions.OptLevel.ALL_OPT);
    }

    GuidedGraph(Path file, Spec spec, String where, int intraOpThreads, OrtSession.SessionOptions.OptLevel optLevel) {
        this(file, spec, where, SessionSettings.defaults(intraOpThreads), optLevel);
    }

    /** optLevel: tests compare with PyTorch unfused (no Conv+BN folding), so forward rounding, and thus ReLU masks, agree. */
    GuidedGraph(Path file, Spec spec, String where, SessionSettings settings, OrtSession.SessionOptions.OptLevel optLevel) {
        this.env = OrtEnvironment.getEnvironment();
        this.spec = spec;
        this.inputLen = spec.channels() * spec.size() * spec.size();
        try (OrtSession.SessionOptions opts = settings.options(optLevel)) {
            this.session = env.createSession(file.toString(), opts);
        } catch (OrtException e) {
            throw new ModelPackageException(where + ": guided.file: ONNX Runtime cannot load " + file.getFileName() + ": " + e.getMessage(), e);
        }
        try {
            checkSignature(where);
        } catch (RuntimeException | OrtException e) {
            close();
            throw e instanceof ModelPackageException mpe ? mpe : new ModelPackageException(where + ": guided.file: " + e.getMessage(), e);
        }
    }

    private void checkSignature(String where) throws OrtException {
        Map<String, NodeInfo> in = session.getInputInfo();
        Map<String, NodeInfo> out = session.getOutputInfo();
        int c = spec.channels(), s = spec.size();
        expect(where, "guided.inputs.image", in, spec.image(), OnnxJavaType.FLOAT, new long[]{1, c, s, s});
        expect(where, "guided.inputs.classes", in, spec.classes(), OnnxJavaType.INT64, new long[]{-1});
        if (in.size() != 2) {
            throw new ModelPackageException(where + ": guided.inputs: the guided graph must have exactly the inputs image and classes, has " + in.keySet());
        }
        expect(where, "guided.outputs.gradient", out, spec.gradient(), OnnxJavaType.FLOAT, new long[]{-1, c, s, s});
        expect(where, "guided.outputs.logits", out, spec.logits(), OnnxJavaType.FLOAT, new long[]{1, spec.labels()});
    }

    /** want: -1 = must be dynamic (K), otherwise the graph must fix that size or leave it dynamic. */
    private static void expect(String where, String field, Map<String, NodeInfo> infos, String name, OnnxJavaType type, long[] want) {
        NodeInfo info = infos.get(name);
        if (info == null) {
            throw new ModelPackageException(where + ": " + field + " '" + name + "' is not in the guided graph (has " + infos.keySet() + ")");
        }
        if (!(info.getInfo() instanceof TensorInfo t)) {
            throw new ModelPackageException(where + ": " + field + " '" + name + "' is not a tensor");
        }
        long[] got = t.getShape();
        boolean ok = got.length == want.length;
        for (int i = 0; ok && i < got.length; i++) {
            ok = want[i] < 0 ? got[i] < 0 : (got[i] < 0 || got[i] == want[i]);
        }
        if (!ok) {
            throw new ModelPackageException(where + ": " + field + " '" + name + "' has shape " + Arrays.toString(got)
                    + " in the guided graph, the model implies " + Arrays.toString(want).replace("-1", "K"));
        }
        if (t.type != type) {
            throw new ModelPackageException(where + ": " + field + " '" + name + "' is " + t.type + ", expected " + type);
        }
    }

    /** One image ([C, S, S] at offset of input) and K class indices. */
    public Result run(float[] input, int offset, int[] classes) {
        long[] cls = Arrays.stream(classes).asLongStream().toArray();
        for (int k : classes) {
            if (k < 0 || k >= spec.labels()) {
                throw new IllegalArgumentException("class " + k + " outside 0.." + (spec.labels() - 1));
            }
        }
        int s = spec.size();
        try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(input, offset, inputLen).slice(), new long[]{1, spec.channels(), s, s});
             OnnxTensor k = OnnxTensor.createTensor(env, LongBuffer.wrap(cls), new long[]{cls.length});
             OrtSession.Result r = session.run(Map.of(spec.image(), x, spec.classes(), k), Set.of(spec.gradient(), spec.logits()))) {
            return new Result(OrtModel.floats(r, spec.gradient(), classes.length * inputLen), OrtModel.floats(r, spec.logits(), spec.labels()));
        } catch (OrtException e) {
            throw new IllegalStateException("guided graph: inference failed: " + e.getMessage(), e);
        }
    }

    public Spec spec() {
        return spec;
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException ignored) {
            // closing is best effort; nothing is left to use
        }
    }
}
