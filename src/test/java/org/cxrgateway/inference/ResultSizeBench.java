package org.cxrgateway.inference;

import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.report.CamMaps;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyResult;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Result message bytes per image (not a test): the worker path of src/bench/inference-bench.sh (DenseNet-121
 * chest14, 512x512 8-bit working images, no guided graph run), schema v2 as sent, and beside it what schema v1
 * carried for the same findings (the rendered 256-px map per positive finding instead of 49 floats and a
 * rectangle), computed from the same results. Prints key=value lines.
 *   java -cp target/test-classes:target/classes:$(cat cp.txt) org.cxrgateway.inference.ResultSizeBench N WORKDIR
 */
public final class ResultSizeBench {

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        Path work = Path.of(args[1]);
        ModelPackage chest = ModelPackage.builtIn("chest14", work);
        try (OrtModel model = new OrtModel(chest, EngineKind.cpu, 2, null);
             MicroBatcher b = new MicroBatcher(new Scorer(List.of(model)), 8, java.time.Duration.ofMillis(50))) {
            List<CompletableFuture<StudyResult>> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                String uid = "1.2.826.9." + i;
                out.add(b.submit(InferenceWorkerTest.job(uid, MessageCodec.SCHEMA_VERSION,
                        List.of(InferenceWorkerTest.image(uid + ".1", Fixtures.image(512, 512, 8, i))))));
            }
            long v2 = 0, v1Maps = 0, v2Maps = 0, positives = 0, working = 0;
            for (var f : out) {
                StudyResult r = f.get();
                v2 += MessageCodec.encode(r).length;
                for (ImageResult img : r.getImages()) {
                    working += img.getImage().getPixels().remaining();
                    for (ModelRun run : img.getRuns()) {
                        for (Finding fd : run.getFindings()) {
                            if (fd.getActivation() != null) {
                                positives++;
                                CamMaps.Grid g = CamMaps.render(fd.getActivation(), img.getImage().getWidth(), img.getImage().getHeight());
                                // v1 HeatMap: width, height (varints) + length-prefixed bytes
                                v1Maps += g.values().length + 8;
                                v2Maps += 4L * fd.getActivation().getValues().size() + 16;
                            }
                        }
                    }
                }
            }
            System.out.printf("images=%d%npositive_findings=%d%nworking_image_bytes_per_image=%d%n", n, positives, working / n);
            System.out.printf("result_bytes_per_image=%d%nresult_bytes_per_image_v1_equivalent=%d%n", v2 / n,
                    (v2 - v2Maps + v1Maps) / n);
            System.out.printf("map_bytes_per_positive_v1=%d%nmap_bytes_per_positive_v2=%d%n",
                    positives == 0 ? 0 : v1Maps / positives, positives == 0 ? 0 : v2Maps / positives);
        }
    }
}
