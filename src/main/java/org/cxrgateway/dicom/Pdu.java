package org.cxrgateway.dicom;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

/**
 * Upper-layer PDU codes and encoders (PS3.8 9.3), by name, so that no code writes
 * {@code reject(socket, 1, 1, 7)} or a byte array of PDU header fields by hand.
 * Names follow PS3.8 (and pynetdicom / dcm4che, which use the same ones).
 */
public final class Pdu {

    private Pdu() {
    }

    /** Every PDU starts with type (1), reserved (1) and the length of the rest (4, big endian). */
    public static final int HEADER_LENGTH = 6;

    /** PDU types (PS3.8 9.3.1, Table 9-11 ff.). */
    public static final int A_ASSOCIATE_RQ = 0x01;
    public static final int A_ASSOCIATE_AC = 0x02;
    public static final int A_ASSOCIATE_RJ = 0x03;
    public static final int P_DATA_TF = 0x04;
    public static final int A_RELEASE_RQ = 0x05;
    public static final int A_RELEASE_RP = 0x06;
    public static final int A_ABORT = 0x07;

    /** Length of the fixed variable part of A-RELEASE-RQ/RP, A-ABORT and A-ASSOCIATE-RJ. */
    public static final int FIXED_BODY_LENGTH = 4;
    /** A-ASSOCIATE-RQ/AC: protocol version, reserved, called AE, calling AE, reserved (PS3.8 9.3.2). */
    public static final int ASSOCIATE_FIXED_FIELDS = 68;
    public static final int CALLED_AE_OFFSET = HEADER_LENGTH + 4;
    public static final int CALLING_AE_OFFSET = HEADER_LENGTH + 20;
    public static final int PROTOCOL_VERSION = 1;

    /** A P-DATA-TF carries at least one PDV item: length (4), presentation context ID (1), header (1). */
    public static final int MIN_PDV_ITEM_LENGTH = 6;

    /** Item types in A-ASSOCIATE-RQ/AC (PS3.8 9.3.2.x, Annex D). */
    public static final class Item {
        private Item() {
        }

        public static final int APPLICATION_CONTEXT = 0x10;
        public static final int PRESENTATION_CONTEXT_RQ = 0x20;
        public static final int PRESENTATION_CONTEXT_AC = 0x21;
        public static final int ABSTRACT_SYNTAX = 0x30;
        public static final int TRANSFER_SYNTAX = 0x40;
        public static final int USER_INFORMATION = 0x50;
        public static final int MAXIMUM_LENGTH = 0x51;
        public static final int IMPLEMENTATION_CLASS_UID = 0x52;
        public static final int IMPLEMENTATION_VERSION_NAME = 0x55;
    }

    /** Presentation context Result/Reason in A-ASSOCIATE-AC (PS3.8 9.3.3.2, Table 9-18). */
    public static final class PresentationContextResult {
        private PresentationContextResult() {
        }

        public static final int ACCEPTANCE = 0;
        public static final int USER_REJECTION = 1;
        public static final int NO_REASON = 2;
        public static final int ABSTRACT_SYNTAX_NOT_SUPPORTED = 3;
        public static final int TRANSFER_SYNTAXES_NOT_SUPPORTED = 4;
    }

    /** A-ASSOCIATE-RJ Result (PS3.8 9.3.4, Table 9-21). */
    public static final class RejectResult {
        private RejectResult() {
        }

        public static final int PERMANENT = 1;
        public static final int TRANSIENT = 2;
    }

    /** A-ASSOCIATE-RJ Source. */
    public static final class RejectSource {
        private RejectSource() {
        }

        public static final int SERVICE_USER = 1;
        public static final int SERVICE_PROVIDER_ACSE = 2;
        public static final int SERVICE_PROVIDER_PRESENTATION = 3;
    }

    /** A-ASSOCIATE-RJ Reason/Diag., which depends on the source. */
    public static final class RejectReason {
        private RejectReason() {
        }

