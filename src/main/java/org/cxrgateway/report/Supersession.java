package org.cxrgateway.report;

import org.cxrgateway.dicom.SrModel.InstanceRef;

import java.util.List;
import java.util.Map;

/**
 * What a result replaces, as delivery recorded it: per model id, the SRs of the study's earlier results
 * (they go into the new SR's Predecessor Documents Sequence, and make the FHIR report "amended"), and every
 * object those results issued (the candidates of an IOCM rejection note; the builder keeps those the new
 * result re-issues under the same UID).
 */
public record Supersession(Map<String, List<InstanceRef>> predecessorSrs, List<InstanceRef> earlierObjects) {

    public static final Supersession NONE = new Supersession(Map.of(), List.of());

    public Supersession {
        predecessorSrs = Map.copyOf(predecessorSrs);
        earlierObjects = List.copyOf(earlierObjects);
    }

    public List<InstanceRef> predecessorsOf(String modelId) {
        return predecessorSrs.getOrDefault(modelId, List.of());
    }
}
