package org.cxrgateway.inference;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * A validated model package on disk: manifest, ONNX file and the classifier head run on the host for Grad-CAM
 * ({@link ClassifierHead}: linear over pooled features, or an MLP over pooled or flattened features).
 */
public final class ModelPackage {

    /** The demo packages shipped inside the app (src/main/resources/models/<id>/). */
    public static final List<String> BUILT_IN = List.of("chest14", "covid3");
    private static final List<String> BUILT_IN_FILES = List.of("manifest.json", "model.onnx", "weights.recipe.json", "guided.onnx");

    private final Path dir;
    private final ModelManifest manifest;
    private final ClassifierHead head;

    private ModelPackage(Path dir, ModelManifest manifest, ClassifierHead head) {
        this.dir = dir;
        this.manifest = manifest;
        this.head = head;
    }

    public Path dir() {
        return dir;
    }

    public Path modelPath() {
        return dir.resolve(manifest.modelFile());
    }

    /**
     * The graph run at this precision: model.onnx, or the INT8 variant the manifest names. A package
     * without an INT8 variant is refused under int8 rather than run at fp32 unnoticed.
     */
    public Path modelPath(Precision precision) {
        if (precision == Precision.fp32) {
            return modelPath();
        }
        if (manifest.int8() == null) {
            throw new ModelPackageException("model package " + manifest.id() + ": cxr.inference.precision is int8 but the package has no INT8 variant"
                    + " (manifest field int8 absent): write one with src/main/python/quantize.py, or run at precision fp32");
        }
        return dir.resolve(manifest.int8().file());
    }

    /** The guided-backpropagation graph, or null when the manifest names none. */
    public Path guidedPath() {
        return manifest.guided() == null ? null : dir.resolve(manifest.guided().file());
    }

    public ModelManifest manifest() {
        return manifest;
    }

    public ClassifierHead head() {
        return head;
    }

    /** The weight [labels][featureChannels] of a linear head (Grad-CAM = CAM); an MLP head has none. */
    public float[][] headWeight() {
        if (!head.linear()) {
            throw new IllegalStateException("model package " + manifest.id() + " has an mlp head: use head().camRow");
        }
        return head.lastWeight();
    }

    public float[] headBias() {
        return head.lastBias();
    }

    /** Opens a package folder, or a .zip that is first unpacked under workDir. */
    public static ModelPackage open(Path path, Path workDir) {
        Path dir = path;
        if (Files.isRegularFile(path) && path.getFileName().toString().endsWith(".zip")) {
            dir = unzip(path, workDir.resolve(path.getFileName().toString().replaceAll("\\.zip$", "")));
        }
        if (!Files.isDirectory(dir)) {
            throw new ModelPackageException(path + ": not a package folder or .zip");
        }
        Path manifestPath = dir.resolve("manifest.json");
        byte[] json;
        try {
            json = Files.readAllBytes(manifestPath);
        } catch (IOException e) {
            throw new ModelPackageException(path + ": manifest.json missing or unreadable", e);
        }
        ModelManifest m = ModelManifest.parse(json, path.getFileName().toString());
        String where = "model package " + m.id();
        if (!Files.isRegularFile(dir.resolve(m.modelFile()))) {
            throw new ModelPackageException(where + ": model: file '" + m.modelFile() + "' not found");
        }
        if (m.int8() != null && !Files.isRegularFile(dir.resolve(m.int8().file()))) {
            throw new ModelPackageException(where + ": int8.file: file '" + m.int8().file() + "' not found");
        }
        if (m.guided() != null && !Files.isRegularFile(dir.resolve(m.guided().file()))) {
            throw new ModelPackageException(where + ": guided.file: file '" + m.guided().file() + "' not found");
        }
        if (m.weights() != null) {
            WeightRecipe.materialise(dir, m.weights().recipe());
        }
        int labels = m.labels().size();
        int c = m.outputs().featureChannels(), fs = m.outputs().featureSize();
        if (m.head().mlp()) {
            return new ModelPackage(dir, m, mlpHead(dir, m, where));
        }
        float[][] w;
        float[] b = null;
        if ("file".equals(m.head().source())) {
            Path f = dir.resolve(m.head().file());
            float[] all = readFloats(f, where + ": head.file");
            if (all.length != labels * c + labels && all.length != labels * c) {
                throw new ModelPackageException(where + ": head.file holds " + all.length + " floats, expected labels*featureChannels (+labels) = "
                        + (labels * c) + " (+" + labels + ")");
            }
            w = new float[labels][];
            for (int i = 0; i < labels; i++) {
                w[i] = Arrays.copyOfRange(all, i * c, (i + 1) * c);
            }
            if (all.length > labels * c) {
                b = Arrays.copyOfRange(all, labels * c, all.length);
            }
        } else {
            OnnxInitializers.FloatTensor t = OnnxInitializers.read(dir.resolve(m.modelFile()), m.head().weight());
            long[] d = t.dims();
            w = new float[labels][c];
            if (d.length == 2 && d[0] == labels && d[1] == c) { // Gemm transB=1 (torch Linear)
                for (int i = 0; i < labels; i++) {
                    System.arraycopy(t.values(), i * c, w[i], 0, c);
                }
            } else if (d.length == 2 && d[0] == c && d[1] == labels) { // MatMul layout
                for (int k = 0; k < c; k++) {
                    for (int i = 0; i < labels; i++) {
                        w[i][k] = t.values()[k * labels + i];
                    }
                }
            } else {
                throw new ModelPackageException(where + ": head.weight '" + m.head().weight() + "' has shape " + Arrays.toString(d)
                        + ", expected [" + labels + ", " + c + "] (labels x outputs.featureChannels)");
            }
            if (m.head().bias() != null) {
                b = OnnxInitializers.read(dir.resolve(m.modelFile()), m.head().bias()).values();
                if (b.length != labels) {
                    throw new ModelPackageException(where + ": head.bias '" + m.head().bias() + "' has " + b.length + " values, expected " + labels);
                }
            }
        }
        return new ModelPackage(dir, m, ClassifierHead.linear(w, b, c, fs * fs));
    }

