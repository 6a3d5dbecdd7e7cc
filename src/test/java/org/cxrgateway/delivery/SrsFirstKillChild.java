package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The delivery side of SrsFirstKillTest, in its own JVM so that it can be killed -9. Args: MODE STATE PACS_PORT STUDY.
 * {@code hold} hands the study over to a PACS destination that sends the SRs (which go first) and then, given the
 * whole set, holds forever instead of sending the pictures: the window between the SRs and their pictures, where
 * the test kills it. {@code resume} resumes what is pending with a plain PACS destination, prints
 * "delivered N dead-lettered M" once nothing is left, and exits.
 */
public final class SrsFirstKillChild {

    public static void main(String[] args) throws Exception {
        Path state = Path.of(args[1]);
        PacsDestination pacs = new PacsDestination("pacs", "127.0.0.1", Integer.parseInt(args[2]), "STORESCP", "CXRGATEWAY",
                state.resolve("spool"), null);
        boolean hold = args[0].equals("hold");
        Destination d = !hold ? pacs : new ForwardingDestination(pacs) {
            @Override
            public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
                if (set.dicom().stream().allMatch(o -> o.kind().equals("SR"))) {
                    pacs.deliver(set, ledger);
                    return;
                }
                System.out.println("holding " + set.dicom().size());
                System.out.flush();
                try {
                    Thread.sleep(Long.MAX_VALUE);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()), List.of(d),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(1000, Duration.ofMillis(200), Duration.ofMillis(500)), new PendingStore(state.resolve("pending")),
                new SimpleMeterRegistry());
        if (hold) {
            svc.submit(TestResults.study(args[3]).build());
            System.out.println("handed over");
            Thread.sleep(Long.MAX_VALUE);
        }
        svc.resume();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (svc.pendingCount(pacs.name()) > 0 && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        System.out.println("delivered " + svc.deliveredCount() + " dead-lettered " + svc.deadLetteredCount());
        svc.close();
        System.exit(0);
    }
}
