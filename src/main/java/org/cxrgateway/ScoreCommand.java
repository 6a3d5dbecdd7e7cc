package org.cxrgateway;

import jakarta.enterprise.context.ApplicationScoped;
import org.cxrgateway.ingest.AssemblyConfig;
import org.cxrgateway.ingest.StudyJobBuilder;
import org.cxrgateway.ingest.WorkingImageDecoder;
import org.cxrgateway.inference.ModelRegistry;
import org.cxrgateway.inference.OrtModel;
import org.cxrgateway.inference.Preprocessor;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportConfig;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code score FILE.dcm...}: the whole pipeline on local files, without Kafka or network. Prints
 * the findings and writes the SR, the heatmap SCs and the FHIR Bundle beside the first input of
 * each study. The same path from files to a job ({@link StudyJobBuilder}: same reasons to skip, same job id),
 * models and report builders as the gateway: only the transport differs.
 */
@ApplicationScoped
public class ScoreCommand implements CxrGatewayMain.OfflineCommand {

    private final AssemblyConfig assembly;
    private final ModelRegistry models;
    private final ReportConfig report;
    private final PrintStream out = System.out;

    ScoreCommand(AssemblyConfig assembly, ModelRegistry models, ReportConfig report) {
        this.assembly = assembly;
        this.models = models;
        this.report = report;
    }

    @Override
    public String name() {
        return CxrGatewayMain.SCORE;
    }

    @Override
    public int run(String... files) throws Exception {
        // options first: --json FILE (machine-readable scores), --no-reports (no SR/SC/FHIR beside the inputs),
        // --save-model-input (per image and model, the tensor the model was given, as a PNG beside the input),
        // --cams-for-every-label (every finding's Grad-CAM in the JSON, negative ones too: validation's pointing game)
        Path json = null;
        boolean reportsToo = true;
        boolean saveModelInput = false;
        boolean camsForEveryLabel = false;
        int first = 0;
        while (first < files.length && files[first].startsWith("--")) {
            if ("--json".equals(files[first]) && first + 1 < files.length) {
                json = Path.of(files[first + 1]);
                first += 2;
            } else if ("--no-reports".equals(files[first])) {
                reportsToo = false;
                first++;
            } else if ("--save-model-input".equals(files[first])) {
                saveModelInput = true;
                first++;
            } else if ("--cams-for-every-label".equals(files[first])) {
                camsForEveryLabel = true;
                first++;
            } else {
                break;
            }
        }
        files = java.util.Arrays.copyOfRange(files, first, files.length);
        if (files.length == 0) {
            System.err.println("usage: score [--json FILE] [--no-reports] [--save-model-input] [--cams-for-every-label] FILE.dcm...");
            return 2;
        }
        ScoreJson scores = json == null ? null : new ScoreJson();
        Map<String, Path> fileBySop = new java.util.HashMap<>();
        WorkingImageDecoder decoder = new WorkingImageDecoder(assembly.workingLongSide(), assembly.bitsPerPixel(),
                assembly.pixelEncoding(), assembly.maxPayloadBytes());
        Map<String, Study> studies = new LinkedHashMap<>();
        int unreadable = 0;
        for (String name : files) {
            Path file = Path.of(name);
            StudyJobBuilder.FileOutcome outcome = StudyJobBuilder.read(file, decoder);
            if (outcome.instance() == null) {
                // no study to put it in: reported here only
                unreadable++;
                notScored(scores, file, "not scored, " + describe(outcome.error()) + " (" + outcome.skipReason() + ")",
                        outcome);
                continue;
            }
            studies.computeIfAbsent(outcome.instance().studyInstanceUid(), uid -> new Study(file))
                    .job.add(outcome.instance().sopInstanceUid(), outcome);
            if (outcome.image() != null) {
                fileBySop.put(outcome.instance().sopInstanceUid(), file);
            } else {
                notScored(scores, file, "skipped, " + outcome.skipReason()
                        + (outcome.error() == null ? "" : " (" + describe(outcome.error()) + ")"), outcome);
            }
        }
        ReportBuilder reports = new ReportBuilder(ReportSettings.from(report));
        for (Study study : studies.values()) {
            if (study.job.images().isEmpty()) {
                continue;
            }
            StudyJob job = study.job.job().build();
            StudyResult result = models.load(camsForEveryLabel).score(job);
            print(result);
            if (saveModelInput) {
                saveModelInputs(study.job.images(), fileBySop);
            }
            if (scores != null) {
                scores.add(result, fileBySop);
            }
            if (reportsToo) {
                write(study.firstFile, reports.build(result));
            }
        }
        for (OrtModel m : models.models()) {
            if (m.decisionMargin() > 0) {
                out.printf(Locale.ROOT, "%nmodel %s at int8: %d image(s) with a score within %s (log-odds) of a threshold scored again at fp32%n",
                        m.pkg().manifest().id(), m.refereedImages(), m.decisionMargin());
            }
        }
        if (scores != null) {
            scores.decisionGuard(models.models());
            scores.write(json);
        }
        return unreadable == files.length ? 1 : 0;
    }

