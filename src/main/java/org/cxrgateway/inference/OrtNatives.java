package org.cxrgateway.inference;

import ai.onnxruntime.OrtEnvironment;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.JarURLConnection;
import java.net.URL;
import java.net.URLConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32;
import java.util.zip.CheckedInputStream;
import org.cxrgateway.storage.DurableFiles;

/**
 * Has ONNX Runtime load its native libraries from a folder of the gateway's own, kept between starts.
 *
 * <p>Why: left to itself, ONNX Runtime copies its libraries (22 MB on CPU, more with the GPU providers) into a
 * fresh folder under {@code java.io.tmpdir} at every start and deletes them only at a normal JVM exit. A worker
 * killed by kill -9, the OOM killer or a lost container leaves the copy behind, and a crash-looping worker fills
 * the temporary file system. With {@code onnxruntime.native.path} set, ONNX Runtime loads what it finds there.
 *
 * <p>Each library in the folder is compared by CRC-32 with the one in ONNX Runtime's jar at every start, so a
 * changed ONNX Runtime version, a CPU/GPU switch or a damaged file is rewritten, never loaded.
 */
final class OrtNatives {

    /** ONNX Runtime's own property: the folder it loads its libraries from before trying its jar. */
    static final String PROPERTY = "onnxruntime.native.path";
    /**
     * Set once ONNX Runtime has loaded from a kept folder, JVM-wide as system properties are: the JVM lets one class
     * loader only load a library file, and Quarkus tests start the application again in new class loaders, whose
     * ONNX Runtime must then extract its own copy as usual. Outside the cxr prefix, which Quarkus validates.
     */
    static final String LOADED = "org.cxrgateway.onnxruntime.loaded-from";
    /** The libraries ONNX Runtime's loader asks for; the provider ones exist only in the GPU jar. */
    private static final List<String> LIBRARIES = List.of("onnxruntime", "onnxruntime4j_jni", "onnxruntime_providers_shared",
            "onnxruntime_providers_cuda", "onnxruntime_providers_tensorrt");
    private static final org.jboss.logging.Logger LOG = org.jboss.logging.Logger.getLogger(OrtNatives.class);
    /**
     * A temporary copy older than this was left by a process killed while copying (the GPU jar's libraries take
     * seconds); a younger one may be another process's copy in progress, and is left alone.
     */
    static final java.time.Duration STALE_COPY = java.time.Duration.ofMinutes(10);

    private OrtNatives() {
    }

    /**
     * Loads ONNX Runtime from {@code folder}, first copying its libraries there where they are missing or differ.
     * Does nothing where the operator set {@value #PROPERTY}, where a library file of the folder is loaded already
     * ({@value #LOADED}), or on a platform whose layout this does not know (ONNX Runtime then extracts as usual).
     * Must run before this class loader's ONNX Runtime is initialised: it reads the property once.
     *
     * @return the names of the libraries written (empty when all were already in place, or nothing was done)
     */
    static synchronized List<String> useFolder(Path folder) {
        if (System.getProperty(PROPERTY) != null || System.getProperty(LOADED) != null) {
            return List.of();
        }
        String platform = platform();
        if (platform == null) {
            return List.of();
        }
        List<String> written = new ArrayList<>();
        try {
            DurableFiles.createDirectories(folder);
            removeStaleCopies(folder);
            for (String library : LIBRARIES) {
                String file = System.mapLibraryName(library);
                // a class literal does not initialise OrtEnvironment: its static block is what loads the libraries
                URL resource = OrtEnvironment.class.getResource("/ai/onnxruntime/native/" + platform + "/" + file);
                if (resource == null) {
                    continue;
                }
                Path target = folder.resolve(file);
                if (Files.isRegularFile(target) && crcInJar(resource) == crc(Files.newInputStream(target))) {
                    continue;
                }
                // streamed: the GPU jar's CUDA provider alone is hundreds of MB
                Path tmp = Files.createTempFile(folder, "." + file + ".", DurableFiles.TEMP_SUFFIX);
                try (InputStream in = resource.openStream()) {
                    Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                    DurableFiles.publish(tmp, target);
                } finally {
                    Files.deleteIfExists(tmp);
                }
                written.add(file);
            }
        } catch (IOException | UncheckedIOException e) {
            LOG.warnf("ONNX Runtime's libraries cannot be kept in %s (%s); it extracts them to %s at each start instead",
                    folder, e.getMessage(), System.getProperty("java.io.tmpdir"));
            return List.of();
        }
        // ONNX Runtime reads the property once, in the class initialiser that getEnvironment runs; it is cleared
        // after, so that no other class loader's ONNX Runtime reads it
        String path = folder.toAbsolutePath().toString();
        System.setProperty(PROPERTY, path);
        try {
            OrtEnvironment.getEnvironment();
        } finally {
            System.clearProperty(PROPERTY);
        }
        System.setProperty(LOADED, path);
        return written;
    }

    /** Deletes the temporary copies that killed processes left in the folder (see {@link #STALE_COPY}). */
    private static void removeStaleCopies(Path folder) throws IOException {
        long cutoff = System.currentTimeMillis() - STALE_COPY.toMillis();
        try (var files = Files.newDirectoryStream(folder, p -> DurableFiles.isTemporary(p))) {
            for (Path p : files) {
                if (Files.getLastModifiedTime(p).toMillis() < cutoff && Files.deleteIfExists(p)) {
                    LOG.infof("removed %s, an unfinished copy of ONNX Runtime's libraries", p.getFileName());
                }
            }
        }
    }

    /** ONNX Runtime's name for this platform's folder in its jar (OnnxRuntime.initOsArch), or null where unknown. */
    private static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (!os.contains("nux")) {
            return null;
        }
        return switch (arch) {
            case "amd64", "x86_64" -> "linux-x64";
            case "aarch64" -> "linux-aarch64";
            default -> null;
        };
    }

    /**
     * The CRC-32 that the jar's directory records for the resource (no inflating: 0 ms against 85 for the CPU
     * library's 22 MB), or, where the class loader serves it otherwise, that of its bytes.
     */
    private static long crcInJar(URL resource) throws IOException {
        URLConnection c = resource.openConnection();
        if (c instanceof JarURLConnection jar && jar.getJarEntry() != null && jar.getJarEntry().getCrc() != -1) {
            return jar.getJarEntry().getCrc();
        }
        return crc(c.getInputStream());
    }

    /** CRC-32 of the stream's bytes, closing it (the CPU library's 22 MB from the page cache: 6-20 ms). */
    private static long crc(InputStream in) throws IOException {
        try (CheckedInputStream c = new CheckedInputStream(in, new CRC32())) {
            c.transferTo(OutputStream.nullOutputStream());
            return c.getChecksum().getValue();
        }
    }
}
