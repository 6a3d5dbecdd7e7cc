package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The delivery side of RevisionKillTest, in its own JVM so that it can be killed -9. Args: MODE STATE PACS_PORT
 * FHIR_URL STUDY. {@code first} delivers revision 0 to the PACS (storescp) and the FHIR server and exits;
 * {@code late} hands over revision 1 (a late instance) and waits to be killed; {@code resume} resumes what is
 * pending, prints "delivered N dead-lettered M" once nothing is left, and exits.
 */
public final class RevisionDeliveryChild {

    public static void main(String[] args) throws Exception {
        Path state = Path.of(args[1]);
        DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new PacsDestination("pacs", "127.0.0.1", Integer.parseInt(args[2]), "STORESCP", "CXRGATEWAY",
                                state.resolve("spool"), null),
                        new FhirDestination(args[3], Optional.empty(), Optional.empty(), Optional.empty(), Duration.ofSeconds(10))),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(1000, Duration.ofMillis(200), Duration.ofMillis(500)), new PendingStore(state.resolve("pending")),
                new SimpleMeterRegistry());
        StudyResult first = TestResults.study(args[4]).build();
        switch (args[0]) {
            case "first" -> {
                svc.submit(first).get(60, TimeUnit.SECONDS);
                System.out.println("delivered " + svc.deliveredCount());
                svc.close();
                System.exit(0);
            }
            case "late" -> {
                svc.submit(TestResults.lateInstance(first, 1));
                System.out.println("handed over");
                Thread.sleep(Long.MAX_VALUE);
            }
            default -> {
                svc.resume();
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while ((svc.pendingCount("pacs") > 0 || svc.pendingCount("fhir") > 0) && System.nanoTime() < deadline) {
                    Thread.sleep(50);
                }
                System.out.println("delivered " + svc.deliveredCount() + " dead-lettered " + svc.deadLetteredCount());
                svc.close();
                System.exit(0);
            }
        }
    }
}
