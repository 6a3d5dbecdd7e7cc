package org.cxrgateway.dicom;

import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/** UIDs the listener negotiates, and UID syntax checks. */
public final class DicomUids {
    private DicomUids() {
    }

    public static final String VERIFICATION = "1.2.840.10008.1.1";
    public static final String CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1";
    public static final String DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1";
    public static final String DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1";
    public static final String SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7";

    public static final String IMPLICIT_VR_LE = "1.2.840.10008.1.2";
    public static final String EXPLICIT_VR_LE = "1.2.840.10008.1.2.1";
    public static final String DEFLATED_EXPLICIT_VR_LE = "1.2.840.10008.1.2.1.99";
    public static final String JPEG_BASELINE = "1.2.840.10008.1.2.4.50";
    public static final String JPEG_LOSSLESS_P14 = "1.2.840.10008.1.2.4.57";
    public static final String JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70";
    public static final String JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80";
    public static final String JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81";
    public static final String JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90";
    public static final String JPEG_2000 = "1.2.840.10008.1.2.4.91";

    /** Storage SOP classes we accept. Secondary Capture is accepted so that a PACS routing everything is not refused. */
    public static final Set<String> STORAGE_SOP_CLASSES =
            Set.of(CR_IMAGE, DX_FOR_PRESENTATION, DX_FOR_PROCESSING, SECONDARY_CAPTURE);

    /**
     * Transfer syntaxes for storage, in our order of preference when several are proposed: native first
     * (no decode cost), then lossless, then lossy. JPEG-LS is deliberately absent: we cannot decode it,
     * so rejecting it makes the PACS transcode.
     */
    public static final List<String> STORAGE_TRANSFER_SYNTAXES = List.of(
            EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE,
            JPEG_LOSSLESS_SV1, JPEG_LOSSLESS_P14, JPEG_2000_LOSSLESS,
            JPEG_BASELINE, JPEG_2000);

    public static final List<String> VERIFICATION_TRANSFER_SYNTAXES = List.of(EXPLICIT_VR_LE, IMPLICIT_VR_LE);

    private static final Pattern UID = Pattern.compile("[0-9]+(\\.[0-9]+)*");

    /** True for a syntactically valid UID (digits and dots, at most 64 characters): safe as a file name. */
    public static boolean isValidUid(String uid) {
        return uid != null && uid.length() <= 64 && UID.matcher(uid).matches();
    }
}
