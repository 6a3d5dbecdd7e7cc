package org.cxrgateway.delivery;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.MedplumPeer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Benchmark (not a test): HTTP requests and delivery time per report, per FHIR server and write mode, in one
 * run: HAPI FHIR (transaction), Medplum (ordered, auto). Each repetition delivers N fresh reports per
 * combination, interleaved; prints medians with min and max and RESULT lines for run-all.sh.
 *   java -cp ... org.cxrgateway.delivery.FhirDeliveryBench N REPS
 */
public final class FhirDeliveryBench {

    record Combination(String server, FhirWriteMode mode) {
    }

    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        int reps = Integer.parseInt(args[1]);
        List<Combination> combos = List.of(new Combination("hapi", FhirWriteMode.TRANSACTION),
                new Combination("medplum", FhirWriteMode.ORDERED), new Combination("medplum", FhirWriteMode.AUTO));
        double[][] ms = new double[combos.size()][reps];
        double[] requests = new double[combos.size()];
        int study = 1000;
        try (FhirTestServer hapi = new FhirTestServer(); MedplumPeer medplum = new MedplumPeer()) {
            for (int r = 0; r < reps; r++) {
                for (int c = 0; c < combos.size(); c++) {
                    Combination combo = combos.get(c);
                    SimpleMeterRegistry metrics = new SimpleMeterRegistry();
                    Path state = Files.createTempDirectory(Path.of("target"), "fhir-bench");
                    String url = combo.server().equals("hapi") ? hapi.baseUrl() : medplum.baseUrl();
                    List<StudyResult> results = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        results.add(TestResults.study(Integer.toString(study++)).build());
                    }
                    try (DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                            List.of(new FhirDestination(url, Optional.empty(), Optional.empty(), Optional.empty(),
                                    Duration.ofSeconds(30), combo.mode(), 8, metrics)),
                            new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dl")),
                            new RetryPolicy(1, Duration.ofMillis(10), Duration.ofMillis(10)),
                            new PendingStore(state.resolve("pending")), metrics)) {
                        long t0 = System.nanoTime();
                        for (StudyResult res : results) {
                            svc.submit(res).get(120, TimeUnit.SECONDS);
                        }
                        ms[c][r] = (System.nanoTime() - t0) / 1e6 / n;
                        if (svc.deliveredCount() != n) {
                            throw new IllegalStateException(combo + ": delivered " + svc.deliveredCount() + " of " + n);
                        }
                    }
                    requests[c] = metrics.find("cxr.delivery.fhir.requests").counters().stream().mapToDouble(Counter::count).sum() / n;
                }
            }
        }
        System.out.printf("FHIR delivery, %d reports per combination and repetition (4 Observations, 4 Media each; time includes building the report), %d repetitions:%n", n, reps);
        for (int c = 0; c < combos.size(); c++) {
            double[] v = ms[c].clone();
            Arrays.sort(v);
            double median = v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
            String key = combos.get(c).server() + "_" + combos.get(c).mode().name().toLowerCase();
            System.out.printf("  %-8s %-12s %5.1f requests/report  %7.1f ms/report (%.1f-%.1f)%n", combos.get(c).server(),
                    combos.get(c).mode().name().toLowerCase(), requests[c], median, v[0], v[v.length - 1]);
            System.out.printf("RESULT fhir_%s_requests_per_report=%.1f%n", key, requests[c]);
            System.out.printf("RESULT fhir_%s_ms_per_report=%.1f%n", key, median);
        }
    }
}
