package org.cxrgateway.ingest;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.cxrgateway.schema.v2.StudyJob;

/**
 * The listener wired as in production (listener, spool, assembler, metrics) as a process of its own, so
 * that the PDU fuzzer can cap its heap (-Xmx384m) and watch its RSS from outside. Prints "PORT n" once
 * bound, then "JOB studyUid" for each job published.
 */
public final class ListenerMain {

    private ListenerMain() {
    }

    public static void main(String[] args) throws Exception {
        IngestHarness.Collector sink = new IngestHarness.Collector();
        IngestHarness h = new IngestHarness(Path.of(args[0]), 0, List.of(), sink, Duration.ofMillis(500), null,
                o -> new org.cxrgateway.dicom.StoreScp.Options(o.aeTitle(), o.bindAddress(), o.port(), o.allowedCallingAes(),
                        32, o.socketTimeoutMillis(), true, o.maxPduLength(), null, 2_000, 5_000, 8));
        System.out.println("PORT " + h.port());
        System.out.flush();
        int printed = 0;
        while (true) {
            List<StudyJob> jobs = sink.awaitJobs(printed + 1, Duration.ofSeconds(1));
            for (; printed < jobs.size(); printed++) {
                System.out.println("JOB " + jobs.get(printed).getStudy().getStudyInstanceUid());
            }
            System.out.flush();
        }
    }
}
