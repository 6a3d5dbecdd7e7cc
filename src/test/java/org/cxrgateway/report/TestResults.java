package org.cxrgateway.report;

import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.GuidedMap;
import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.zip.Deflater;

/** Builds realistic StudyResults: a synthetic PA chest radiograph, a DenseNet-like run, raw 7x7 Grad-CAM maps, 224x224 guided maps. */
public final class TestResults {

    public static final String DX = "1.2.840.10008.5.1.4.1.1.1.1";

    public String studyUid = "1.2.826.0.1.3680043.10.1234.1";
    public String seriesUid = "1.2.826.0.1.3680043.10.1234.1.1";
    public String sopUid = "1.2.826.0.1.3680043.10.1234.1.1.1";
    public String patientId = "PAT-0001";
    public String patientName = "Doe^Jane";
    public String issuer = "HOSP";
    public boolean diagnostic = false;
    public int size = 256;
    public int bits = 8;
    public PixelEncoding encoding = PixelEncoding.DEFLATE;
    public long createdAt = 1_767_225_600_000L;
    /** Positive findings carry a synthetic guided Grad-CAM (as a package with the guided graph would give). */
    public boolean guided = true;

    public static TestResults study(String suffix) {
        TestResults t = new TestResults();
        t.studyUid = "1.2.826.0.1.3680043.10.1234." + suffix;
        t.seriesUid = t.studyUid + ".1";
        t.sopUid = t.studyUid + ".1.1";
        return t;
    }

    public StudyResult build() {
        StudyInfo info = StudyInfo.newBuilder().setStudyInstanceUid(studyUid).setStudyId("S1").setAccessionNumber("ACC123")
                .setStudyDate("20260101").setStudyTime("101500").setStudyDescription("XR CHEST PA")
                .setReferringPhysicianName("House^Gregory").setPatientId(patientId).setIssuerOfPatientId(issuer)
                .setPatientName(patientName).setPatientBirthDate("19700101").setPatientSex("F").build();
        List<Finding> findings = new ArrayList<>();
        findings.add(finding("Cardiomegaly", "8186001", "Cardiomegaly", 0.81f, 0.5f, 3, 3, guided));
        findings.add(finding("Effusion", "60046008", "Pleural effusion", 0.64f, 0.4f, 5, 1, guided));
        findings.add(finding("Pneumothorax", "36118008", "Pneumothorax", 0.07f, 0.3f, -1, -1, guided));
        findings.add(finding("Nodule", "27925004", "Nodule", 0.12f, 0.35f, -1, -1, guided));
        ModelRun run = ModelRun.newBuilder().setModelId("densenet121-res224-all").setModelVersion("1.0.0")
                .setDiagnostic(diagnostic).setIntendedUse("demo model, untrained for clinical use").setEngine("cpu")
                .setFindings(findings).build();
        ImageResult img = ImageResult.newBuilder().setSopInstanceUid(sopUid).setSopClassUid(DX).setSeriesInstanceUid(seriesUid)
                .setImage(workingImage()).setRuns(List.of(run)).build();
        return StudyResult.newBuilder().setJobId("job-" + studyUid).setCreatedAtEpochMs(createdAt).setStudy(info)
                .setImages(List.of(img)).setInferenceMs(12.5).setBatchSize(1).build();
    }

    /**
     * The preview a worker publishes before making the guided maps of {@code full} (StudyResult.preview): a copy in
     * which each guided map is left out and its finding says it follows.
     */
    public static StudyResult preview(StudyResult full) {
        StudyResult p = StudyResult.newBuilder(full).setPreview(true).build();
        for (ImageResult img : p.getImages()) {
            for (ModelRun run : img.getRuns()) {
                for (Finding f : run.getFindings()) {
                    f.setGuidedFollows(f.getGuided() != null);
                    f.setGuided(null);
                }
            }
        }
        return p;
    }

    /**
     * The result of the same study after a late instance: revision {@code revision}, a second image (same pixels
     * and scores, another SOP Instance UID) beside the first, a new job id, created a minute later.
     */
    public static StudyResult lateInstance(StudyResult first, int revision) {
        ImageResult one = first.getImages().get(0);
        ImageResult two = ImageResult.newBuilder(one).setSopInstanceUid(one.getSopInstanceUid() + "9" + revision).build();
        List<ImageResult> images = new ArrayList<>(first.getImages());
        images.add(two);
        return StudyResult.newBuilder(first).setJobId(first.getJobId() + "-r" + revision).setRevision(revision)
                .setCreatedAtEpochMs(first.getCreatedAtEpochMs() + 60_000L * revision).setImages(images).build();
    }

    /** The same images scored again by another version of the model (a re-score): revision {@code revision}. */
    public static StudyResult rescored(StudyResult previous, int revision, String modelVersion) {
        List<ImageResult> images = new ArrayList<>();
        for (ImageResult img : previous.getImages()) {
            List<ModelRun> runs = img.getRuns().stream().map(r -> ModelRun.newBuilder(r).setModelVersion(modelVersion).build()).toList();
            images.add(ImageResult.newBuilder(img).setRuns(runs).build());
        }
        return StudyResult.newBuilder(previous).setRevision(revision)
                .setCreatedAtEpochMs(previous.getCreatedAtEpochMs() + 60_000L).setImages(images).build();
    }

