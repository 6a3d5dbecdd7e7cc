package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.testing.StoreScpPeer;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 of the delivering process after a PACS acknowledged a result's SRs (which delivery sends ahead of their
 * pictures) and before the pictures went: after a restart on the same state every object is in the PACS, once.
 * The PACS is dcmtk's storescp writing every object it receives to a file of its own (+uf), so a second send would
 * show as a second file.
 */
class SrsFirstKillTest {

    @Test
    void killedBetweenTheSrsAndTheirPicturesDeliversEveryObjectOnceAfterRestart() throws Exception {
        Path work = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "srs-first-kill").toAbsolutePath();
        Path state = work.resolve("state");
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("81").build());
        List<String> srs = expected.dicom().stream().filter(o -> o.kind().equals("SR")).map(ReportSet.DicomObject::sopInstanceUid).toList();
        assertTrue(!srs.isEmpty() && expected.dicom().size() > srs.size(), "the study has SRs and pictures");
        try (StoreScpPeer pacs = new StoreScpPeer(work, "STORESCP", "+uf")) {
            Process held = child("hold", state, pacs.port);
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
                // every SR acknowledged and recorded, and delivery has the pictures rendered and in hand
                while (!srs.stream().allMatch(sr -> Files.exists(state.resolve("ledger").resolve("pacs-pacs").resolve(sr)))
                        || !output(state, "hold").contains("holding")) {
                    assertTrue(held.isAlive() && System.nanoTime() < deadline, "the SRs never reached the PACS: " + output(state, "hold"));
                    Thread.sleep(100);
                }
            } finally {
                held.destroyForcibly().waitFor(); // SIGKILL between the SRs and their pictures
            }
            Map<String, Integer> atKill = copies(pacs.received);
            assertEquals(srs.stream().collect(TreeMap::new, (m, s) -> m.put(s, 1), Map::putAll), atKill,
                    "the PACS had the SRs, once each, and no picture");

            Process resumed = child("resume", state, pacs.port);
            assertTrue(resumed.waitFor(120, TimeUnit.SECONDS), "resume did not finish");
            String out = output(state, "resume");
            assertTrue(out.contains("delivered 1 dead-lettered 0"), out);
            Map<String, Integer> want = new TreeMap<>();
            expected.dicom().forEach(o -> want.put(o.sopInstanceUid(), 1));
            assertEquals(want, copies(pacs.received), "every object of the result in the PACS, once");
        }
    }

    /** SOP Instance UID -> how many files storescp wrote for it. */
    private static Map<String, Integer> copies(Path dir) throws Exception {
        Map<String, Integer> n = new TreeMap<>();
        List<Path> files;
        try (var s = Files.list(dir)) {
            files = s.filter(Files::isRegularFile).toList();
        }
        for (Path f : files) {
            String line = Tools.run("dcmdump", "+P", "0008,0018", f.toString()).out();
            int a = line.indexOf('[');
            int b = line.indexOf(']');
            assertTrue(a >= 0 && b > a, "no SOP Instance UID in " + f + ": " + line);
            n.merge(line.substring(a + 1, b), 1, Integer::sum);
        }
        return n;
    }

    private static String output(Path state, String mode) throws Exception {
        Path log = state.resolveSibling(mode + ".log");
        return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
    }

    private static Process child(String mode, Path state, int pacsPort) throws Exception {
        Files.createDirectories(state);
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-cp", System.getProperty("java.class.path"), SrsFirstKillChild.class.getName(), mode,
                state.toString(), Integer.toString(pacsPort), "81"));
        // to a file: a child blocked on a full pipe would prove nothing
        return new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(state.resolveSibling(mode + ".log").toFile()).start();
    }
}
