/** Result objects: DICOM SR (TID 1500), Grad-CAM Secondary Captures, FHIR R4 DiagnosticReport bundles. */
package org.cxrgateway.report;
