package org.cxrgateway.delivery;

import org.cxrgateway.storage.DurableFiles;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * Results of a multi-part job, held durably until all parts are in: &lt;dir&gt;/&lt;job&gt;/&lt;index&gt;.part holds
 * the original bytes of part index. Each file is written with {@link DurableFiles#write} before the offset may
 * be committed, so a crash (kill -9 while a study is half assembled) loses no part; the first copy of a part is
 * kept and a redelivered one ignored, so the whole-study result is the same bytes however often parts repeat.
 */
public final class PartStore {

    private final Path dir;

    public PartStore(Path dir) {
        this.dir = dir;
    }

    /** Stores part index of job (durably, unless already held) and says how many parts of that job are held. */
    public int put(String jobId, int index, byte[] original) {
        try {
            Path d = DurableFiles.createDirectories(dir.resolve(PendingStore.idOf(jobId.getBytes(java.nio.charset.StandardCharsets.UTF_8))));
            Path f = d.resolve(index + ".part");
            if (!Files.exists(f)) {
                DurableFiles.write(f, original);
            }
            return count(d);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot hold the result part durably", e);
        }
    }

    /** The held parts of a job, by index. */
    public List<byte[]> read(String jobId) {
        Path d = dir.resolve(PendingStore.idOf(jobId.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
        return readDir(d);
    }

    /** Every job directory with at least one part (for resumption after a restart). */
    public List<Path> jobs() {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                if (Files.isDirectory(p)) {
                    out.add(p);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list result parts", e);
        }
        return out;
    }

    static List<byte[]> readDir(Path d) {
        List<byte[]> out = new ArrayList<>();
        try (Stream<Path> files = Files.list(d)) {
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".part")).sorted().toList()) {
                out.add(Files.readAllBytes(f));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read result parts in " + d, e);
        }
        return out;
    }

    /** Forgets a job's parts once the whole-study result is durably pending (not durable itself: a leftover is harmless). */
    public void remove(String jobId) {
        removeDir(dir.resolve(PendingStore.idOf(jobId.getBytes(java.nio.charset.StandardCharsets.UTF_8))));
    }

    static void removeDir(Path d) {
        try (Stream<Path> files = Files.list(d)) {
            for (Path f : files.toList()) {
                Files.deleteIfExists(f);
            }
            Files.deleteIfExists(d);
        } catch (java.nio.file.NoSuchFileException e) {
            // already gone
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove result parts " + d, e);
        }
    }

    private static int count(Path d) throws IOException {
        try (Stream<Path> files = Files.list(d)) {
            return (int) files.filter(p -> p.getFileName().toString().endsWith(".part")).count();
        }
    }
}
