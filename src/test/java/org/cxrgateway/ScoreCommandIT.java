package org.cxrgateway;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.cxrgateway.testing.FhirValidation;
import org.cxrgateway.testing.GatewayProcess;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The newcomer's {@code score FILE.dcm...} on the packaged jar, as a user runs it: its own process,
 * its own working directory, the demo DenseNet-121 packages, no Kafka and no network.
 */
class ScoreCommandIT {

    private static final List<String> CHEST14 = List.of("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration",
            "Mass", "Nodule", "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
            "Pleural_Thickening", "Hernia");
    /** One row of the findings table: label, code, probability, threshold, result. */
    private static final Pattern ROW = Pattern.compile(
            "^\\s+(\\S+)\\s+(\\S+)\\s+([01]\\.\\d{3})\\s+([01]\\.\\d{3})\\s+(POSITIVE|negative)\\s*$");
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Path work;

    @BeforeAll
    static void fixtures() throws Exception {
        Files.createDirectories(Path.of("target", "score-it"));
        work = Files.createTempDirectory(Path.of("target", "score-it"), "run").toAbsolutePath();
    }

    private record Run(int exit, String out) {
    }

    /** Runs the jar from {@code dir}, as a user would: anything it writes relative goes there. */
    private static Run score(Path dir, Path... files) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("java", "-Xmx1g", "-jar", GatewayProcess.jar().toAbsolutePath().toString(),
                "score"));
        for (Path f : files) {
            cmd.add(f.toString());
        }
        Path log = dir.resolve("score-" + System.nanoTime() + ".out");
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new IOException("score did not finish in 180 s: " + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    private static String uid() {
        return "2.25." + new java.math.BigInteger(UUID.randomUUID().toString().replace("-", ""), 16);
    }

    private static List<Path> written(Path dir, String glob) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> dir.getFileSystem().getPathMatcher("glob:" + glob).matches(p.getFileName())).sorted().toList();
        }
    }

    @Test
    void scoresAChestDxSkipsTheLateralAndWritesSrScAndFhirBesideTheInput() throws Exception {
        Path dir = Files.createDirectories(work.resolve("chest"));
        Path chest = dir.resolve("chest.dcm");
        String sop = uid();
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", chest.toString(),
                uid(), uid(), sop, "SCORE-1");
        assertEquals(0, made.exit(), made.out());
        Path cases = dir.resolve("cases");
        Tools.Result c = Tools.run("/usr/bin/python3", "src/test/python/dicom_fixtures.py", "cases", cases.toString());
        assertEquals(0, c.exit(), c.out());
        Path lateral = Files.copy(cases.resolve("bad_lateral.dcm"), dir.resolve("lateral.dcm"));

        Run run = score(dir, chest, lateral);
        assertEquals(0, run.exit(), run.out());
        assertFalse(run.out().contains("Exception"), run.out());
        assertTrue(run.out().contains(lateral + ": skipped, LATERAL_VIEW"), run.out());
        assertTrue(run.out().contains("image " + sop), run.out());
        assertTrue(run.out().contains("NOT FOR DIAGNOSTIC USE"), "demo models are marked: " + run.out());

        // The table: every chest14 label and COVID-19 once, each with a probability and its verdict.
        Map<String, Matcher> rows = new LinkedHashMap<>();
        for (String line : run.out().split("\n")) {
            Matcher m = ROW.matcher(line);
            if (m.matches()) {
                assertEquals(null, rows.put(m.group(1), m), "label printed twice: " + m.group(1));
            }
        }
        List<String> expected = new ArrayList<>(CHEST14);
        expected.add("COVID-19");
        assertEquals(expected, List.copyOf(rows.keySet()), run.out());
        int positives = 0;
        for (Matcher m : rows.values()) {
            double p = Double.parseDouble(m.group(3));
            double threshold = Double.parseDouble(m.group(4));
            assertEquals(p >= threshold, m.group(5).equals("POSITIVE"), "verdict follows the threshold: " + m.group());
            positives += m.group(5).equals("POSITIVE") ? 1 : 0;
        }

        // Beside the input: one SR per model run, the heatmap SCs, one FHIR bundle; nothing for the lateral.
        List<Path> srs = written(dir, "chest.sr-*.dcm");
        List<Path> scs = written(dir, "chest.sc-*.dcm");
        long guidedScs;
        assertEquals(2, srs.size(), "chest14 and covid3 SRs: " + run.out());
        assertEquals(positives > 0, !scs.isEmpty(), "heatmaps exist exactly when something is positive");
        assertEquals(List.of(), written(dir, "lateral.*.*"));
        for (Path f : srs) {
            assertTrue(run.out().contains(f.toString()), "the written SR is listed: " + f);
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + f);
            Tools.Result dump = Tools.run("dsrdump", f.toString());
            assertEquals(0, dump.exit(), dump.out());
            assertTrue(dump.out().contains("not for diagnostic use"), dump.out());
        }
        for (Path f : scs) {
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + f);
        }
        // The demo packages ship the guided-backpropagation graph: every finding chosen for explanation objects
        // gets a colour Grad-CAM SC, a grayscale guided Grad-CAM SC and a 2-frame Parametric Map (Grad-CAM, guided).
        List<Path> pms = written(dir, "chest.pm-*.dcm");
        guidedScs = 0;
        for (Path f : scs) {
            Tools.Result d = Tools.run("dcmdump", "+P", "0008,2111", f.toString());
            assertEquals(0, d.exit(), d.out());
            guidedScs += d.out().contains("Guided Grad-CAM") ? 1 : 0;
        }
        assertEquals(positives > 0, guidedScs > 0, "guided Grad-CAM SCs exist exactly when something is positive: " + run.out());
        assertEquals(scs.size(), 2 * guidedScs, "one guided SC beside each colour SC");
        assertEquals(guidedScs, pms.size(), "one Parametric Map per explained finding");
        for (Path f : pms) {
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + f);
            Tools.Result d = Tools.run("dcmdump", "+P", "0028,0008", f.toString());
            assertTrue(d.out().contains("[2]"), "Grad-CAM and guided Grad-CAM frames: " + d.out());
        }

        Path bundle = dir.resolve("chest.fhir.json");
        assertTrue(Files.exists(bundle), run.out());
        String json = Files.readString(bundle);
        JsonNode tree = JSON.readTree(json);
        assertEquals("Bundle", tree.path("resourceType").asText());
        assertEquals("transaction", tree.path("type").asText());
        assertEquals(List.of(), FhirValidation.errors(json).stream().map(Object::toString).toList());
        long reports = 0;
        long media = 0;
        for (JsonNode e : tree.path("entry")) {
            String type = e.path("resource").path("resourceType").asText();
            reports += type.equals("DiagnosticReport") ? 1 : 0;
            media += type.equals("Media") ? 1 : 0;
            // the report and its findings are conditional updates on their identifiers (a later revision amends
            // them in place); everything else is a conditional create
            boolean amendable = type.equals("DiagnosticReport") || type.equals("Observation");
            assertEquals(amendable ? "PUT" : "POST", e.path("request").path("method").asText(), type);
            if (amendable) {
                assertTrue(e.path("request").path("url").asText().startsWith(type + "?identifier="), e.toString());
            } else {
                assertTrue(e.path("request").path("ifNoneExist").asText().startsWith("identifier="), e.toString());
            }
        }
        assertEquals(2, reports, "one DiagnosticReport per model run");
        assertEquals(scs.size(), media, "one Media per heatmap SC, colour and guided");

        // No role ran: the embedded broker was never started (its log would sit under the data dir).
        assertFalse(Files.exists(dir.resolve("data").resolve("kafka")), "score started Kafka");
    }

    @Test
    void garbageFileIsAClearErrorWithoutAStackTrace() throws Exception {
        Path dir = Files.createDirectories(work.resolve("garbage"));
        Path garbage = dir.resolve("garbage.dcm");
        byte[] junk = new byte[4096];
        new Random(7).nextBytes(junk);
        Files.write(garbage, junk);
        Path missing = dir.resolve("missing.dcm");

        Run run = score(dir, garbage, missing);
        assertNotEquals(0, run.exit(), run.out());
        assertTrue(run.out().contains(garbage + ": not scored"), run.out());
        assertTrue(run.out().contains(missing + ": not scored"), run.out());
        assertFalse(run.out().contains("Exception"), run.out());
        assertFalse(run.out().contains("\tat "), "no stack trace: " + run.out());
        assertTrue(run.out().contains(missing + ": not scored, no such file"), run.out());
        assertTrue(run.out().contains(missing + ": not scored, no such file (UNREADABLE)"), "the gateway's reason: " + run.out());
        assertEquals(List.of(garbage), written(dir, "*.dcm"), "nothing written for garbage");
        assertEquals(List.of(), written(dir, "*.json"));
    }

    @Test
    void noFilesPrintsUsage() throws Exception {
        Path dir = Files.createDirectories(work.resolve("usage"));
        Run run = score(dir);
        assertEquals(2, run.exit(), run.out());
        assertTrue(run.out().contains("usage: score [--json FILE] [--no-reports] [--save-model-input] [--cams-for-every-label] FILE.dcm..."), run.out());
    }

    /**
     * The COVID-19 paper's ResNet50+ (ResNet-50 + GAP + Dense(32) + Dense(32) + sigmoid) as a package of its own
     * (seeded, 64 px, with its guided graph), served by score: the finding is made positive by a threshold of 0 so
     * that every explanation object is written, and each SR, SC and Parametric Map passes dciodvfy without errors.
     */
    @Test
    void servesAResNet50PlusPackage() throws Exception {
        Path dir = Files.createDirectories(work.resolve("resnet50plus"));
        Path packages = dir.resolve("packages");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/main/python/make_demo_models.py", "--out", packages.toString(),
                "--only", "covid2", "--arch", "resnet50", "--head", "mlp:32,32", "--size", "64", "--embed");
        assertEquals(0, made.exit(), made.out());
        Path manifest = packages.resolve("covid2/manifest.json");
        JsonNode m = JSON.readTree(manifest.toFile());
        assertEquals("mlp", m.get("head").get("kind").asText());
        ((com.fasterxml.jackson.databind.node.ObjectNode) m.get("labels").get(0)).put("threshold", 0.0);
        JSON.writeValue(manifest.toFile(), m);
        Path chest = dir.resolve("chest.dcm");
        Tools.Result src = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", chest.toString(), uid(), uid(), uid(), "SCORE-R50");
        assertEquals(0, src.exit(), src.out());
        List<String> cmd = List.of("java", "-Xmx1g", "-Dcxr.inference.packages-dir=" + packages, "-jar",
                GatewayProcess.jar().toAbsolutePath().toString(), "score", chest.toString());
        Path log = dir.resolve("score.out");
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        assertTrue(p.waitFor(180, TimeUnit.SECONDS), "score finishes");
        String out = Files.readString(log);
        assertEquals(0, p.exitValue(), out);
        assertFalse(out.contains("Exception"), out);
        assertTrue(out.contains("COVID-19") && out.contains("POSITIVE"), out);
        List<Path> srs = written(dir, "chest.sr-*.dcm"), scs = written(dir, "chest.sc-*.dcm"), pms = written(dir, "chest.pm-*.dcm");
        assertEquals(1, srs.size(), out);
        assertEquals(2, scs.size(), "a Grad-CAM and a guided Grad-CAM SC: " + out);
        assertEquals(1, pms.size(), out);
        for (Path f : Stream.of(srs, scs, pms).flatMap(List::stream).toList()) {
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + f);
        }
        System.out.printf("[score-resnet50plus] %d SR, %d SC, %d PM, 0 dciodvfy errors%n", srs.size(), scs.size(), pms.size());
    }
}
