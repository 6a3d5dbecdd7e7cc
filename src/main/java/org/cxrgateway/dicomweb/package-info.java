/**
 * DICOMweb in: STOW-RS (PS3.18 10.5), the HTTP door of ingest. A request's parts are streamed to the spool and
 * checked and committed by the dicom package's {@link org.cxrgateway.dicom.StowService}, exactly as C-STORE
 * instances are; a request is one burst for study assembly, as an association is.
 */
package org.cxrgateway.dicomweb;
