package org.cxrgateway.report;

import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.xai.GradCam;
import org.junit.jupiter.api.Test;

import java.awt.image.BufferedImage;
import java.awt.image.DataBufferByte;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Compact results (schema v2): the worker sends the raw CAM at feature resolution and its rectangle; the report
 * renders it. The Secondary Capture must stay what it was when the worker rendered the 256-px map (schema v1),
 * within 1 grey level, and a v1 result still in flight at an upgrade must render the same SC as well.
 */
class CompactResultTest {

    static final int W = 300, H = 240;
    /** Centre crop, as Preprocessor crops a landscape working image for a square model input. */
    static final int RX = 30, RY = 0, RW = 240, RH = 240;

    /** What the v1 worker (inference Scorer before schema v2) put into Finding.cam, copied verbatim. */
    static byte[] legacyGrid(float[] raw, int fs, int[] size) {
        double scale = Math.min(1.0, (double) CamMaps.MAX_SIDE / Math.max(W, H));
        int w = Math.max(1, (int) Math.round(W * scale)), h = Math.max(1, (int) Math.round(H * scale));
        int cx = (int) Math.round(RX * scale), cy = (int) Math.round(RY * scale);
        int cw = Math.max(1, Math.min(w - cx, (int) Math.round(RW * scale)));
        int ch = Math.max(1, Math.min(h - cy, (int) Math.round(RH * scale)));
        float[] region = GradCam.upsampleNormalised(raw, fs, fs, ch, cw);
        byte[] values = new byte[w * h];
        byte[] rb = GradCam.toBytes(region);
        for (int y = 0; y < ch; y++) {
            System.arraycopy(rb, y * cw, values, (cy + y) * w + cx, cw);
        }
        size[0] = w;
        size[1] = h;
        return values;
    }

    static float[] rawCam(long seed) {
        Random r = new Random(seed);
        float[] raw = new float[49];
        int px = r.nextInt(7), py = r.nextInt(7);
        for (int i = 0; i < raw.length; i++) {
            int x = i % 7, y = i / 7;
            raw[i] = (float) Math.max(0, 2.5 * Math.exp(-((x - px) * (x - px) + (y - py) * (y - py)) / 4.0) + 0.3 * r.nextGaussian());
        }
        return raw;
    }

    static ActivationMap activation(float[] raw) {
        List<Float> v = new ArrayList<>();
        for (float f : raw) {
            v.add(f);
        }
        return ActivationMap.newBuilder().setWidth(7).setHeight(7).setRegionX(RX).setRegionY(RY).setRegionWidth(RW)
                .setRegionHeight(RH).setValues(v).build();
    }

