package org.cxrgateway.dicom;

import java.util.Locale;

/**
 * A DIMSE status (PS3.7 C, C-STORE statuses PS3.4 B.2.3): the code and why, as one value, for both the
 * C-STORE we answer and the C-STORE answers we get. Named codes as in dcm4che's {@code Status}; the classes
 * ({@link Kind}) are what decide between acknowledging, retrying later and giving up.
 *
 * @param code the Status (0000,0900)
 * @param reason the peer's Error Comment (0000,0902) when it sent one, else the standard meaning of the code
 */
public record DimseStatus(int code, String reason) {

    public static final int SUCCESS = 0x0000;
    /** Warning: requested optional attributes are not supported. */
    public static final int WARNING_ATTRIBUTES_NOT_SUPPORTED = 0x0001;
    public static final int ATTRIBUTE_LIST_ERROR = 0x0107;
    public static final int ATTRIBUTE_VALUE_OUT_OF_RANGE = 0x0116;
    public static final int SOP_CLASS_NOT_SUPPORTED = 0x0122;
    public static final int NOT_AUTHORIZED = 0x0124;
    /** Failure: resource limitation (PS3.7 Annex C): the peer is short of something now, as with A7xx. */
    public static final int RESOURCE_LIMITATION = 0x0213;
    public static final int OUT_OF_RESOURCES = 0xA700;
    public static final int DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900;
    public static final int COERCION_OF_DATA_ELEMENTS = 0xB000;
    public static final int ELEMENTS_DISCARDED = 0xB006;
    public static final int DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007;
    public static final int CANNOT_UNDERSTAND = 0xC000;
    public static final int PROCESSING_FAILURE = 0xC001;
    /** Our own Cxxx (cannot understand): the data set's UIDs are missing, invalid or not the command's. */
    public static final int UID_MISMATCH = 0xC002;

    /** What a status means for the sender. */
    public enum Kind {
        SUCCESS,
        /** Stored, with a remark (0001, 0107, 0116, Bxxx): acknowledged like a success. */
        WARNING,
        /** Refused for now (A7xx out of resources, 0213 resource limitation): the same instance may succeed later. */
        TRANSIENT_FAILURE,
        /** Refused for what the instance is (Cxxx, A9xx, 0122, 0124, any other failure): resending cannot help. */
        PERMANENT_FAILURE
    }

    public DimseStatus {
        reason = reason == null || reason.isBlank() ? meaning(code) : reason.trim();
    }

    public static DimseStatus of(int code) {
        return new DimseStatus(code, null);
    }

    public Kind kind() {
        if (code == SUCCESS) {
            return Kind.SUCCESS;
        }
        if (code == WARNING_ATTRIBUTES_NOT_SUPPORTED || code == ATTRIBUTE_LIST_ERROR
                || code == ATTRIBUTE_VALUE_OUT_OF_RANGE || (code & 0xF000) == 0xB000) {
            return Kind.WARNING;
        }
        if ((code & 0xFF00) == OUT_OF_RESOURCES || code == RESOURCE_LIMITATION) {
            return Kind.TRANSIENT_FAILURE;
        }
        return Kind.PERMANENT_FAILURE;
    }

    /** Success or warning: the peer holds the instance and we may forget it. */
    public boolean acknowledged() {
        return kind() == Kind.SUCCESS || kind() == Kind.WARNING;
    }

    public boolean isTransient() {
        return kind() == Kind.TRANSIENT_FAILURE;
    }

    /** The code as written in PS3.7 and in dcmtk's logs, e.g. 0xA900. */
    public String hex() {
        return String.format(Locale.ROOT, "0x%04X", code);
    }

    @Override
    public String toString() {
        return hex() + " (" + reason + ")";
    }

    /** The standard meaning of a code (PS3.4 B.2.3, PS3.7 C). */
    static String meaning(int code) {
        if (code == SUCCESS) {
            return "Success";
        }
        return switch (code) {
            case WARNING_ATTRIBUTES_NOT_SUPPORTED -> "Warning: requested optional attributes are not supported";
            case ATTRIBUTE_LIST_ERROR -> "Warning: attribute list error";
            case ATTRIBUTE_VALUE_OUT_OF_RANGE -> "Warning: attribute value out of range";
            case SOP_CLASS_NOT_SUPPORTED -> "Refused: SOP class not supported";
            case NOT_AUTHORIZED -> "Refused: not authorized";
            case RESOURCE_LIMITATION -> "Failure: resource limitation";
            case COERCION_OF_DATA_ELEMENTS -> "Warning: coercion of data elements";
            case ELEMENTS_DISCARDED -> "Warning: elements discarded";
            case DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING -> "Warning: data set does not match SOP class";
            default -> switch (code & 0xFF00) {
                case OUT_OF_RESOURCES -> "Refused: out of resources";
                case DATA_SET_DOES_NOT_MATCH_SOP_CLASS -> "Error: data set does not match SOP class";
                default -> (code & 0xF000) == CANNOT_UNDERSTAND ? "Error: cannot understand" : "Failure";
            };
        };
    }
}
