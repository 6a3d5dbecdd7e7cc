package org.cxrgateway.message;

import org.apache.avro.Schema;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificDatumWriter;
import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Upgrades version 1 messages (written before a rolling upgrade) to version 2 in memory. Avro schema
 * resolution does the work (every v2 record is aliased to its v1 name; new fields take their defaults:
 * one part of one); only the one field whose meaning changed is carried by hand: v1's rendered 0..255
 * Finding.cam, a grid spanning the whole working image, becomes an ActivationMap over the whole working
 * image with values v/255. Rendering that again (report CamMaps) gives back the same grid: resampling a
 * grid to its own size is the identity, and min-max of a map already spanning 0..255 changes nothing.
 */
public final class V1Messages {

    private V1Messages() {
    }

    public static StudyJob upgrade(org.cxrgateway.schema.v1.StudyJob v1) throws IOException {
        StudyJob job = resolve(v1, org.cxrgateway.schema.v1.StudyJob.getClassSchema(), StudyJob.getClassSchema());
        job.setSchemaVersion(MessageCodec.SCHEMA_VERSION);
        return job;
    }

    public static StudyResult upgrade(org.cxrgateway.schema.v1.StudyResult v1) throws IOException {
        StudyResult result = resolve(v1, org.cxrgateway.schema.v1.StudyResult.getClassSchema(), StudyResult.getClassSchema());
        result.setSchemaVersion(MessageCodec.SCHEMA_VERSION);
        List<org.cxrgateway.schema.v1.ImageResult> oldImages = v1.getImages();
        for (int i = 0; i < oldImages.size(); i++) {
            org.cxrgateway.schema.v1.ImageResult oldImage = oldImages.get(i);
            ImageResult image = result.getImages().get(i);
            for (int r = 0; r < oldImage.getRuns().size(); r++) {
                List<org.cxrgateway.schema.v1.Finding> oldFindings = oldImage.getRuns().get(r).getFindings();
                ModelRun run = image.getRuns().get(r);
                for (int f = 0; f < oldFindings.size(); f++) {
                    org.cxrgateway.schema.v1.HeatMap cam = oldFindings.get(f).getCam();
                    if (cam != null) {
                        Finding finding = run.getFindings().get(f);
                        finding.setActivation(activation(cam, image.getImage().getWidth(), image.getImage().getHeight()));
                    }
                }
            }
        }
        return result;
    }

    /** A v1 heatmap (0..255 over the whole working image) as an activation map over the whole working image. */
    static ActivationMap activation(org.cxrgateway.schema.v1.HeatMap cam, int workingW, int workingH) {
        byte[] b = WorkingImagePixels.bytes(cam.getValues());
        List<Float> values = new ArrayList<>(b.length);
        for (byte v : b) {
            values.add((v & 0xff) / 255f);
        }
        return ActivationMap.newBuilder().setWidth(cam.getWidth()).setHeight(cam.getHeight())
                .setRegionX(0).setRegionY(0).setRegionWidth(workingW).setRegionHeight(workingH)
                .setValues(values).build();
    }

    private static <T> T resolve(Object v1, Schema writer, Schema reader) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        BinaryEncoder enc = EncoderFactory.get().directBinaryEncoder(out, null);
        new SpecificDatumWriter<>(writer).write(v1, enc);
        enc.flush();
        BinaryDecoder dec = DecoderFactory.get().binaryDecoder(out.toByteArray(), null);
        return new SpecificDatumReader<T>(writer, reader).read(null, dec);
    }
}
