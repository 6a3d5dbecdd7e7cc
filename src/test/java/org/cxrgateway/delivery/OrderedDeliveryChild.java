package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * The delivery side of MedplumDeliveryTest's crash test, in its own JVM so that it can be killed -9:
 * {@code submit STATE URL STUDY} hands one report to an ordered FHIR destination (transactions of at most 2
 * entries, so that the 4 heatmaps take two) and waits;
 * {@code resume STATE URL} resumes what is pending, prints "delivered N" when nothing is left, and exits.
 */
public final class OrderedDeliveryChild {

    public static void main(String[] args) throws Exception {
        Path state = Path.of(args[1]);
        DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(args[2], Optional.empty(), Optional.empty(), Optional.empty(), Duration.ofSeconds(30),
                        FhirWriteMode.ORDERED, 2, null)),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(5, Duration.ofMillis(100), Duration.ofSeconds(1)), new PendingStore(state.resolve("pending")),
                new SimpleMeterRegistry());
        if (args[0].equals("submit")) {
            svc.submit(TestResults.study(args[3]).build());
            System.out.println("handed over");
            Thread.sleep(Long.MAX_VALUE);
        }
        svc.resume();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (svc.pendingCount("fhir") > 0 && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        System.out.println("delivered " + svc.deliveredCount() + " dead-lettered " + svc.deadLetteredCount());
        svc.close();
        System.exit(0);
    }
}
