package dev.marble.tensors.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Convert;
import java.lang.foreign.Arena;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Whole tensors: the row layout of Linear and conv weights, dtypes, wrapping and its checks. */
class QuantizedTensorTest {
    private static Tensor random(Arena arena, DType dt, long... shape) {
        SplittableRandom r = new SplittableRandom(shape.length * 31L + shape[0]);
        float[] v = new float[(int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (r.nextDouble() * 2 - 1);
        }
        Tensor f = Tensor.fromFloats(arena, v, shape);
        if (dt == DType.F32) {
            return f;
        }
        Tensor t = Tensor.allocate(arena, dt, shape);
        if (dt == DType.F16) {
            Convert.f32ToF16(f.data(), 0, t.data(), 0, v.length);
        } else {
            Convert.f32ToBf16(f.data(), 0, t.data(), 0, v.length);
        }
        return t;
    }

    @Test
    void convRowsRunAlongInputChannelsPerTap() {
        try (Arena arena = Arena.ofShared()) {
            Tensor w = random(arena, DType.F32, 3, 64, 3, 2); // [OC, IC, KH, KW]
            for (QuantFormat f : QuantFormat.all()) {
                QuantizedTensor q = QuantizedTensor.quantize("w", w, f, arena);
                assertEquals(18, q.rows());
                assertEquals(64, q.k());
                assertArrayEquals(new long[] {3, 3, 2, f == Q8_0.INSTANCE ? 64 : 32}, q.plane(0).shape());
                // row (oc, ky, kx) must be exactly the quantized IC column of that tap
                float[] column = new float[64];
                float[] expected = new float[64];
                float[] actual = new float[64];
                QuantizedTensor one = QuantizedTensor.allocate(f, new long[] {1, 64}, arena);
                int oc = 2;
                int ky = 1;
                int kx = 1;
                for (int c = 0; c < 64; c++) {
                    column[c] = w.getFloat(oc, c, ky, kx);
                }
                f.quantizeRow(column, 0, one, 0);
                f.dequantizeRow(one, 0, expected, 0);
                f.dequantizeRow(q, (oc * 3L + ky) * 2 + kx, actual, 0);
                assertArrayEquals(expected, actual, f.id());
                // dequantize() puts every row back where it came from
                Tensor back = q.dequantize(arena);
                assertArrayEquals(w.shape(), back.shape());
                for (int c = 0; c < 64; c++) {
                    assertEquals(expected[c], back.getFloat(oc, c, ky, kx), f.id());
                }
            }
        }
    }

    @Test
    void halfAndBfloatWeightsQuantizeLikeTheirFloatValues() {
        try (Arena arena = Arena.ofShared()) {
            for (DType dt : List.of(DType.F16, DType.BF16)) {
                Tensor w = random(arena, dt, 5, 96);
                Tensor f32 = w.toF32(arena);
                for (QuantFormat f : QuantFormat.all()) {
                    float[] a = QuantizedTensor.quantize("w", w, f, arena).dequantize(arena).toFloatArray();
                    float[] b = QuantizedTensor.quantize("w", f32, f, arena).dequantize(arena).toFloatArray();
                    assertArrayEquals(b, a, dt + " " + f);
                }
            }
        }
    }

    @Test
    void sharedAndConfinedArenasGiveTheSameBytes() {
        try (Arena shared = Arena.ofShared(); Arena confined = Arena.ofConfined()) {
            Tensor w = random(shared, DType.F32, 37, 128);
            Tensor wc = random(confined, DType.F32, 37, 128);
            QuantizedTensor a = QuantizedTensor.quantize("w", w, Q4_K.INSTANCE, shared);
            QuantizedTensor b = QuantizedTensor.quantize("w", wc, Q4_K.INSTANCE, confined);
            for (int p = 0; p < 4; p++) {
                assertEquals(-1, a.plane(p).data().asSlice(0, a.plane(p).byteSize())
                        .mismatch(b.plane(p).data().asSlice(0, b.plane(p).byteSize())), "plane " + p);
            }
        }
    }

    @Test
    void onlyLinearAndConvShapesWithWholeBlocksAreQuantizable() {
        assertTrue(QuantFormat.quantizable(new long[] {4, 32}));
        assertTrue(QuantFormat.quantizable(new long[] {320, 640, 3, 3}));
        assertTrue(QuantFormat.quantizable(new long[] {320, 320, 1, 1}));
        assertFalse(QuantFormat.quantizable(new long[] {320}));             // norms, biases
        assertFalse(QuantFormat.quantizable(new long[] {320, 4, 3, 3}));   // conv_in: 4 channels
        assertFalse(QuantFormat.quantizable(new long[] {3, 48}));
        assertFalse(QuantFormat.quantizable(new long[] {0, 32}));
        assertFalse(QuantFormat.quantizable(new long[] {2, 32, 3}));
        try (Arena arena = Arena.ofConfined()) {
            Tensor w = Tensor.allocate(arena, DType.F32, 8, 4, 3, 3);
            MarbleException e = assertThrows(MarbleException.class,
                    () -> QuantizedTensor.quantize("conv_in.weight", w, Q8_0.INSTANCE, arena));
            assertTrue(e.getMessage().startsWith("conv_in.weight: shape [8, 4, 3, 3] cannot be quantized"), e.getMessage());
            Tensor ints = Tensor.allocate(arena, DType.I32, 8, 32);
            assertThrows(MarbleException.class, () -> QuantizedTensor.quantize("x", ints, Q8_0.INSTANCE, arena));
        }
    }

    @Test
    void wrappingChecksEveryPlane() {
        try (Arena arena = Arena.ofConfined()) {
            long[] shape = {4, 64};
            Tensor data = Tensor.allocate(arena, DType.U8, 4, 32);
            Tensor scale = Tensor.allocate(arena, DType.F16, 4, 2);
            QuantizedTensor q = QuantizedTensor.of("w", Q4_0.INSTANCE, shape, List.of(data, scale));
            assertEquals(4, q.rows());
            assertEquals(2, q.blocksPerRow());
            assertEquals(4 * 32 + 4 * 2 * 2, q.byteSize());
            MarbleException missing = assertThrows(MarbleException.class,
                    () -> QuantizedTensor.of("w", Q4_0.INSTANCE, shape, List.of(data)));
            assertEquals("w: q4_0 needs 2 planes, got 1", missing.getMessage());
            MarbleException dtype = assertThrows(MarbleException.class,
                    () -> QuantizedTensor.of("w", Q4_0.INSTANCE, shape, List.of(Tensor.allocate(arena, DType.I8, 4, 32), scale)));
            assertEquals("w: plane 'qdata' is I8, q4_0 stores it as U8", dtype.getMessage());
            MarbleException blocks = assertThrows(MarbleException.class,
                    () -> QuantizedTensor.of("w", Q4_0.INSTANCE, shape, List.of(data, Tensor.allocate(arena, DType.F16, 4, 3))));
            assertEquals("w: plane 'qscale' has shape [4, 3], expected [4, 2] for q4_0 of shape [4, 64]", blocks.getMessage());
            assertThrows(MarbleException.class, () -> QuantizedTensor.of("w", Q4_0.INSTANCE, new long[] {4, 48}, List.of(data, scale)));
        }
    }

    @Test
    void formatsParseByName() {
        assertEquals(Q4_K.INSTANCE, QuantFormat.parse("Q4_K"));
        assertEquals(Q8_0.INSTANCE, QuantFormat.parse("q8_0"));
        MarbleException e = assertThrows(MarbleException.class, () -> QuantFormat.parse("q3_k"));
        assertEquals("unknown quantization type 'q3_k' (known: q8_0, q4_0, q4_k)", e.getMessage());
    }
}
