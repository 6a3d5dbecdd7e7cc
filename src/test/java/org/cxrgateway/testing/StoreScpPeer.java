package org.cxrgateway.testing;

import java.io.IOException;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * dcmtk's storescp on loopback with an ephemeral port, writing what it receives under {@link #received}.
 * storescp answers with real refusals: 0xA700 when it cannot write its output folder, 0xA900 when the data
 * set's SOP Class or Instance UID is not the command's.
 */
public final class StoreScpPeer implements AutoCloseable {

    public final int port;
    public final Path received;
    private final Path log;
    private final Process process;

    /** @param options storescp options before the port, e.g. {@code +tls key cert} */
    public StoreScpPeer(Path work, String aeTitle, String... options) throws IOException, InterruptedException {
        this.port = OrthancPeer.freePort();
        this.received = Files.createDirectories(work.resolve("received"));
        this.log = work.resolve("storescp.log");
        List<String> cmd = new ArrayList<>(List.of("storescp", "-aet", aeTitle, "-od", received.toString()));
        cmd.addAll(List.of(options));
        cmd.add(Integer.toString(port));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        // dcmtk takes TCP_NODELAY from the environment: without it, a response can wait on Nagle
        pb.environment().put("TCP_NODELAY", "1");
        process = pb.start();
        long end = System.nanoTime() + 10_000_000_000L;
        while (true) {
            try (Socket probe = new Socket("127.0.0.1", port)) {
                break;
            } catch (IOException e) {
                if (System.nanoTime() > end || !process.isAlive()) {
                    close();
                    throw new IllegalStateException("storescp did not start: " + log());
                }
                Thread.sleep(50);
            }
        }
    }

    public List<Path> receivedFiles() throws IOException {
        try (Stream<Path> s = Files.list(received)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    /**
     * Replaces the output folder by a regular file, so that every store fails (0xA700) until {@link #canWrite()}.
     * A read-only folder would not do: the tests run as root.
     */
    public void cannotWrite() throws IOException {
        for (Path p : receivedFiles()) {
            Files.delete(p);
        }
        Files.delete(received);
        Files.writeString(received, "not a folder");
    }

    public void canWrite() throws IOException {
        Files.delete(received);
        Files.createDirectories(received);
    }

    public String log() throws IOException {
        return Files.exists(log) ? Files.readString(log) : "";
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