        /** Source SERVICE_USER. */
        public static final int NO_REASON_GIVEN = 1;
        public static final int APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2;
        public static final int CALLING_AE_TITLE_NOT_RECOGNIZED = 3;
        public static final int CALLED_AE_TITLE_NOT_RECOGNIZED = 7;
        /** Source SERVICE_PROVIDER_ACSE. */
        public static final int PROTOCOL_VERSION_NOT_SUPPORTED = 2;
        /** Source SERVICE_PROVIDER_PRESENTATION. */
        public static final int TEMPORARY_CONGESTION = 1;
        public static final int LOCAL_LIMIT_EXCEEDED = 2;
    }

    /** A-ABORT Source (PS3.8 9.3.8, Table 9-26). */
    public static final class AbortSource {
        private AbortSource() {
        }

        public static final int SERVICE_USER = 0;
        public static final int SERVICE_PROVIDER = 2;
    }

    /** A-ABORT Reason/Diag. (meaningful with source SERVICE_PROVIDER). */
    public static final class AbortReason {
        private AbortReason() {
        }

        public static final int NOT_SPECIFIED = 0;
        public static final int UNRECOGNIZED_PDU = 1;
        public static final int UNEXPECTED_PDU = 2;
        public static final int UNRECOGNIZED_PDU_PARAMETER = 4;
        public static final int UNEXPECTED_PDU_PARAMETER = 5;
        public static final int INVALID_PDU_PARAMETER_VALUE = 6;
    }

    /** The 6-byte header of a PDU whose variable part has this length. */
    public static byte[] header(int type, long length) {
        return new byte[] {(byte) type, 0, (byte) (length >>> 24), (byte) (length >>> 16), (byte) (length >>> 8),
                (byte) length};
    }

    /** The length field (unsigned 32 bit) of a header at offset. */
    public static long length(byte[] pdu, int offset) {
        return ((pdu[offset + 2] & 0xFFL) << 24) | ((pdu[offset + 3] & 0xFFL) << 16) | ((pdu[offset + 4] & 0xFFL) << 8)
                | (pdu[offset + 5] & 0xFFL);
    }

    public static int type(byte[] pdu, int offset) {
        return pdu[offset] & 0xFF;
    }

    /** A-ASSOCIATE-RJ (PS3.8 9.3.4). */
    public static byte[] associateReject(int result, int source, int reason) {
        return fixed(A_ASSOCIATE_RJ, 0, result, source, reason);
    }

    /** A-ABORT (PS3.8 9.3.8). */
    public static byte[] abort(int source, int reason) {
        return fixed(A_ABORT, 0, 0, source, reason);
    }

    public static byte[] releaseRequest() {
        return fixed(A_RELEASE_RQ, 0, 0, 0, 0);
    }

    public static byte[] releaseResponse() {
        return fixed(A_RELEASE_RP, 0, 0, 0, 0);
    }

    /** An item of an A-ASSOCIATE-RQ/AC: type, reserved, 2-byte length, value. */
    public static byte[] item(int type, byte[] value) {
        if (value.length > 0xFFFF) {
            throw new IllegalArgumentException("item 0x" + Integer.toHexString(type) + " of " + value.length + " bytes");
        }
        byte[] b = new byte[4 + value.length];
        b[0] = (byte) type;
        b[2] = (byte) (value.length >>> 8);
        b[3] = (byte) value.length;
        System.arraycopy(value, 0, b, 4, value.length);
        return b;
    }

    /** The DICOM Application Context Name (PS3.7 A.2.1), the first item of every A-ASSOCIATE-RQ/AC. */
    public static final String APPLICATION_CONTEXT_NAME = "1.2.840.10008.3.1.1.1";

