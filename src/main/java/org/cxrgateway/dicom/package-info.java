/**
 * The PixelMed adapter: the only package that imports {@code com.pixelmed}. Layered as pynetdicom's
 * PS3.8 modules, each file one job: network ({@code Pdu}, {@code PduGuardInputStream}, {@code StoreScp}'s
 * accept loop, {@code AssociationAcceptor}'s policy), DIMSE ({@code DimseDispatcher}, {@code DimseStatus}),
 * services ({@code CStoreService} with its typed {@code StoreOutcome}, {@code StoreScu}) and writers
 * (SR templates, SC, Parametric Map), behind small types that the rest of the gateway uses.
 */
package org.cxrgateway.dicom;
