package org.cxrgateway.dicom;

import com.pixelmed.dicom.Attribute;
import com.pixelmed.dicom.AttributeList;
import com.pixelmed.dicom.AttributeTag;
import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomInputStream;
import com.pixelmed.dicom.TagFromName;
import com.pixelmed.network.AReleaseException;
import com.pixelmed.network.Association;
import com.pixelmed.network.AssociationFactory;
import com.pixelmed.network.CEchoRequestCommandMessage;
import com.pixelmed.network.CEchoResponseCommandMessage;
import com.pixelmed.network.CStoreRequestCommandMessage;
import com.pixelmed.network.CStoreResponseCommandMessage;
import com.pixelmed.network.DicomNetworkException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * One admitted association, from negotiation to release or abort: PixelMed negotiates the presentation
 * contexts (with our {@link PresentationContextPolicy}) and encodes DIMSE messages; here the PDUs are read
 * ({@link PDataReader}), each request's command is read (bounded), dispatched to C-ECHO or to the
 * {@link CStoreService}, and answered, and a release is answered. An association that goes idle is closed.
 */
final class DimseDispatcher {

    private static final Logger LOG = Logger.getLogger(DimseDispatcher.class);

    /** A DIMSE command set is a few hundred bytes; more is a peer feeding us fragments to fill the heap. */
    static final int MAX_COMMAND_LENGTH = 64 * 1024;
    private static final int C_STORE_RQ = 0x0001;
    private static final int C_ECHO_RQ = 0x0030;
    /**
     * Appended to each command before it is parsed: PixelMed reads an attribute list of unknown length until
     * a read fails at its end, which costs an exception (and its stack trace) per request; reading this tag
     * (never a command element, PS3.7 E.1) stops it first.
     */
    private static final AttributeTag END_OF_COMMAND = new AttributeTag(0xFFFF, 0xFFFF);
    private static final byte[] END_OF_COMMAND_BYTES = {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF};

    private final StoreScp.Options options;
    private final InstanceStore store;
    private final ScpObserver observer;
    private final ScheduledExecutorService timer;
    private final AssociationRefusals refusals;
    private final CStoreService cstore;
    private final PresentationContextPolicy policy;
    private final AtomicLong associationIds = new AtomicLong();

    DimseDispatcher(StoreScp.Options options, InstanceStore store, ScpObserver observer, ScheduledExecutorService timer,
                    AssociationRefusals refusals) {
        this.options = options;
        this.store = store;
        this.observer = observer;
        this.timer = timer;
        this.refusals = refusals;
        this.cstore = new CStoreService(store, observer);
        this.policy = new PresentationContextPolicy(observer);
    }

    /** Runs the association whose A-ASSOCIATE-RQ ({@code request}, read whole) the acceptor admitted. */
    void run(Socket socket, byte[] request) throws IOException {
        Association association;
        String remote = socket.getInetAddress().getHostAddress();
        PduGuardInputStream guarded = new PduGuardInputStream(socket.getInputStream(), options.maxPduLength(),
                (reason, abortReason, detail) -> refusals.abort(socket, reason, abortReason, detail));
        try {
            association = AssociationFactory.createNewAssociation(new ReplaySocket(socket, request, guarded),
                    options.aeTitle(),
                    options.maxPduLength(), AssociationFactory.getDefaultReceiveBufferSize(),
                    AssociationFactory.getDefaultSendBufferSize(), policy);
        } catch (DicomNetworkException e) {
            observer.associationRejected("NEGOTIATION_FAILED");
            LOG.infof("association negotiation failed: %s", e.getMessage());
            return;
        }
        AssociationInfo info = new AssociationInfo(associationIds.incrementAndGet(), association.getCallingAETitle(),
                association.getCalledAETitle(), socket.getInetAddress().getHostAddress());
        observer.associationAccepted(info);
        AtomicBoolean idleClosed = new AtomicBoolean();
        long idleNanos = options.idleTimeoutMillis() * 1_000_000L;
        long every = Math.max(50, Math.min(1000, options.idleTimeoutMillis() / 4));
        ScheduledFuture<?> idle = timer.scheduleWithFixedDelay(() -> {
            if (System.nanoTime() - guarded.lastPduNanos() > idleNanos && idleClosed.compareAndSet(false, true)) {
                // closed, not aborted: writing an A-ABORT could block this shared timer on a peer that does not read
                observer.associationAborted("IDLE_TIMEOUT");
                LOG.infof("closed association %d from %s: no PDU for %d ms", info.id(), remote, options.idleTimeoutMillis());
                AssociationRefusals.closeQuietly(socket);
            }
        }, every, every, TimeUnit.MILLISECONDS);
        PDataReader reader = new PDataReader(guarded, socket.getOutputStream());
        try {
            while (true) {
                RequestHandler handler = new RequestHandler(info, socket, association);
                try {
                    reader.receive(handler);
                } finally {
                    handler.discardUnfinished();
                }
                if (handler.response == null) {
                    association.abort();
                    return;
                }
                association.send(handler.presentationContextId, handler.response, null);
                // the peer may take its time after an answer; the idle clock runs from what we sent, too
                guarded.touch();
            }
        } catch (AReleaseException e) {
            LOG.debugf("association %d released", info.id());
        } catch (DicomNetworkException e) {
            LOG.debugf("association %d ended: %s", info.id(), e.getMessage());
        } finally {
            idle.cancel(false);
            store.associationEnded(info);
        }
    }

