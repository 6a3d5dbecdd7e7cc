package org.cxrgateway.delivery;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Properties;
import org.cxrgateway.storage.DurableFiles;

/**
 * Dead letters as files: &lt;id&gt;.msg (the Avro bytes) and &lt;id&gt;.properties (destination, reason, receiver status, time),
 * each written with {@link DurableFiles#write}. {@link #add} returning means the dead letter is durable, which
 * is what lets the delivery service drop the pending item afterwards.
 */
public final class FileDeadLetterStore implements DeadLetterStore {

    private final Path dir;

    public FileDeadLetterStore(Path dir) {
        this.dir = dir;
    }

    @Override
    public synchronized void add(DeadLetter l) {
        try {
            DurableFiles.createDirectories(dir);
            Path msg = dir.resolve(l.id() + ".msg");
            DurableFiles.write(msg, l.studyResult());
            Properties p = new Properties();
            p.setProperty("destination", l.destination());
            p.setProperty("study", l.studyInstanceUid());
            p.setProperty("reason", l.reason());
            p.setProperty("status", l.status());
            p.setProperty("at", Long.toString(l.atEpochMs()));
            java.io.StringWriter w = new java.io.StringWriter();
            p.store(w, null);
            // the properties file is written last: its presence marks a complete dead letter
            DurableFiles.write(dir.resolve(l.id() + ".properties"), w.toString().getBytes(StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write dead letter", e);
        }
    }

    @Override
    public synchronized List<DeadLetter> list() {
        List<DeadLetter> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.properties")) {
            for (Path p : ds) {
                String id = p.getFileName().toString().replace(".properties", "");
                Properties props = new Properties();
                try (var r = Files.newBufferedReader(p, StandardCharsets.UTF_8)) {
                    props.load(r);
                }
                out.add(new DeadLetter(id, props.getProperty("destination"), props.getProperty("study"),
                        props.getProperty("reason"), props.getProperty("status", ""), Long.parseLong(props.getProperty("at", "0")),
                        Files.readAllBytes(dir.resolve(id + ".msg"))));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read dead letters", e);
        }
        out.sort(Comparator.comparingLong(DeadLetter::atEpochMs));
        return out;
    }

    @Override
    public synchronized void remove(String id) {
        try {
            Files.deleteIfExists(dir.resolve(id + ".properties"));
            Files.deleteIfExists(dir.resolve(id + ".msg"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove dead letter", e);
        }
    }
}