    /** One line a user can act on; the stack trace would only hide it. */
    private static String describe(Exception e) {
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "no such file";
        }
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        return e.getMessage() == null || e.getMessage().isBlank() ? e.getClass().getSimpleName() : e.getMessage();
    }

    private void print(StudyResult result) {
        for (ImageResult image : result.getImages()) {
            out.printf("%nimage %s%n", image.getSopInstanceUid());
            for (ModelRun run : image.getRuns()) {
                out.printf("  model %s %s (%s)%s%n", run.getModelId(), run.getModelVersion(), run.getEngine(),
                        run.getDiagnostic() ? "" : "  ** AI - NOT FOR DIAGNOSTIC USE: untrained demo model **");
                out.printf("    %-20s %-10s %11s %9s  %s%n", "finding", "code", "probability", "threshold", "result");
                for (Finding f : run.getFindings()) {
                    out.printf(Locale.ROOT, "    %-20s %-10s %11.3f %9.3f  %s%n", f.getLabel(), f.getCode().getValue(),
                            f.getProbability(), f.getThreshold(), f.getPositive() ? "POSITIVE" : "negative");
                }
            }
        }
    }

    /**
     * What each model was given, denormalised (Preprocessor.denormalised) and written as
     * STEM.MODEL.model-input.png beside the input: the crop, the resolution and the intensity range in one look.
     */
    private void saveModelInputs(List<SourceImage> images, Map<String, Path> fileBySop) throws IOException {
        List<OrtModel> loaded = models.models();
        List<Preprocessor> pre = loaded.stream().map(m -> new Preprocessor(m.pkg().manifest())).toList();
        for (SourceImage image : images) {
            Path file = fileBySop.get(image.getSopInstanceUid()).toAbsolutePath();
            float[] gray = Preprocessor.decode(image.getImage());
            for (int mi = 0; mi < loaded.size(); mi++) {
                OrtModel model = loaded.get(mi);
                Preprocessor p = pre.get(mi);
                float[] tensor = new float[p.tensorLength()];
                p.apply(gray, image.getImage().getWidth(), image.getImage().getHeight(), tensor, 0);
                byte[] px = p.denormalised(tensor, 0);
                int n = p.size();
                BufferedImage picture = new BufferedImage(n, n, p.channels() == 3 ? BufferedImage.TYPE_3BYTE_BGR
                        : BufferedImage.TYPE_BYTE_GRAY);
                int[] samples = new int[px.length];
                for (int i = 0; i < px.length; i++) {
                    samples[i] = px[i] & 0xff;
                }
                picture.getRaster().setPixels(0, 0, n, n, samples);
                Path png = file.resolveSibling(stem(file) + "." + model.pkg().manifest().id() + ".model-input.png");
                ImageIO.write(picture, "png", png.toFile());
                out.printf("model input: %s%n", png);
            }
        }
    }

    /** The file name without its .dcm: what the outputs written beside an input are named after. */
    private static String stem(Path file) {
        return file.getFileName().toString().replaceFirst("(?i)\\.dcm$", "");
    }

    private void write(Path besides, ReportSet set) throws Exception {
        Path dir = besides.toAbsolutePath().getParent();
        String stem = stem(besides);
        List<Path> written = new ArrayList<>();
        int n = 0;
        for (ReportSet.DicomObject o : set.dicom()) {
            Path f = dir.resolve(stem + "." + o.kind().toLowerCase(Locale.ROOT) + "-" + (++n) + ".dcm");
            Files.write(f, o.part10());
            written.add(f);
        }
        Path bundle = dir.resolve(stem + ".fhir.json");
        Files.writeString(bundle, set.fhirBundleJson(), StandardCharsets.UTF_8);
        written.add(bundle);
        out.printf("%nwrote:%n");
        written.forEach(f -> out.printf("  %s%n", f));
    }

    /** One line per file that is not scored; the JSON gets the reason code first (UNREADABLE: the error). */
    private void notScored(ScoreJson scores, Path file, String line, StudyJobBuilder.FileOutcome outcome) {
        out.printf("%s: %s%n", file, line);
        if (scores != null) {
            scores.notScored(file, outcome.skipReason()
                    + (outcome.error() == null ? "" : ": " + describe(outcome.error())));
        }
    }

    private static final class Study {
        final Path firstFile;
        final StudyJobBuilder job = new StudyJobBuilder();

        Study(Path firstFile) {
            this.firstFile = firstFile;
        }
    }
}
