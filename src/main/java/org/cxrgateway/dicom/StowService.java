package org.cxrgateway.dicom;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.cxrgateway.storage.DurableFiles;
import org.jboss.logging.Logger;

/**
 * The instance half of STOW-RS (PS3.18 10.5): one application/dicom part, already streamed to a spool temporary
 * file, is checked as C-STORE checks a data set ({@link CStoreService}) and made durable by the same
 * {@link InstanceStore}; duplicates are a success, as there. What differs is what it is checked against: a
 * PS3.10 file carries its own File Meta Information (there is no command and no negotiation), so the SOP class
 * and transfer syntax are checked here, and the Study Instance UID against the request's path when it names one.
 * Every refusal is a {@link StoreOutcome}, counted by the observer and logged in one line.
 */
public final class StowService {

    private static final Logger LOG = Logger.getLogger(StowService.class);
    private static final byte[] DICM = "DICM".getBytes(StandardCharsets.US_ASCII);

    private final InstanceStore store;
    private final ScpObserver observer;

    public StowService(InstanceStore store, ScpObserver observer) {
        this.store = store;
        this.observer = observer == null ? ScpObserver.NONE : observer;
    }

    /**
     * How one part ended: the outcome, and the instance's UIDs as far as they could be read (null otherwise),
     * for the response's Referenced / Failed SOP Sequence.
     */
    public record Result(StoreOutcome outcome, String sopClassUid, String sopInstanceUid) {
    }

    /** A spool temporary file for the next part. */
    public Path newTemporaryFile() throws IOException {
        return store.newTemporaryFile();
    }

    /** The stream a part's bytes go to, written as C-STORE writes an instance (direct I/O where the store asks for it). */
    public java.io.OutputStream partStream(Path temporary) throws IOException {
        return new DurableFiles.StreamedFile(temporary, store.earlyFlushBytes(), store.directIoBlockSize()).asOutputStream();
    }

    /** A part that could not even be spooled (no space, write failed): counted and logged like any refusal. */
    public Result refused(StoreOutcome outcome, String why, int part) {
        observer.instanceRejected(outcome);
        LOG.warnf("STOW-RS part %d refused (%s): %s", part, outcome.label(), why);
        return new Result(outcome, null, null);
    }

    /**
     * Checks and commits one part. The temporary file is the store's (renamed into the spool) when stored, and
     * deleted otherwise.
     *
     * @param expectedStudy the Study Instance UID of the request's path, or null for POST /studies
     * @param part the part's 1-based position, for the log line
     */
    public Result store(Path temporary, long bytes, String expectedStudy, AssociationInfo request, int part) {
        Result result = check(temporary, bytes, expectedStudy, request, part);
        if (!result.outcome().stored()) {
            observer.instanceRejected(result.outcome());
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException e) {
                LOG.warnf("cannot delete %s: %s", temporary, e.getMessage());
            }
        }
        return result;
    }

    private Result check(Path temporary, long bytes, String expectedStudy, AssociationInfo request, int part) {
        if (!isPart10(temporary)) {
            LOG.infof("STOW-RS part %d: not a DICOM PS3.10 file (no DICM prefix)", part);
            return new Result(StoreOutcome.CANNOT_UNDERSTAND, null, null);
        }
        InstanceHeader header;
        try {
            header = DicomFiles.readHeader(temporary);
        } catch (IOException | RuntimeException e) {
            LOG.infof("STOW-RS part %d: data set cannot be parsed: %s", part, e.getMessage());
            return new Result(StoreOutcome.CANNOT_UNDERSTAND, null, null);
        }
        String sopClass = header.sopClassUid();
        String sop = header.sopInstanceUid();
        if (!DicomUids.isValidUid(sop) || !DicomUids.isValidUid(header.studyInstanceUid())) {
            LOG.infof("STOW-RS part %d: SOP Instance UID or Study Instance UID missing or invalid", part);
            return new Result(StoreOutcome.UID_MISMATCH, sopClass, DicomUids.isValidUid(sop) ? sop : null);
        }
        if (!DicomUids.STORAGE_SOP_CLASSES.contains(sopClass)) {
            LOG.infof("STOW-RS %s: SOP class %s not supported", sop, sopClass);
            return new Result(StoreOutcome.SOP_CLASS_NOT_SUPPORTED, sopClass, sop);
        }
        String ts = header.transferSyntaxUid();
        if (ts == null || !DicomUids.STORAGE_TRANSFER_SYNTAXES.contains(ts)) {
            LOG.infof("STOW-RS %s: transfer syntax %s not supported", sop, ts);
            return new Result(StoreOutcome.TRANSFER_SYNTAX_NOT_SUPPORTED, sopClass, sop);
        }
        if (expectedStudy != null && !expectedStudy.equals(header.studyInstanceUid())) {
            LOG.infof("STOW-RS %s: Study Instance UID %s is not the request's %s", sop, header.studyInstanceUid(),
                    expectedStudy);
            return new Result(StoreOutcome.STUDY_UID_MISMATCH, sopClass, sop);
        }
        try {
            DataSetExtent.check(temporary, ts);
        } catch (IOException e) {
            // storing it would tell the sender it may forget an instance we cannot use
            LOG.infof("STOW-RS %s: %s", sop, e.getMessage());
            return new Result(StoreOutcome.INCOMPLETE_DATA_SET, sopClass, sop);
        }
        try {
            if (store.commit(temporary, header, request)) {
                observer.instanceStored(header, bytes);
            } else {
                observer.duplicateInstance(header);
            }
            return new Result(StoreOutcome.STORED, sopClass, sop);
        } catch (InstanceStore.InsufficientStorageException e) {
            LOG.warnf("STOW-RS %s refused: %s", sop, e.getMessage());
            return new Result(StoreOutcome.OUT_OF_RESOURCES, sopClass, sop);
        } catch (IOException | RuntimeException e) {
            LOG.warnf("STOW-RS %s not durable: %s", sop, e.toString());
            return new Result(isNoSpace(e) ? StoreOutcome.OUT_OF_RESOURCES : StoreOutcome.IO_ERROR, sopClass, sop);
        }
    }

    /** PS3.10 7.1: a 128-byte preamble, then "DICM". Without it PixelMed would guess, and garbage may look like a data set. */
    private static boolean isPart10(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] head = in.readNBytes(132);
            return head.length == 132 && Arrays.equals(head, 128, 132, DICM, 0, 4);
        } catch (IOException e) {
            return false;
        }
    }

    private static boolean isNoSpace(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && m.toLowerCase(java.util.Locale.ROOT).contains("no space left")) {
                return true;
            }
        }
        return false;
    }
}
