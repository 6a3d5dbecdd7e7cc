package org.cxrgateway.delivery;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Durable record of what each destination acknowledged: one small marker file per (destination, object),
 * written atomically after the ack, so that a restart does not resend acknowledged objects.
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
                    Files.createDirectories(d);
                    Path tmp = Files.createTempFile(d, ".ack", ".tmp");
                    Files.move(tmp, d.resolve(safe(key)), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
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
