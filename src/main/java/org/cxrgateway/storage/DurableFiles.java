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
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
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
 *
 * <p><b>Group commit.</b> Step 4 is shared between concurrent writers of one directory (several associations
 * or STOW-RS parts of one study): a directory fsync covers every rename made in that directory before it
 * started, so a writer whose rename is done joins the next round and the first writer of that round runs one
 * fsync for all of them (leader and followers, as database group commit does). Nobody returns before a
 * directory fsync that began after its own rename has succeeded, so the guarantee above is unchanged; a lone
 * writer leads its own round at once, without a hand-off to another thread or a wait for company. The file
 * fsync of step 2 stays on each writer's own thread: Linux has no call that syncs the data of several chosen
 * files at once (syncfs would flush the whole file system), and concurrent fsyncs keep several writebacks in
 * flight on the disk, where one committer thread syncing files one after the other would keep one (on the
 * development machine's disk, one writer fsyncing 2 MiB files one after the other reached 130-135 files/s, four
 * associations fsyncing concurrently 190). ext4 folds the journal commits of concurrent fsyncs into shared
 * transactions itself.
 */
public final class DurableFiles {

    /** Suffix of the temporary files; a crash between steps 1 and 3 can leave one behind. */
    public static final String TEMP_SUFFIX = ".tmp";

