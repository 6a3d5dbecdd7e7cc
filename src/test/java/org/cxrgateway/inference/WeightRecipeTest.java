package org.cxrgateway.inference;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Java weight generator must be bit-identical to the Python one the demo models were exported with. */
class WeightRecipeTest {

    @Test
    void javaGeneratorMatchesPythonBitForBit() throws Exception {
        Path out = Files.createDirectories(Path.of("target/test-work/recipe")).resolve("py.f32");
        String name = "features.denseblock3.denselayer7.conv2.weight";
        long seed = 142024;
        Py.run(120, "-c", "import sys; sys.path.insert(0, '" + Py.MAIN + "'); import cxr_models as c; "
                + "c.generate(" + seed + ", '" + name + "', [1000, 7], c.f32(0.0417), c.f32(0.25)).astype('<f4').tofile('" + out.toAbsolutePath() + "')");
        byte[] py = Files.readAllBytes(out);
        float[] v = new float[7000];
        WeightRecipe.generate(seed, name, 0.0417f, 0.25f, v);
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        assertArrayEquals(py, b.array());
        double min = Double.MAX_VALUE, max = -Double.MAX_VALUE;
        for (float x : v) {
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        assertTrue(min >= 0.25 - 0.0417 && max < 0.25 + 0.0417 && max - min > 0.08, "values span u*scale+offset: " + min + ".." + max);
    }

    @Test
    void shippedPackageWeightsAreThePythonOnes() throws Exception {
        // a few tensors of the materialised chest14 demo package, checked against Python's recipe values
        ModelPackage pkg = ModelPackage.builtIn("chest14", Path.of("target/test-work/recipe/builtin"));
        String check = "import sys, json, numpy as np; sys.path.insert(0, '" + Py.MAIN + "'); import cxr_models as c\n"
                + "d = '" + pkg.dir().toAbsolutePath() + "'\n"
                + "r = json.load(open(d + '/weights.recipe.json')); data = open(d + '/weights.bin', 'rb').read()\n"
                + "bad = [t['name'] for t in r['tensors'] if data[t['position']:t['position'] + t['length']] != "
                + "c.generate(r['seed'], t['name'], t['shape'], t['scale'], t['offset']).astype('<f4').tobytes()]\n"
                + "print('checked', len(r['tensors']), 'bad', bad)\n";
        String out = Py.run(300, "-c", check);
        assertTrue(out.contains("bad []") && !out.contains("checked 0 "), out);
    }
}
