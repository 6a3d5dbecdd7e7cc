package org.cxrgateway.delivery;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.charset.StandardCharsets;
import org.cxrgateway.storage.DurableFiles;

/**
 * Durable record of what each destination acknowledged: one small marker file per (destination, object),
 * written after the ack with {@link DurableFiles#write} (fsync, atomic rename, directory fsync), so that a
 * restart, even after a power loss, does not resend acknowledged objects.
 */
public final class DeliveryLedger {

    private final Path dir;

    public DeliveryLedger(Path dir) {
        this.dir = dir;
    }

    /** The ledger as one destination sees it. */
    public interface View {
        boolean acked(String objectKey);

        void ack(String objectKey);
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
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot record delivery acknowledgement", e);
                }
            }
        };
    }

    static String safe(String s) {
        return s.replaceAll("[^A-Za-z0-9._-]", "_");
    }
}
