package dev.marble.runtime.unet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsFile;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Per-block activations of unet_sd15-tiny_b1_t999 (the case's debug.* tensors), to localize a mismatch.
 * Each intermediate is held to the same rule as the output, against its own scale.
 */
class UNetDebugTest {
    private static final String CASE = "unet_sd15-tiny_b1_t999";

    @Test
    void everyBlockMatchesTheReference() {
        JsonNode c = Golden.caseById(CASE);
        double rel = c.get("tolerance").get("out").get("rel").asDouble();
        UNet2DConditionModel model = UNetGoldenTest.model("fp32");
        Map<String, float[]> seen = new LinkedHashMap<>();
        Map<String, long[]> shapes = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(Golden.dir().resolve(c.get("file").asText()));
                Workspace ws = new Workspace()) {
            Tensor out = model.forward(ws, f.tensor("sample"), f.tensor("timestep").toFloatArray(),
                    f.tensor("encoder_hidden_states"), (name, t) -> {
                        seen.put(name, nchw(t));
                        shapes.put(name, nchwShape(t));
                    });
            ws.give(out);
            List<String> failures = new ArrayList<>();
            Iterator<String> names = c.get("debug").fieldNames();
            int checked = 0;
            while (names.hasNext()) {
                String key = names.next();
                String name = key.substring("debug.".length());
                assertTrue(seen.containsKey(name), "the forward pass recorded no '" + name + "'");
                Tensor ref = f.tensor(key);
                assertArrayEquals(ref.shape(), shapes.get(name), name);
                float[] r = ref.toFloatArray();
                double err = Golden.maxAbsDiff(seen.get(name), r);
                double scale = Golden.maxAbs(r);
                System.out.printf("%-16s max|ref| %.3g  max|err| %.3g  err/scale %.2e%n",
                        name, scale, err, err / scale);
                if (err > rel * scale) {
                    failures.add(name + " (err/scale " + err / scale + ")");
                }
                checked++;
            }
            assertEquals(13, checked, "debug tensors in the manifest");
            assertTrue(failures.isEmpty(), "activations off the reference: " + failures);
        }
    }

    /** A probe tensor ([B, C] or NHWC [B, H, W, C]) as NCHW floats. */
    private static float[] nchw(Tensor t) {
        float[] v = t.toFloatArray();
        if (t.rank() != 4) {
            return v;
        }
        int b = t.size(0);
        int h = t.size(1);
        int w = t.size(2);
        int ch = t.size(3);
        float[] o = new float[v.length];
        for (int bi = 0; bi < b; bi++) {
            for (int p = 0; p < h * w; p++) {
                for (int ci = 0; ci < ch; ci++) {
                    o[(bi * ch + ci) * h * w + p] = v[(bi * h * w + p) * ch + ci];
                }
            }
        }
        return o;
    }

    private static long[] nchwShape(Tensor t) {
        long[] s = t.shape();
        return t.rank() == 4 ? new long[] {s[0], s[3], s[1], s[2]} : s;
    }
}
