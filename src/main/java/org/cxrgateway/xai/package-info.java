/**
 * Explanations: exact Grad-CAM (= CAM for a GAP + linear head) computed on the host, and guided Grad-CAM =
 * the guided-backpropagation gradient of the package's guided graph x the upsampled Grad-CAM, input channels
 * summed (see {@link org.cxrgateway.xai.GuidedGradCam}).
 */
package org.cxrgateway.xai;
