package org.cxrgateway.ingest;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.Closeable;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.concurrent.atomic.AtomicReference;
import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.dicom.StoreScp;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.StudyJob;

/**
 * The ingest side wired as in production (listener, spool, assembler, metrics), with an in-memory
 * job collector as the sink: it stands where the Kafka producer stands, not in place of a peer.
 */
final class IngestHarness implements Closeable {

    /** Collects published jobs; optionally fails, like a broker that does not acknowledge. */
    static final class Collector implements StudyJobSink {
        final List<StudyJob> jobs = new ArrayList<>();
        final AtomicReference<Exception> failWith = new AtomicReference<>();

        @Override
        public synchronized void publish(StudyJob job) throws Exception {
            Exception e = failWith.get();
            if (e != null) {
                throw e;
            }
            // the wire format: what a consumer would get
            jobs.add(StudyJob.fromByteBuffer(job.toByteBuffer()));
            notifyAll();
        }

        synchronized List<StudyJob> awaitJobs(int n, Duration timeout) throws InterruptedException {
            long end = System.nanoTime() + timeout.toNanos();
            while (jobs.size() < n && System.nanoTime() < end) {
                wait(Math.max(1, (end - System.nanoTime()) / 1_000_000));
            }
            return new ArrayList<>(jobs);
        }

        synchronized List<StudyJob> jobs() {
            return new ArrayList<>(jobs);
        }
    }

    final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    final IngestMetrics metrics = new IngestMetrics(registry);
    final Spool spool;
    final StudyAssembler assembler;
    final StoreScp scp;
    final Collector sink;

    IngestHarness(Path spoolDir, long minFree, List<String> allowedCallers, Collector sink, Duration quiet) throws Exception {
        this(spoolDir, minFree, allowedCallers, sink, quiet, null);
    }

    /** @param tls null: plain listener */
    IngestHarness(Path spoolDir, long minFree, List<String> allowedCallers, Collector sink, Duration quiet,
                  DicomTls.Settings tls) throws Exception {
        this(spoolDir, minFree, allowedCallers, sink, quiet, tls, UnaryOperator.identity());
    }

    /** @param tune changes the listener options, e.g. its timers */
    IngestHarness(Path spoolDir, long minFree, List<String> allowedCallers, Collector sink, Duration quiet,
                  DicomTls.Settings tls, UnaryOperator<StoreScp.Options> tune) throws Exception {
        this(spoolDir, minFree, allowedCallers, sink, quiet, tls, tune, 200);
    }

    /** @param maxImages cxr.assembly.max-images (200 by default) */
    IngestHarness(Path spoolDir, long minFree, List<String> allowedCallers, Collector sink, Duration quiet,
                  DicomTls.Settings tls, UnaryOperator<StoreScp.Options> tune, int maxImages) throws Exception {
        this.sink = sink;
        // the default write path (direct I/O); where the file system refuses it, early flushes every 64 KiB, so that
        // the listener tests receive through them (fixtures are 0.5-8 MiB)
        spool = new Spool(spoolDir, minFree, 64 << 10,
                Boolean.parseBoolean(org.cxrgateway.testing.ConfigDefaults.of(SpoolConfig.class, "directIo")));
        assembler = new StudyAssembler(spool, () -> sink,
                new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.DEFLATE, 1_000_000), quiet, Duration.ofMillis(300), 5, maxImages,
                metrics);
        spool.setListener(assembler);
        assembler.start();
        scp = new StoreScp(tune.apply(new StoreScp.Options("CXRGATEWAY", "127.0.0.1", 0, allowedCallers, 4, 20_000, true,
                131072, tls)), spool, metrics);
        try {
            scp.start();
        } catch (Exception e) {
            assembler.close();
            throw e;
        }
    }

    int port() {
        return scp.port();
    }

    double count(String name, String... tags) {
        Counter c = registry.find(name).tags(tags).counter();
        return c == null ? 0 : c.count();
    }

    /** Waits until a counter reaches the value (it is updated just after the sink returns). */
    double awaitCount(double expected, String name, String... tags) throws InterruptedException {
        long end = System.nanoTime() + 10_000_000_000L;
        double v;
        while ((v = count(name, tags)) < expected && System.nanoTime() < end) {
            Thread.sleep(20);
        }
        return v;
    }

    @Override
    public void close() {
        scp.close();
        assembler.close();
    }
}
