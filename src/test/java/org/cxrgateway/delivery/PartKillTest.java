package org.cxrgateway.delivery;

import org.cxrgateway.message.StudyParts;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.StoreScpPeer;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 of the delivering process while a multi-part study is half assembled: it has durably held 3 of the
 * study's 5 result parts (one per image) and is killed (SIGKILL) before the rest arrive. A new process on the
 * same state directory gets the rest, the last held part redelivered first (as an uncommitted Kafka offset
 * would be), and the PACS (dcmtk's storescp, one file per object received: +uf) receives the study's objects
 * exactly once: one SR listing all 5 images, nothing twice, and cxr_delivery_partial_jobs back to 0.
 */
class PartKillTest {

    static final int HELD = 3;

    @Test
    void killedWithAStudyHalfAssembledDeliversItOnceAfterRestart() throws Exception {
        long t0 = System.nanoTime();
        Path work = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "part-kill").toAbsolutePath();
        Path state = work.resolve("state");
        StudyResult whole = PartAssemblyTest.wholeStudy("9191");
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(StudyParts.merge(PartAssemblyTest.parts(whole)));
        try (StoreScpPeer pacs = new StoreScpPeer(work, "STORESCP", "+uf")) {
            Process hold = child("hold", state, pacs.port);
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
                while (!output(work, "hold").contains("held " + HELD)) {
                    assertTrue(hold.isAlive() && System.nanoTime() < deadline, "parts never held: " + output(work, "hold"));
                    Thread.sleep(100);
                }
            } finally {
                hold.destroyForcibly().waitFor(); // SIGKILL with the study half assembled
            }
            assertTrue(output(work, "hold").contains("partial 1"), output(work, "hold"));
            assertEquals(HELD, PartAssemblyTest.files(state.resolve("parts")), "the held parts survived the kill");
            assertEquals(0, pacs.receivedFiles().size(), "nothing delivered before the last part");

            Process resumed = child("resume", state, pacs.port);
            assertTrue(resumed.waitFor(60, TimeUnit.SECONDS), "resume did not finish: " + output(work, "resume"));
            String out = output(work, "resume");
            assertTrue(out.contains("partial after resume 1"), "the half-assembled study is seen after restart: " + out);
            assertTrue(out.contains("delivered 1 dead-lettered 0 partial 0"), out);

            List<String> sops = new ArrayList<>();
            List<Path> srs = new ArrayList<>();
            for (Path f : pacs.receivedFiles()) {
                String dump = Tools.run("dcmdump", "+P", "0008,0018", "+P", "0008,0060", f.toString()).out();
                Matcher m = Pattern.compile("\\(0008,0018\\) UI \\[([0-9.]+)\\]").matcher(dump);
                assertTrue(m.find(), dump);
                sops.add(m.group(1));
                if (dump.contains("[SR]")) {
                    srs.add(f);
                }
            }
            assertEquals(sops.stream().distinct().count(), sops.size(), "no object delivered twice: " + sops);
            assertEquals(expected.dicom().stream().map(o -> o.sopInstanceUid()).sorted().toList(), sops.stream().sorted().toList(),
                    "the PACS got exactly the whole study's objects");
            assertEquals(1, srs.size(), "one SR for the study's model");
            String sr = Tools.run("dsrdump", "+Pu", srs.get(0).toString()).out();
            for (ImageResult img : whole.getImages()) {
                assertTrue(sr.contains(img.getSopInstanceUid()), "the SR lists image " + img.getSopInstanceUid());
            }
            assertEquals(0, PartAssemblyTest.files(state.resolve("parts")), "parts forgotten once handed over");
            assertEquals(0, PartAssemblyTest.files(state.resolve("pending")), "nothing left pending");
            System.out.printf("part kill: %d of %d parts held at the kill, %d objects in the PACS once each, one SR over %d images, %.1f s%n",
                    HELD, whole.getImages().size(), sops.size(), whole.getImages().size(), (System.nanoTime() - t0) / 1e9);
        }
    }

    private static String output(Path work, String mode) throws Exception {
        Path f = work.resolve(mode + ".log");
        return Files.exists(f) ? Files.readString(f, StandardCharsets.UTF_8) : "";
    }

    private static Process child(String mode, Path state, int pacsPort) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m", "-cp", System.getProperty("java.class.path"), PartKillChild.class.getName(), mode,
                state.toString(), Integer.toString(pacsPort), Integer.toString(HELD)));
        // to a file: a child blocked on a full pipe would prove nothing
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(state.resolveSibling(mode + ".log").toFile()).start();
    }
}
