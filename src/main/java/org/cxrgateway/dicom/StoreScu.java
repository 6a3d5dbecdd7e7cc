package org.cxrgateway.dicom;

import com.pixelmed.dicom.SetOfDicomFiles;
import com.pixelmed.network.MultipleInstanceTransferStatusHandlerWithFileName;
import com.pixelmed.network.StorageSOPClassSCU;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** C-STORE SCU: sends Part 10 files to one peer in one association. */
public final class StoreScu {

    private StoreScu() {
    }

    /**
     * Sends the files and reports, per file, whether the peer acknowledged it with a success or warning
     * status. A failure to associate is thrown; a per-instance refusal is a {@code false} in the result.
     */
    public static Map<Path, Boolean> store(String host, int port, String calledAe, String callingAe, List<Path> files)
            throws DicomTransferException {
        Map<Path, Boolean> outcome = new LinkedHashMap<>();
        Map<String, Path> byName = new LinkedHashMap<>();
        SetOfDicomFiles set = new SetOfDicomFiles();
        for (Path p : files) {
            String name = p.toAbsolutePath().toString();
            byName.put(name, p);
            outcome.put(p, false);
            set.add(name);
        }
        MultipleInstanceTransferStatusHandlerWithFileName handler = new MultipleInstanceTransferStatusHandlerWithFileName() {
            @Override
            public void updateStatus(int remaining, int completed, int failed, int warning, String sopInstanceUid,
                                     String fileName, boolean success) {
                Path p = byName.get(fileName);
                if (p != null) {
                    outcome.put(p, success);
                }
            }
        };
        try {
            StorageSOPClassSCU scu = new StorageSOPClassSCU(host, port, calledAe, callingAe, set, 0, handler);
            if (scu.encounteredTrappedExceptions()) {
                throw new DicomTransferException("association with " + calledAe + "@" + host + ":" + port
                        + " failed during transfer", null);
            }
        } catch (DicomTransferException e) {
            throw e;
        } catch (Exception e) {
            throw new DicomTransferException("C-STORE to " + calledAe + "@" + host + ":" + port + " failed: " + e, e);
        }
        return outcome;
    }
}
