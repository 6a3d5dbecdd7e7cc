package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.cxrgateway.dicom.Pdu;
import org.cxrgateway.testing.RawStoreScu;
import org.junit.jupiter.api.Test;

/**
 * PDU fuzzer (issue 11): the listener in a child JVM with -Xmx384m, over real TCP, gets thousands of
 * mutated valid PDUs (lengths at 0, max, max+1, near 2^31 and 2^32; item types and lengths; truncations;
 * random bytes; half-open slow connections; release, abort and P-DATA in the wrong state) from many
 * loopback source addresses, for a bounded time. Meanwhile a well-behaved echoscu must be answered within
 * 1 s every time it asks, and storescu studies sent during the storm must all be stored. The child must
 * stay alive, never log OutOfMemoryError, and keep its RSS bounded.
 */
class PduFuzzTest {

    private static final String CR = "1.2.840.10008.5.1.4.1.1.1";
    private static final long STORM_MILLIS = Long.getLong("fuzz.millis", 25_000);
    private static final int FUZZERS = 6;
    private static final long[] LENGTHS = {0, 1, 3, 4, 5, 6, 131071, 131072, 131073, 65536, 65537, 0x7FFFFFF0L,
            0x7FFFFFFFL, 0x80000000L, 0xFFFFFFF0L, 0xFFFFFFFFL};