    /**
     * Reads the PDUs of an established association, in place of PixelMed's
     * {@code waitForPDataPDUsUntilHandlerReportsDone}: that one allocates an array per PDU and copies every PDV
     * out of it into another (two fresh arrays and two copies per PDU before the copy into the file; in a
     * profile of a C-STORE run, the largest item of the association thread's Java time). Here a P-DATA-TF is
     * read into one buffer per association and each PDV is handed on as a slice of it. Every length was
     * checked by the {@link PduGuardInputStream} before these reads return it: a P-DATA-TF within the maximum
     * we advertised, each PDV item within its PDU, release and abort of their fixed length, no other type.
     * PixelMed still negotiates and sends.
     */
    static final class PDataReader {
        private final InputStream in;
        private final OutputStream out;
        private final byte[] header = new byte[Pdu.HEADER_LENGTH];
        /** Grows to the largest P-DATA-TF received, at most the maximum PDU length we advertised. */
        private byte[] body = new byte[0];

        PDataReader(InputStream in, OutputStream out) {
            this.in = in;
            this.out = out;
        }

        /**
         * Hands each PDV to {@code handler} until it has a whole request.
         *
         * @throws AReleaseException after answering the peer's A-RELEASE-RQ (PS3.8 7.2): the association is over
         * @throws DicomNetworkException the peer aborted or closed the connection, or sent a PDU that an
         *                               acceptor may not receive here
         */
        void receive(PdvHandler handler) throws IOException, DicomNetworkException, AReleaseException {
            while (!handler.done()) {
                if (in.readNBytes(header, 0, Pdu.HEADER_LENGTH) < Pdu.HEADER_LENGTH) {
                    throw new DicomNetworkException("connection closed by the peer");
                }
                int type = Pdu.type(header, 0);
                int length = (int) Pdu.length(header, 0);
                if (length > body.length) {
                    body = new byte[length];
                }
                if (in.readNBytes(body, 0, length) < length) {
                    throw new DicomNetworkException("connection closed inside a " + Pdu.typeName(type));
                }
                switch (type) {
                    case Pdu.P_DATA_TF -> {
                        for (int i = 0; i < length; ) {
                            int item = (body[i] & 0xFF) << 24 | (body[i + 1] & 0xFF) << 16 | (body[i + 2] & 0xFF) << 8
                                    | body[i + 3] & 0xFF;
                            int control = body[i + 5];
                            handler.pdv(body[i + 4], (control & 1) != 0, (control & 2) != 0, body, i + 6, item - 2);
                            i += 4 + item;
                        }
                    }
                    case Pdu.A_RELEASE_RQ -> {
                        out.write(Pdu.releaseResponse());
                        out.flush();
                        throw new AReleaseException("released by the peer");
                    }
                    case Pdu.A_ABORT -> throw new DicomNetworkException("aborted by the peer");
                    default -> throw new DicomNetworkException("unexpected " + Pdu.typeName(type));
                }
            }
        }
    }

