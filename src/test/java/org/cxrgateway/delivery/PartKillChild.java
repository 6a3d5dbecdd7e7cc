package org.cxrgateway.delivery;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.schema.v2.StudyResult;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The delivering process of PartKillTest, in its own JVM so that it can be killed -9. Args: MODE STATE PACS_PORT
 * HELD. The study is PartAssemblyTest's (one part per image). {@code hold} accepts parts 0..HELD-1 (each durable
 * when accept returns, as before a Kafka commit), prints "held N partial P" and waits to be killed; {@code resume}
 * resumes from the same state, prints "partial after resume P", accepts parts HELD-1..last (the first of them
 * redelivered, as an uncommitted offset would be), waits until the PACS has it and prints
 * "delivered D dead-lettered L partial P".
 */
public final class PartKillChild {

    public static void main(String[] args) throws Exception {
        Path state = Path.of(args[1]);
        int held = Integer.parseInt(args[3]);
        MeterRegistry metrics = new SimpleMeterRegistry();
        DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new PacsDestination("pacs", "127.0.0.1", Integer.parseInt(args[2]), "STORESCP", "CXRGATEWAY",
                        state.resolve("spool"), null)),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(20, Duration.ofMillis(200), Duration.ofMillis(500)), new PendingStore(state.resolve("pending")),
                metrics);
        List<StudyResult> parts = PartAssemblyTest.parts(PartAssemblyTest.wholeStudy("9191"));
        if (args[0].equals("hold")) {
            svc.resume();
            for (int i = 0; i < held; i++) {
                byte[] bytes = MessageCodec.encode(parts.get(i));
                svc.accept(bytes, MessageCodec.decodeResult(bytes)).get(10, TimeUnit.SECONDS);
            }
            System.out.println("held " + held + " partial " + partial(metrics));
            System.out.flush();
            Thread.sleep(Long.MAX_VALUE);
        }
        svc.resume();
        System.out.println("partial after resume " + partial(metrics));
        java.util.concurrent.CompletableFuture<Void> last = null;
        for (int i = held - 1; i < parts.size(); i++) {
            byte[] bytes = MessageCodec.encode(parts.get(i));
            last = svc.accept(bytes, MessageCodec.decodeResult(bytes));
        }
        last.get(60, TimeUnit.SECONDS);
        System.out.println("delivered " + svc.deliveredCount() + " dead-lettered " + svc.deadLetteredCount()
                + " partial " + partial(metrics));
        svc.close();
        System.exit(0);
    }

    private static long partial(MeterRegistry metrics) {
        return Math.round(metrics.get("cxr.delivery.partial.jobs").gauge().value());
    }
}
