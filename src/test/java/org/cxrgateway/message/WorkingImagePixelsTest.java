package org.cxrgateway.message;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Random;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.Test;

/** The pixel codec's checks, now that DEFLATE inflates straight into the declared size and RAW is read in place. */
class WorkingImagePixelsTest {

    private static byte[] pixels(int n) {
        byte[] b = new byte[n];
        new Random(7).nextBytes(b);
        for (int i = 0; i < n; i += 3) {
            b[i] = 0; // some redundancy, as an image has
        }
        return b;
    }

    @Test
    void roundTripsBothEncodingsAndReadsRawInPlace() {
        byte[] raw = pixels(300 * 200);
        for (PixelEncoding e : PixelEncoding.values()) {
            WorkingImage img = WorkingImagePixels.encode(300, 200, 8, raw, e);
            assertArrayEquals(raw, WorkingImagePixels.decode(img), e.name());
        }
        WorkingImage rawImage = WorkingImagePixels.encode(300, 200, 8, raw, PixelEncoding.RAW);
        ByteBuffer view = WorkingImagePixels.view(rawImage);
        assertSame(rawImage.getPixels().array(), view.array(), "RAW: the message's own bytes, no copy");
        assertEquals(0, rawImage.getPixels().position(), "the message's buffer is left as it was");
        byte[] copy = WorkingImagePixels.decode(rawImage);
        copy[0] = 42;
        assertEquals(raw[0], rawImage.getPixels().get(0), "decode still hands out a copy");
    }

    @Test
    void refusesStreamsShorterOrLongerThanDeclaredAndCorruptOnes() {
        byte[] raw = pixels(64 * 64);
        byte[] deflated = WorkingImagePixels.deflate(raw);
        WorkingImage shortDecl = image(64, 63, deflated); // the stream holds one row more than declared
        IllegalArgumentException larger = assertThrows(IllegalArgumentException.class, () -> WorkingImagePixels.decode(shortDecl));
        assertTrue(larger.getMessage().contains("larger than 4032"), larger.getMessage());
        WorkingImage longDecl = image(64, 65, deflated); // one row fewer than declared
        IllegalArgumentException fewer = assertThrows(IllegalArgumentException.class, () -> WorkingImagePixels.decode(longDecl));
        assertTrue(fewer.getMessage().contains("4096 pixel bytes, expected 4160"), fewer.getMessage());
        WorkingImage truncated = image(64, 64, Arrays.copyOf(deflated, deflated.length / 2));
        IllegalArgumentException cut = assertThrows(IllegalArgumentException.class, () -> WorkingImagePixels.decode(truncated));
        assertTrue(cut.getMessage().contains("truncated"), cut.getMessage());
        byte[] corrupt = deflated.clone();
        corrupt[0] = 0x00; // not a zlib header
        assertThrows(IllegalArgumentException.class, () -> WorkingImagePixels.decode(image(64, 64, corrupt)));
        WorkingImage rawShort = WorkingImagePixels.encode(64, 64, 8, Arrays.copyOf(raw, 4000), PixelEncoding.RAW);
        IllegalArgumentException rawFewer = assertThrows(IllegalArgumentException.class, () -> WorkingImagePixels.view(rawShort));
        assertTrue(rawFewer.getMessage().contains("4000 pixel bytes, expected 4096"), rawFewer.getMessage());
    }

    private static WorkingImage image(int w, int h, byte[] deflated) {
        return WorkingImage.newBuilder().setWidth(w).setHeight(h).setBitsPerPixel(8).setEncoding(PixelEncoding.DEFLATE)
                .setPixels(ByteBuffer.wrap(deflated)).build();
    }
}
