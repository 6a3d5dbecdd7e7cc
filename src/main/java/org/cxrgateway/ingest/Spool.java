package org.cxrgateway.ingest;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.cxrgateway.dicom.AssociationInfo;
import org.cxrgateway.dicom.DicomUids;
import org.cxrgateway.dicom.InstanceHeader;
import org.cxrgateway.dicom.InstanceStore;
import org.cxrgateway.storage.DurableFiles;
import org.jboss.logging.Logger;

/**
 * The durable spool. Layout under the spool directory:
 * <pre>
 *   tmp/                                     partial receptions (deleted at start)
 *   studies/&lt;StudyInstanceUID&gt;/&lt;SOPInstanceUID&gt;.dcm  received Part-10 files
 *   studies/&lt;StudyInstanceUID&gt;/published-&lt;revision&gt;     marker: job published (written after the ack)
 *   studies/&lt;StudyInstanceUID&gt;/quarantined              marker: publishing given up until an operator retries
 * </pre>
 * UIDs are validated (digits and dots) before they become path names. An instance is durable when
 * {@link DurableFiles#publish} returned: its file fsynced, renamed into its study directory (created
 * durably too), and that directory fsynced.
 */
public final class Spool implements InstanceStore {

    private static final Logger LOG = Logger.getLogger(Spool.class);
    private static final String MARKER_PREFIX = "published-";
    private static final String QUARANTINE_MARKER = "quarantined";

    /** What the study assembler hears from the spool. */
    public interface Listener {
        void instanceStored(String studyUid, String sopInstanceUid, long associationId);

        void associationEnded(long associationId);
    }

    /** A published job as recorded by its marker. */
    public record Published(int revision, String jobId, List<String> eligible, List<String> all) {
    }

    /** A study whose job is not published until an operator retries it, as recorded by its marker. */
    public record Quarantined(String reason, int attempts, long sinceEpochMs) {
    }

    private final Path root;
    private final Path tmp;
    private final Path studies;
    private final long minFreeBytes;
    private final long earlyFlushBytes;
    /** Block size of the spool's O_DIRECT writes, found at start; 0: its file system refuses them, or they are off. */
    private final int directIoBlockSize;
    private final FileStore fileStore;
    /** SOP Instance UID -> entry; the future completes when the first copy is durable (or failed). */
    private final Map<String, Entry> index = new ConcurrentHashMap<>();
    private volatile Listener listener;

    private record Entry(String studyUid, CompletableFuture<Void> durable) {
    }

    public Spool(Path root, long minFreeBytes) throws IOException {
        this(root, minFreeBytes, 0);
    }

    /** @param earlyFlushBytes see {@link SpoolConfig#earlyFlush()}; 0: none */
    public Spool(Path root, long minFreeBytes, long earlyFlushBytes) throws IOException {
        this(root, minFreeBytes, earlyFlushBytes, false);
    }

    /**
     * @param earlyFlushBytes see {@link SpoolConfig#earlyFlush()}; 0: none
     * @param directIo see {@link SpoolConfig#directIo()}
     */
    public Spool(Path root, long minFreeBytes, long earlyFlushBytes, boolean directIo) throws IOException {
        this.earlyFlushBytes = earlyFlushBytes;
        this.root = root.toAbsolutePath();
        this.tmp = this.root.resolve("tmp");
        this.studies = this.root.resolve("studies");
        this.minFreeBytes = minFreeBytes;
        Files.createDirectories(tmp);
        Files.createDirectories(studies);
        this.directIoBlockSize = directIo ? DurableFiles.StreamedFile.directIoBlockSize(tmp) : 0;
        this.fileStore = Files.getFileStore(this.root);
        try (DirectoryStream<Path> partial = Files.newDirectoryStream(tmp)) {
            for (Path p : partial) {
                Files.deleteIfExists(p);
            }
        }
        for (String study : studyUids()) {
            for (String sop : instanceUids(study)) {
                index.put(sop, new Entry(study, CompletableFuture.completedFuture(null)));
            }
        }
        LOG.infof("spool %s: %d instances in %d studies", this.root, index.size(), studyUids().size());
    }

    public void setListener(Listener listener) {
        this.listener = listener;
    }