    /** Test hook only: called right after each rename and before the directory fsync (see the crash test). */
    private static volatile Consumer<Path> afterRename;
    /** Test hook only: called by a round's leader just before its shared directory fsync (group commit tests). */
    private static volatile Consumer<Path> beforeDirectorySync;

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
        syncDirectoryShared(dir);
    }

    /**
     * Publishes a file that the caller wrote (streamed from the network, or written at positions) under
     * {@code target}, durably: fsync of the file, atomic rename, fsync of the target's directory. The file
     * must be on the target's file system (it may be in another directory of it, such as a spool's tmp/).
     */
    public static void publish(Path written, Path target) throws IOException {
        fsync(written);
        rename(written, target);
        syncDirectoryShared(directoryOf(target));
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

    /**
     * Makes every rename done in {@code dir} before this call durable, sharing one directory fsync with the
     * other threads waiting on the same directory (see the class comment, "Group commit").
     */
    public static void syncDirectoryShared(Path dir) throws IOException {
        Path key = dir.toAbsolutePath();
        DirectorySync sync = DIRECTORY_SYNCS.compute(key, (k, v) -> {
            DirectorySync s = v == null ? new DirectorySync() : v;
            s.users++;
            return s;
        });
        try {
            sync.await(key);
        } finally {
            DIRECTORY_SYNCS.computeIfPresent(key, (k, v) -> --v.users == 0 ? null : v);
        }
    }

    /** Directory fsyncs run by {@link #syncDirectoryShared} since start: one per round (tests). */
    static long directorySyncRounds() {
        return ROUNDS.get();
    }

    /** Writers of {@code dir} waiting for a round that has not started (tests). */
    static int waitingForDirectorySync(Path dir) {
        DirectorySync s = DIRECTORY_SYNCS.get(dir.toAbsolutePath());
        return s == null ? 0 : s.waiting();
    }

    /** Directories with a writer waiting for their fsync; an entry goes when its last user does. */
    private static final ConcurrentHashMap<Path, DirectorySync> DIRECTORY_SYNCS = new ConcurrentHashMap<>();
    private static final AtomicLong ROUNDS = new AtomicLong();
    private static final AtomicLong EARLY_FLUSHES = new AtomicLong();

    private static final AtomicLong DIRECT_WRITES = new AtomicLong();

    /** Early flushes of {@link StreamedFile}s completed since start (tests). */
    static long earlyFlushes() {
        return EARLY_FLUSHES.get();
    }

    /** O_DIRECT writes of {@link StreamedFile}s since start (tests). */
    static long directWrites() {
        return DIRECT_WRITES.get();
    }

    /**
     * The rounds of one directory. Writers join the {@code open} round; when no fsync is running, the first
     * of them to hold the lock closes it (later arrivals join the next one) and runs its fsync outside the
     * lock. Each round keeps its own result: a failed fsync fails exactly the writers it was meant to cover,
     * and a later round's success never answers for an earlier round's renames.
     */
    private static final class DirectorySync {
        /** Guarded by DIRECTORY_SYNCS.compute. */
        int users;
        private Round open = new Round();
        private boolean running;

        private static final class Round {
            int members;
            boolean done;
            IOException failure;
        }

        synchronized int waiting() {
            return open.members;
        }

        void await(Path dir) throws IOException {
            Round mine;
            boolean interrupted = false;
            synchronized (this) {
                mine = open;
                mine.members++;
                while (running && !mine.done) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        // the rename is done: give up only after our round's answer, never report durability early
                        interrupted = true;
                    }
                }
                if (!mine.done) {
                    running = true;
                    open = new Round();
                }
            }
            try {
                if (!mine.done) {
                    lead(mine, dir);
                }
                if (mine.failure != null) {
                    throw new IOException("directory fsync of " + dir + " failed: " + mine.failure.getMessage(),
                            mine.failure);
                }
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }

        /** Runs the fsync of a closed round and answers all its members; the lock is not held meanwhile. */
        private void lead(Round round, Path dir) {
            // an interrupt meant for the leader's own association must not fail the fsync of every member
            boolean interrupted = Thread.interrupted();
            IOException failure = null;
            try {
                Consumer<Path> hook = beforeDirectorySync;
                if (hook != null) {
                    hook.accept(dir);
                }
                syncDirectory(dir);
            } catch (IOException e) {
                failure = e;
            } catch (RuntimeException e) {
                failure = new IOException(e.toString(), e);
            } finally {
                ROUNDS.incrementAndGet();
                synchronized (this) {
                    round.failure = failure;
                    round.done = true;
                    running = false;
                    notifyAll();
                }
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /**
     * A file streamed to disk as it arrives (a received instance), for a later {@link #publish}, in one of three ways:
     * <ul>
     *   <li>buffered: each fragment is written through the page cache; {@link #publish} then waits for all of it to
     *       reach the disk;</li>
     *   <li>buffered with early flushes ({@code flushEvery} bytes): each so many bytes a flush of what it holds so far
     *       (fdatasync) starts on a background thread while the writer goes on receiving, so the fsync before the
     *       rename has less left; a failed early flush fails the file ({@link #close} throws it), because a failed
     *       fsync's error is reported once: the later fsync through another descriptor might not see it (the
     *       PostgreSQL "fsyncgate" lesson);</li>
     *   <li>direct ({@code O_DIRECT}): fragments are gathered in a block-aligned buffer of {@value #DIRECT_CHUNK}
     *       bytes that goes to the disk when full, bypassing the page cache; the last, partial block is padded and
     *       the file truncated to its size at {@link #close}. Each MiB goes to the disk as soon as it has arrived, in
     *       one large request and with one copy of ours instead of the JDK's and the page cache's, and
     *       {@link #publish}'s fsync has only the file's metadata left: on the development VM (Python, 2 MiB files) 0.75
     *       ms to write buffered and 1.46 to fsync, 1.2 ms to write direct in 1 MiB requests and 0.15 to fsync. Where
     *       the file system refuses O_DIRECT the file is written buffered.</li>
     * </ul>
     * None changes a guarantee: {@link #publish} fsyncs the whole file either way.
     */
    public static final class StreamedFile implements java.io.Closeable {
        private static final java.util.concurrent.ExecutorService FLUSHERS =
                java.util.concurrent.Executors.newCachedThreadPool(r -> {
                    Thread t = new Thread(r, "durable-early-flush");
                    t.setDaemon(true);
                    return t;
                });
        /** Bytes per direct write: large requests keep the disk busy (1 MiB: 1.23 ms per 2 MiB, 128 KiB: 2.26). */
        static final int DIRECT_CHUNK = 1 << 20;
        /** Direct buffers kept for reuse; more writers than this allocate their own and let the GC take them. */
        private static final java.util.concurrent.BlockingQueue<ByteBuffer> DIRECT_BUFFERS =
                new java.util.concurrent.ArrayBlockingQueue<>(16);
        private static final java.util.concurrent.atomic.AtomicBoolean DIRECT_REFUSAL_LOGGED =
                new java.util.concurrent.atomic.AtomicBoolean();
        private final Path path;
        private final FileChannel channel;
        private final long flushEvery;
        private long size;
        private long flushedUpTo;
        /** At most one early flush in flight per file, so the background threads are bounded by the writers. */
        private java.util.concurrent.Future<?> flushing;
        private IOException flushFailure;
        /** Direct mode: the block-aligned buffer being filled, and the file system's block size; null when buffered. */
        private ByteBuffer direct;
        private int block;

        /**
         * @param path an existing (temporary) file; it is truncated
         * @param flushEvery bytes between early flushes; 0 or less: none
         */
        public StreamedFile(Path path, long flushEvery) throws IOException {
            this(path, flushEvery, 0);
        }

        /**
         * @param path an existing (temporary) file; it is truncated
         * @param flushEvery bytes between early flushes when buffered; 0 or less: none
         * @param directBlock write with O_DIRECT in blocks of this size (its file system's, from
         *     {@link #directIoBlockSize}, found once by the store at start); 0: buffered. Early flushes then have no use.
         */
        public StreamedFile(Path path, long flushEvery, int directBlock) throws IOException {
            this.path = path;
            FileChannel ch = null;
            if (directBlock > 0) {
                ch = openDirect(path);
            }
            if (ch == null) {
                this.flushEvery = flushEvery;
                this.channel = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
            } else {
                this.flushEvery = 0;
                this.channel = ch;
                this.block = directBlock;
                this.direct = directBuffer();
            }
        }

        /**
         * The block size for O_DIRECT writes of files in {@code dir}, or 0 where its file system refuses O_DIRECT
         * (logged once), tried once on a probe file (removed): a store decides at start, so that neither the file
         * system's block size (a walk of the mount table) nor a refusal is looked up again for each received file.
         */
        public static int directIoBlockSize(Path dir) {
            Path probe = null;
            try {
                long bs = Files.getFileStore(dir).getBlockSize();
                if (bs <= 0 || bs > 65536 || DIRECT_CHUNK % bs != 0) {
                    refused(dir, "block size " + bs);
                    return 0;
                }
                probe = Files.createTempFile(dir, ".direct-io-probe", TEMP_SUFFIX);
                try (StreamedFile f = new StreamedFile(probe, 0, (int) bs)) {
                    return f.direct != null ? (int) bs : 0;
                }
            } catch (IOException | UnsupportedOperationException e) {
                refused(dir, e.toString());
                return 0;
            } finally {
                if (probe != null) {
                    try {
                        Files.deleteIfExists(probe);
                    } catch (IOException ignored) {
                        // a leftover temporary file: isTemporary, removed at the next start
                    }
                }
            }
        }

        private ByteBuffer directBuffer() {
            ByteBuffer b = DIRECT_BUFFERS.poll();
            return b != null && b.capacity() == DIRECT_CHUNK && b.alignmentOffset(0, block) == 0 ? b.clear()
                    : ByteBuffer.allocateDirect(DIRECT_CHUNK + block).alignedSlice(block).limit(DIRECT_CHUNK).slice();
        }

        /** The file opened with O_DIRECT, or null where the file system refuses it (logged once). */
        private static FileChannel openDirect(Path path) {
            try {
                return FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING,
                        com.sun.nio.file.ExtendedOpenOption.DIRECT);
            } catch (IOException | UnsupportedOperationException e) {
                refused(path.getParent(), e.toString());
                return null;
            }
        }

        private static void refused(Path dir, String why) {
            if (DIRECT_REFUSAL_LOGGED.compareAndSet(false, true)) {
                org.jboss.logging.Logger.getLogger(DurableFiles.class).warnf(
                        "direct I/O (O_DIRECT) refused for %s (%s): received files are written through the page cache", dir, why);
            }
        }

        public Path path() {
            return path;
        }

        /** Bytes written so far. */
        public long size() {
            return size;
        }

        /** Appends {@code data[off..off+len)}: buffered, written straight from the caller's array; direct, gathered. */
        public void write(byte[] data, int off, int len) throws IOException {
            if (direct != null) {
                gather(data, off, len);
                return;
            }
            ByteBuffer b = ByteBuffer.wrap(data, off, len);
            while (b.hasRemaining()) {
                channel.write(b);
            }
            size += len;
            if (flushEvery > 0 && size - flushedUpTo >= flushEvery && (flushing == null || flushing.isDone())) {
                collectFlush();
                flushedUpTo = size;
                flushing = FLUSHERS.submit(() -> {
                    channel.force(false);
                    EARLY_FLUSHES.incrementAndGet();
                    return null;
                });
            }
        }

        private void gather(byte[] data, int off, int len) throws IOException {
            while (len > 0) {
                int n = Math.min(len, direct.remaining());
                direct.put(data, off, n);
                off += n;
                len -= n;
                size += n;
                if (!direct.hasRemaining()) {
                    writeDirect(DIRECT_CHUNK);
                }
            }
        }

        /** Writes the buffer's first {@code length} bytes (a multiple of the block size) at the file's aligned end. */
        private void writeDirect(int length) throws IOException {
            long at = size - direct.position();
            direct.position(0).limit(length);
            while (direct.hasRemaining()) {
                channel.write(direct, at + direct.position());
            }
            direct.clear();
            DIRECT_WRITES.incrementAndGet();
        }

        /** This file as an output stream: its writes are {@link #write}, its close {@link #close}. */
        public java.io.OutputStream asOutputStream() {
            return new java.io.OutputStream() {
                @Override
                public void write(int b) throws IOException {
                    StreamedFile.this.write(new byte[] {(byte) b}, 0, 1);
                }

                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    StreamedFile.this.write(b, off, len);
                }

                @Override
                public void close() throws IOException {
                    StreamedFile.this.close();
                }
            };
        }

        /** Writes what is gathered (direct), waits for an early flush in flight, and closes the file. */
        @Override
        public void close() throws IOException {
            try {
                if (direct != null) {
                    int tail = direct.position();
                    if (tail > 0) {
                        int padded = (tail + block - 1) / block * block;
                        for (int i = tail; i < padded; i++) {
                            direct.put(i, (byte) 0);
                        }
                        writeDirect(padded);
                        channel.truncate(size);
                    }
                }
                if (flushing != null) {
                    boolean interrupted = false;
                    while (true) {
                        try {
                            flushing.get();
                            break;
                        } catch (InterruptedException e) {
                            interrupted = true; // the channel must not close under the flush
                        } catch (java.util.concurrent.ExecutionException e) {
                            break;
                        }
                    }
                    if (interrupted) {
                        Thread.currentThread().interrupt();
                    }
                    collectFlush();
                }
            } finally {
                channel.close();
                if (direct != null) {
                    DIRECT_BUFFERS.offer(direct.clear());
                    direct = null;
                }
            }
            if (flushFailure != null) {
                throw flushFailure;
            }
        }

        private void collectFlush() {
            if (flushing != null && flushing.isDone() && flushFailure == null) {
                try {
                    flushing.get();
                } catch (java.util.concurrent.ExecutionException e) {
                    flushFailure = e.getCause() instanceof IOException io ? io : new IOException(e.getCause());
                } catch (InterruptedException | java.util.concurrent.CancellationException e) {
                    flushFailure = new IOException("early flush interrupted", e);
                }
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

    /** For the group commit tests only (same package, test sources). */
    static void beforeDirectorySyncForTests(Consumer<Path> hook) {
        beforeDirectorySync = hook;
    }
}
