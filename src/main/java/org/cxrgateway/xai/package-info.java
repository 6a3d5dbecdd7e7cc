/** Explanations: exact Grad-CAM (= CAM for a GAP + linear head) computed on the host, and colour maps. */
package org.cxrgateway.xai;
