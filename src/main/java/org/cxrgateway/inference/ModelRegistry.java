package org.cxrgateway.inference;

import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.cxrgateway.GatewayConfig;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;

/**
 * Loads every model package once, creates its session and warms it up, in the background at start
 * on processes that run the worker role; readiness stays DOWN until all are ready. Holds the
 * process's one {@link MicroBatcher}.
 */
@ApplicationScoped
public class ModelRegistry {

    private static final Logger LOG = Logger.getLogger(ModelRegistry.class);


    private final InferenceConfig config;
    private final GatewayConfig gateway;
    private final CompletableFuture<MicroBatcher> ready = new CompletableFuture<>();
    private volatile String state = "not started";
    private final List<OrtModel> models = new ArrayList<>();

    private final int maxGuided;

    ModelRegistry(InferenceConfig config, GatewayConfig gateway, org.cxrgateway.report.ReportConfig report) {
        this.config = config;
        this.gateway = gateway;
        // guided maps only where the report can use them: see Scorer
        this.maxGuided = report.maxSecondaryCaptures();
    }

    void onStart(@Observes StartupEvent event) {
        if (gateway.runs(GatewayConfig.Role.WORKER)) {
            Thread t = new Thread(this::loadQuietly, "cxr-model-loader");
            t.setDaemon(true);
            t.start();
        }
    }

    void onStop(@Observes ShutdownEvent event) {
        if (ready.isDone() && !ready.isCompletedExceptionally()) {
            ready.join().close();
        }
        models.forEach(OrtModel::close);
    }

    private void loadQuietly() {
        try {
            load();
        } catch (RuntimeException e) {
            LOG.errorf("inference models not loaded: %s", e.getMessage());
        }
    }

    /** Loads synchronously (idempotent); the offline score command calls this directly. */
    public MicroBatcher load() {
        return load(false);
    }

    /**
     * load, with every reported finding's Grad-CAM where camsForEveryLabel (Scorer; the score command's
     * --cams-for-every-label). The first call decides.
     */
    public synchronized MicroBatcher load(boolean camsForEveryLabel) {
        if (ready.isDone()) {
            return ready.join();
        }
        try {
            state = "loading";
            List<String> copied = OrtNatives.useFolder(Path.of(config.nativeDir()));
            if (!copied.isEmpty()) {
                LOG.infof("ONNX Runtime's libraries %s copied to %s", copied, config.nativeDir());
            }
            Path work = Path.of(config.workDir());
            List<ModelPackage> pkgs = new ArrayList<>();
            if (config.packagesDir().isPresent()) {
                Path dir = Path.of(config.packagesDir().get());
                try (Stream<Path> s = Files.list(dir)) {
                    for (Path p : s.sorted().toList()) {
                        if (Files.isDirectory(p) || p.getFileName().toString().endsWith(".zip")) {
                            pkgs.add(ModelPackage.open(p, work));
                        }
                    }
                } catch (IOException e) {
                    throw new ModelPackageException("cxr.inference.packages-dir " + dir + ": cannot list: " + e.getMessage(), e);
                }
                if (pkgs.isEmpty()) {
                    throw new ModelPackageException("cxr.inference.packages-dir " + dir + " holds no package folder or .zip");
                }
            } else {
                for (String id : ModelPackage.BUILT_IN) {
                    pkgs.add(ModelPackage.builtIn(id, work));
                }
            }
            for (ModelPackage p : pkgs) {
                long t0 = System.nanoTime();
                OrtModel m = new OrtModel(p, config.engine(), config);
                models.add(m);
                m.warmUp(config.maxBatch());
                LOG.infof("model %s %s loaded and warmed up on %s at %s%s in %d ms%s", p.manifest().id(), p.manifest().version(),
                        config.engine(), config.precision(),
                        m.decisionMargin() > 0 ? " (images with a score within " + m.decisionMargin() + " log-odds of a threshold scored again at fp32: "
                                + m.decisionMarginSource() + ")" : "",
                        (System.nanoTime() - t0) / 1_000_000, p.manifest().diagnostic() ? "" : " (NOT FOR DIAGNOSTIC USE)");
            }
            Scorer scorer = new Scorer(models, maxGuided, camsForEveryLabel);
            warmUp(scorer);
            models.forEach(OrtModel::clearRefereedImages);
            MicroBatcher b = new MicroBatcher(scorer, config.maxBatch(), config.maxWait());
            state = "ready";
            ready.complete(b);
            return b;
        } catch (RuntimeException e) {
            state = "failed: " + e.getMessage();
            ready.completeExceptionally(e);
            throw e;
        }
    }

    /**
     * One image through the whole scoring path (preprocessing, every model, Grad-CAM and guided maps of what comes
     * out positive) before readiness goes UP: the sessions' own warm-up covers the engine, this covers the Java
     * around it (class loading, the JIT's first compilations), which the first study would otherwise pay.
     */
    private static void warmUp(Scorer scorer) {
        long t0 = System.nanoTime();
        int w = 256, h = 256;
        float[] gray = new float[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                // a smooth gradient with a bright disc: not flat, so activations and maps are not all zero
                double r = Math.hypot(x - w * 0.6, y - h * 0.4);
                gray[y * w + x] = (float) Math.min(1.0, 0.2 + 0.5 * y / h + (r < w / 6.0 ? 0.3 : 0));
            }
        }
        Scorer.BatchResult r = scorer.score(List.of(new Scorer.Image(gray, w, h)));
        long positives = r.runs().get(0).stream().flatMap(run -> run.getFindings().stream())
                .filter(org.cxrgateway.schema.v2.Finding::getPositive).count();
        LOG.infof("scoring path warmed up in %d ms (%d positive finding(s) on the warm-up image)",
                (System.nanoTime() - t0) / 1_000_000, positives);
    }

    public CompletableFuture<MicroBatcher> ready() {
        return ready;
    }

    public String state() {
        return state;
    }

    public List<OrtModel> models() {
        return List.copyOf(models);
    }
}
