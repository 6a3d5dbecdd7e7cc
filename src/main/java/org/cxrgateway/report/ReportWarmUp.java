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
 * loading fonts for the burned-in text, PixelMed's dictionaries, the JIT. Nothing leaves the process.
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
        List<Float> cam = new java.util.ArrayList<>(java.util.Collections.nCopies(49, 0f));
        cam.set(24, 1f);
        Finding positive = Finding.newBuilder().setLabel("warm-up")
                .setCode(Code.newBuilder().setValue("WARMUP").setScheme("99CXR").setMeaning("warm-up").build())
                .setProbability(0.9f).setThreshold(0.5f).setPositive(true)
                .setActivation(ActivationMap.newBuilder().setWidth(7).setHeight(7).setRegionX(0).setRegionY(0).setRegionWidth(n)
                        .setRegionHeight(n).setValues(cam).build())
                .build();
        ModelRun run = ModelRun.newBuilder().setModelId("warm-up").setModelVersion("0").setDiagnostic(false)
                .setIntendedUse("start-up warm-up, never sent").setEngine("cpu").setFindings(List.of(positive)).build();
        ImageResult image = ImageResult.newBuilder().setSopInstanceUid(UID + ".3").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                .setSeriesInstanceUid(UID + ".2")
                .setImage(WorkingImage.newBuilder().setWidth(n).setHeight(n).setBitsPerPixel(8).setEncoding(PixelEncoding.RAW)
                        .setPixels(ByteBuffer.wrap(px)).build())
                .setRuns(List.of(run)).build();
        StudyResult result = StudyResult.newBuilder().setJobId("warm-up").setCreatedAtEpochMs(0)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid(UID).setPatientId("WARMUP").build())
                .setImages(List.of(image)).setInferenceMs(0).setBatchSize(1).build();
        builder.build(result);
        return (System.nanoTime() - t0) / 1_000_000;
    }
}
