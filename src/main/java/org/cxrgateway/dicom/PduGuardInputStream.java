package org.cxrgateway.dicom;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * The established association's input as its readers see it (DimseDispatcher.PDataReader, and PixelMed
 * while it negotiates), checked one PDU header at a time.
 *
 * <p>Why: a reader takes a PDU header and then reads (PixelMed: allocates an array of, in
 * {@code Association.getRestOfPDU}) the length the peer declared, so a P-DATA-TF header claiming
 * 0x7FFFFFF0 bytes would cost 2 GiB of heap on the peer's word. This stream reads every 6-byte header
 * itself before a reader sees any of it, and refuses a PDU whose type is not one an acceptor may receive or whose length exceeds what we
 * allow (P-DATA-TF: the maximum PDU length we advertised; release and abort: their fixed 4 bytes), as
 * dcm4che and DCMTK do. A refusal calls the {@link Violation} (which sends A-ABORT, counts and logs it)
 * and then fails the read, so no reader allocates for it.
 *
 * <p>The first PDU (the A-ASSOCIATE-RQ) is read and checked by the listener before this stream starts.
 */
final class PduGuardInputStream extends FilterInputStream {

    /** What to do about a refused PDU before the read fails. */
    interface Violation {
        /**
         * @param reason      metric label, e.g. PDU_LENGTH_EXCEEDED
         * @param abortReason A-ABORT reason ({@link Pdu.AbortReason})
         * @param detail      for the log line
         */
        void refused(String reason, int abortReason, String detail);
    }

    /** The read failed because the peer broke the protocol; the association is already aborted. */
    static final class PduViolationException extends IOException {
        PduViolationException(String message) {
            super(message);
        }
    }

    private final long maxPDataLength;
    private final Violation violation;
    private final byte[] header = new byte[Pdu.HEADER_LENGTH];
    /** Header bytes not yet handed out; Pdu.HEADER_LENGTH when none are pending. */
    private int headerServed = Pdu.HEADER_LENGTH;
    private long bodyLeft;
    /** P-DATA-TF body: bytes of the current PDV item length field seen (0-4), its value, and the item bytes left. */
    private int pdvLengthBytes;
    private long pdvItemLength;
    private long pdvLeft;
    private volatile long lastPduNanos = System.nanoTime();
    private volatile boolean refused;

    /**
     * @param maxPDataLength the maximum PDU length we advertised (A-ASSOCIATE-AC item 0x51): a P-DATA-TF
     *                       variable part may not be longer (PS3.8 D.1)
     */
    PduGuardInputStream(InputStream in, long maxPDataLength, Violation violation) {
        super(in);
        this.maxPDataLength = maxPDataLength;
        this.violation = violation;
    }

    /** When the last PDU was completely received (System.nanoTime()): the association's idle clock. */
    long lastPduNanos() {
        return lastPduNanos;
    }

    void touch() {
        lastPduNanos = System.nanoTime();
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xFF;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (len == 0) {
            return 0;
        }
        if (refused) {
            throw new PduViolationException("association aborted");
        }
        if (headerServed < Pdu.HEADER_LENGTH) {
            int n = Math.min(len, Pdu.HEADER_LENGTH - headerServed);
            System.arraycopy(header, headerServed, b, off, n);
            headerServed += n;
            if (headerServed == Pdu.HEADER_LENGTH && bodyLeft == 0) {
                touch();
            }
            return n;
        }
        if (bodyLeft > 0) {
            int n = in.read(b, off, (int) Math.min(len, bodyLeft));
            if (n > 0) {
                if (Pdu.type(header, 0) == Pdu.P_DATA_TF) {
                    checkPdvItems(b, off, n);
                }
                bodyLeft -= n;
                if (bodyLeft == 0) {
                    touch();
                }
            }
            return n;
        }
        // at a PDU boundary: take the whole header before handing out any of it
        int got = 0;
        while (got < Pdu.HEADER_LENGTH) {
            int n = in.read(header, got, Pdu.HEADER_LENGTH - got);
            if (n < 0) {
                if (got == 0) {
                    return -1;
                }
                // a truncated header: the reader reports the truncation itself
                System.arraycopy(header, 0, b, off, Math.min(len, got));
                return Math.min(len, got);
            }
            got += n;
        }
        check(Pdu.type(header, 0), Pdu.length(header, 0));
        bodyLeft = Pdu.length(header, 0);
        pdvLengthBytes = 0;
        pdvLeft = 0;
        headerServed = 0;
        return read(b, off, len);
    }

