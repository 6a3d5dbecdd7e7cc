/** Receiving studies: durable spool, study assembly, eligibility, decoding to working images, job building. */
package org.cxrgateway.ingest;
