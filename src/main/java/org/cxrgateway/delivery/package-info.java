/** Delivery of result objects to PACS (C-STORE) and FHIR servers, with retries, dead letters and replay. */
package org.cxrgateway.delivery;
