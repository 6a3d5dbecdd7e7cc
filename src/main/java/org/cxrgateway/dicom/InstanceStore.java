package org.cxrgateway.dicom;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Where the listener puts received instances. Implemented by the ingest spool; the listener only
 * answers C-STORE success after {@link #commit} returned normally.
 */
public interface InstanceStore {

    /**
     * A new, empty temporary file on the spool's file system for one incoming instance.
     *
     * @throws InsufficientStorageException when the spool is below its free-space watermark
     */
    Path newTemporaryFile() throws IOException;

    /**
     * Bytes of an incoming instance between early flushes of its temporary file while it is still being
     * received (see {@link org.cxrgateway.storage.DurableFiles.StreamedFile}); 0: none.
     */
    default long earlyFlushBytes() {
        return 0;
    }

    /**
     * The block size in which incoming instances (C-STORE, STOW-RS) are written with O_DIRECT, or 0 to write them
     * through the page cache (see {@link org.cxrgateway.storage.DurableFiles.StreamedFile}).
     */
    default int directIoBlockSize() {
        return 0;
    }

    /**
     * Makes the received Part-10 file durable (fsync of the file and its directory) under its
     * final name, or discards it when the SOP Instance UID is already stored.
     *
     * @return true when stored, false when it was a duplicate (the first copy is kept)
     * @throws InsufficientStorageException when the spool is below its free-space watermark
     * @throws IOException when it could not be made durable: the caller must not answer success
     */
    boolean commit(Path temporaryFile, InstanceHeader header, AssociationInfo association) throws IOException;

    /** The association ended (released, aborted or dropped); no more instances will come on it. */
    void associationEnded(AssociationInfo association);

    /** Thrown when the spool is below its free-space watermark or the disk is full. */
    class InsufficientStorageException extends IOException {
        public InsufficientStorageException(String message) {
            super(message);
        }
    }
}
