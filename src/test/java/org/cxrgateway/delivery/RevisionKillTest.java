package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.StoreScpPeer;
import org.cxrgateway.testing.Tools;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kill -9 of the delivering process between the SR of a revision (acknowledged by the PACS) and the FHIR update
 * of the same revision (the server failing meanwhile): after a restart on the same state both are delivered,
 * once each. The PACS is dcmtk's storescp writing every object it receives to a file of its own (+uf), so a
 * second send would show as a second file.
 */
class RevisionKillTest {

    @Test
    void killedBetweenTheSrAndTheFhirUpdateDeliversBothOnceAfterRestart() throws Exception {
        Path work = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "revision-kill").toAbsolutePath();
        Path state = work.resolve("state");
        StudyResult first = TestResults.study("71").build();
        String lateSr = ReportBuilder.issuedSrs(TestResults.lateInstance(first, 1)).get(0).sr().sopInstanceUid();
        try (StoreScpPeer pacs = new StoreScpPeer(work, "STORESCP", "+uf"); FhirTestServer fhir = new FhirTestServer()) {
            Process one = child("first", state, pacs.port, fhir.baseUrl());
            assertTrue(one.waitFor(120, TimeUnit.SECONDS), "revision 0 was not delivered");
            assertTrue(output(state, "first").contains("delivered 2"), output(state, "first"));
            assertEquals("1", report(fhir).getMeta().getVersionId());

            fhir.failNext.set(1_000_000);
            int bundlesBefore = fhir.receivedBundles.size();
            Process late = child("late", state, pacs.port, fhir.baseUrl());
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
                // the SR of revision 1 is in the PACS and its acknowledgement recorded, and the FHIR server has
                // refused the update at least once
                Path acked = state.resolve("ledger").resolve("pacs-pacs").resolve(lateSr);
                while (!Files.exists(acked) || copies(pacs.received, lateSr) == 0 || fhir.receivedBundles.size() <= bundlesBefore) {
                    assertTrue(late.isAlive() && System.nanoTime() < deadline, "revision 1 never reached both peers");
                    Thread.sleep(200);
                }
            } finally {
                late.destroyForcibly().waitFor(); // SIGKILL between the SR and the FHIR update
            }
            assertEquals("1", report(fhir).getMeta().getVersionId(), "the kill came before the FHIR update");
            assertEquals(DiagnosticReport.DiagnosticReportStatus.PRELIMINARY, report(fhir).getStatus());
            int objectsAtKill = files(pacs.received).size();

            fhir.failNext.set(0);
            int bundlesAtRestart = fhir.receivedBundles.size();
            Process resumed = child("resume", state, pacs.port, fhir.baseUrl());
            assertTrue(resumed.waitFor(120, TimeUnit.SECONDS), "resume did not finish");
            String out = output(state, "resume");
            assertTrue(out.contains("dead-lettered 0"), out);
            assertEquals(1, copies(pacs.received, lateSr), "the superseding SR reached the PACS once");
            assertEquals(objectsAtKill, files(pacs.received).size(), "nothing was sent to the PACS again");
            assertEquals(bundlesAtRestart + 1, fhir.receivedBundles.size(), "one FHIR update after the restart");
            DiagnosticReport report = report(fhir);
            assertEquals(DiagnosticReport.DiagnosticReportStatus.AMENDED, report.getStatus());
            assertEquals("2", report.getMeta().getVersionId());
            System.out.printf("revision kill: %d objects in the PACS, %d FHIR bundles received (%d refused before the kill)%n",
                    objectsAtKill, fhir.receivedBundles.size(), bundlesAtRestart - bundlesBefore);
        }
    }

    private static DiagnosticReport report(FhirTestServer fhir) {
        List<DiagnosticReport> reports = fhir.stored.values().stream().filter(r -> r instanceof DiagnosticReport)
                .map(r -> (DiagnosticReport) r).toList();
        assertEquals(1, reports.size());
        return reports.get(0);
    }

    private static List<Path> files(Path dir) throws Exception {
        try (var s = Files.list(dir)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    /** Files storescp wrote for this SOP Instance UID. */
    private static int copies(Path dir, String sop) throws Exception {
        int n = 0;
        for (Path f : files(dir)) {
            if (Tools.run("dcmdump", "+P", "0008,0018", f.toString()).out().contains("[" + sop + "]")) {
                n++;
            }
        }
        return n;
    }

    private static String output(Path state, String mode) throws Exception {
        return Files.readString(state.resolveSibling(mode + ".log"), StandardCharsets.UTF_8);
    }

    private static Process child(String mode, Path state, int pacsPort, String fhirUrl) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-cp", System.getProperty("java.class.path"), RevisionDeliveryChild.class.getName(), mode,
                state.toString(), Integer.toString(pacsPort), fhirUrl, "71"));
        // to a file: a child blocked on a full pipe would prove nothing
        return new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(state.resolveSibling(mode + ".log").toFile()).start();
    }
}
