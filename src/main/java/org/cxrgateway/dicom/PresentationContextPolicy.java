package org.cxrgateway.dicom;

import com.pixelmed.network.PresentationContext;
import com.pixelmed.network.PresentationContextSelectionPolicy;
import java.util.ArrayList;
import java.util.LinkedList;
import java.util.List;

/**
 * Accepts Verification and our storage SOP classes with our transfer syntaxes (first of ours the peer
 * proposes), one presentation context at a time; every other context is rejected and counted by reason.
 */
final class PresentationContextPolicy implements PresentationContextSelectionPolicy {

    private final ScpObserver observer;

    PresentationContextPolicy(ScpObserver observer) {
        this.observer = observer;
    }

    @Override
    public LinkedList applyPresentationContextSelectionPolicy(LinkedList contexts, int associationNumber, int debugLevel) {
        return applyPresentationContextSelectionPolicy(contexts, associationNumber);
    }

    @Override
    @SuppressWarnings("unchecked")
    public LinkedList applyPresentationContextSelectionPolicy(LinkedList contexts, int associationNumber) {
        for (Object o : contexts) {
            PresentationContext pc = (PresentationContext) o;
            String abstractSyntax = pc.getAbstractSyntaxUID();
            List<String> ours;
            if (DicomUids.VERIFICATION.equals(abstractSyntax)) {
                ours = DicomUids.VERIFICATION_TRANSFER_SYNTAXES;
            } else if (DicomUids.STORAGE_SOP_CLASSES.contains(abstractSyntax)) {
                ours = DicomUids.STORAGE_TRANSFER_SYNTAXES;
            } else {
                ours = null;
            }
            List<String> proposed = new ArrayList<>();
            for (Object ts : pc.getTransferSyntaxUIDs()) {
                proposed.add(String.valueOf(ts).trim());
            }
            String chosen = null;
            if (ours != null) {
                for (String ts : ours) {
                    if (proposed.contains(ts)) {
                        chosen = ts;
                        break;
                    }
                }
            }
            pc.newTransferSyntaxUIDs();
            if (chosen != null) {
                pc.addTransferSyntaxUID(chosen);
                pc.setResultReason((byte) Pdu.PresentationContextResult.ACCEPTANCE);
            } else {
                pc.addTransferSyntaxUID(DicomUids.IMPLICIT_VR_LE);
                pc.setResultReason((byte) (ours == null ? Pdu.PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED
                        : Pdu.PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED));
                observer.presentationContextRejected(abstractSyntax,
                        ours == null ? "ABSTRACT_SYNTAX_NOT_SUPPORTED" : "TRANSFER_SYNTAX_NOT_SUPPORTED");
            }
        }
        return contexts;
    }
}
