package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.cxrgateway.dicom.SrModel.InstanceRef;
import org.cxrgateway.report.IssuedSr;
import org.cxrgateway.report.Supersession;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.storage.DurableFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The durable life of each study on the delivery side, one JSON file per study under &lt;state&gt;/studies, each
 * change written with {@link DurableFiles#write}: every result handed over (its revision and the SR of each model,
 * in hand-over order), the objects each one issued, each acknowledgement by a destination, and a retraction.
 * From it delivery knows what a new result supersedes (the SRs of the same model handed over before it), which
 * results are stale for a destination (a later one was delivered there already) and what a retraction withdraws.
 * The file holds UIDs only; the study attributes a retraction SR needs are kept apart, encoded, never shown.
 */
public final class StudyHistory {

    private static final ObjectMapper JSON = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    /** A DICOM object, as recorded. */
    public record Ref(String sopClassUid, String sopInstanceUid, String seriesInstanceUid) {
        static Ref of(InstanceRef r) {
            return new Ref(r.sopClassUid(), r.sopInstanceUid(), r.seriesInstanceUid());
        }

        InstanceRef ref() {
            return new InstanceRef(sopClassUid, sopInstanceUid, seriesInstanceUid);
        }
    }

    /** The SR of one model run of a result, and the images it covers. */
    public record Sr(String modelId, String modelVersion, boolean diagnostic, Ref sr, List<Ref> images) {
    }

    /** One result handed over: key is jobId#revision (a re-score keeps the job id of the same instance set). */
    public record Issue(String key, String jobId, int revision, long handedOverAtEpochMs, List<Sr> srs, List<Ref> objects) {
    }

    /** An acknowledgement, or {@code outcome=stale} when a later result was already delivered there. */
    public record Delivery(String destination, String key, String outcome, long atEpochMs) {
    }

    public record Retraction(String id, String reason, String by, long atEpochMs, List<String> deliveredTo) {
    }

    /** Everything recorded for one study. {@code studyInfo} is the encoded StudyInfo (patient attributes): never shown. */
    public record Life(String studyInstanceUid, List<Issue> issues, List<Delivery> deliveries, Retraction retraction,
                       String studyInfo) {

        Life withIssues(List<Issue> i) {
            return new Life(studyInstanceUid, i, deliveries, retraction, studyInfo);
        }

        int indexOf(String key) {
            for (int i = 0; i < issues.size(); i++) {
                if (issues.get(i).key().equals(key)) {
                    return i;
                }
            }
            return -1;
        }

        public StudyInfo study() {
            return studyInfo == null ? null : decode(studyInfo);
        }
    }

    /** A second retraction of the same study. */
    public static final class AlreadyRetracted extends Exception {
        public final Retraction retraction;

        AlreadyRetracted(Retraction r) {
            super("study already retracted at " + r.atEpochMs());
            this.retraction = r;
        }
    }

    private final Path dir;
    /** Striped, so that the locks stay as many however many studies pass (one per study grew without end). */
    private final Object[] locks = new Object[256];

    public StudyHistory(Path dir) {
        this.dir = dir;
        for (int i = 0; i < locks.length; i++) {
            locks[i] = new Object();
        }
    }

    public static String key(String jobId, int revision) {
        return jobId + "#" + revision;
    }

    private Object lock(String study) {
        return locks[Math.floorMod(study.hashCode(), locks.length)];
    }

    /**
     * Forgets the studies whose history did not change since {@code cutoffEpochMs} and is settled for every one of
     * {@code destinations}: each result handed over has an outcome there (delivered, stale or retracted), and a
     * retraction, if any, was acknowledged there. Their last FHIR bundle goes with them. An unsettled study is kept
     * however old. The removal need not be durable: a history that comes back after a power loss is pruned again.
     *
     * @return how many studies were forgotten
     */
    public int prune(long cutoffEpochMs, java.util.Collection<String> destinations) {
        int removed = 0;
        for (Path p : histories()) {
            Life l;
            try {
                if (Files.getLastModifiedTime(p).toMillis() >= cutoffEpochMs) {
                    continue;
                }
                // read outside the lock: the file name is a lossy escape of the study UID, so the study (and its
                // lock) is known only from the content
                l = JSON.readValue(Files.readAllBytes(p), Life.class);
            } catch (IOException e) {
                continue; // gone meanwhile, or unreadable: left for an operator
            }
            String study = l.studyInstanceUid();
            if (!settled(l, destinations) || !file(study).equals(p)) {
                continue;
            }
            synchronized (lock(study)) {
                try {
                    // every write of a history (made under this lock) gives it a fresh modification time, so one
                    // still older than the cutoff holds what was read above
                    if (Files.getLastModifiedTime(p).toMillis() >= cutoffEpochMs) {
                        continue;
                    }
                    Files.deleteIfExists(bundleFile(study));
                    Files.deleteIfExists(p);
                    removed++;
                } catch (java.nio.file.NoSuchFileException e) {
                    // forgotten by a concurrent prune
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot forget the history of study " + study, e);
                }
            }
        }
        return removed;
    }

