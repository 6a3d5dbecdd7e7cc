package org.cxrgateway.dicom;

import java.util.List;

/**
 * The Store Instances response (PS3.18 10.5.3, the attributes of its Table 10.5.3-2): the Referenced SOP Sequence
 * (0008,1199) of the instances stored, and the Failed SOP Sequence (0008,1198) with each failure's Failure Reason
 * (0008,1197), as DICOM JSON (PS3.18 F.2) or as the Native DICOM Model XML (PS3.19 A.1). Retrieve URL is left
 * out: it is required only of an origin server that offers WADO-RS, and we do not. A UID goes in only when it
 * is a valid UID (digits and dots), so nothing a client sent is echoed unescaped; otherwise the attribute is
 * there without a value.
 */
public final class StowResponse {

    private static final String REFERENCED_SOP_CLASS = "00081150";
    private static final String REFERENCED_SOP_INSTANCE = "00081155";
    private static final String FAILURE_REASON = "00081197";
    private static final String FAILED_SOP_SEQUENCE = "00081198";
    private static final String REFERENCED_SOP_SEQUENCE = "00081199";

    private StowResponse() {
    }

    /** PS3.18 10.5.3: 200 all stored; 202 some stored, some failed; 409 none stored. */
    public static int httpStatus(List<StowService.Result> results) {
        long stored = results.stream().filter(r -> r.outcome().stored()).count();
        if (stored == results.size()) {
            return 200;
        }
        return stored == 0 ? 409 : 202;
    }

    public static String json(List<StowService.Result> results) {
        StringBuilder sb = new StringBuilder("{");
        List<StowService.Result> failed = results.stream().filter(r -> !r.outcome().stored()).toList();
        List<StowService.Result> stored = results.stream().filter(r -> r.outcome().stored()).toList();
        boolean first = true;
        if (!failed.isEmpty()) {
            jsonSequence(sb, FAILED_SOP_SEQUENCE, failed, true);
            first = false;
        }
        if (!stored.isEmpty()) {
            if (!first) {
                sb.append(',');
            }
            jsonSequence(sb, REFERENCED_SOP_SEQUENCE, stored, false);
        }
        return sb.append('}').toString();
    }

    private static void jsonSequence(StringBuilder sb, String tag, List<StowService.Result> items, boolean failures) {
        sb.append('"').append(tag).append("\":{\"vr\":\"SQ\",\"Value\":[");
        for (int i = 0; i < items.size(); i++) {
            StowService.Result r = items.get(i);
            if (i > 0) {
                sb.append(',');
            }
            sb.append('{');
            jsonUid(sb, REFERENCED_SOP_CLASS, r.sopClassUid());
            sb.append(',');
            jsonUid(sb, REFERENCED_SOP_INSTANCE, r.sopInstanceUid());
            if (failures) {
                sb.append(",\"").append(FAILURE_REASON).append("\":{\"vr\":\"US\",\"Value\":[")
                        .append(r.outcome().status().code()).append("]}");
            }
            sb.append('}');
        }
        sb.append("]}");
    }

    private static void jsonUid(StringBuilder sb, String tag, String uid) {
        sb.append('"').append(tag).append("\":{\"vr\":\"UI\"");
        if (DicomUids.isValidUid(uid)) {
            sb.append(",\"Value\":[\"").append(uid).append("\"]");
        }
        sb.append('}');
    }

    public static String xml(List<StowService.Result> results) {
        StringBuilder sb = new StringBuilder("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
                .append("<NativeDicomModel xmlns=\"http://dicom.nema.org/PS3.19/models/NativeDICOM\">\n");
        List<StowService.Result> failed = results.stream().filter(r -> !r.outcome().stored()).toList();
        List<StowService.Result> stored = results.stream().filter(r -> r.outcome().stored()).toList();
        if (!failed.isEmpty()) {
            xmlSequence(sb, FAILED_SOP_SEQUENCE, "FailedSOPSequence", failed, true);
        }
        if (!stored.isEmpty()) {
            xmlSequence(sb, REFERENCED_SOP_SEQUENCE, "ReferencedSOPSequence", stored, false);
        }
        return sb.append("</NativeDicomModel>\n").toString();
    }

    private static void xmlSequence(StringBuilder sb, String tag, String keyword, List<StowService.Result> items,
                                    boolean failures) {
        sb.append(" <DicomAttribute tag=\"").append(tag).append("\" vr=\"SQ\" keyword=\"").append(keyword).append("\">\n");
        for (int i = 0; i < items.size(); i++) {
            StowService.Result r = items.get(i);
            sb.append("  <Item number=\"").append(i + 1).append("\">\n");
            xmlUid(sb, REFERENCED_SOP_CLASS, "ReferencedSOPClassUID", r.sopClassUid());
            xmlUid(sb, REFERENCED_SOP_INSTANCE, "ReferencedSOPInstanceUID", r.sopInstanceUid());
            if (failures) {
                sb.append("   <DicomAttribute tag=\"").append(FAILURE_REASON)
                        .append("\" vr=\"US\" keyword=\"FailureReason\"><Value number=\"1\">")
                        .append(r.outcome().status().code()).append("</Value></DicomAttribute>\n");
            }
            sb.append("  </Item>\n");
        }
        sb.append(" </DicomAttribute>\n");
    }

    private static void xmlUid(StringBuilder sb, String tag, String keyword, String uid) {
        sb.append("   <DicomAttribute tag=\"").append(tag).append("\" vr=\"UI\" keyword=\"").append(keyword).append("\">");
        if (DicomUids.isValidUid(uid)) {
            sb.append("<Value number=\"1\">").append(uid).append("</Value>");
        }
        sb.append("</DicomAttribute>\n");
    }
}