    private void check(int type, long length) throws IOException {
        switch (type) {
            case Pdu.P_DATA_TF -> {
                if (length > maxPDataLength) {
                    refuse("PDU_LENGTH_EXCEEDED", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                            "P-DATA-TF of " + length + " bytes, more than the " + maxPDataLength + " we advertised");
                } else if (length < Pdu.MIN_PDV_ITEM_LENGTH) {
                    refuse("PDU_LENGTH_INVALID", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                            "P-DATA-TF of " + length + " bytes cannot hold a PDV item");
                }
            }
            case Pdu.A_RELEASE_RQ, Pdu.A_RELEASE_RP, Pdu.A_ABORT -> {
                if (length != Pdu.FIXED_BODY_LENGTH) {
                    refuse("PDU_LENGTH_INVALID", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                            Pdu.typeName(type) + " of " + length + " bytes, not " + Pdu.FIXED_BODY_LENGTH);
                }
            }
            case Pdu.A_ASSOCIATE_RQ, Pdu.A_ASSOCIATE_AC, Pdu.A_ASSOCIATE_RJ ->
                    refuse("UNEXPECTED_PDU", Pdu.AbortReason.UNEXPECTED_PDU,
                            Pdu.typeName(type) + " on an established association");
            default -> refuse("UNRECOGNIZED_PDU", Pdu.AbortReason.UNRECOGNIZED_PDU,
                    "PDU type " + Pdu.typeName(type) + " of " + length + " bytes");
        }
    }

    /**
     * DimseDispatcher.PDataReader hands each PDV item on as a slice of the PDU by the item's declared
     * length, so an item length is the peer's word too: each must be at least its 2 header bytes and fit
     * in what is left of its PDU. The bytes pass through here before the reader parses any of them (it
     * parses only the complete PDU), so a bad length is refused before the read that would complete the
     * PDU returns.
     */
    private void checkPdvItems(byte[] b, int off, int n) throws IOException {
        int i = 0;
        while (i < n) {
            if (pdvLengthBytes < 4) {
                pdvItemLength = (pdvLengthBytes == 0 ? 0 : pdvItemLength << 8) | (b[off + i] & 0xFFL);
                pdvLengthBytes++;
                i++;
                if (pdvLengthBytes == 4) {
                    long after = bodyLeft - i;
                    if (pdvItemLength < 2 || pdvItemLength > after) {
                        refuse("PDV_LENGTH_INVALID", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                                "PDV item of " + pdvItemLength + " bytes in a P-DATA-TF with " + after + " left");
                    }
                    pdvLeft = pdvItemLength;
                }
            } else {
                int skip = (int) Math.min(pdvLeft, n - i);
                i += skip;
                pdvLeft -= skip;
                if (pdvLeft == 0) {
                    pdvLengthBytes = 0;
                }
            }
        }
        if (bodyLeft - n == 0 && pdvLengthBytes > 0 && pdvLengthBytes < 4) {
            refuse("PDV_LENGTH_INVALID", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                    "P-DATA-TF ends inside a PDV item length");
        }
    }

    private void refuse(String reason, int abortReason, String detail) throws IOException {
        refused = true;
        violation.refused(reason, abortReason, detail);
        throw new PduViolationException(detail);
    }

    @Override
    public int available() throws IOException {
        if (headerServed < Pdu.HEADER_LENGTH) {
            return Pdu.HEADER_LENGTH - headerServed;
        }
        return bodyLeft > 0 ? (int) Math.min(in.available(), bodyLeft) : 0;
    }

    @Override
    public long skip(long n) throws IOException {
        // the readers do not skip; reading keeps the PDU accounting exact
        byte[] b = new byte[(int) Math.min(n, 8192)];
        int r = read(b, 0, b.length);
        return Math.max(r, 0);
    }

    @Override
    public boolean markSupported() {
        return false;
    }
}