    @Test
    void listenerSurvivesAPduStormWithBoundedMemoryAndAnswersEchoAndStores() throws Exception {
        Path dir = Fixtures.newDir("fuzz");
        Path fixtures = Fixtures.newDir("fuzzfixtures");
        String study = Fixtures.cases(fixtures);
        List<String> files = List.of("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm", "mono2_12bit_voilut.dcm");
        Path log = dir.resolve("child.log");
        String cp = System.getProperty("java.class.path");
        Process child = new ProcessBuilder("java", "-Xmx384m", "-XX:+ExitOnOutOfMemoryError", "-cp", cp,
                ListenerMain.class.getName(), dir.resolve("spool").toString())
                .redirectErrorStream(true).start();
        List<String> childOut = new CopyOnWriteArrayList<>();
        BufferedReader r = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        int port = -1;
        for (String line; (line = r.readLine()) != null; ) {
            childOut.add(line);
            if (line.startsWith("PORT ")) {
                port = Integer.parseInt(line.substring(5).trim());
                break;
            }
        }
        assertTrue(port > 0, "child did not start: " + childOut);
        Thread drain = new Thread(() -> {
            try {
                for (String line; (line = r.readLine()) != null; ) {
                    childOut.add(line);
                }
            } catch (IOException ignored) {
                // child gone
            }
        });
        drain.setDaemon(true);
        drain.start();
        final int p = port;
        try {
            long end = System.nanoTime() + STORM_MILLIS * 1_000_000L;
            AtomicLong cases = new AtomicLong();
            AtomicLong peakRssKb = new AtomicLong();
            List<Long> echoes = new CopyOnWriteArrayList<>();
            List<String> echoFailures = new CopyOnWriteArrayList<>();
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < FUZZERS; t++) {
                long seed = 20261202L + t;
                threads.add(new Thread(() -> fuzz(p, new Random(seed), end, cases), "fuzz-" + t));
            }
            // the well-behaved peer, asking again and again throughout the storm
            threads.add(new Thread(() -> {
                while (System.nanoTime() < end) {
                    try {
                        long t0 = System.nanoTime();
                        Fixtures.Result e = Fixtures.run(null, "echoscu", "-to", "5", "-aec", "CXRGATEWAY", "127.0.0.1", "" + p);
                        long ms = (System.nanoTime() - t0) / 1_000_000;
                        echoes.add(ms);
                        if (e.exit() != 0) {
                            echoFailures.add(e.output());
                        }
                        Thread.sleep(100);
                    } catch (Exception e) {
                        echoFailures.add(e.toString());
                    }
                }
            }, "echo"));
            threads.add(new Thread(() -> {
                while (System.nanoTime() < end) {
                    peakRssKb.accumulateAndGet(rssKb(child.pid()), Math::max);
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "rss"));
            threads.forEach(Thread::start);
            // good studies sent during the storm
            List<Fixtures.Result> stores = new ArrayList<>();
            for (int round = 0; round < 3; round++) {
                Thread.sleep(STORM_MILLIS / 5);
                List<String> cmd = Fixtures.command("storescu", "-v", "-aec", "CXRGATEWAY", "127.0.0.1", "" + p);
                cmd.addAll(files);
                stores.add(Fixtures.run(fixtures, cmd.toArray(String[]::new)));
            }
            for (Thread t : threads) {
                t.join(STORM_MILLIS + 60_000);
            }
            long slowest = echoes.stream().mapToLong(Long::longValue).max().orElse(-1);
            long median = echoes.stream().sorted().skip(echoes.size() / 2).findFirst().orElse(-1L);
            System.out.printf("PDU fuzz: echoscu round trips (process start included): median %d ms, slowest %d ms%n",
                    median, slowest);
            System.out.printf("PDU fuzz: %d cases in %d s from %d fuzzers; child peak RSS %d MiB (-Xmx384m); "
                            + "%d echoes, slowest %d ms; %d storescu runs%n", cases.get(), STORM_MILLIS / 1000, FUZZERS,
                    peakRssKb.get() / 1024, echoes.size(), slowest, stores.size());

            assertTrue(child.isAlive(), "child died: " + tail(childOut));
            assertFalse(childOut.stream().anyMatch(l -> l.contains("OutOfMemoryError")), "OutOfMemoryError: " + tail(childOut));
            assertTrue(cases.get() >= 1000, "thousands of cases expected, got " + cases.get());
            assertEquals(List.of(), echoFailures, "every echo answered");
            assertTrue(slowest >= 0 && slowest < 1000, "slowest echo " + slowest + " ms");
            assertTrue(peakRssKb.get() < 900 * 1024, "peak RSS " + peakRssKb.get() / 1024 + " MiB");
            for (Fixtures.Result s : stores) {
                assertEquals(files.size(), ListenerIngestTest.successes(s), s.output());
            }
            long spooled;
            try (Stream<Path> s = Files.walk(dir.resolve("spool").resolve("studies"))) {
                spooled = s.filter(f -> f.toString().endsWith(".dcm")).count();
            }
            assertEquals(files.size(), spooled, "each instance stored once");
            long deadline = System.nanoTime() + 20_000_000_000L;
            while (childOut.stream().noneMatch(l -> l.equals("JOB " + study)) && System.nanoTime() < deadline) {
                Thread.sleep(200);
            }
            Thread.sleep(1500);
            long jobs = childOut.stream().filter(l -> l.equals("JOB " + study)).count();
            System.out.printf("PDU fuzz: study stored (%d instances), published %d time(s)%n", spooled, jobs);
            assertEquals(1, jobs, "the study is published exactly once: " + tail(childOut));
        } finally {
            child.destroy();
            if (!child.waitFor(10, TimeUnit.SECONDS)) {
                child.destroyForcibly();
            }
        }
    }

    private static String tail(List<String> lines) {
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    }

    private static long rssKb(long pid) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("\\D", ""));
                }
            }
        } catch (IOException ignored) {
            // gone
        }
        return 0;
    }


    /** One fuzzer: a mutated case per connection, each from a random loopback source address. */
    private static void fuzz(int port, Random rnd, long end, AtomicLong cases) {
        byte[] rq = RawStoreScu.associateRq("FUZZ", "CXRGATEWAY", CR);
        while (System.nanoTime() < end) {
            try (Socket s = new Socket()) {
                s.bind(new InetSocketAddress("127.0.0." + (2 + rnd.nextInt(250)), 0));
                s.connect(new InetSocketAddress("127.0.0.1", port), 2000);
                s.setSoTimeout(100);
                s.setSoLinger(true, 0);
                OutputStream out = s.getOutputStream();
                int kind = rnd.nextInt(10);
                boolean associate = kind >= 4;
                if (kind == 0) {
                    // random bytes instead of a request
                    byte[] b = new byte[rnd.nextInt(200)];
                    rnd.nextBytes(b);
                    out.write(b);
                } else if (kind == 1) {
                    // the request with a mutated length, item type or item length, or truncated
                    byte[] m = rq.clone();
                    switch (rnd.nextInt(4)) {
                        case 0 -> System.arraycopy(Pdu.header(Pdu.A_ASSOCIATE_RQ, LENGTHS[rnd.nextInt(LENGTHS.length)]), 0, m, 0, 6);
                        case 1 -> m[74 + rnd.nextInt(m.length - 74)] = (byte) rnd.nextInt(256);
                        case 2 -> {
                            int at = 74 + rnd.nextInt(m.length - 76);
                            m[at] = (byte) 0xFF;
                            m[at + 1] = (byte) 0xFF;
                        }
                        default -> m = java.util.Arrays.copyOf(m, rnd.nextInt(m.length));
                    }
                    out.write(m);
                } else if (kind == 2) {
                    // release, abort or P-DATA before any association
                    int[] types = {Pdu.A_RELEASE_RQ, Pdu.A_ABORT, Pdu.P_DATA_TF, Pdu.A_RELEASE_RP, Pdu.A_ASSOCIATE_AC};
                    out.write(Pdu.header(types[rnd.nextInt(types.length)], LENGTHS[rnd.nextInt(LENGTHS.length)]));
                } else if (kind == 3) {
                    // half open and slow: a few bytes of the request, then silence (ARTIM closes it)
                    out.write(rq, 0, 1 + rnd.nextInt(20));
                }
                if (associate) {
                    out.write(rq);
                    out.flush();
                    readSome(s);
                    int type = switch (rnd.nextInt(6)) {
                        case 0 -> Pdu.A_RELEASE_RQ;
                        case 1 -> Pdu.A_ABORT;
                        case 2 -> Pdu.A_ASSOCIATE_RQ;
                        case 3 -> rnd.nextInt(256);
                        default -> Pdu.P_DATA_TF;
                    };
                    long length = LENGTHS[rnd.nextInt(LENGTHS.length)];
                    out.write(Pdu.header(type, length));
                    // some body: random bytes, a PDV item with a mutated length, or nothing (truncated)
                    int body = (int) Math.min(length, rnd.nextInt(3) == 0 ? 0 : 1 + rnd.nextInt(4096));
                    byte[] b = new byte[body];
                    rnd.nextBytes(b);
                    if (body >= 6 && rnd.nextBoolean()) {
                        long item = LENGTHS[rnd.nextInt(LENGTHS.length)];
                        b[0] = (byte) (item >>> 24);
                        b[1] = (byte) (item >>> 16);
                        b[2] = (byte) (item >>> 8);
                        b[3] = (byte) item;
                        b[4] = 1;
                    }
                    out.write(b);
                }
                out.flush();
                if (kind == 3 || rnd.nextInt(20) == 0) {
                    // leave it open a while: slow peers hold their connection
                    Thread.sleep(200);
                }
                readSome(s);
            } catch (IOException e) {
                // refused, reset or aborted: all fine, the listener's state is what is checked
            } catch (InterruptedException e) {
                return;
            }
            cases.incrementAndGet();
        }
    }

    private static void readSome(Socket s) {
        try {
            s.getInputStream().read(new byte[4096]);
        } catch (IOException ignored) {
            // timeout or closed
        }
    }
}
