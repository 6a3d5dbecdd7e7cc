/**
 * Receiving studies: durable spool, study assembly and quarantine, eligibility, decoding to working images,
 * job building.
 */
package org.cxrgateway.ingest;
