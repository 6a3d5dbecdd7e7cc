package org.cxrgateway.report;

import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * Builds one throw-away report at start-up so that the first real study does not pay for what the
 * JVM does only once: HAPI's FhirContext scanning the R4 model classes it encodes (seconds), Java2D
 * loading fonts for the burned-in text, PixelMed's dictionaries, the JIT, the renderer threads. It holds every
 * kind of object a study gets (SR, colour and guided SCs, Parametric Maps, FHIR Media). Nothing leaves the process.
 */
public final class ReportWarmUp {

    private static final String UID = "2.25.1";

    private ReportWarmUp() {
    }

    /** Returns the milliseconds it took. */
    public static long run(ReportBuilder builder) throws ReportException {
        long t0 = System.nanoTime();
        int n = 64;
        byte[] px = new byte[n * n];
        for (int i = 0; i < px.length; i++) {
            px[i] = (byte) (i % n * 4);
        }
        // two explained findings, each with a guided map: every kind of object a study gets (SR, colour and guided
        // SC, Parametric Map, FHIR Media) and the parallel rendering path run once
        List<Finding> findings = new java.util.ArrayList<>();
        for (int k = 0; k < 2; k++) {
            List<Float> cam = new java.util.ArrayList<>(java.util.Collections.nCopies(49, 0f));
            cam.set(24 + k, 1f);
            findings.add(Finding.newBuilder().setLabel("warm-up " + k)
                    .setCode(Code.newBuilder().setValue("WARMUP" + k).setScheme("99CXR").setMeaning("warm-up").build())
                    .setProbability(0.9f - k * 0.1f).setThreshold(0.5f).setPositive(true)
                    .setActivation(ActivationMap.newBuilder().setWidth(7).setHeight(7).setRegionX(0).setRegionY(0).setRegionWidth(n)
                            .setRegionHeight(n).setValues(cam).build())
                    .setGuided(guided(n, k))
                    .build());
        }
        ModelRun run = ModelRun.newBuilder().setModelId("warm-up").setModelVersion("0").setDiagnostic(false)
                .setIntendedUse("start-up warm-up, never sent").setEngine("cpu").setFindings(findings).build();
        ImageResult image = ImageResult.newBuilder().setSopInstanceUid(UID + ".3").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                .setSeriesInstanceUid(UID + ".2")
                .setImage(WorkingImage.newBuilder().setWidth(n).setHeight(n).setBitsPerPixel(8).setEncoding(PixelEncoding.RAW)
                        .setPixels(ByteBuffer.wrap(px)).build())
                .setRuns(List.of(run)).build();
        StudyResult result = StudyResult.newBuilder().setJobId("warm-up").setCreatedAtEpochMs(0)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid(UID).setPatientId("WARMUP").build())
                .setImages(List.of(image)).setInferenceMs(0).setBatchSize(1).build();
        // a few times: the first build loads the classes, the next ones let the JIT compile the per-pixel loops
        for (int i = 0; i < 3; i++) {
            builder.build(result);
        }
        return (System.nanoTime() - t0) / 1_000_000;
    }

    /** A small guided map as the worker sends it: signed bytes round(127 v / maxAbs), zlib-deflated, over the image. */
    private static org.cxrgateway.schema.v2.GuidedMap guided(int n, int k) {
        byte[] q = new byte[n * n];
        for (int i = 0; i < q.length; i++) {
            q[i] = (byte) Math.round(127 * Math.sin(i * 0.37 + k));
        }
        java.util.zip.Deflater d = new java.util.zip.Deflater();
        d.setInput(q);
        d.finish();
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        while (!d.finished()) {
            out.write(buf, 0, d.deflate(buf));
        }
        d.end();
        return org.cxrgateway.schema.v2.GuidedMap.newBuilder().setWidth(n).setHeight(n).setRegionX(0).setRegionY(0)
                .setRegionWidth(n).setRegionHeight(n).setMaxAbs(0.01f).setValues(ByteBuffer.wrap(out.toByteArray())).build();
    }
}
