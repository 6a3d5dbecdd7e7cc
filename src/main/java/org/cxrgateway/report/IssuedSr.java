package org.cxrgateway.report;

import org.cxrgateway.dicom.SrModel.InstanceRef;

import java.util.List;

/** The SR a result issues for one model run: what delivery records to know, later, what a new SR replaces. */
public record IssuedSr(String modelId, String modelVersion, boolean diagnostic, InstanceRef sr, List<InstanceRef> images) {
    public IssuedSr {
        images = List.copyOf(images);
    }
}