    public Path root() {
        return root;
    }

    public long freeBytes() throws IOException {
        return fileStore.getUsableSpace();
    }

    public long minFreeBytes() {
        return minFreeBytes;
    }

    /** Writable and above the watermark (readiness). */
    public boolean healthy() {
        try {
            return Files.isWritable(tmp) && Files.isWritable(studies) && freeBytes() >= minFreeBytes;
        } catch (IOException e) {
            return false;
        }
    }

    public int instanceCount() {
        return index.size();
    }

    private void checkSpace() throws IOException {
        long free = freeBytes();
        if (free < minFreeBytes) {
            throw new InsufficientStorageException("spool free space " + free + " below watermark " + minFreeBytes);
        }
    }

    @Override
    public Path newTemporaryFile() throws IOException {
        checkSpace();
        return Files.createTempFile(tmp, "rx-", ".part");
    }

    @Override
    public long earlyFlushBytes() {
        return earlyFlushBytes;
    }

    @Override
    public int directIoBlockSize() {
        return directIoBlockSize;
    }

    @Override
    public boolean commit(Path temporaryFile, InstanceHeader header, AssociationInfo association) throws IOException {
        String study = header.studyInstanceUid();
        String sop = header.sopInstanceUid();
        if (!DicomUids.isValidUid(study) || !DicomUids.isValidUid(sop)) {
            throw new IOException("invalid UID");
        }
        checkSpace();
        Entry mine = new Entry(study, new CompletableFuture<>());
        Entry existing = index.putIfAbsent(sop, mine);
        if (existing != null) {
            Files.deleteIfExists(temporaryFile);
            awaitDurable(existing, sop);
            notifyStored(existing.studyUid(), sop, association.id());
            return false;
        }
        try {
            Path dir = DurableFiles.createDirectories(studies.resolve(study));
            DurableFiles.publish(temporaryFile, dir.resolve(sop + ".dcm"));
            mine.durable().complete(null);
        } catch (IOException | RuntimeException e) {
            index.remove(sop, mine);
            mine.durable().completeExceptionally(e);
            throw e;
        }
        notifyStored(study, sop, association.id());
        return true;
    }

    private void notifyStored(String study, String sop, long associationId) {
        Listener l = listener;
        if (l != null) {
            l.instanceStored(study, sop, associationId);
        }
    }

    /** A duplicate is only acknowledged once the first copy is durable: otherwise its success would be a lie. */
    private static void awaitDurable(Entry existing, String sop) throws IOException {
        try {
            existing.durable().get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw new IOException("first copy of " + sop + " failed: " + e.getCause(), e.getCause());
        } catch (TimeoutException e) {
            throw new IOException("first copy of " + sop + " not durable in time");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
    }

    @Override
    public void associationEnded(AssociationInfo association) {
        Listener l = listener;
        if (l != null) {
            l.associationEnded(association.id());
        }
    }

    public List<String> studyUids() {
        List<String> out = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(studies)) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                if (Files.isDirectory(p) && DicomUids.isValidUid(name)) {
                    out.add(name);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    public List<String> instanceUids(String studyUid) {
        List<String> out = new ArrayList<>();
        Path dir = studies.resolve(studyUid);
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.dcm")) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                out.add(name.substring(0, name.length() - 4));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        out.sort(null);
        return out;
    }

    public Path instanceFile(String studyUid, String sopInstanceUid) {
        return studies.resolve(studyUid).resolve(sopInstanceUid + ".dcm");
    }

    /** The latest published job of a study, if any. */
    public Optional<Published> lastPublished(String studyUid) throws IOException {
        Path dir = studies.resolve(studyUid);
        int best = -1;
        Path bestPath = null;
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, MARKER_PREFIX + "*")) {
            for (Path p : ds) {
                try {
                    int r = Integer.parseInt(p.getFileName().toString().substring(MARKER_PREFIX.length()));
                    if (r > best) {
                        best = r;
                        bestPath = p;
                    }
                } catch (NumberFormatException ignored) {
                    // a temporary marker from a crash: not a published record
                }
            }
        }
        if (bestPath == null) {
            return Optional.empty();
        }
        String jobId = null;
        List<String> eligible = new ArrayList<>();
        List<String> all = new ArrayList<>();
        for (String line : Files.readAllLines(bestPath, StandardCharsets.US_ASCII)) {
            if (line.startsWith("job ")) {
                jobId = line.substring(4);
            } else if (line.startsWith("eligible ")) {
                eligible.add(line.substring(9));
            } else if (line.startsWith("instance ")) {
                all.add(line.substring(9));
            }
        }
        return Optional.of(new Published(best, jobId, eligible, all));
    }

