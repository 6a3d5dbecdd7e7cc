package org.cxrgateway.ingest;

import java.util.Locale;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import org.cxrgateway.dicom.DicomInstance;
import org.cxrgateway.dicom.DicomUids;

/**
 * Which received instances go to inference: CR/DX chest radiographs, frontal (PA/AP), grayscale,
 * with pixel data. Everything else is still accepted and stored, and skipped with a reason.
 */
public final class Eligibility {

    private Eligibility() {
    }

    public static final String SECONDARY_CAPTURE = "SECONDARY_CAPTURE";
    public static final String NOT_CR_DX = "NOT_CR_DX";
    public static final String NO_PIXEL_DATA = "NO_PIXEL_DATA";
    public static final String NOT_GRAYSCALE = "NOT_GRAYSCALE";
    public static final String NOT_CHEST = "NOT_CHEST";
    public static final String LATERAL_VIEW = "LATERAL_VIEW";
    public static final String NOT_FRONTAL = "NOT_FRONTAL";
    public static final String UNREADABLE = "UNREADABLE";
    public static final String UNDECODABLE = "UNDECODABLE";
    /** Eligible, but the study already has cxr.assembly.max-images images in its job (see AssemblyConfig). */
    public static final String TOO_MANY_IMAGES = "TOO_MANY_IMAGES";

    private static final Set<String> FRONTAL = Set.of("PA", "AP");
    private static final Set<String> LATERAL = Set.of("LL", "RL", "LAT", "LATERAL", "LLD", "RLD", "LLO", "RLO");
    private static final Pattern CHEST_WORDS =
            Pattern.compile(".*\\b(CHEST|THORAX|THORAC\\w*|TORAX|THX|CXR|LUNGS?|PULMO\\w*)\\b.*");
    private static final Pattern LATERAL_WORDS = Pattern.compile(".*\\b(LAT|LATERAL|LL|RL)\\b.*");
    private static final Pattern FRONTAL_WORDS = Pattern.compile(".*\\b(PA|AP|FRONTAL)\\b.*");

    /** The reason this instance is not eligible, or empty when it is. */
    public static Optional<String> reasonToSkip(DicomInstance in) {
        if (DicomUids.SECONDARY_CAPTURE.equals(in.sopClassUid())) {
            return Optional.of(SECONDARY_CAPTURE);
        }
        String modality = upper(in.modality());
        if (!"CR".equals(modality) && !"DX".equals(modality)) {
            return Optional.of(NOT_CR_DX);
        }
        if (!in.hasPixelData()) {
            return Optional.of(NO_PIXEL_DATA);
        }
        String pi = upper(in.photometricInterpretation());
        if (in.samplesPerPixel() != 1 || !("MONOCHROME1".equals(pi) || "MONOCHROME2".equals(pi))) {
            return Optional.of(NOT_GRAYSCALE);
        }
        if (!isChest(in)) {
            return Optional.of(NOT_CHEST);
        }
        String view = upper(in.viewPosition());
        if (view != null) {
            if (FRONTAL.contains(view)) {
                return Optional.empty();
            }
            return Optional.of(LATERAL.contains(view) ? LATERAL_VIEW : NOT_FRONTAL);
        }
        // No ViewPosition: fall back on what the technologist typed, laterals first.
        String text = descriptions(in);
        if (LATERAL_WORDS.matcher(text).matches()) {
            return Optional.of(LATERAL_VIEW);
        }
        return FRONTAL_WORDS.matcher(text).matches() ? Optional.empty() : Optional.of(NOT_FRONTAL);
    }

    static boolean isChest(DicomInstance in) {
        if ("CHEST".equals(upper(in.bodyPartExamined()))) {
            return true;
        }
        String text = descriptions(in) + " " + nz(in.bodyPartExamined()).toUpperCase(Locale.ROOT);
        return CHEST_WORDS.matcher(text).matches();
    }

    private static String descriptions(DicomInstance in) {
        return (nz(in.studyDescription()) + " " + nz(in.seriesDescription()) + " " + nz(in.protocolName()))
                .toUpperCase(Locale.ROOT).replace('_', ' ').replace('^', ' ');
    }

    private static String nz(String s) {
        return s == null ? "" : s;
    }

    private static String upper(String s) {
        return s == null ? null : s.trim().toUpperCase(Locale.ROOT);
    }
}