    Finding finding(String label, String code, String meaning, float p, float thr, int cx, int cy, boolean guided) {
        Finding.Builder b = Finding.newBuilder().setLabel(label).setCode(Code.newBuilder().setValue(code).setScheme("SCT")
                .setMeaning(meaning).build()).setProbability(p).setThreshold(thr).setPositive(p >= thr);
        if (p >= thr) {
            List<Float> cam = new ArrayList<>();
            for (int y = 0; y < 7; y++) {
                for (int x = 0; x < 7; x++) {
                    double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                    cam.add((float) (3.5 * Math.exp(-d2 / 3.0)));
                }
            }
            // a raw CAM at feature resolution (any positive scale) over the whole working image
            b.setActivation(ActivationMap.newBuilder().setWidth(7).setHeight(7).setRegionX(0).setRegionY(0)
                    .setRegionWidth(size).setRegionHeight(size).setValues(cam).build());
            if (guided) {
                b.setGuided(guidedMap(cx, cy));
            }
        }
        return b.build();
    }

    /** Model-input side of the synthetic guided maps, and the working-image rectangle they cover. */
    public static final int GUIDED_SIDE = 224, GUIDED_X = 16, GUIDED_Y = 16, GUIDED_REGION = 224;

    /**
     * A guided Grad-CAM as the guided-backprop side sends it: fine signed texture (rib-like stripes) under the
     * Grad-CAM blob centred on feature cell (cx, cy), quantised to round(127 v / maxAbs), zlib-deflated.
     */
    static GuidedMap guidedMap(int cx, int cy) {
        int n = GUIDED_SIDE;
        float[] v = new float[n * n];
        float maxAbs = 0;
        for (int y = 0; y < n; y++) {
            for (int x = 0; x < n; x++) {
                double fx = (x + 0.5) * 7 / n - 0.5 - cx;
                double fy = (y + 0.5) * 7 / n - 0.5 - cy;
                double blob = Math.exp(-(fx * fx + fy * fy) / 3.0);
                v[y * n + x] = (float) (0.004 * blob * Math.sin(x * 0.9) * Math.cos(y * 0.35));
                maxAbs = Math.max(maxAbs, Math.abs(v[y * n + x]));
            }
        }
        byte[] q = new byte[n * n];
        for (int i = 0; i < q.length; i++) {
            q[i] = (byte) Math.round(127 * v[i] / maxAbs);
        }
        return GuidedMap.newBuilder().setWidth(n).setHeight(n).setRegionX(GUIDED_X).setRegionY(GUIDED_Y)
                .setRegionWidth(GUIDED_REGION).setRegionHeight(GUIDED_REGION).setMaxAbs(maxAbs)
                .setValues(ByteBuffer.wrap(deflate(q))).build();
    }

    static byte[] deflate(byte[] raw) {
        Deflater d = new Deflater();
        d.setInput(raw);
        d.finish();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[65536];
        while (!d.finished()) {
            out.write(buf, 0, d.deflate(buf));
        }
        d.end();
        return out.toByteArray();
    }

    /** A chest-like radiograph: bright body and mediastinum, dark lungs, rib arcs, noise. */
    public byte[] chestPixels8() {
        int n = size;
        byte[] px = new byte[n * n];
        Random rnd = new Random(42);
        for (int y = 0; y < n; y++) {
            for (int x = 0; x < n; x++) {
                double u = (x - n / 2.0) / (n / 2.0);
                double v = (y - n / 2.0) / (n / 2.0);
                double val = 20;
                if (u * u / 0.85 + v * v / 1.1 < 1) {
                    val = 150; // soft tissue
                }
                boolean lung = ((u + 0.42) * (u + 0.42) / 0.09 + (v + 0.05) * (v + 0.05) / 0.36 < 1)
                        || ((u - 0.42) * (u - 0.42) / 0.09 + (v + 0.05) * (v + 0.05) / 0.36 < 1);
                if (lung) {
                    val = 60;
                    double rib = Math.sin((v + 0.3 * u * u) * 28);
                    if (rib > 0.75) {
                        val += 45;
                    }
                }
                if (Math.abs(u) < 0.16 && v > -0.6) {
                    val = 200; // mediastinum and spine
                }
                if ((u + 0.05) * (u + 0.05) / 0.07 + (v - 0.3) * (v - 0.3) / 0.05 < 1) {
                    val = 185; // heart
                }
                val += rnd.nextGaussian() * 6;
                px[y * n + x] = (byte) Math.max(0, Math.min(255, Math.round(val)));
            }
        }
        return px;
    }

    WorkingImage workingImage() {
        byte[] g = chestPixels8();
        byte[] raw = g;
        if (bits == 16) {
            raw = new byte[g.length * 2];
            for (int i = 0; i < g.length; i++) {
                int v = (g[i] & 0xff) * 16;
                raw[2 * i] = (byte) v;
                raw[2 * i + 1] = (byte) (v >> 8);
            }
        }
        if (encoding == PixelEncoding.DEFLATE) {
            raw = deflate(raw);
        }
        return WorkingImage.newBuilder().setWidth(size).setHeight(size).setBitsPerPixel(bits).setEncoding(encoding)
                .setPixels(ByteBuffer.wrap(raw)).build();
    }
}
