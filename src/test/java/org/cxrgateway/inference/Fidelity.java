package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.WorkingImage;
import org.cxrgateway.xai.GradCam;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import com.fasterxml.jackson.databind.ObjectMapper;

/** Runs a package in Java and in the PyTorch reference (fidelity_reference.py) on the same inputs; returns the max abs differences. */
final class Fidelity {

    record Diffs(double preprocessing, double logits, double features, double cam, float[] javaLogits, int n) {
    }

    static final int CAM_H = 150, CAM_W = 130;

    private Fidelity() {
    }

    static List<WorkingImage> images() {
        return List.of(Fixtures.image(300, 260, 8, 1), Fixtures.image(200, 240, 16, 2), Fixtures.image(224, 224, 8, 3));
    }

    static Diffs check(ModelPackage pkg, Path work, int[] camClasses) throws IOException {
        return check(pkg, work, camClasses, images());
    }

    /** The 8-bit images of images(): what a formatVersion 2 reference (the libraries on 8-bit input) takes. */
    static List<WorkingImage> images8() {
        return images().stream().filter(i -> i.getBitsPerPixel() == 8).toList();
    }

    /** The model inputs of the images, [n, C, size, size], by the gateway's Preprocessor. */
    static float[] preprocess(ModelPackage pkg, List<WorkingImage> imgs) {
        Preprocessor pre = new Preprocessor(pkg.manifest());
        int len = pre.tensorLength();
        float[] tensor = new float[imgs.size() * len];
        for (int i = 0; i < imgs.size(); i++) {
            WorkingImage im = imgs.get(i);
            pre.apply(Preprocessor.decode(im), im.getWidth(), im.getHeight(), tensor, i * len);
        }
        return tensor;
    }

    static Diffs check(ModelPackage pkg, Path work, int[] camClasses, List<WorkingImage> imgs) throws IOException {
        Files.createDirectories(work);
        int len = new Preprocessor(pkg.manifest()).tensorLength();
        int n = imgs.size();
        float[] tensor = preprocess(pkg, imgs);
        List<Map<String, Object>> req = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            WorkingImage im = imgs.get(i);
            Fixtures.writeRaw(im, work.resolve("img_" + i + ".raw"));
            req.add(Map.of("file", "img_" + i + ".raw", "width", im.getWidth(), "height", im.getHeight(), "bits", im.getBitsPerPixel()));
        }
        Fixtures.writeFloats(tensor, work.resolve("tensor.f32"));
        List<Integer> classes = new ArrayList<>();
        for (int c : camClasses) {
            classes.add(c);
        }
        new ObjectMapper().writeValue(work.resolve("request.json").toFile(), Map.of("package", pkg.dir().toAbsolutePath().toString(),
                "images", req, "tensor", "tensor.f32", "n", n, "camClasses", classes, "camSize", List.of(CAM_H, CAM_W)));
        Py.run(600, Py.TEST.resolve("fidelity_reference.py").toString(), work.toAbsolutePath().toString());

        double dPre = 0;
        for (int i = 0; i < n; i++) {
            float[] ref = Fixtures.readFloats(work.resolve("pre_" + i + ".f32"));
            if (ref.length != len) {
                throw new AssertionError("reference preprocessing has " + ref.length + " values, expected " + len);
            }
            dPre = Math.max(dPre, Fixtures.maxAbsDiff(tensor, i * len, ref, 0, len));
        }
        OrtModel.Output out;
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            out = model.run(tensor, n);
        }
        float[] refLogits = Fixtures.readFloats(work.resolve("logits.f32"));
        float[] refFeatures = Fixtures.readFloats(work.resolve("features.f32"));
        if (refLogits.length != out.logits().length || refFeatures.length != out.features().length) {
            throw new AssertionError("reference output sizes differ");
        }
        double dLogits = Fixtures.maxAbsDiff(out.logits(), 0, refLogits, 0, refLogits.length);
        double dFeatures = Fixtures.maxAbsDiff(out.features(), 0, refFeatures, 0, refFeatures.length);
        int c = pkg.manifest().outputs().featureChannels(), fs = pkg.manifest().outputs().featureSize();
        double dCam = 0;
        for (int i = 0; i < n; i++) {
            for (int cls : camClasses) {
                int off = i * c * fs * fs;
                float[] raw = GradCam.map(out.features(), off, c, fs, fs, pkg.head().camRow(out.features(), off, cls));
                float[] cam = GradCam.upsampleNormalised(raw, fs, fs, CAM_H, CAM_W);
                float[] ref = Fixtures.readFloats(work.resolve("cam_" + i + "_" + cls + ".f32"));
                dCam = Math.max(dCam, Fixtures.maxAbsDiff(cam, 0, ref, 0, ref.length));
            }
        }
        return new Diffs(dPre, dLogits, dFeatures, dCam, out.logits(), n);
    }
}