    static byte[] gray() {
        byte[] g = new byte[W * H];
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                g[y * W + x] = (byte) (40 + (x * 3 + y * 5) % 180);
            }
        }
        return g;
    }

    static int maxDiff(BufferedImage a, BufferedImage b) {
        byte[] pa = ((DataBufferByte) a.getRaster().getDataBuffer()).getData();
        byte[] pb = ((DataBufferByte) b.getRaster().getDataBuffer()).getData();
        assertEquals(pa.length, pb.length);
        int max = 0;
        for (int i = 0; i < pa.length; i++) {
            max = Math.max(max, Math.abs((pa[i] & 0xff) - (pb[i] & 0xff)));
        }
        return max;
    }

    @Test
    void renderedScStaysWithinOneGreyLevelOfTheWorkerRenderedMap() throws Exception {
        byte[] gray = gray();
        for (long seed = 1; seed <= 8; seed++) {
            float[] raw = rawCam(seed);
            int[] size = new int[2];
            byte[] old = legacyGrid(raw, 7, size);
            CamMaps.Grid now = CamMaps.render(activation(raw), W, H);
            assertEquals(size[0], now.width());
            assertEquals(size[1], now.height());
            BufferedImage before = HeatmapRenderer.render(gray, W, H, old, size[0], size[1], List.of("t"), false);
            BufferedImage after = HeatmapRenderer.render(gray, W, H, now.values(), now.width(), now.height(), List.of("t"), false);
            int d = maxDiff(before, after);
            assertTrue(d <= 1, "seed " + seed + ": SC differs by " + d + " grey levels");
            // sensitivity: another CAM does not pass for this one
            CamMaps.Grid other = CamMaps.render(activation(rawCam(seed + 100)), W, H);
            BufferedImage wrong = HeatmapRenderer.render(gray, W, H, other.values(), other.width(), other.height(), List.of("t"), false);
            assertTrue(maxDiff(before, wrong) > 10, "the comparison cannot tell maps apart");
        }
    }

    /** A v1 result (rendered map in Finding.cam) read by the v2 consumer renders the SC the v1 path rendered. */
    @Test
    void v1ResultInFlightRendersTheSameSc() throws Exception {
        float[] raw = rawCam(7);
        int[] size = new int[2];
        byte[] old = legacyGrid(raw, 7, size);
        org.cxrgateway.schema.v1.StudyResult v1 = V1Fixtures.result(W, H, gray(), old, size[0], size[1]);
        ByteBuffer bb = v1.toByteBuffer(); // the v1 producer's single-object encoding
        byte[] wire = new byte[bb.remaining()];
        bb.get(wire);
        StudyResult upgraded = MessageCodec.decodeResult(wire);
        assertEquals(MessageCodec.SCHEMA_VERSION, upgraded.getSchemaVersion());
        assertEquals(0, upgraded.getPartIndex());
        assertEquals(1, upgraded.getPartCount());
        Finding f = upgraded.getImages().get(0).getRuns().get(0).getFindings().get(0);
        assertNotNull(f.getActivation(), "the v1 map is carried over");
        CamMaps.Grid grid = CamMaps.render(f.getActivation(), W, H);
        BufferedImage before = HeatmapRenderer.render(gray(), W, H, old, size[0], size[1], List.of("t"), false);
        BufferedImage after = HeatmapRenderer.render(gray(), W, H, grid.values(), grid.width(), grid.height(), List.of("t"), false);
        assertTrue(maxDiff(before, after) <= 1, "v1 upgrade changes the SC by " + maxDiff(before, after));

        // through the report builder: the v1 message and the v2 message of the same CAM give the same SC pixels
        StudyResult v2 = StudyResult.newBuilder(upgraded).build();
        v2.getImages().get(0).getRuns().get(0).getFindings().get(0).setActivation(activation(raw));
        ReportBuilder builder = new ReportBuilder(ReportSettings.defaults());
        byte[] scV1 = sc(builder.build(upgraded));
        byte[] scV2 = sc(builder.build(v2));
        int rgb = W * H * 3;
        assertTrue(scV1.length > rgb && scV2.length == scV1.length);
        int max = 0;
        for (int i = 1; i <= rgb; i++) {
            max = Math.max(max, Math.abs((scV1[scV1.length - i] & 0xff) - (scV2[scV2.length - i] & 0xff)));
        }
        assertTrue(max <= 1, "SC pixel data of the v1 and v2 messages differ by " + max);
        System.out.printf("compact result: finding map %d bytes in v1 (rendered %dx%d), %d floats in v2%n",
                old.length, size[0], size[1], raw.length);
    }

    private static byte[] sc(ReportSet set) {
        return set.dicom().stream().filter(o -> o.kind().equals("SC")).findFirst().orElseThrow().part10();
    }

    /** Version 1 messages, as a v1 worker built them. */
    static final class V1Fixtures {
        static org.cxrgateway.schema.v1.StudyResult result(int w, int h, byte[] gray, byte[] cam, int camW, int camH) {
            var code = org.cxrgateway.schema.v1.Code.newBuilder().setValue("8186001").setScheme("SCT").setMeaning("Cardiomegaly").build();
            var finding = org.cxrgateway.schema.v1.Finding.newBuilder().setLabel("Cardiomegaly").setCode(code)
                    .setProbability(0.8f).setThreshold(0.5f).setPositive(true)
                    .setCam(org.cxrgateway.schema.v1.HeatMap.newBuilder().setWidth(camW).setHeight(camH)
                            .setValues(ByteBuffer.wrap(cam)).build()).build();
            var run = org.cxrgateway.schema.v1.ModelRun.newBuilder().setModelId("m").setModelVersion("1").setDiagnostic(false)
                    .setIntendedUse("test").setEngine("cpu").setFindings(List.of(finding)).build();
            var image = org.cxrgateway.schema.v1.ImageResult.newBuilder().setSopInstanceUid("1.2.826.0.1.3680043.10.1234.90.1.1")
                    .setSopClassUid(TestResults.DX).setSeriesInstanceUid("1.2.826.0.1.3680043.10.1234.90.1")
                    .setImage(org.cxrgateway.schema.v1.WorkingImage.newBuilder().setWidth(w).setHeight(h).setBitsPerPixel(8)
                            .setEncoding(org.cxrgateway.schema.v1.PixelEncoding.RAW).setPixels(ByteBuffer.wrap(gray)).build())
                    .setRuns(List.of(run)).build();
            return org.cxrgateway.schema.v1.StudyResult.newBuilder().setJobId("job-v1").setCreatedAtEpochMs(1_767_225_600_000L)
                    .setStudy(org.cxrgateway.schema.v1.StudyInfo.newBuilder().setStudyInstanceUid("1.2.826.0.1.3680043.10.1234.90")
                            .setPatientId("P90").build())
                    .setImages(List.of(image)).setInferenceMs(1).setBatchSize(1).build();
        }
    }
}