    /**
     * A-ASSOCIATE-RQ (PS3.8 9.3.2): protocol version, reserved, called and calling AE (space padded to 16),
     * 32 reserved bytes, then the items (application context, presentation contexts, user information).
     */
    public static byte[] associateRequest(String calledAe, String callingAe, byte[] items) {
        int length = ASSOCIATE_FIXED_FIELDS + items.length;
        ByteArrayOutputStream b = new ByteArrayOutputStream(HEADER_LENGTH + length);
        b.writeBytes(header(A_ASSOCIATE_RQ, length));
        b.writeBytes(new byte[] {0, PROTOCOL_VERSION, 0, 0});
        b.writeBytes(aeTitle(calledAe));
        b.writeBytes(aeTitle(callingAe));
        b.writeBytes(new byte[32]);
        b.writeBytes(items);
        return b.toByteArray();
    }

    /** A presentation context item of an A-ASSOCIATE-RQ (PS3.8 9.3.2.2): ID, reserved, abstract and transfer syntaxes. */
    public static byte[] presentationContextRequest(int id, String abstractSyntax, List<String> transferSyntaxes) {
        ByteArrayOutputStream b = new ByteArrayOutputStream(256);
        b.writeBytes(new byte[] {(byte) id, 0, 0, 0});
        b.writeBytes(item(Item.ABSTRACT_SYNTAX, abstractSyntax.getBytes(StandardCharsets.US_ASCII)));
        for (String ts : transferSyntaxes) {
            b.writeBytes(item(Item.TRANSFER_SYNTAX, ts.getBytes(StandardCharsets.US_ASCII)));
        }
        return item(Item.PRESENTATION_CONTEXT_RQ, b.toByteArray());
    }

    /** The Maximum Length sub-item of user information (PS3.8 D.1.1): the largest P-DATA-TF we receive. */
    public static byte[] maximumLength(int length) {
        return item(Item.MAXIMUM_LENGTH, new byte[] {(byte) (length >>> 24), (byte) (length >>> 16),
                (byte) (length >>> 8), (byte) length});
    }

    /** An AE title as the A-ASSOCIATE fields hold it: 1 to 16 characters, space padded. */
    public static byte[] aeTitle(String title) {
        byte[] t = title.getBytes(StandardCharsets.US_ASCII);
        if (t.length == 0 || t.length > 16) {
            throw new IllegalArgumentException("AE title must be 1 to 16 characters: " + title);
        }
        byte[] b = new byte[16];
        Arrays.fill(b, (byte) ' ');
        System.arraycopy(t, 0, b, 0, t.length);
        return b;
    }

    /** One P-DATA-TF holding one PDV (PS3.8 9.3.5, E.2). */
    public static byte[] pData(int presentationContextId, boolean command, boolean last, byte[] value, int off, int len) {
        ByteArrayOutputStream b = new ByteArrayOutputStream(HEADER_LENGTH + MIN_PDV_ITEM_LENGTH + len);
        long itemLength = 2L + len;
        b.writeBytes(header(P_DATA_TF, 4 + itemLength));
        b.write((int) (itemLength >>> 24));
        b.write((int) (itemLength >>> 16));
        b.write((int) (itemLength >>> 8));
        b.write((int) itemLength);
        b.write(presentationContextId);
        b.write((command ? 0x01 : 0) | (last ? 0x02 : 0));
        b.write(value, off, len);
        return b.toByteArray();
    }

    private static byte[] fixed(int type, int b0, int b1, int b2, int b3) {
        byte[] h = header(type, FIXED_BODY_LENGTH);
        return new byte[] {h[0], h[1], h[2], h[3], h[4], h[5], (byte) b0, (byte) b1, (byte) b2, (byte) b3};
    }

    /** Name of a PDU type for logs and metric labels. */
    public static String typeName(int type) {
        return switch (type) {
            case A_ASSOCIATE_RQ -> "A-ASSOCIATE-RQ";
            case A_ASSOCIATE_AC -> "A-ASSOCIATE-AC";
            case A_ASSOCIATE_RJ -> "A-ASSOCIATE-RJ";
            case P_DATA_TF -> "P-DATA-TF";
            case A_RELEASE_RQ -> "A-RELEASE-RQ";
            case A_RELEASE_RP -> "A-RELEASE-RP";
            case A_ABORT -> "A-ABORT";
            default -> "0x" + Integer.toHexString(type);
        };
    }
}
