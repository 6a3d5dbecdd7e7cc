package org.cxrgateway.dicom;

import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomOutputStream;
import com.pixelmed.dicom.FileMetaInformation;
import com.pixelmed.network.CStoreRequestCommandMessage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import org.cxrgateway.storage.DurableFiles;
import org.jboss.logging.Logger;

/**
 * The C-STORE service (PS3.4 B.2): the data set is streamed, fragment by fragment, to a spool temporary
 * file, parsed, checked, made durable by the {@link InstanceStore}, and only then is it a success. The
 * check that it is whole ({@link DataSetExtent}) walks the fragments as they pass, and the bytes up to
 * Pixel Data are kept for the header parse, so the file is not read back. Every
 * other end is a {@link StoreOutcome}: Out of Resources (A700) when space ran out, Cannot Understand or
 * processing failure (Cxxx) otherwise, each counted once and logged in one line.
 */
final class CStoreService {

    private static final Logger LOG = Logger.getLogger(CStoreService.class);
    /**
     * Bytes kept in memory for the header parse: a radiograph's header is a few KiB. A data set whose
     * Pixel Data starts later (large private sequences, or none at all) has its header read from the file.
     */
    private static final int HEAD_LIMIT = 1 << 20;
    /** The Pixel Data element header's longest encoding (explicit VR OB/OW); the header parse stops after its tag. */
    private static final int PIXEL_DATA_HEADER = 12;

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
        /** Walks the file as it is written; null for a deflated data set, which it cannot walk. */
        private DataSetExtent.Scanner scanner;
        private IOException incomplete;
        /** The file's first bytes, up to the tag of the top-level Pixel Data; null once over HEAD_LIMIT. */
        private byte[] head = new byte[16 * 1024];
        private int headLength;

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
                file = new DurableFiles.StreamedFile(temporary, store.earlyFlushBytes(), store.directIoBlockSize());
                ByteArrayOutputStream meta = new ByteArrayOutputStream(512);
                DicomOutputStream dout = new DicomOutputStream(meta, DicomUids.EXPLICIT_VR_LE, null);
                new FileMetaInformation(request.getAffectedSOPClassUID(), request.getAffectedSOPInstanceUID(),
                        transferSyntax, association.callingAe()).getAttributeList().write(dout);
                dout.flush();
                byte[] metaBytes = meta.toByteArray();
                if (!DicomUids.DEFLATED_EXPLICIT_VR_LE.equals(transferSyntax)) {
                    scanner = new DataSetExtent.Scanner(transferSyntax, DataSetExtent.isPart10(metaBytes, metaBytes.length));
                }
                write(metaBytes, 0, metaBytes.length);
            } catch (InstanceStore.InsufficientStorageException e) {
                fail(StoreOutcome.OUT_OF_RESOURCES);
                LOG.warnf("C-STORE %s refused: %s", request.getAffectedSOPInstanceUID(), e.getMessage());
            } catch (IOException | DicomException | RuntimeException e) {
                fail(ioFailure(e));
                LOG.warnf("C-STORE %s cannot be spooled: %s", request.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        /** One PDV fragment of the data set: {@code b[off..off+len)}, valid only during the call. */
        void data(byte[] b, int off, int len) {
            if (failure != null || file == null) {
                return;
            }
            try {
                write(b, off, len);
            } catch (IOException | RuntimeException e) {
                fail(ioFailure(e));
                LOG.warnf("C-STORE %s write failed: %s", request.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        private void write(byte[] b, int off, int len) throws IOException {
            file.write(b, off, len);
            if (scanner != null && incomplete == null) {
                try {
                    scanner.feed(b, off, len);
                } catch (IOException e) {
                    incomplete = e;
                    head = null; // the header is then read from the file (see readHeader)
                }
            }
            keepHead(b, off, len);
        }

        /** Keeps the bytes that the header parse reads: all of them until the Pixel Data tag has passed. */
        private void keepHead(byte[] b, int off, int len) {
            if (head == null) {
                return;
            }
            long pixelData = scanner == null ? -1 : scanner.pixelDataAt();
            int n = pixelData < 0 ? len : (int) Math.max(0, Math.min(len, pixelData + PIXEL_DATA_HEADER - headLength));
            if (n == 0) {
                return;
            }
            if ((long) headLength + n > HEAD_LIMIT) {
                head = null;
                return;
            }
            if (headLength + n > head.length) {
                head = Arrays.copyOf(head, Math.min(HEAD_LIMIT, Math.max(headLength + n, 2 * head.length)));
            }
            System.arraycopy(b, off, head, headLength, n);
            headLength += n;
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
                header = readHeader();
            } catch (IOException | RuntimeException e) {
                LOG.infof("C-STORE %s: data set cannot be parsed: %s", sopInstance, e.getMessage());
                return StoreOutcome.CANNOT_UNDERSTAND;
            }
            try {
                if (incomplete != null) {
                    throw incomplete;
                }
                if (scanner != null) {
                    scanner.finish();
                }
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

        /**
         * From the bytes kept in memory when they are all there and the walk found no fault; otherwise, or
         * when they do not parse, from the file as before, so that the outcome never depends on which was read.
         */
        private InstanceHeader readHeader() throws IOException {
            if (head != null && scanner != null && incomplete == null) {
                try {
                    return DicomFiles.readHeader(head, headLength);
                } catch (IOException | RuntimeException e) {
                    LOG.debugf("C-STORE %s: header from memory: %s; reading the file", request.getAffectedSOPInstanceUID(),
                            e.getMessage());
                }
            }
            return DicomFiles.readHeader(temporary);
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
                    if (failure == null) { // a write that failed before was logged then; its close (the tail) fails alike
                        LOG.warnf("C-STORE %s write failed: %s", request.getAffectedSOPInstanceUID(), e.toString());
                    }
                    fail(ioFailure(e));
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
