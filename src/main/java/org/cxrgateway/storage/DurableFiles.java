package org.cxrgateway.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Writes files so that after a crash (process or power) a reader finds either the previous state or the
 * whole new file under its name, never a part of it:
 * <ol>
 *   <li>the bytes go to a temporary file in the target's own directory (same file system, so the rename
 *       can be atomic; hidden and ending in {@value #TEMP_SUFFIX}, so no store's listing mistakes it for a
 *       record);</li>
 *   <li>the temporary file is fsynced ({@code FileChannel.force(true)}): its data and size are on disk
 *       before any name points to it;</li>
 *   <li>it is renamed over the target with {@code ATOMIC_MOVE} (rename(2)): readers see old or new;</li>
 *   <li>the directory is fsynced: the rename itself survives a power loss.</li>
 * </ol>
 * Without step 2 a power loss after the rename can leave a named, empty or short file; without step 4 the
 * new name can vanish although the caller was told it was durable. A process crash alone (kill -9) loses
 * neither, because the page cache outlives the process.
 */
public final class DurableFiles {

    /** Suffix of the temporary files; a crash between steps 1 and 3 can leave one behind. */
    public static final String TEMP_SUFFIX = ".tmp";

    /** Test hook only: called right after each rename and before the directory fsync (see the crash test). */
    private static volatile Consumer<Path> afterRename;

    private DurableFiles() {
    }

    /** Replaces {@code target} with {@code data}, durably (steps 1-4). The directory must exist. */
    public static void write(Path target, byte[] data) throws IOException {
        Path dir = directoryOf(target);
        Path tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", TEMP_SUFFIX);
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(data);
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                ch.force(true);
            }
            rename(tmp, target);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        syncDirectory(dir);
    }

    /**
     * Publishes a file that the caller wrote (streamed from the network, or written at positions) under
     * {@code target}, durably: fsync of the file, atomic rename, fsync of the target's directory. The file
     * must be on the target's file system (it may be in another directory of it, such as a spool's tmp/).
     */
    public static void publish(Path written, Path target) throws IOException {
        fsync(written);
        rename(written, target);
        syncDirectory(directoryOf(target));
    }

    /**
     * Creates {@code dir} and its missing parents, fsyncing the parent of each directory created, so that
     * a file later made durable in it is not lost with a directory entry that was not.
     */
    public static Path createDirectories(Path dir) throws IOException {
        Path abs = dir.toAbsolutePath();
        Deque<Path> missing = new ArrayDeque<>();
        for (Path p = abs; p != null && !Files.isDirectory(p); p = p.getParent()) {
            missing.push(p);
        }
        while (!missing.isEmpty()) {
            Path p = missing.pop();
            try {
                Files.createDirectory(p);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                if (!Files.isDirectory(p)) {
                    throw e;
                }
                continue; // another thread created it; its parent fsync is that thread's
            }
            if (p.getParent() != null) {
                syncDirectory(p.getParent());
            }
        }
        return dir;
    }

    /** fsync of a regular file's data and metadata. */
    public static void fsync(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    /** fsync of a directory: makes its entries (created, renamed, deleted names) durable. */
    public static void syncDirectory(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            // Windows cannot open a directory as a channel; there NTFS journals the rename itself
            if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("win")) {
                throw e;
            }
        }
    }

    /** True for the temporary files this class creates (to skip or remove crash leftovers). */
    public static boolean isTemporary(Path file) {
        String n = file.getFileName().toString();
        return n.startsWith(".") && n.endsWith(TEMP_SUFFIX);
    }

    private static void rename(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("file system of " + to.getParent() + " does not support atomic rename", e);
        }
        Consumer<Path> hook = afterRename;
        if (hook != null) {
            hook.accept(to);
        }
    }

    private static Path directoryOf(Path target) {
        Path dir = target.toAbsolutePath().getParent();
        if (dir == null) {
            throw new IllegalArgumentException("no directory: " + target);
        }
        return dir;
    }

    /** For the crash test's child JVM only (same package, test sources). */
    static void afterRenameForTests(Consumer<Path> hook) {
        afterRename = hook;
    }
}
