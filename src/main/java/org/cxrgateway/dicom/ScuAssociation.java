package org.cxrgateway.dicom;

import com.pixelmed.dicom.VersionAndConstants;
import com.pixelmed.network.Association;
import com.pixelmed.network.DicomNetworkException;
import com.pixelmed.network.PresentationContext;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;

/**
 * The requesting side of an association over a socket we opened ourselves, plain or TLS (from our
 * own SSLContext), with our timeouts. PixelMed's AssociationInitiator always opens its own socket and, for TLS, takes
 * {@code SSLSocketFactory.getDefault()} (JVM-wide trust and identity) and then restricts the socket
 * to TLS_RSA_WITH_AES_128_CBC_SHA / SSL_RSA_WITH_3DES_EDE_CBC_SHA, suites without forward secrecy
 * that dcmtk's default BCP 195 profile refuses. Its A-ASSOCIATE PDU classes are package-private, so
 * the A-ASSOCIATE-RQ / -AC / -RJ exchange (PS3.8 9.3.2 - 9.3.4) is done here; everything after it
 * (P-DATA, release, abort, DIMSE) is PixelMed's.
 */
final class ScuAssociation extends Association {

    private static final int MAX_AC_LENGTH = 1 << 20;

    private final String host;
    private final int port;

    /**
     * @param proposed presentation contexts (odd IDs), e.g. from PresentationContextListFactory
     * @param ourMaxPdu the maximum PDU length we receive
     */
    ScuAssociation(Socket socket, String host, int port, String calledAe, String callingAe,
                   LinkedList<PresentationContext> proposed, int ourMaxPdu) throws DicomNetworkException, IOException {
        this.host = host;
        this.port = port;
        this.socket = socket;
        this.in = socket.getInputStream();
        this.out = socket.getOutputStream();
        this.calledAETitle = calledAe;
        this.callingAETitle = callingAe;
        this.scuSCPRoleSelections = new LinkedList<>();
        out.write(request(calledAe, callingAe, proposed, ourMaxPdu));
        out.flush();

        byte[] header = in.readNBytes(Pdu.HEADER_LENGTH);
        if (header.length < Pdu.HEADER_LENGTH) {
            throw new DicomNetworkException("A-P-ABORT indication - connection closed before A-ASSOCIATE-AC");
        }
        int type = Pdu.type(header, 0);
        long length = Pdu.length(header, 0);
        if (length > MAX_AC_LENGTH) {
            throw new DicomNetworkException("A-P-ABORT indication - PDU type 0x" + Integer.toHexString(type)
                    + " of " + length + " bytes");
        }
        byte[] body = in.readNBytes((int) length);
        if (body.length < length) {
            throw new DicomNetworkException("A-P-ABORT indication - truncated PDU type 0x" + Integer.toHexString(type));
        }
        switch (type) {
            case Pdu.A_ASSOCIATE_AC -> accept(body, proposed);
            case Pdu.A_ASSOCIATE_RJ -> throw new Rejected(u8(body, 1), u8(body, 2), u8(body, 3));
            case Pdu.A_ABORT -> throw new DicomNetworkException("A-ABORT indication - source " + u8(body, 2) + " reason " + u8(body, 3));
            default -> {
                abort();
                throw new DicomNetworkException("A-P-ABORT indication - unexpected PDU type 0x" + Integer.toHexString(type));
            }
        }
    }

    /** The peer answered A-ASSOCIATE-RJ (PS3.8 9.3.4), with its result, source and reason. */
    static final class Rejected extends DicomNetworkException {
        private final int result;
        private final String status;

        Rejected(int result, int source, int reason) {
            this(result, "A-ASSOCIATE-RJ result " + result + " source " + source + " reason " + reason);
        }

        private Rejected(int result, String status) {
            super("A-ASSOCIATE-RJ indication - " + status);
            this.result = result;
            this.status = status;
        }

        boolean permanent() {
            return result == Pdu.RejectResult.PERMANENT;
        }

        /** Result, source and reason as the peer gave them, for the dead letter. */
        String status() {
            return status;
        }
    }

