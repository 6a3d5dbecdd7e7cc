package org.cxrgateway.ingest;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.enterprise.inject.Instance;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import org.cxrgateway.dicom.DicomListener;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * Starts the ingest side (spool, recovery, study assembly, DICOM listener) when the process runs
 * the {@code listener} role ({@code cxr.roles} contains listener or all).
 */
@ApplicationScoped
public class IngestService {

    private static final Logger LOG = Logger.getLogger(IngestService.class);

    @ConfigProperty(name = "cxr.roles", defaultValue = "all")
    String roles;

    @Inject
    SpoolConfig spoolConfig;

    @Inject
    AssemblyConfig assemblyConfig;

    @Inject
    DicomListener listener;

    @Inject
    MeterRegistry registry;

    @Inject
    Instance<StudyJobSink> sinks;

    private Spool spool;
    private StudyAssembler assembler;
    private IngestMetrics metrics;

    /** True when the comma-separated role list contains the role or "all". */
    public static boolean hasRole(String roles, String role) {
        if (roles == null) {
            return false;
        }
        return Arrays.stream(roles.split(","))
                .map(r -> r.trim().toLowerCase(Locale.ROOT))
                .anyMatch(r -> r.equals(role) || r.equals("all"));
    }

    void onStart(@Observes StartupEvent event) throws IOException {
        if (hasRole(roles, "listener")) {
            start();
        }
    }

    void onStop(@Observes ShutdownEvent event) {
        stop();
    }

    public synchronized void start() throws IOException {
        if (spool != null) {
            return;
        }
        Spool s = new Spool(Path.of(spoolConfig.path()), spoolConfig.minFreeSpace().asLongValue(),
                spoolConfig.earlyFlush().asLongValue(), spoolConfig.directIo());
        IngestMetrics metrics = new IngestMetrics(registry);
        WorkingImageDecoder decoder = new WorkingImageDecoder(assemblyConfig.workingLongSide(),
                assemblyConfig.bitsPerPixel(), assemblyConfig.pixelEncoding(), assemblyConfig.maxPayloadBytes());
        StudyAssembler a = new StudyAssembler(s, () -> sinks.isResolvable() ? sinks.get() : null, decoder,
                assemblyConfig.quietPeriod(), assemblyConfig.publishRetryDelay(), assemblyConfig.maxPublishAttempts(),
                assemblyConfig.maxImages(), metrics);
        if (!sinks.isResolvable()) {
            LOG.warn("no StudyJobSink bean: studies are spooled but not published until one is available");
        }
        s.setListener(a);
        a.start();
        listener.start(s, metrics);
        spool = s;
        assembler = a;
        this.metrics = metrics;
    }

    public synchronized void stop() {
        listener.stop();
        if (assembler != null) {
            assembler.close();
            assembler = null;
        }
        spool = null;
        metrics = null;
    }

    /** Keeps the spool bounded: settled studies leave it once their retention has passed. */
    @io.quarkus.scheduler.Scheduled(every = "10m", delayed = "1m",
            concurrentExecution = io.quarkus.scheduler.Scheduled.ConcurrentExecution.SKIP)
    void sweepSpool() {
        Spool s = spool();
        if (s == null) {
            return;
        }
        int removed = 0;
        for (String study : s.studyUids()) {
            try {
                if (s.purgeIfSettled(study, spoolConfig.retention(), IngestService::isEligible)) {
                    removed++;
                }
            } catch (IOException | RuntimeException e) {
                LOG.warnf("spool sweep: study %s kept: %s", study, e.toString());
            }
        }
        if (removed > 0) {
            LOG.infof("spool sweep: %d settled studies older than %s removed", removed, spoolConfig.retention());
        }
    }

    static boolean isEligible(Path file) {
        try {
            return Eligibility.reasonToSkip(org.cxrgateway.dicom.DicomFiles.readInstance(file)).isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    public synchronized boolean isActive() {
        return spool != null;
    }

    /** The study assembler (quarantine), or null when the listener role is not active. */
    public synchronized StudyAssembler assembler() {
        return assembler;
    }

    /** The ingest metrics (C-STORE and STOW-RS count instances alike), or null when the listener role is not active. */
    public synchronized IngestMetrics metrics() {
        return metrics;
    }

    /** The spool, or null when the listener role is not active. */
    public synchronized Spool spool() {
        return spool;
    }
}