    /** The history files, one per study (the FHIR bundles kept beside them left out). */
    private List<Path> histories() {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.json")) {
            for (Path p : ds) {
                if (!p.getFileName().toString().endsWith(".bundle.json")) {
                    out.add(p);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list study histories", e);
        }
        return out;
    }

    private static boolean settled(Life l, java.util.Collection<String> destinations) {
        if (l.retraction() != null && !l.retraction().deliveredTo().containsAll(destinations)) {
            return false;
        }
        for (Issue i : l.issues()) {
            for (String d : destinations) {
                if (l.deliveries().stream().noneMatch(x -> x.destination().equals(d) && x.key().equals(i.key()))) {
                    return false;
                }
            }
        }
        return true;
    }

    private Path file(String study) {
        return dir.resolve(DeliveryLedger.safe(study) + ".json");
    }

    private Path bundleFile(String study) {
        return dir.resolve(DeliveryLedger.safe(study) + ".bundle.json");
    }

    public Optional<Life> life(String study) {
        synchronized (lock(study)) {
            return Optional.ofNullable(read(study));
        }
    }

    /** Every study with a retraction not yet acknowledged by all of {@code destinations}. */
    public List<Life> unfinishedRetractions(List<String> destinations) {
        List<Life> out = new ArrayList<>();
        for (Path p : histories()) {
            Life l;
            try {
                l = JSON.readValue(Files.readAllBytes(p), Life.class);
            } catch (java.nio.file.NoSuchFileException e) {
                continue; // forgotten by a prune meanwhile: settled
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read study history " + p.getFileName(), e);
            }
            if (l.retraction() != null && !l.retraction().deliveredTo().containsAll(destinations)) {
                out.add(l);
            }
        }
        return out;
    }

    /** Records a result at hand-over (idempotent: a redelivered result keeps its first place). */
    public void handedOver(StudyInfo study, String jobId, int revision, List<IssuedSr> srs) {
        String uid = study.getStudyInstanceUid();
        synchronized (lock(uid)) {
            Life l = read(uid);
            if (l == null) {
                l = new Life(uid, List.of(), List.of(), null, null);
            }
            String key = key(jobId, revision);
            if (l.indexOf(key) >= 0) {
                return;
            }
            List<Sr> recorded = srs.stream().map(s -> new Sr(s.modelId(), s.modelVersion(), s.diagnostic(), Ref.of(s.sr()),
                    s.images().stream().map(Ref::of).toList())).toList();
            List<Issue> issues = new ArrayList<>(l.issues());
            issues.add(new Issue(key, jobId, revision, System.currentTimeMillis(), recorded, List.of()));
            write(new Life(uid, issues, l.deliveries(), l.retraction(), encode(study)));
        }
    }

    /** What the result {@code key} supersedes: the SRs and objects of the same study handed over before it. */
    public Supersession supersession(String study, String key) {
        synchronized (lock(study)) {
            Life l = read(study);
            int at = l == null ? -1 : l.indexOf(key);
            if (at <= 0) {
                return Supersession.NONE;
            }
            Map<String, List<InstanceRef>> srs = new LinkedHashMap<>();
            List<InstanceRef> objects = new ArrayList<>();
            for (Issue i : l.issues().subList(0, at)) {
                for (Sr s : i.srs()) {
                    List<InstanceRef> list = srs.computeIfAbsent(s.modelId(), k -> new ArrayList<>());
                    if (!list.contains(s.sr().ref())) {
                        list.add(s.sr().ref());
                    }
                    objects.add(s.sr().ref());
                }
                i.objects().forEach(o -> objects.add(o.ref()));
            }
            return new Supersession(srs, objects.stream().distinct().toList());
        }
    }

    /** Records the objects a result issued, once (they are a pure function of the result and its predecessors). */
    public void built(String study, String key, List<InstanceRef> objects) {
        synchronized (lock(study)) {
            Life l = read(study);
            int at = l == null ? -1 : l.indexOf(key);
            if (at < 0 || !l.issues().get(at).objects().isEmpty()) {
                return;
            }
            List<Issue> issues = new ArrayList<>(l.issues());
            Issue i = issues.get(at);
            issues.set(at, new Issue(i.key(), i.jobId(), i.revision(), i.handedOverAtEpochMs(), i.srs(),
                    objects.stream().map(Ref::of).toList()));
            write(l.withIssues(issues));
        }
    }

    /** True when a result handed over after {@code key} was already delivered to {@code destination}. */
    public boolean staleFor(String study, String key, String destination) {
        synchronized (lock(study)) {
            Life l = read(study);
            int at = l == null ? -1 : l.indexOf(key);
            if (at < 0) {
                return false;
            }
            for (Delivery d : l.deliveries()) {
                if (d.destination().equals(destination) && "delivered".equals(d.outcome()) && l.indexOf(d.key()) > at) {
                    return true;
                }
            }
            return false;
        }
    }

    public void delivered(String study, String destination, String key, String outcome) {
        synchronized (lock(study)) {
            Life l = read(study);
            if (l == null) {
                return;
            }
            List<Delivery> ds = new ArrayList<>(l.deliveries());
            ds.add(new Delivery(destination, key, outcome, System.currentTimeMillis()));
            write(new Life(l.studyInstanceUid(), l.issues(), ds, l.retraction(), l.studyInfo()));
        }
    }

    /**
     * Records a retraction durably; the caller then delivers it.
     *
     * @return empty when nothing was ever handed over for the study
     */
    public Optional<Life> retract(String study, String id, String reason, String by) throws AlreadyRetracted {
        synchronized (lock(study)) {
            Life l = read(study);
            if (l == null || l.issues().isEmpty()) {
                return Optional.empty();
            }
            if (l.retraction() != null) {
                throw new AlreadyRetracted(l.retraction());
            }
            Life r = new Life(l.studyInstanceUid(), l.issues(), l.deliveries(),
                    new Retraction(id, reason, by, System.currentTimeMillis(), List.of()), l.studyInfo());
            write(r);
            return Optional.of(r);
        }
    }

    public void retractionDelivered(String study, String destination) {
        synchronized (lock(study)) {
            Life l = read(study);
            if (l == null || l.retraction() == null || l.retraction().deliveredTo().contains(destination)) {
                return;
            }
            Retraction r = l.retraction();
            List<String> to = new ArrayList<>(r.deliveredTo());
            to.add(destination);
            write(new Life(l.studyInstanceUid(), l.issues(), l.deliveries(),
                    new Retraction(r.id(), r.reason(), r.by(), r.atEpochMs(), to), l.studyInfo()));
        }
    }

    /** Keeps the FHIR bundle of the study's latest result: a retraction sends it again, entered-in-error. */
    public void bundle(String study, String key, String json) {
        synchronized (lock(study)) {
            Life l = read(study);
            if (l == null || json == null || l.indexOf(key) != l.issues().size() - 1) {
                return;
            }
            try {
                byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
                Path f = bundleFile(study);
                // each destination builds the same bundle: one durable write, not one per destination
                if (Files.exists(f) && Files.size(f) == bytes.length && java.util.Arrays.equals(Files.readAllBytes(f), bytes)) {
                    return;
                }
                DurableFiles.write(f, bytes);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot record the study's FHIR bundle", e);
            }
        }
    }

    public Optional<String> lastBundle(String study) {
        try {
            Path f = bundleFile(study);
            return Files.exists(f) ? Optional.of(Files.readString(f)) : Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the study's FHIR bundle", e);
        }
    }

    private Life read(String study) {
        Path f = file(study);
        if (!Files.exists(f)) {
            return null;
        }
        try {
            return JSON.readValue(Files.readAllBytes(f), Life.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the history of study " + study, e);
        }
    }

    private void write(Life l) {
        try {
            DurableFiles.createDirectories(dir);
            DurableFiles.write(file(l.studyInstanceUid()), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(l));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot record the history of study " + l.studyInstanceUid(), e);
        }
    }

    private static String encode(StudyInfo s) {
        try {
            ByteBuffer b = s.toByteBuffer();
            byte[] bytes = new byte[b.remaining()];
            b.get(bytes);
            return Base64.getEncoder().encodeToString(bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static StudyInfo decode(String s) {
        try {
            return StudyInfo.fromByteBuffer(ByteBuffer.wrap(Base64.getDecoder().decode(s)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
