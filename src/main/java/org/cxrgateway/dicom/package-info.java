/**
 * The PixelMed adapter: the only package that imports {@code com.pixelmed}. Association handling
 * (listener and SCU), reading and writing DICOM objects, and SR / SC construction primitives live
 * here, behind small types that the rest of the gateway uses.
 */
package org.cxrgateway.dicom;
