package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.GuidedMap;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.xai.GradCam;
import org.cxrgateway.xai.GuidedGradCam;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * Scores a batch of decoded working images with every loaded model, in three steps that MicroBatcher runs on
 * three threads so that the engine never waits for the host's work: {@link #prepare} (preprocessing, any thread),
 * {@link #forward} (one ONNX Runtime run per model, the batching thread) and {@link #finish} (activation,
 * operating thresholds, a Grad-CAM for every positive finding and the guided Grad-CAMs, one thread at a time).
 * finish is itself two steps, {@link #scores} and {@link #guided}, so that the scores can leave (a preview result)
 * while the guided Grad-CAMs, most of the host's time for an image, are made.
 */
public final class Scorer {

    /** A working image to score. */
    public record Image(GrayImage gray) {
        /** An image already decoded: gray values in [0, 1], row-major. */
        public Image(float[] gray, int width, int height) {
            this(GrayImage.of(gray, width, height));
        }

        public int width() {
            return gray.width();
        }

        public int height() {
            return gray.height();
        }
    }

    /**
     * Per image, one ModelRun per model, in model order; engineMs is the ONNX Runtime time of the whole batch,
     * guidedMs the time of its guided Grad-CAMs (guided-graph runs, combination with the CAM, encoding).
     */
    public record BatchResult(List<List<ModelRun>> runs, double engineMs, double guidedMs) {
    }

    private final List<OrtModel> models;
    private final List<Preprocessor> pre = new ArrayList<>();
    private final int maxGuided;
    private final boolean camsForEveryLabel;
    private double guidedMs;
    /** guidedMs and the rest of making the guided maps (combination with the CAMs, encoding): BatchResult.guidedMs. */
    private double guidedAllMs;
    private int guidedClasses;

    /** Without guided Grad-CAM. */
    public Scorer(List<OrtModel> models) {
        this(models, 0);
    }

    /**
     * maxGuided: per image and model, the positive findings with the highest probability, at most this many,
     * get a guided Grad-CAM when the package ships the guided graph. The report builder gives explanation
     * objects to the top cxr.report.max-secondary-captures findings of a study, so passing that value here
     * computes every guided map the report can use (a study's top n within one image and model is within that
     * image and model's top n) and no more than n per image and model.
     */
    public Scorer(List<OrtModel> models, int maxGuided) {
        this(models, maxGuided, false);
    }

    /**
     * camsForEveryLabel: every reported finding gets its Grad-CAM, negative ones too (the score command's
     * --cams-for-every-label, for validation's pointing game); decisions and guided maps are unchanged.
     */
    public Scorer(List<OrtModel> models, int maxGuided, boolean camsForEveryLabel) {
        this.models = List.copyOf(models);
        this.maxGuided = Math.max(0, maxGuided);
        this.camsForEveryLabel = camsForEveryLabel;
        for (OrtModel m : models) {
            pre.add(new Preprocessor(m.pkg().manifest()));
        }
    }

    public List<OrtModel> models() {
        return models;
    }

    /** The side of the largest guided map this scorer makes (the model-input side), 0 when it makes none. */
    public int guidedMapSide() {
        if (maxGuided == 0) {
            return 0;
        }
        return models.stream().filter(m -> m.guided() != null).mapToInt(m -> m.pkg().manifest().input().size()).max().orElse(0);
    }

    /**
     * An image made ready for every model: its model-input tensor per model (model order) and the working-image
     * size that post-processing needs for the CAM region. The decoded grey image is not kept.
     */
    public record Prepared(int width, int height, float[][] tensors) {
    }

    /** The engine's outputs for a batch of prepared images, one Output per model. */
    public record Forward(List<Prepared> images, List<OrtModel.Output> outputs, double engineMs) {
    }

    /**
     * Preprocessing for every model. Thread-safe (the preprocessors hold no state), so MicroBatcher runs it on the
     * submitting thread, beside the engine, rather than between two engine runs.
     *
     * @throws IllegalArgumentException when the image does not fit a model
     */
    public Prepared prepare(Image im) {
        float[][] t = new float[models.size()][];
        for (int mi = 0; mi < models.size(); mi++) {
            Preprocessor p = pre.get(mi);
            t[mi] = new float[p.tensorLength()];
            p.apply(im.gray(), t[mi], 0);
        }
        return new Prepared(im.width(), im.height(), t);
    }

    /** One ONNX Runtime run per model over the batch and nothing else: the engine's critical path. */
    public Forward forward(List<Prepared> images) {
        List<OrtModel.Output> outs = new ArrayList<>(models.size());
        double engineMs = 0;
        List<float[]> inputs = new ArrayList<>(images.size());
        for (int mi = 0; mi < models.size(); mi++) {
            inputs.clear();
            for (Prepared im : images) {
                inputs.add(im.tensors()[mi]);
            }
            long t0 = System.nanoTime();
            outs.add(models.get(mi).run(inputs));
            engineMs += (System.nanoTime() - t0) / 1e6;
        }
        return new Forward(images, outs, engineMs);
    }

    /**
     * Post-processing of a batch: activation, thresholds, Grad-CAM and guided Grad-CAM of the positive findings
     * ({@link #scores} then {@link #guided}). Runs on one thread at a time (the guided graphs' sessions are used here
     * only); MicroBatcher runs it on its result thread while the engine runs the next batch.
     */
    public BatchResult finish(Forward f) {
        return guided(scores(f));
    }

    /**
     * A batch scored but for its guided Grad-CAMs: the findings that will get one say so (Finding.guidedFollows)
     * until {@link #guided} puts the map in their place.
     */
    public static final class Scores {
        private final List<List<ModelRun>> runs;
        private final double engineMs;
        private final List<GuidedWork> work = new ArrayList<>();
        private boolean done;

        private Scores(List<List<ModelRun>> runs, double engineMs) {
            this.runs = runs;
            this.engineMs = engineMs;
        }

        /** Per image, one ModelRun per model, in model order; their guided maps are still to come. */
        public List<List<ModelRun>> runs() {
            return runs;
        }

        /** True when image i of the batch has a finding whose guided map is still to come. */
        public boolean guidedFollows(int i) {
            return work.stream().anyMatch(w -> w.image == i);
        }
    }

    /** The guided maps of one image and model: the findings of classes (in that order) get them. */
    private record GuidedWork(int image, OrtModel model, Preprocessor pre, int width, int height, float[] input,
                              int[] classes, Finding[] findings, float[][] cams) {
    }

    /** Activation, operating thresholds and the Grad-CAMs of a batch; the guided Grad-CAMs are only chosen. */
    public Scores scores(Forward f) {
        int n = f.images().size();
        List<List<ModelRun>> runs = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            runs.add(new ArrayList<>(models.size()));
        }
        Scores s = new Scores(runs, f.engineMs());
        for (int mi = 0; mi < models.size(); mi++) {
            for (int i = 0; i < n; i++) {
                Prepared im = f.images().get(i);
                runs.get(i).add(run(s, i, models.get(mi), pre.get(mi), f.outputs().get(mi), im.width(), im.height(), im.tensors()[mi]));
            }
        }
        return s;
    }

    /** Makes the guided Grad-CAMs that {@link #scores} chose and puts them into its runs. Once per Scores. */
    public BatchResult guided(Scores s) {
        if (s.done) {
            throw new IllegalStateException("the guided maps of this batch were made already");
        }
        s.done = true;
        double guidedBefore = guidedAllMs;
        for (GuidedWork w : s.work) {
            guidedMaps(w);
        }
        return new BatchResult(s.runs, s.engineMs, guidedAllMs - guidedBefore);
    }

    /** prepare, forward and finish on the caller's thread (the scoring-path warm-up, tests, benches). */
    public BatchResult score(List<Image> images) {
        return finish(forward(images.stream().map(this::prepare).toList()));
    }

    /** Guided backprop time (ms) and classes computed so far; for benches and the cost figure. */
    public double guidedMs() {
        return guidedMs;
    }

    public int guidedClasses() {
        return guidedClasses;
    }

    /** The probabilities of image i of a batch of logits [n, labels], by the manifest's activation. */
    static double[] probabilities(ModelManifest m, float[] logits, int i) {
        int labels = m.labels().size();
        double[] prob = new double[labels];
        if ("softmax".equals(m.activation())) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < labels; c++) {
                max = Math.max(max, logits[i * labels + c]);
            }
            double sum = 0;
            for (int c = 0; c < labels; c++) {
                prob[c] = Math.exp(logits[i * labels + c] - max);
                sum += prob[c];
            }
            for (int c = 0; c < labels; c++) {
                prob[c] /= sum;
            }
        } else {
            for (int c = 0; c < labels; c++) {
                prob[c] = 1.0 / (1.0 + Math.exp(-logits[i * labels + c]));
            }
        }
        return prob;
    }

    private ModelRun run(Scores s, int i, OrtModel model, Preprocessor p, OrtModel.Output out, int w, int h, float[] input) {
        ModelManifest m = model.pkg().manifest();
        double[] prob = probabilities(m, out.logits(), i);
        // the raw CAM of each positive reported finding (of every one with camsForEveryLabel), computed once for its
        // heatmap and its guided Grad-CAM
        java.util.Map<Integer, float[]> cams = new java.util.LinkedHashMap<>();
        List<Integer> positives = new ArrayList<>();
        for (int c : m.reportedIndices()) {
            boolean positive = prob[c] >= m.labels().get(c).threshold();
            if (positive) {
                positives.add(c);
            }
            if (positive || camsForEveryLabel) {
                cams.put(c, rawCam(model, out, i, c));
            }
        }
        int[] guided = guidedClasses(model, prob, positives);
        java.util.Map<Integer, Finding> byClass = new java.util.HashMap<>();
        List<Finding> findings = new ArrayList<>();
        for (int c : m.reportedIndices()) {
            ModelManifest.Label l = m.labels().get(c);
            boolean positive = positives.contains(c);
            Finding f = Finding.newBuilder()
                    .setLabel(l.name())
                    .setCode(new Code(l.code().value(), l.code().scheme(), l.code().meaning()))
                    .setProbability((float) prob[c])
                    .setThreshold((float) l.threshold())
                    .setPositive(positive)
                    .setActivation(cams.containsKey(c) ? activation(cams.get(c), model, p, w, h) : null)
                    .setGuidedFollows(java.util.Arrays.stream(guided).anyMatch(g -> g == c))
                    .build();
            byClass.put(c, f);
            findings.add(f);
        }
        if (guided.length > 0) {
            Finding[] targets = new Finding[guided.length];
            float[][] guidedCams = new float[guided.length][];
            for (int k = 0; k < guided.length; k++) {
                targets[k] = byClass.get(guided[k]);
                guidedCams[k] = cams.get(guided[k]);
            }
            s.work.add(new GuidedWork(i, model, p, w, h, input, guided, targets, guidedCams));
        }
        return ModelRun.newBuilder()
                .setModelId(m.id()).setModelVersion(m.version())
                .setDiagnostic(m.diagnostic()).setIntendedUse(m.intendedUse())
                .setEngine(model.engine().name())
                .setFindings(findings)
                .build();
    }

    /**
     * The classes that get a guided Grad-CAM: the top maxGuided positive reported findings, when the package ships
     * the guided graph; none otherwise.
     */
    private int[] guidedClasses(OrtModel model, double[] prob, List<Integer> positives) {
        if (model.guided() == null || maxGuided == 0 || positives.isEmpty()) {
            return new int[0];
        }
        List<Integer> byProbability = new ArrayList<>(positives);
        byProbability.sort((a, b) -> Double.compare(prob[b], prob[a]));
        return byProbability.stream().limit(maxGuided).mapToInt(Integer::intValue).toArray();
    }

    /**
     * Guided Grad-CAM for the chosen findings of one image and model, one guided-graph run for all of them, each
     * put into its finding (guidedFollows cleared). The map stays on the model-input grid; its region is the
     * rectangle of the working image the model saw, as for the CAM.
     */
    private void guidedMaps(GuidedWork w) {
        ModelManifest m = w.model().pkg().manifest();
        long t0 = System.nanoTime();
        GuidedGraph.Result r = w.model().guided().run(w.input(), 0, w.classes());
        guidedMs += (System.nanoTime() - t0) / 1e6;
        guidedClasses += w.classes().length;
        int fs = w.model().featureSize();
        int size = m.input().size();
        Preprocessor.Crop crop = w.pre().crop(w.width(), w.height());
        for (int k = 0; k < w.classes().length; k++) {
            float[] map = GuidedGradCam.combine(r.gradient(), k, m.input().channels(), size, w.cams()[k], fs, fs);
            GuidedGradCam.Encoded e = GuidedGradCam.encode(map);
            w.findings()[k].setGuided(GuidedMap.newBuilder().setWidth(size).setHeight(size)
                    .setRegionX(crop.x()).setRegionY(crop.y()).setRegionWidth(crop.width()).setRegionHeight(crop.height())
                    .setMaxAbs(e.maxAbs()).setValues(ByteBuffer.wrap(e.deflated())).build());
            w.findings()[k].setGuidedFollows(false);
        }
        guidedAllMs += (System.nanoTime() - t0) / 1e6;
    }

    /**
     * The raw CAM at feature resolution with the rectangle of the working image the model saw (the centre
     * square for crop=center, everything otherwise); the report package renders it (report CamMaps).
     */
    ActivationMap activation(OrtModel model, Preprocessor p, OrtModel.Output out, int i, int cls, Image im) {
        return activation(rawCam(model, out, i, cls), model, p, im.width(), im.height());
    }

    /**
     * Grad-CAM of class cls for image i of the batch, at feature resolution, from the feature map alone: the head's
     * Grad-CAM weights by a host forward and backward (ClassifierHead; = CAM for GAP + linear heads).
     */
    private static float[] rawCam(OrtModel model, OrtModel.Output out, int i, int cls) {
        int c = model.featureChannels(), fs = model.featureSize();
        int offset = i * c * fs * fs;
        return GradCam.map(out.features(), offset, c, fs, fs, model.pkg().head().camRow(out.features(), offset, cls));
    }

    private static ActivationMap activation(float[] raw, OrtModel model, Preprocessor p, int w, int h) {
        int fs = model.featureSize();
        Preprocessor.Crop crop = p.crop(w, h);
        List<Float> values = new ArrayList<>(raw.length);
        for (float v : raw) {
            values.add(v);
        }
        return ActivationMap.newBuilder().setWidth(fs).setHeight(fs)
                .setRegionX(crop.x()).setRegionY(crop.y()).setRegionWidth(crop.width()).setRegionHeight(crop.height())
                .setValues(values).build();
    }
}
