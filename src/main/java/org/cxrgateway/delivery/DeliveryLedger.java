package org.cxrgateway.delivery;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import org.cxrgateway.storage.DurableFiles;

/**
 * Durable record of what each destination acknowledged: one small marker file per (destination, object),
 * written after the ack with {@link DurableFiles#write} (fsync, atomic rename, directory fsync), so that a
 * restart, even after a power loss, does not resend acknowledged objects.
 *
 * <p>An object delivered in several steps (an ordered FHIR write) also has, until it is acknowledged, a
 * progress record beside its marker: &lt;key&gt;.steps, the steps done so far and what each produced (a JSON
 * object of strings), rewritten whole and durably after each step, so that a retry after a crash resumes at
 * the first unfinished step. The ack deletes it; one left by an object that was dead-lettered stays for its
 * replay to resume from.
 */
public final class DeliveryLedger {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String STEPS = ".steps";

    private final Path dir;

    public DeliveryLedger(Path dir) {
        this.dir = dir;
    }

    /** The ledger as one destination sees it. */
    public interface View {
        boolean acked(String objectKey);

        /** Records the acknowledgement durably, then forgets the object's progress record. */
        void ack(String objectKey);

        /** The steps of the object's delivery recorded as done (step -> its result); empty when none is. */
        Map<String, String> steps(String objectKey);

        /** Records durably that these steps (all done so far, not only the latest) of the object's delivery are done. */
        void steps(String objectKey, Map<String, String> done);
    }

    public View view(String destination) {
        Path d = dir.resolve(safe(destination));
        return new View() {
            @Override
            public boolean acked(String key) {
                return Files.exists(d.resolve(safe(key)));
            }

            @Override
            public void ack(String key) {
                try {
                    DurableFiles.createDirectories(d);
                    // the key as content: a marker read back whole names what it acknowledges
                    DurableFiles.write(d.resolve(safe(key)), (key + "\n").getBytes(StandardCharsets.UTF_8));
                    // need not be durable: a progress record that reappears after a power loss is never read
                    // again, the marker answering first
                    Files.deleteIfExists(d.resolve(safe(key) + STEPS));
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot record delivery acknowledgement", e);
                }
            }

            @Override
            public Map<String, String> steps(String key) {
                try {
                    return JSON.readValue(Files.readAllBytes(d.resolve(safe(key) + STEPS)), new TypeReference<TreeMap<String, String>>() {
                    });
                } catch (NoSuchFileException e) {
                    return Map.of();
                } catch (IOException e) {
                    // written atomically, so only a damaged disk gets here; every step is idempotent: start over
                    return Map.of();
                }
            }

            @Override
            public void steps(String key, Map<String, String> done) {
                try {
                    DurableFiles.createDirectories(d);
                    DurableFiles.write(d.resolve(safe(key) + STEPS), JSON.writeValueAsBytes(new TreeMap<>(done)));
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot record delivery progress", e);
                }
            }
        };
    }

    /**
     * Forgets acknowledgements (and progress records) not changed since {@code cutoffEpochMs}, of every destination.
     * An object acknowledged before and sent again after that (a replay of a very old result) goes out once more under
     * its same UID, which a PACS or FHIR server takes as the same object.
     *
     * @return how many records were removed
     */
    public int prune(long cutoffEpochMs) {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        int removed = 0;
        try (DirectoryStream<Path> destinations = Files.newDirectoryStream(dir)) {
            for (Path d : destinations) {
                if (!Files.isDirectory(d)) {
                    continue;
                }
                try (DirectoryStream<Path> records = Files.newDirectoryStream(d)) {
                    for (Path r : records) {
                        try {
                            if (Files.getLastModifiedTime(r).toMillis() < cutoffEpochMs && Files.deleteIfExists(r)) {
                                removed++;
                            }
                        } catch (NoSuchFileException gone) {
                            // removed meanwhile
                        }
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prune the delivery ledger", e);
        }
        return removed;
    }

    static String safe(String s) {
        return s.replaceAll("[^A-Za-z0-9._-]", "_");
    }
}
