package org.cxrgateway.dicom;

import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomOutputStream;
import com.pixelmed.dicom.FileMetaInformation;
import com.pixelmed.network.CStoreRequestCommandMessage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.cxrgateway.storage.DurableFiles;
import org.jboss.logging.Logger;

/**
 * The C-STORE service (PS3.4 B.2): the data set is streamed, fragment by fragment, to a spool temporary
 * file, parsed, checked, made durable by the {@link InstanceStore}, and only then is it a success. Every
 * other end is a {@link StoreOutcome}: Out of Resources (A700) when space ran out, Cannot Understand or
 * processing failure (Cxxx) otherwise, each counted once and logged in one line.
 */
final class CStoreService {

    private static final Logger LOG = Logger.getLogger(CStoreService.class);

    private final InstanceStore store;
    private final ScpObserver observer;

    CStoreService(InstanceStore store, ScpObserver observer) {
        this.store = store;
        this.observer = observer;
    }

    /** Starts receiving one instance. Never throws for bad input: a refusal is the outcome of {@link Transfer#finish()}. */
    Transfer begin(CStoreRequestCommandMessage request, String transferSyntax, AssociationInfo association) {
        return new Transfer(request, transferSyntax, association);
    }

    /** One data set on its way in. */
    final class Transfer {
        private final CStoreRequestCommandMessage request;
        private final String transferSyntax;
        private final AssociationInfo association;
        private Path temporary;
        private DurableFiles.StreamedFile file;
        /** The first failure while receiving; the rest of the data set is read and dropped. */
        private StoreOutcome failure;

        private Transfer(CStoreRequestCommandMessage request, String transferSyntax, AssociationInfo association) {
            this.request = request;
            this.transferSyntax = transferSyntax;
            this.association = association;
            openTemporary();
        }

        private void openTemporary() {
            if (!DicomUids.STORAGE_SOP_CLASSES.contains(request.getAffectedSOPClassUID())) {
                fail(StoreOutcome.SOP_CLASS_NOT_SUPPORTED);
                return;
            }
            try {
                temporary = store.newTemporaryFile();
                file = new DurableFiles.StreamedFile(temporary, store.earlyFlushBytes());
                ByteArrayOutputStream meta = new ByteArrayOutputStream(512);
                DicomOutputStream dout = new DicomOutputStream(meta, DicomUids.EXPLICIT_VR_LE, null);
                new FileMetaInformation(request.getAffectedSOPClassUID(), request.getAffectedSOPInstanceUID(),
                        transferSyntax, association.callingAe()).getAttributeList().write(dout);
                dout.flush();
                write(meta.toByteArray());
            } catch (InstanceStore.InsufficientStorageException e) {
                fail(StoreOutcome.OUT_OF_RESOURCES);
                LOG.warnf("C-STORE %s refused: %s", request.getAffectedSOPInstanceUID(), e.getMessage());
            } catch (IOException | DicomException | RuntimeException e) {
                fail(ioFailure(e));
                LOG.warnf("C-STORE %s cannot be spooled: %s", request.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        /** One PDV fragment of the data set. */
        void data(byte[] value) {
            if (failure != null || file == null) {
                return;
            }
            try {
                write(value);
            } catch (IOException | RuntimeException e) {
                fail(ioFailure(e));
                LOG.warnf("C-STORE %s write failed: %s", request.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        private void write(byte[] value) throws IOException {
            file.write(value);
        }

        /** The last fragment arrived: the instance is committed, or refused and its temporary file deleted. */
        StoreOutcome finish() {
            long bytes = file == null ? 0 : file.size();
            closeFile();
            StoreOutcome outcome = failure != null ? failure : commit(request.getAffectedSOPInstanceUID(), bytes);
            if (!outcome.stored()) {
                observer.instanceRejected(outcome);
                deleteTemporary();
            }
            temporary = null;
            return outcome;
        }

        private StoreOutcome commit(String sopInstance, long bytes) {
            InstanceHeader header;
            try {
                header = DicomFiles.readHeader(temporary);
            } catch (IOException | RuntimeException e) {
                LOG.infof("C-STORE %s: data set cannot be parsed: %s", sopInstance, e.getMessage());
                return StoreOutcome.CANNOT_UNDERSTAND;
            }
            try {
                DataSetExtent.check(temporary, transferSyntax);
            } catch (IOException e) {
                // acknowledging it would tell the sender it may forget an instance we cannot use
                LOG.infof("C-STORE %s: %s", sopInstance, e.getMessage());
                return StoreOutcome.INCOMPLETE_DATA_SET;
            }
            if (!DicomUids.isValidUid(header.sopInstanceUid()) || !header.sopInstanceUid().equals(sopInstance)
                    || !DicomUids.isValidUid(header.studyInstanceUid())) {
                LOG.infof("C-STORE %s: SOP Instance UID / Study Instance UID missing, invalid or not the one in the command",
                        sopInstance);
                return StoreOutcome.UID_MISMATCH;
            }
            try {
                if (store.commit(temporary, header, association)) {
                    observer.instanceStored(header, bytes);
                } else {
                    observer.duplicateInstance(header);
                }
                return StoreOutcome.STORED;
            } catch (InstanceStore.InsufficientStorageException e) {
                LOG.warnf("C-STORE %s refused: %s", sopInstance, e.getMessage());
                return StoreOutcome.OUT_OF_RESOURCES;
            } catch (IOException | RuntimeException e) {
                LOG.warnf("C-STORE %s not durable: %s", sopInstance, e.toString());
                return ioFailure(e);
            }
        }

        private void fail(StoreOutcome outcome) {
            if (failure == null) {
                failure = outcome;
            }
        }

        private void closeFile() {
            if (file != null) {
                try {
                    file.close();
                } catch (IOException e) {
                    fail(ioFailure(e));
                    LOG.warnf("C-STORE %s write failed: %s", request.getAffectedSOPInstanceUID(), e.toString());
                }
                file = null;
            }
        }

        private void deleteTemporary() {
            if (temporary != null) {
                try {
                    Files.deleteIfExists(temporary);
                } catch (IOException e) {
                    LOG.warnf("cannot delete %s: %s", temporary, e.getMessage());
                }
            }
        }

        /** The association ended in the middle of the data set: drop the partial file. */
        void discard() {
            closeFile();
            deleteTemporary();
        }
    }

    /** A write or commit failure: out of resources when the disk is full, a processing failure otherwise. */
    private static StoreOutcome ioFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && m.toLowerCase(Locale.ROOT).contains("no space left")) {
                return StoreOutcome.OUT_OF_RESOURCES;
            }
            if (t instanceof InstanceStore.InsufficientStorageException) {
                return StoreOutcome.OUT_OF_RESOURCES;
            }
        }
        return StoreOutcome.IO_ERROR;
    }
}