    /** Takes the PDVs of one request. */
    interface PdvHandler {
        /** One PDV: its value is {@code b[off..off+len)}, valid only during the call. */
        void pdv(byte presentationContextId, boolean command, boolean last, byte[] b, int off, int len)
                throws DicomNetworkException;

        /** The request is whole (its response is made). */
        boolean done();
    }

    /**
     * Receives one DIMSE request and makes its response. It must never throw for bad input in a data set:
     * the association would then end without a response.
     */
    private final class RequestHandler implements PdvHandler {
        private final AssociationInfo association;
        private final Socket socket;
        private final Association pixelmed;
        private final ByteArrayOutputStream command = new ByteArrayOutputStream(256);
        private byte presentationContextId;
        private byte[] response;
        private boolean done;
        private CStoreRequestCommandMessage storeRequest;
        private CStoreService.Transfer transfer;

        RequestHandler(AssociationInfo association, Socket socket, Association pixelmed) {
            this.association = association;
            this.socket = socket;
            this.pixelmed = pixelmed;
        }

        @Override
        public boolean done() {
            return done;
        }

        @Override
        public void pdv(byte presentationContextId, boolean isCommand, boolean last, byte[] b, int off, int len)
                throws DicomNetworkException {
            if (isCommand) {
                if (command.size() + len > MAX_COMMAND_LENGTH) {
                    refusals.abort(socket, "COMMAND_TOO_LONG", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                            "DIMSE command fragments beyond " + MAX_COMMAND_LENGTH + " bytes");
                    throw new DicomNetworkException("DIMSE command too long");
                }
                command.write(b, off, len);
                if (last) {
                    this.presentationContextId = presentationContextId;
                    onCommand(pixelmed);
                }
            } else if (transfer != null) {
                transfer.data(b, off, len);
                if (last) {
                    respond(transfer.finish());
                }
            } else {
                throw new DicomNetworkException("data PDV without a C-STORE command");
            }
        }

        private void onCommand(Association a) throws DicomNetworkException {
            AttributeList list;
            int field;
            try {
                command.writeBytes(END_OF_COMMAND_BYTES);
                list = new AttributeList();
                list.read(new DicomInputStream(new ByteArrayInputStream(command.toByteArray()), DicomUids.IMPLICIT_VR_LE,
                        false), END_OF_COMMAND);
                field = Attribute.getSingleIntegerValueOrDefault(list, TagFromName.CommandField, -1);
            } catch (DicomException | IOException | RuntimeException e) {
                throw new DicomNetworkException("unreadable DIMSE command: " + e.getMessage());
            }
            try {
                if (field == C_ECHO_RQ) {
                    CEchoRequestCommandMessage echo = new CEchoRequestCommandMessage(list);
                    response = new CEchoResponseCommandMessage(echo.getAffectedSOPClassUID(), echo.getMessageID(),
                            DimseStatus.SUCCESS).getBytes();
                    done = true;
                } else if (field == C_STORE_RQ) {
                    storeRequest = new CStoreRequestCommandMessage(list);
                    transfer = cstore.begin(storeRequest, a.getTransferSyntaxForPresentationContextID(presentationContextId),
                            association);
                } else {
                    throw new DicomNetworkException("unsupported DIMSE command 0x" + Integer.toHexString(field));
                }
            } catch (DicomException | IOException e) {
                throw new DicomNetworkException("cannot handle DIMSE command: " + e.getMessage());
            }
        }

        private void respond(StoreOutcome outcome) {
            try {
                response = new CStoreResponseCommandMessage(storeRequest.getAffectedSOPClassUID(),
                        storeRequest.getAffectedSOPInstanceUID(), storeRequest.getMessageID(), outcome.status().code())
                        .getBytes();
            } catch (DicomException | IOException e) {
                response = null;
                LOG.errorf("cannot encode C-STORE response for %s: %s", storeRequest.getAffectedSOPInstanceUID(), e);
            }
            done = true;
        }

        /** The association ended in the middle of a data set: drop the partial file. */
        void discardUnfinished() {
            if (!done && transfer != null) {
                transfer.discard();
            }
        }
    }
}
