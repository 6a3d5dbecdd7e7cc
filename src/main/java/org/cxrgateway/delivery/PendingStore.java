package org.cxrgateway.delivery;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import org.cxrgateway.storage.DurableFiles;

/**
 * The durable hand-off between the results topic and the destinations: &lt;dir&gt;/&lt;destination&gt;/&lt;id&gt;.msg
 * holds the original result bytes until that destination has acknowledged or dead-lettered them. Each file
 * is written with {@link DurableFiles#write} (fsync, atomic rename, directory fsync) before the offset may be
 * committed, so that a crash loses nothing. The id is a hash of the bytes: a redelivered message lands on the same file.
 */
public final class PendingStore {

    private final Path dir;

    public PendingStore(Path dir) {
        this.dir = dir;
    }

    /** The store's directory (the part store lives beside it). */
    public Path dir() {
        return dir;
    }

    /** One result waiting for one destination. */
    public record Item(String destination, String id, Path file) {
        public byte[] read() throws IOException {
            return Files.readAllBytes(file);
        }
    }

    public static String idOf(byte[] original) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(original), 0, 20);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes the result for each destination and returns once all copies are durable. */
    public List<Item> put(byte[] original, Collection<String> destinations) {
        String id = idOf(original);
        List<Item> items = new ArrayList<>();
        try {
            for (String destination : destinations) {
                Path d = DurableFiles.createDirectories(dir.resolve(DeliveryLedger.safe(destination)));
                Path target = d.resolve(id + ".msg");
                DurableFiles.write(target, original);
                items.add(new Item(destination, id, target));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hand the result over durably", e);
        }
        return items;
    }

    /** What a destination still has to do, oldest first (the order of a restart's resumption). */
    public List<Item> list(String destination) {
        Path d = dir.resolve(DeliveryLedger.safe(destination));
        List<Item> out = new ArrayList<>();
        if (!Files.isDirectory(d)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(d, "*.msg")) {
            for (Path p : ds) {
                out.add(new Item(destination, p.getFileName().toString().replace(".msg", ""), p));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list pending deliveries", e);
        }
        out.sort(Comparator.comparing((Item i) -> modified(i.file())));
        return out;
    }

    /**
     * Done with an item: its destination acknowledged it (and the ledger recorded that durably), or its dead
     * letter was written durably by the {@link DeadLetterStore}. The delete itself need not be durable: an item
     * that reappears after a crash is resumed, and the ledger or the deterministic UIDs absorb the repeat.
     */
    public void remove(Item item) {
        try {
            Files.deleteIfExists(item.file());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove pending delivery " + item.file(), e);
        }
    }

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p);
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }
}