    /** Records that a job was published (after the sink acknowledged it): atomic and durable. */
    public void markPublished(String studyUid, Published published) throws IOException {
        Path dir = studies.resolve(studyUid);
        StringBuilder sb = new StringBuilder();
        sb.append("job ").append(published.jobId()).append('\n');
        for (String e : published.eligible()) {
            sb.append("eligible ").append(e).append('\n');
        }
        for (String a : published.all()) {
            sb.append("instance ").append(a).append('\n');
        }
        DurableFiles.write(dir.resolve(MARKER_PREFIX + published.revision()),
                sb.toString().getBytes(StandardCharsets.US_ASCII));
    }

    /** Records that a study is quarantined (reason on one line, without PHI): atomic and durable. */
    public void markQuarantined(String studyUid, Quarantined quarantined) throws IOException {
        String text = "reason " + quarantined.reason().replace('\n', ' ').replace('\r', ' ') + '\n'
                + "attempts " + quarantined.attempts() + '\n'
                + "since " + quarantined.sinceEpochMs() + '\n';
        DurableFiles.write(studies.resolve(studyUid).resolve(QUARANTINE_MARKER), text.getBytes(StandardCharsets.UTF_8));
    }

    /** The quarantine record of a study, if it is quarantined. */
    public Optional<Quarantined> quarantined(String studyUid) throws IOException {
        Path marker = studies.resolve(studyUid).resolve(QUARANTINE_MARKER);
        if (!Files.isRegularFile(marker)) {
            return Optional.empty();
        }
        String reason = "";
        int attempts = 0;
        long since = 0;
        for (String line : Files.readAllLines(marker, StandardCharsets.UTF_8)) {
            if (line.startsWith("reason ")) {
                reason = line.substring(7);
            } else if (line.startsWith("attempts ")) {
                attempts = Integer.parseInt(line.substring(9));
            } else if (line.startsWith("since ")) {
                since = Long.parseLong(line.substring(6));
            }
        }
        return Optional.of(new Quarantined(reason, attempts, since));
    }

    /** Ends a study's quarantine (its marker is removed durably); the files stay. */
    public void releaseQuarantine(String studyUid) throws IOException {
        Path dir = studies.resolve(studyUid);
        if (Files.deleteIfExists(dir.resolve(QUARANTINE_MARKER))) {
            DurableFiles.syncDirectory(dir);
        }
    }

    /**
     * Removes a study whose files have all been idle for longer than {@code retention} and that needs
     * nothing more: its last published job covers every spooled instance, or (never published) none of
     * its instances was eligible. A study still waiting for Kafka, or quarantined, is kept, however old.
     *
     * @return true when the study's folder was removed
     */
    public boolean purgeIfSettled(String studyUid, java.time.Duration retention,
                                  java.util.function.Predicate<Path> eligible) throws IOException {
        Path dir = studies.resolve(studyUid);
        if (Files.exists(dir.resolve(QUARANTINE_MARKER))) {
            return false;
        }
        long cutoff = System.currentTimeMillis() - retention.toMillis();
        List<Path> files = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path f : ds) {
                if (Files.getLastModifiedTime(f).toMillis() > cutoff) {
                    return false;
                }
                files.add(f);
            }
        }
        List<String> instances = instanceUids(studyUid);
        Optional<Published> published = lastPublished(studyUid);
        boolean settled = published.isPresent()
                ? published.get().all().containsAll(instances)
                : instances.stream().noneMatch(sop -> eligible.test(instanceFile(studyUid, sop)));
        if (!settled) {
            return false;
        }
        for (Path f : files) {
            Files.deleteIfExists(f);
        }
        Files.deleteIfExists(dir);
        DurableFiles.syncDirectory(studies);
        return true;
    }
}
