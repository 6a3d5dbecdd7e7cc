package org.cxrgateway.storage;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Group commit of {@link DurableFiles#publish}: writers of one directory share its fsync. The first round is
 * held (test hook) until every other writer waits, so the count of rounds is exact, not a matter of timing.
 * That nobody hears "durable" before a directory fsync begun after its rename has ended is shown on the real
 * system calls by {@link DurableWriteCrashTest#concurrentSpoolCommitsShareDirectoryFsyncsAndAnswerAfterThem}.
 */
class GroupCommitTest {

    static final int WRITERS = 8;

    @TempDir
    Path dir;

    @AfterEach
    void unhook() {
        DurableFiles.beforeDirectorySyncForTests(null);
    }

    /** Holds the calling round's leader until {@code n} writers wait for the next round (30 s at most). */
    static void awaitWaiting(Path dir, int n) {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (DurableFiles.waitingForDirectorySync(dir) < n) {
            if (System.nanoTime() > end) {
                throw new IllegalStateException("only " + DurableFiles.waitingForDirectorySync(dir) + " of " + n
                        + " writers joined the next round");
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    @Test
    void concurrentWritersOfOneDirectoryShareItsFsync() throws Exception {
        AtomicInteger rounds = new AtomicInteger();
        DurableFiles.beforeDirectorySyncForTests(d -> {
            if (d.equals(dir.toAbsolutePath()) && rounds.incrementAndGet() == 1) {
                awaitWaiting(d, WRITERS - 1);
            }
        });
        List<Future<?>> done = publishAll();
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        // the first writer's round, then one round for the seven that came while it ran: 2 fsyncs for 8 files
        assertEquals(2, rounds.get(), "directory fsync rounds for " + WRITERS + " files");
        for (int i = 0; i < WRITERS; i++) {
            assertArrayEquals(CrashingWriter.payload("f" + i, 64 << 10), Files.readAllBytes(dir.resolve("f" + i)));
        }
        assertEquals(0, DurableFiles.waitingForDirectorySync(dir), "nobody left waiting");
    }

    @Test
    void aFailedRoundFailsItsOwnWritersOnly() throws Exception {
        AtomicInteger rounds = new AtomicInteger();
        DurableFiles.beforeDirectorySyncForTests(d -> {
            if (d.equals(dir.toAbsolutePath()) && rounds.incrementAndGet() == 1) {
                awaitWaiting(d, WRITERS - 1);
                throw new IllegalStateException("simulated directory fsync failure");
            }
        });
        List<Future<?>> done = publishAll();
        int failed = 0;
        for (Future<?> f : done) {
            try {
                f.get(60, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                assertTrue(e.getCause() instanceof IOException, e.toString());
                assertTrue(e.getCause().getMessage().contains("simulated directory fsync failure"), e.toString());
                failed++;
            }
        }
        // the failed round covered its leader alone; the next round's success is not taken for it
        assertEquals(1, failed, "writers told their file is not durable");
        assertEquals(2, rounds.get());
    }

    @Test
    void aLoneWriterLeadsItsOwnRound() throws Exception {
        AtomicInteger rounds = new AtomicInteger();
        DurableFiles.beforeDirectorySyncForTests(d -> rounds.incrementAndGet());
        for (int i = 0; i < 3; i++) {
            Path tmp = Files.createTempFile(dir, ".x", DurableFiles.TEMP_SUFFIX);
            Files.write(tmp, new byte[] {(byte) i});
            DurableFiles.publish(tmp, dir.resolve("one" + i));
        }
        assertEquals(3, rounds.get(), "one directory fsync per sequential publish: nobody waits for company");
        assertThrows(IOException.class, () -> DurableFiles.publish(dir.resolve("missing"), dir.resolve("x")));
    }

    @Test
    void streamedFileFlushesEarlyAndPublishesWholeFile() throws Exception {
        byte[] data = CrashingWriter.payload("streamed", 3 << 20);
        Path tmp = Files.createTempFile(dir, ".s", DurableFiles.TEMP_SUFFIX);
        long before = DurableFiles.earlyFlushes();
        try (DurableFiles.StreamedFile f = new DurableFiles.StreamedFile(tmp, 256 << 10)) {
            for (int off = 0; off < data.length; off += 128 << 10) {
                f.write(data, off, Math.min(data.length - off, 128 << 10));
            }
            assertEquals(data.length, f.size());
        }
        // close() waited for the flush in flight, so the count is final; at most one is in flight at a time
        long flushes = DurableFiles.earlyFlushes() - before;
        assertTrue(flushes >= 1 && flushes <= 12, "early flushes: " + flushes);
        DurableFiles.publish(tmp, dir.resolve("streamed"));
        assertArrayEquals(data, Files.readAllBytes(dir.resolve("streamed")));
    }

    @Test
    void streamedFileWritesDirectInAlignedBlocksAndTruncatesTheTail() throws Exception {
        Path probe = Files.createTempFile(dir, ".probe", DurableFiles.TEMP_SUFFIX);
        boolean takes = true;
        try (var ch = java.nio.channels.FileChannel.open(probe, java.nio.file.StandardOpenOption.WRITE,
                com.sun.nio.file.ExtendedOpenOption.DIRECT)) {
            assertTrue(ch.isOpen());
        } catch (IOException e) {
            takes = false;
        }
        // the store's decision at start (Spool) agrees with the file system, names its block size, and leaves no
        // probe file behind
        int block;
        try (var before = Files.list(dir)) {
            long files = before.count();
            block = DurableFiles.StreamedFile.directIoBlockSize(dir);
            assertEquals(takes, block > 0);
            try (var after = Files.list(dir)) {
                assertEquals(files, after.count());
            }
        }
        assertEquals(0, DurableFiles.StreamedFile.directIoBlockSize(dir.resolve("missing")));
        org.junit.jupiter.api.Assumptions.assumeTrue(takes, "the temporary directory's file system refuses O_DIRECT");
        java.util.Random rnd = new java.util.Random(42);
        int chunk = DurableFiles.StreamedFile.DIRECT_CHUNK;
        for (int size : new int[] {0, 1, 4095, 4096, 4097, chunk - 1, chunk, chunk + 1, 3 * chunk + 12345}) {
            byte[] data = CrashingWriter.payload("direct" + size, size);
            Path tmp = Files.createTempFile(dir, ".d", DurableFiles.TEMP_SUFFIX);
            long before = DurableFiles.directWrites();
            try (DurableFiles.StreamedFile f = new DurableFiles.StreamedFile(tmp, 64 << 10, block)) {
                // fragments of any length, as PDVs come: a block boundary falls anywhere within them
                for (int off = 0; off < size; ) {
                    int n = Math.min(size - off, 1 + rnd.nextInt(300_000));
                    f.write(data, off, n);
                    off += n;
                }
                assertEquals(size, f.size());
            }
            assertEquals((size + chunk - 1) / chunk, DurableFiles.directWrites() - before, "direct writes of " + size + " bytes");
            DurableFiles.publish(tmp, dir.resolve("direct" + size));
            assertArrayEquals(data, Files.readAllBytes(dir.resolve("direct" + size)), "bytes of " + size);
        }
    }

    private List<Future<?>> publishAll() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(WRITERS);
        CyclicBarrier start = new CyclicBarrier(WRITERS);
        List<Future<?>> done = new ArrayList<>();
        for (int i = 0; i < WRITERS; i++) {
            int n = i;
            done.add(pool.submit(() -> {
                Path tmp = Files.createTempFile(dir, ".f" + n, DurableFiles.TEMP_SUFFIX);
                Files.write(tmp, CrashingWriter.payload("f" + n, 64 << 10));
                start.await();
                DurableFiles.publish(tmp, dir.resolve("f" + n));
                return null;
            }));
        }
        pool.shutdown();
        return done;
    }
}
