package org.cxrgateway.dicom;

/**
 * The first frame of a grayscale image with everything needed to render it, as plain values.
 *
 * @param stored       stored pixel values, row-major, already masked to BitsStored and sign-extended
 *                     when PixelRepresentation is 1
 * @param rescaleSlope 1 when absent
 * @param windowCenter NaN when absent (first value when multi-valued)
 * @param voiLut       the first VOI LUT Sequence item, or null
 */
public record PixelFrame(
        int rows,
        int columns,
        int bitsStored,
        boolean signed,
        String photometricInterpretation,
        int[] stored,
        double rescaleSlope,
        double rescaleIntercept,
        double windowCenter,
        double windowWidth,
        String voiLutFunction,
        Lut voiLut) {

    /** A LUT: entries map input values firstMapped .. firstMapped + data.length - 1; bits is the output depth. */
    public record Lut(int firstMapped, int bits, int[] data) {
    }

    public boolean hasWindow() {
        return !Double.isNaN(windowCenter) && !Double.isNaN(windowWidth) && windowWidth > 0;
    }

    public boolean isMonochrome1() {
        return "MONOCHROME1".equals(photometricInterpretation);
    }
}
