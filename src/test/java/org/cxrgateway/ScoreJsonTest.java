package org.cxrgateway;

import org.cxrgateway.report.CamMaps;
import org.cxrgateway.schema.v2.ActivationMap;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The Grad-CAM peak cxr-model validate plays the pointing game with. */
class ScoreJsonTest {

    private static ActivationMap map(int side, int peakCol, int peakRow, int rx, int ry, int rw, int rh) {
        List<Float> v = new ArrayList<>(Collections.nCopies(side * side, 0.1f));
        v.set(peakRow * side + peakCol, 1f);
        v.set(peakRow * side + (peakCol + 1) % side, 0.6f);  // a second, lower cell: the map is not one spike
        return ActivationMap.newBuilder().setWidth(side).setHeight(side).setRegionX(rx).setRegionY(ry)
                .setRegionWidth(rw).setRegionHeight(rh).setValues(v).build();
    }

    @Test
    void aTopRowPeakIsItsCellCentreNotTheImageEdge() throws Exception {
        // DenseNet at 128 x 128: a 4 x 4 map over a 256 x 256 working image, brightest cell column 1, row 0
        ActivationMap a = map(4, 1, 0, 0, 0, 256, 256);
        assertArrayEquals(new double[] {0.375, 0.125}, ScoreJson.peak(a, 256, 256), 1e-12);
        // the rendered grid holds a border cell's value flat out to the edge: its first brightest pixel is
        // on row 0, half a cell (32 working pixels here) above the cell the map points at
        CamMaps.Grid g = CamMaps.render(a, 256, 256);
        int first = -1;
        int best = -1;
        for (int i = 0; i < g.values().length; i++) {
            if ((g.values()[i] & 0xff) > best) {
                best = g.values()[i] & 0xff;
                first = i;
            }
        }
        assertEquals(0, first / g.width());
    }

    @Test
    void thePeakIsPlacedThroughTheMapsRegion() {
        // a centre crop: the map covers x 100..611 of a 712 x 512 working image
        ActivationMap a = map(7, 6, 3, 100, 0, 512, 512);
        double[] p = ScoreJson.peak(a, 712, 512);
        assertEquals((100 + 6.5 * 512 / 7) / 712, p[0], 1e-12);
        assertEquals(3.5 / 7, p[1], 1e-12);
    }
}
