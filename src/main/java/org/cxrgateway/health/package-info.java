/** Liveness and readiness checks. */
package org.cxrgateway.health;