    private void accept(byte[] ac, List<PresentationContext> proposed) throws DicomNetworkException {
        Map<Byte, String> abstractSyntaxById = new HashMap<>();
        for (PresentationContext pc : proposed) {
            abstractSyntaxById.put(pc.getIdentifier(), pc.getAbstractSyntaxUID());
        }
        LinkedList<PresentationContext> accepted = new LinkedList<>();
        int peerMaxPdu = 0;
        int i = Pdu.ASSOCIATE_FIXED_FIELDS; // protocol version, reserved, called and calling AE (echoed), reserved
        while (i + 4 <= ac.length) {
            int itemType = u8(ac, i);
            int itemLength = u16(ac, i + 2);
            int start = i + 4;
            int end = start + itemLength;
            if (end > ac.length) {
                throw new DicomNetworkException("A-P-ABORT indication - malformed A-ASSOCIATE-AC item 0x" + Integer.toHexString(itemType));
            }
            if (itemType == Pdu.Item.PRESENTATION_CONTEXT_AC && itemLength >= 4) {
                byte id = ac[start];
                int result = u8(ac, start + 2);
                String ts = null;
                for (int j = start + 4; j + 4 <= end; j += 4 + u16(ac, j + 2)) {
                    if (u8(ac, j) == Pdu.Item.TRANSFER_SYNTAX) {
                        ts = uid(ac, j + 4, Math.min(u16(ac, j + 2), end - j - 4));
                    }
                }
                String as = abstractSyntaxById.get(id);
                if (result == Pdu.PresentationContextResult.ACCEPTANCE && ts != null && as != null) {
                    PresentationContext pc = new PresentationContext(id, as, ts);
                    pc.setResultReason((byte) Pdu.PresentationContextResult.ACCEPTANCE);
                    accepted.add(pc);
                }
            } else if (itemType == Pdu.Item.USER_INFORMATION) {
                for (int j = start; j + 4 <= end; j += 4 + u16(ac, j + 2)) {
                    if (u8(ac, j) == Pdu.Item.MAXIMUM_LENGTH && u16(ac, j + 2) == 4 && j + 8 <= end) {
                        peerMaxPdu = (u16(ac, j + 4) << 16) | u16(ac, j + 6);
                    }
                }
            }
            i = end;
        }
        this.presentationContexts = accepted;
        // 0: the peer sets no limit; stay at a size every implementation reads
        this.maximumLengthReceived = peerMaxPdu > 0 ? peerMaxPdu : 16384;
    }

    private static byte[] request(String calledAe, String callingAe, List<PresentationContext> proposed, int ourMaxPdu)
            throws DicomNetworkException {
        ByteArrayOutputStream items = new ByteArrayOutputStream(1024);
        items.writeBytes(Pdu.item(Pdu.Item.APPLICATION_CONTEXT, ascii(Pdu.APPLICATION_CONTEXT_NAME)));
        for (PresentationContext pc : proposed) {
            List<String> syntaxes = new ArrayList<>();
            for (Object ts : pc.getTransferSyntaxUIDs()) {
                syntaxes.add(String.valueOf(ts).trim());
            }
            items.writeBytes(Pdu.presentationContextRequest(pc.getIdentifier(), pc.getAbstractSyntaxUID(), syntaxes));
        }
        ByteArrayOutputStream user = new ByteArrayOutputStream(64);
        user.writeBytes(Pdu.maximumLength(ourMaxPdu));
        user.writeBytes(Pdu.item(Pdu.Item.IMPLEMENTATION_CLASS_UID, ascii(VersionAndConstants.implementationClassUID)));
        user.writeBytes(Pdu.item(Pdu.Item.IMPLEMENTATION_VERSION_NAME, ascii(VersionAndConstants.implementationVersionName)));
        items.writeBytes(Pdu.item(Pdu.Item.USER_INFORMATION, user.toByteArray()));
        try {
            return Pdu.associateRequest(calledAe, callingAe, items.toByteArray());
        } catch (IllegalArgumentException e) {
            throw new DicomNetworkException(e.getMessage());
        }
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    private static String uid(byte[] b, int offset, int length) {
        // UIDs in A-ASSOCIATE items may carry a trailing NUL or space pad
        return new String(b, offset, Math.max(0, length), StandardCharsets.US_ASCII).replace("\0", "").trim();
    }

    private static int u8(byte[] b, int i) {
        return i < b.length ? b[i] & 0xFF : 0;
    }

    private static int u16(byte[] b, int i) {
        return (u8(b, i) << 8) | u8(b, i + 1);
    }

    @Override
    public String getCallingAEHostName() {
        return socket.getLocalAddress().getHostAddress();
    }

    @Override
    public String getCalledAEHostName() {
        return host;
    }

    @Override
    public int getCallingAEPort() {
        return socket.getLocalPort();
    }

    @Override
    public int getCalledAEPort() {
        return port;
    }
}
