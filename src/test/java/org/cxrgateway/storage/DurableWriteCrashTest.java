package org.cxrgateway.storage;

import org.cxrgateway.delivery.DeadLetterStore;
import org.cxrgateway.delivery.DeliveryLedger;
import org.cxrgateway.delivery.FileDeadLetterStore;
import org.cxrgateway.delivery.PendingStore;
import org.cxrgateway.ingest.Spool;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.cxrgateway.storage.CrashingWriter.SIZE;
import static org.cxrgateway.storage.CrashingWriter.SOP;
import static org.cxrgateway.storage.CrashingWriter.STUDY;
import static org.cxrgateway.storage.CrashingWriter.payload;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each store that keeps state on disk, written by a real child JVM ({@link CrashingWriter}) that halts right
 * after the rename, before the directory fsync; the store opened again afterwards ("the restart") must find
 * the record whole, or, where the crash came before the record's last file, no record at all. A process crash
 * cannot tell fsync from no fsync (the page cache survives it), so {@link #everyRenameIsFsyncedBeforeAndAfter}
 * watches the system calls with strace: the temp file is fsynced before its rename, the directory after.
 */
class DurableWriteCrashTest {

    @TempDir
    Path dir;

    @Test
    void spoolInstance() throws Exception {
        crash("spool", 1);
        Spool spool = new Spool(dir, 0);
        assertEquals(1, spool.instanceCount());
        assertEquals(List.of(SOP), spool.instanceUids(STUDY));
        assertArrayEquals(payload("spool", SIZE), Files.readAllBytes(spool.instanceFile(STUDY, SOP)));
        assertNoLeftoverRecords();
    }

    @Test
    void spoolPublishedMarker() throws Exception {
        crash("marker", 1);
        Spool.Published p = new Spool(dir, 0).lastPublished(STUDY).orElseThrow();
        assertEquals(new Spool.Published(3, "job-1", List.of(SOP), List.of(SOP)), p);
        assertNoLeftoverRecords();
    }

    @Test
    void pendingStore() throws Exception {
        crash("pending", 1);
        List<PendingStore.Item> items = new PendingStore(dir).list("pacs-a");
        assertEquals(1, items.size());
        assertEquals(PendingStore.idOf(payload("pending", SIZE)), items.get(0).id());
        assertArrayEquals(payload("pending", SIZE), items.get(0).read());
        assertNoLeftoverRecords();
    }

    @Test
    void deliveryLedger() throws Exception {
        crash("ledger", 1);
        assertTrue(new DeliveryLedger(dir).view("pacs-a").acked(SOP));
        assertEquals(SOP + "\n", Files.readString(dir.resolve("pacs-a").resolve(SOP)));
        assertNoLeftoverRecords();
    }

    @Test
    void deadLetterIsWholeOrAbsent() throws Exception {
        Path first = dir.resolve("first");
        crash("deadletter", 1, first);
        // the message is in place, the properties (the completion mark) are not: no dead letter, not half of one
        assertEquals(List.of(), new FileDeadLetterStore(first).list());
        assertTrue(Files.exists(first.resolve("dl-1.msg")));

        Path second = dir.resolve("second");
        crash("deadletter", 2, second);
        List<DeadLetterStore.DeadLetter> letters = new FileDeadLetterStore(second).list();
        assertEquals(1, letters.size());
        DeadLetterStore.DeadLetter l = letters.get(0);
        assertEquals(List.of("dl-1", "pacs-a", STUDY, "A900 data set does not match SOP class", 1234L),
                List.of(l.id(), l.destination(), l.studyInstanceUid(), l.reason(), l.atEpochMs()));
        assertArrayEquals(payload("deadletter", SIZE), l.studyResult());
    }

    @Test
    void outboxObjects() throws Exception {
        Path first = dir.resolve("first");
        crash("outbox", 1, first);
        Path study = first.resolve(STUDY);
        assertArrayEquals(payload("sr", SIZE), Files.readAllBytes(study.resolve("SR-" + SOP + ".7.dcm")));
        assertEquals(List.of("SR-" + SOP + ".7.dcm"), names(study), "only whole objects carry a name");

        Path second = dir.resolve("second");
        crash("outbox", 3, second);
        study = second.resolve(STUDY);
        assertArrayEquals(payload("sr", SIZE), Files.readAllBytes(study.resolve("SR-" + SOP + ".7.dcm")));
        assertArrayEquals(payload("sc", SIZE), Files.readAllBytes(study.resolve("SC-" + SOP + ".8.dcm")));
        assertEquals("{\"resourceType\":\"Bundle\"}", Files.readString(study.resolve("bundle.json")));
    }

    /** Runs the child in {@code mode} under strace (following its threads) and returns strace's lines. */
    private List<String> straced(String mode, Path out, int stringLimit, String calls) throws Exception {
        Path log = dir.resolve("strace.log");
        List<String> cmd = new ArrayList<>(List.of("strace", "-f", "-y", "-qq", "-s", String.valueOf(stringLimit),
                "-o", log.toString(), "-e", "trace=" + calls));
        cmd.addAll(child(mode, 0, out));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), output);
        return Files.readAllLines(log);
    }

    @Test
    void everyRenameIsFsyncedBeforeAndAfter() throws Exception {
        Assumptions.assumeTrue(canStrace(), "strace cannot trace here (no ptrace)");
        Path out = dir.resolve("stores");
        List<String> lines = straced("all", out, 4096, "fsync,fdatasync,rename,renameat,renameat2");

        Pattern rename = Pattern.compile("rename\\w*\\((?:AT_FDCWD[^,]*, )?\"([^\"]+)\", (?:AT_FDCWD[^,]*, )?\"([^\"]+)\".*= 0");
        Pattern fsync = Pattern.compile("\\bfsync\\(\\d+<([^>]+)>\\) += 0");
        int renames = 0;
        for (int i = 0; i < lines.size(); i++) {
            Matcher r = rename.matcher(lines.get(i));
            if (!r.find() || !r.group(2).startsWith(out.toAbsolutePath().toString())) {
                continue;
            }
            renames++;
            String from = r.group(1);
            String to = r.group(2);
            String parent = Path.of(to).getParent().toString();
            boolean before = false;
            for (int j = 0; j < i && !before; j++) {
                Matcher f = fsync.matcher(lines.get(j));
                before = f.find() && f.group(1).equals(from);
            }
            boolean after = false;
            for (int j = i + 1; j < lines.size() && !after; j++) {
                Matcher f = fsync.matcher(lines.get(j));
                after = f.find() && f.group(1).equals(parent);
            }
            assertTrue(before, "no fsync of " + from + " before its rename to " + to);
            assertTrue(after, "no fsync of " + parent + " after the rename to " + to);
        }
        // spool 1, marker 1, pending 1, ledger 1, dead letter 2, outbox 3
        assertEquals(9, renames, "renames seen by strace");
    }

    /**
     * Group commit on the real system calls: {@value CrashingWriter#CONCURRENT} threads commit one instance each
     * into one study. Each instance's temp file is fsynced before its rename, and its "acked" line (where the
     * listener would answer Success) comes only after a fsync of the study directory that began after that
     * rename and ended; and the directory was fsynced fewer times than there were files (2: the first writer's
     * round, held by the child until the seven others wait, then theirs).
     */
    @Test
    void concurrentSpoolCommitsShareDirectoryFsyncsAndAnswerAfterThem() throws Exception {
        Assumptions.assumeTrue(canStrace(), "strace cannot trace here (no ptrace)");
        Path out = dir.resolve("spool");
        List<Call> calls = calls(straced("spool-concurrent", out, 64, "fsync,fdatasync,rename,renameat,renameat2,write"));
        Path studyDir = new Spool(out, 0).instanceFile(STUDY, SOP).getParent().toAbsolutePath();
        Pattern rename = Pattern.compile("^rename\\w*\\((?:AT_FDCWD[^,]*, )?\"([^\"]+)\", (?:AT_FDCWD[^,]*, )?\"([^\"]+)\".*= 0");
        Pattern fsync = Pattern.compile("^fsync\\(\\d+<([^>]+)>\\) += 0");
        Pattern acked = Pattern.compile("^write\\(1<[^>]*>, \"acked ([0-9.]+)");
        List<Call> dirSyncs = calls.stream().filter(c -> {
            Matcher f = fsync.matcher(c.text);
            return f.find() && f.group(1).equals(studyDir.toString());
        }).toList();
        int checked = 0;
        for (Call r : calls) {
            Matcher m = rename.matcher(r.text);
            if (!m.find() || !m.group(2).startsWith(studyDir.toString())) {
                continue;
            }
            String from = m.group(1);
            String sop = Path.of(m.group(2)).getFileName().toString().replace(".dcm", "");
            boolean fileSynced = calls.stream().anyMatch(c -> c.end < r.start && fsync.matcher(c.text).find()
                    && c.text.contains("<" + from + ">"));
            assertTrue(fileSynced, "no fsync of " + from + " before its rename");
            Call ack = calls.stream().filter(c -> {
                Matcher a = acked.matcher(c.text);
                return a.find() && a.group(1).equals(sop);
            }).findFirst().orElseThrow(() -> new AssertionError("no ack for " + sop));
            boolean covered = dirSyncs.stream().anyMatch(d -> d.start > r.end && d.end < ack.start);
            assertTrue(covered, "acked " + sop + " without a directory fsync begun after its rename and ended before");
            checked++;
        }
        assertEquals(CrashingWriter.CONCURRENT, checked, "instances renamed into the study");
        assertEquals(2, dirSyncs.size(), "directory fsyncs for " + CrashingWriter.CONCURRENT + " files");
    }

    /** One system call of an strace -f log: where it began and ended (line numbers), unfinished/resumed joined. */
    private record Call(int start, int end, String text) {
    }

    private static List<Call> calls(List<String> lines) {
        Pattern line = Pattern.compile("^(\\d+)\\s+(.*)$");
        java.util.Map<String, Call> open = new java.util.HashMap<>();
        List<Call> out = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            Matcher m = line.matcher(lines.get(i));
            if (!m.matches()) {
                continue;
            }
            String pid = m.group(1);
            String text = m.group(2);
            if (text.endsWith("<unfinished ...>")) {
                open.put(pid, new Call(i, i, text.substring(0, text.length() - "<unfinished ...>".length()).trim()));
            } else if (text.startsWith("<... ")) {
                Call begun = open.remove(pid);
                if (begun != null) {
                    out.add(new Call(begun.start, i, begun.text + text.substring(text.indexOf('>') + 1)));
                }
            } else {
                out.add(new Call(i, i, text));
            }
        }
        return out;
    }

    private static boolean canStrace() {
        try {
            Process p = new ProcessBuilder("strace", "-qq", "-e", "trace=none", "true").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException | InterruptedException e) {
            return false;
        }
    }

    private void crash(String store, int haltAt) throws Exception {
        crash(store, haltAt, dir);
    }

    private static void crash(String store, int haltAt, Path where) throws Exception {
        Process p = new ProcessBuilder(child(store, haltAt, where)).redirectErrorStream(true).start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "child did not end");
        assertEquals(CrashingWriter.HALTED, p.exitValue(), "child did not halt at rename " + haltAt + ":\n" + output);
        assertTrue(output.contains("halt after rename to "), output);
    }

    private static List<String> child(String store, int haltAt, Path where) {
        return List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx64m",
                "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", System.getProperty("java.class.path"),
                CrashingWriter.class.getName(), store, where.toString(), Integer.toString(haltAt));
    }

    /** A halt right after the rename leaves no temp file of that record behind, and nothing half-named. */
    private void assertNoLeftoverRecords() throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            List<Path> temps = all.filter(Files::isRegularFile).filter(DurableFiles::isTemporary).toList();
            assertEquals(List.of(), temps);
        }
    }

    private static List<String> names(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(x -> x.getFileName().toString()).filter(n -> !DurableFiles.isTemporary(Path.of(n))).sorted().toList();
        }
    }
}
