package org.cxrgateway.storage;

import org.cxrgateway.delivery.DeadLetterStore;
import org.cxrgateway.delivery.DeliveryLedger;
import org.cxrgateway.delivery.FileDeadLetterStore;
import org.cxrgateway.delivery.OutboxDestination;
import org.cxrgateway.delivery.PendingStore;
import org.cxrgateway.dicom.AssociationInfo;
import org.cxrgateway.dicom.InstanceHeader;
import org.cxrgateway.ingest.Spool;
import org.cxrgateway.report.ReportSet;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The child JVM of {@link DurableWriteCrashTest}: writes one record through one real store and halts the
 * JVM (Runtime.halt: no shutdown hooks, no flushing, as kill -9) right after the {@code haltAt}-th rename
 * of {@link DurableFiles}, before anything else runs. {@code haltAt} 0 writes everything and exits 0 (the
 * strace run). Exit status {@value #HALTED} says it died where it was told to.
 *
 * <p>Args: store (spool | marker | pending | ledger | deadletter | outbox | all | spool-concurrent), directory,
 * haltAt. {@code spool-concurrent} commits {@value #CONCURRENT} instances of one study from as many threads at
 * once and prints "acked &lt;SOP Instance UID&gt;" when each commit returned (where a listener answers Success);
 * the first directory fsync round is held until all the other writers wait for the next one, so that the
 * group commit shows in the system calls (see DurableWriteCrashTest).
 */
public final class CrashingWriter {

    static final int HALTED = 86;
    static final String STUDY = "1.2.826.0.1.3680043.10.1.1";
    static final String SOP = "1.2.826.0.1.3680043.10.1.1.1";

    private CrashingWriter() {
    }

    /** Deterministic payload, large enough (2 MiB) that a partial write would be visible. */
    static byte[] payload(String what, int size) {
        byte[] b = new byte[size];
        long x = what.hashCode();
        for (int i = 0; i < size; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            b[i] = (byte) (x >>> 56);
        }
        return b;
    }

    static final int SIZE = 2 << 20;

    public static void main(String[] args) throws Exception {
        String store = args[0];
        Path dir = Path.of(args[1]);
        int haltAt = Integer.parseInt(args[2]);
        AtomicInteger renames = new AtomicInteger();
        DurableFiles.afterRenameForTests(target -> {
            if (renames.incrementAndGet() == haltAt) {
                System.out.println("halt after rename to " + target);
                System.out.flush();
                Runtime.getRuntime().halt(HALTED);
            }
        });
        if (store.equals("spool-concurrent")) {
            spoolConcurrent(dir);
        } else if (store.equals("all")) {
            for (String s : List.of("spool", "marker", "pending", "ledger", "deadletter", "outbox")) {
                write(s, dir.resolve(s));
            }
        } else {
            write(store, dir);
        }
        System.out.println("wrote without halting after " + renames.get() + " renames");
    }

    static final int CONCURRENT = 8;

    private static void spoolConcurrent(Path dir) throws Exception {
        Spool spool = new Spool(dir, 0);
        Path studyDir = spool.instanceFile(STUDY, SOP).getParent();
        AtomicInteger rounds = new AtomicInteger();
        DurableFiles.beforeDirectorySyncForTests(d -> {
            if (d.equals(studyDir.toAbsolutePath()) && rounds.incrementAndGet() == 1) {
                GroupCommitTest.awaitWaiting(d, CONCURRENT - 1);
            }
        });
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(CONCURRENT);
        List<Thread> threads = new java.util.ArrayList<>();
        java.util.Queue<Throwable> failures = new java.util.concurrent.ConcurrentLinkedQueue<>();
        for (int i = 0; i < CONCURRENT; i++) {
            String sop = SOP + "." + (i + 1);
            Thread t = new Thread(() -> {
                try {
                    Path tmp = spool.newTemporaryFile();
                    Files.write(tmp, payload(sop, 256 << 10));
                    start.await();
                    spool.commit(tmp, new InstanceHeader("1.2.840.10008.5.1.4.1.1.1.1", sop, STUDY, STUDY + ".2",
                            "1.2.840.10008.1.2.1"), new AssociationInfo(1, "CRASH", "CXR", "127.0.0.1"));
                    System.out.println("acked " + sop);
                } catch (Throwable e) {
                    failures.add(e);
                }
            });
            t.start();
            threads.add(t);
        }
        for (Thread t : threads) {
            t.join();
        }
        if (!failures.isEmpty()) {
            throw new IllegalStateException("commit failed", failures.peek());
        }
    }

    private static void write(String store, Path dir) throws Exception {
        switch (store) {
            case "spool" -> {
                Spool spool = new Spool(dir, 0);
                Path tmp = spool.newTemporaryFile();
                Files.write(tmp, payload("spool", SIZE));
                spool.commit(tmp, new InstanceHeader("1.2.840.10008.5.1.4.1.1.1.1", SOP, STUDY, STUDY + ".2",
                        "1.2.840.10008.1.2.1"), new AssociationInfo(1, "CRASH", "CXR", "127.0.0.1"));
            }
            case "marker" -> {
                Spool spool = new Spool(dir, 0);
                Files.createDirectories(spool.instanceFile(STUDY, SOP).getParent());
                spool.markPublished(STUDY, new Spool.Published(3, "job-1", List.of(SOP), List.of(SOP)));
            }
            case "pending" -> new PendingStore(dir).put(payload("pending", SIZE), List.of("pacs-a"));
            case "ledger" -> new DeliveryLedger(dir).view("pacs-a").ack(SOP);
            case "deadletter" -> new FileDeadLetterStore(dir).add(new DeadLetterStore.DeadLetter("dl-1", "pacs-a", STUDY,
                    "A900 data set does not match SOP class", "0xA900", 1234L, payload("deadletter", SIZE)));
            case "outbox" -> new OutboxDestination(dir).deliver(new ReportSet(STUDY, "job-1", List.of(
                    new ReportSet.DicomObject("SR", "1.2.840.10008.5.1.4.1.1.88.33", SOP + ".7", STUDY + ".7",
                            payload("sr", SIZE)),
                    new ReportSet.DicomObject("SC", "1.2.840.10008.5.1.4.1.1.7", SOP + ".8", STUDY + ".8",
                            payload("sc", SIZE))), "{\"resourceType\":\"Bundle\"}"), null);
            default -> throw new IllegalArgumentException(store);
        }
    }
}