    /**
     * An mlp head from the model's initializers: each layer [out, in] as torch Linear exports it (Gemm transB=1),
     * chained from C (pool avg) or C*H*W (pool flatten) to the labels; the errors name the layer and the shape.
     */
    private static ClassifierHead mlpHead(Path dir, ModelManifest m, String where) {
        List<ModelManifest.Layer> layers = m.head().layers();
        int c = m.outputs().featureChannels(), fs = m.outputs().featureSize();
        boolean flatten = m.head().flatten();
        int in = flatten ? c * fs * fs : c;
        float[][][] w = new float[layers.size()][][];
        float[][] b = new float[layers.size()][];
        boolean[] relu = new boolean[layers.size()];
        Path model = dir.resolve(m.modelFile());
        for (int l = 0; l < layers.size(); l++) {
            ModelManifest.Layer layer = layers.get(l);
            String field = where + ": head.layers[" + l + "]";
            OnnxInitializers.FloatTensor t = OnnxInitializers.read(model, layer.weight());
            long[] d = t.dims();
            boolean last = l == layers.size() - 1;
            if (d.length != 2 || d[1] != in || (last && d[0] != m.labels().size())) {
                throw new ModelPackageException(field + ".weight '" + layer.weight() + "' has shape " + Arrays.toString(d) + ", expected ["
                        + (last ? String.valueOf(m.labels().size()) : "out") + ", " + in + "] (out x in, torch Linear layout; in = "
                        + (l == 0 ? (flatten ? "featureChannels*featureSize^2" : "featureChannels") : "the previous layer's out") + ")");
            }
            int out = (int) d[0];
            w[l] = new float[out][];
            for (int j = 0; j < out; j++) {
                w[l][j] = Arrays.copyOfRange(t.values(), j * in, (j + 1) * in);
            }
            b[l] = OnnxInitializers.read(model, layer.bias()).values();
            if (b[l].length != out) {
                throw new ModelPackageException(field + ".bias '" + layer.bias() + "' has " + b[l].length + " values, expected " + out);
            }
            relu[l] = "relu".equals(layer.activation());
            if (last && relu[l]) {
                throw new ModelPackageException(field + ".activation: the last layer gives the logits, its activation must be none");
            }
            in = out;
        }
        return new ClassifierHead(w, b, relu, flatten, c, fs * fs);
    }

    /** Copies a built-in demo package out of the app into workDir/<id> and opens it. */
    public static ModelPackage builtIn(String id, Path workDir) {
        Path dir = workDir.resolve(id);
        try {
            Files.createDirectories(dir);
            for (String f : BUILT_IN_FILES) {
                try (InputStream in = ModelPackage.class.getResourceAsStream("/models/" + id + "/" + f)) {
                    if (in == null) {
                        throw new ModelPackageException("built-in model package " + id + ": resource models/" + id + "/" + f + " missing");
                    }
                    Files.copy(in, dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        } catch (IOException e) {
            throw new ModelPackageException("built-in model package " + id + ": cannot unpack into " + dir + ": " + e.getMessage(), e);
        }
        return open(dir, workDir);
    }

    private static Path unzip(Path zip, Path target) {
        try {
            Files.createDirectories(target);
            try (ZipInputStream in = new ZipInputStream(Files.newInputStream(zip))) {
                ZipEntry e;
                while ((e = in.getNextEntry()) != null) {
                    if (e.isDirectory()) {
                        continue;
                    }
                    // flat packages only: a nested or escaping name is rejected rather than followed
                    String name = Path.of(e.getName()).getFileName().toString();
                    Files.copy(in, target.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                }
            }
            return target;
        } catch (IOException e) {
            throw new ModelPackageException(zip + ": cannot unpack: " + e.getMessage(), e);
        }
    }

    private static float[] readFloats(Path f, String what) {
        try {
            byte[] b = Files.readAllBytes(f);
            if (b.length % 4 != 0) {
                throw new ModelPackageException(what + ": length " + b.length + " is not a multiple of 4");
            }
            float[] v = new float[b.length / 4];
            java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
            return v;
        } catch (IOException e) {
            throw new ModelPackageException(what + ": cannot read " + f.getFileName(), e);
        }
    }
}
