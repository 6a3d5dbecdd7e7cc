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
import com.pixelmed.network.CompositeResponseHandler;
import com.pixelmed.network.DicomNetworkException;
import com.pixelmed.network.PDataPDU;
import com.pixelmed.network.PresentationDataValue;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.jboss.logging.Logger;

/**
 * One admitted association, from negotiation to release or abort: PixelMed negotiates the presentation
 * contexts (with our {@link PresentationContextPolicy}) and encodes DIMSE messages; here each request's
 * command is read (bounded), dispatched to C-ECHO or to the {@link CStoreService}, and answered. An
 * association that goes idle is closed.
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
        Thread self = Thread.currentThread();
        AtomicBoolean ended = new AtomicBoolean();
        AtomicBoolean finished = new AtomicBoolean();
        AtomicReference<AssociationInfo> infoRef = new AtomicReference<>();
        Runnable released = () -> {
            AssociationInfo i = infoRef.get();
            if (i != null && ended.compareAndSet(false, true)) {
                store.associationEnded(i);
            }
            // cut PixelMed's fixed post-release wait short: the peer has what it needs
            timer.schedule(() -> {
                synchronized (ended) {
                    if (!finished.get()) {
                        self.interrupt();
                    }
                }
            }, 20, TimeUnit.MILLISECONDS);
        };
        String remote = socket.getInetAddress().getHostAddress();
        PduGuardInputStream guarded = new PduGuardInputStream(socket.getInputStream(), options.maxPduLength(),
                (reason, abortReason, detail) -> refusals.abort(socket, reason, abortReason, detail));
        try {
            association = AssociationFactory.createNewAssociation(new ReplaySocket(socket, request, guarded, released),
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
        infoRef.set(info);
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
        try {
            while (true) {
                RequestHandler handler = new RequestHandler(info, socket);
                association.setReceivedDataHandler(handler);
                try {
                    association.waitForPDataPDUsUntilHandlerReportsDone();
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
            if (ended.compareAndSet(false, true)) {
                store.associationEnded(info);
            }
            synchronized (ended) {
                // the thread goes back to the pool: no interrupt meant for this association may reach the next
                finished.set(true);
                Thread.interrupted();
            }
        }
    }

    /**
     * Receives one DIMSE request and makes its response. PixelMed calls it for every P-DATA PDU; it must
     * never throw for bad input in a data set, because PixelMed would then drop the association without a
     * response.
     */
    private final class RequestHandler extends CompositeResponseHandler {
        private final AssociationInfo association;
        private final Socket socket;
        private final ByteArrayOutputStream command = new ByteArrayOutputStream(256);
        private byte presentationContextId;
        private byte[] response;
        private CStoreRequestCommandMessage storeRequest;
        private CStoreService.Transfer transfer;

        RequestHandler(AssociationInfo association, Socket socket) {
            this.association = association;
            this.socket = socket;
        }

        @Override
        protected void evaluateStatusAndSetSuccess(AttributeList list) {
            // only used by PixelMed's own SCU handlers
        }

        @Override
        public void sendPDataIndication(PDataPDU pdu, Association a) throws DicomNetworkException {
            for (Object o : pdu.getPDVList()) {
                PresentationDataValue pdv = (PresentationDataValue) o;
                if (pdv.isCommand()) {
                    if (command.size() + pdv.getValue().length > MAX_COMMAND_LENGTH) {
                        refusals.abort(socket, "COMMAND_TOO_LONG", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                                "DIMSE command fragments beyond " + MAX_COMMAND_LENGTH + " bytes");
                        throw new DicomNetworkException("DIMSE command too long");
                    }
                    command.writeBytes(pdv.getValue());
                    if (pdv.isLastFragment()) {
                        presentationContextId = pdv.getPresentationContextID();
                        onCommand(a);
                    }
                } else if (transfer != null) {
                    transfer.data(pdv.getValue());
                    if (pdv.isLastFragment()) {
                        respond(transfer.finish());
                    }
                } else {
                    throw new DicomNetworkException("data PDV without a C-STORE command");
                }
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
                    setDone(true);
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
            setDone(true);
        }

        /** The association ended in the middle of a data set: drop the partial file. */
        void discardUnfinished() {
            if (!isDone() && transfer != null) {
                transfer.discard();
            }
        }
    }
}
