package dev.marble.tensors.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** Exact bit layouts: hand-built planes decode to known values, and known values encode to known bytes. */
class QuantLayoutTest {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    private static byte[] bytes(Tensor t) {
        return t.data().asSlice(0, t.byteSize()).toArray(ValueLayout.JAVA_BYTE);
    }

    private static short half(Tensor t, long index) {
        return t.data().getAtIndex(HALF, index);
    }

    @Test
    void q8_0EncodesBytesAndScale() {
        try (Arena arena = Arena.ofConfined()) {
            float[] x = new float[32];
            x[0] = -127f;     // sets amax = 127, so d = 1 exactly
            x[1] = 2.5f;      // ties go away from zero
            x[2] = -2.5f;
            x[3] = 0.49f;
            x[4] = 126.6f;
            QuantizedTensor q = QuantizedTensor.allocate(Q8_0.INSTANCE, new long[] {1, 32}, arena);
            Q8_0.INSTANCE.quantizeRow(x, 0, q, 0);
            byte[] data = bytes(q.plane(0));
            assertEquals(-127, data[0]);
            assertEquals(3, data[1]);
            assertEquals(-3, data[2]);
            assertEquals(0, data[3]);
            assertEquals(127, data[4]);
            assertEquals(0, data[31]);
            assertEquals((short) 0x3c00, half(q.plane(1), 0)); // 1.0
        }
    }

    @Test
    void q8_0DecodesHandBuiltBlocks() {
        try (Arena arena = Arena.ofConfined()) {
            QuantizedTensor q = QuantizedTensor.allocate(Q8_0.INSTANCE, new long[] {2, 64}, arena);
            MemorySegment data = q.plane(0).data();
            data.set(ValueLayout.JAVA_BYTE, 64 + 32 + 0, (byte) 1);    // row 1, block 1, element 0
            data.set(ValueLayout.JAVA_BYTE, 64 + 32 + 31, (byte) -128); // not produced by the quantizer, but decodable
            q.plane(1).data().setAtIndex(HALF, 3, (short) 0x3800);    // row 1, block 1: d = 0.5
            float[] out = new float[64];
            Q8_0.INSTANCE.dequantizeRow(q, 1, out, 0);
            assertEquals(0f, out[0]);
            assertEquals(0.5f, out[32]);
            assertEquals(-64f, out[63]);
            float[] one = new float[32];
            Q8_0.INSTANCE.dequantizeBlocks(q, 1, 1, 1, one, 0);
            assertEquals(0.5f, one[0]);
        }
    }

    @Test
    void q4_0EncodesGgmlNibblesAndSignedScale() {
        try (Arena arena = Arena.ofConfined()) {
            float[] x = new float[32];
            x[0] = 8f;      // the signed max: d = 8 / -8 = -1, code 0
            x[1] = -7f;     // -7 / -1 + 8 = 15
            x[2] = -8f;     // 8 + 8 = 16, clamped to 15: the one-step loss opposite the max
            x[3] = 0.5f;    // -0.5 rounds up to 0: code 8
            x[16] = 3f;     // -3 + 8 = 5, in the high nibble of byte 0
            x[17] = -1.5f;  // 1.5 rounds up to 2: code 10, high nibble of byte 1
            QuantizedTensor q = QuantizedTensor.allocate(Q4_0.INSTANCE, new long[] {1, 32}, arena);
            Q4_0.INSTANCE.quantizeRow(x, 0, q, 0);
            byte[] data = bytes(q.plane(0));
            assertEquals(16, data.length);
            assertEquals((byte) 0x50, data[0]);
            assertEquals((byte) 0xaf, data[1]);
            assertEquals((byte) 0x8f, data[2]);
            assertEquals((byte) 0x88, data[3]);
            assertEquals((byte) 0x88, data[15]);
            assertEquals((short) 0xbc00, half(q.plane(1), 0)); // -1.0
            float[] back = new float[32];
            Q4_0.INSTANCE.dequantizeRow(q, 0, back, 0);
            assertEquals(8f, back[0]);
            assertEquals(-7f, back[1]);
            assertEquals(-7f, back[2]);
            assertEquals(0f, back[3], 0f); // -0.0: code 8 times a negative d
            assertEquals(3f, back[16]);
            assertEquals(-2f, back[17]);
        }
    }

    @Test
    void q4_0DecodesHandBuiltBlocks() {
        try (Arena arena = Arena.ofConfined()) {
            QuantizedTensor q = QuantizedTensor.allocate(Q4_0.INSTANCE, new long[] {1, 64}, arena);
            q.plane(0).data().set(ValueLayout.JAVA_BYTE, 16, (byte) 0x5a);  // block 1, byte 0
            q.plane(0).data().set(ValueLayout.JAVA_BYTE, 31, (byte) 0xf0);  // block 1, byte 15
            q.plane(1).data().setAtIndex(HALF, 1, (short) 0x4000);          // block 1: d = 2
            float[] out = new float[64];
            Q4_0.INSTANCE.dequantizeRow(q, 0, out, 0);
            assertEquals(0f, out[0], 0f); // block 0: d = 0
            assertEquals(4f, out[32]);       // (0xa - 8) * 2
            assertEquals(-6f, out[48]);      // (0x5 - 8) * 2
            assertEquals(-16f, out[47]);     // (0x0 - 8) * 2
            assertEquals(14f, out[63]);      // (0xf - 8) * 2
        }
    }

    @Test
    void q4_kPlaneShapesAllowAPartialLastSuperBlock() {
        assertArrayEquals(new long[] {160}, Q4_K.INSTANCE.planeRowShape(0, 320));
        assertArrayEquals(new long[] {10}, Q4_K.INSTANCE.planeRowShape(1, 320));
        assertArrayEquals(new long[] {10}, Q4_K.INSTANCE.planeRowShape(2, 320));
        assertArrayEquals(new long[] {2, 2}, Q4_K.INSTANCE.planeRowShape(3, 320));
        assertEquals(4.625, Q4_K.INSTANCE.bitsPerWeight(1280), 1e-12);
        assertEquals(4.7, Q4_K.INSTANCE.bitsPerWeight(320), 1e-12);
        assertEquals(8.5, Q8_0.INSTANCE.bitsPerWeight(320), 1e-12);
        assertEquals(4.5, Q4_0.INSTANCE.bitsPerWeight(320), 1e-12);
        assertArrayEquals(new long[] {8, 3, 3, 2, 2},
                QuantizedTensor.planeShape(Q4_K.INSTANCE, new long[] {8, 320, 3, 3}, 3));
    }

    @Test
    void q4_kDecodesHandBuiltBlocksAcrossSuperBlocks() {
        try (Arena arena = Arena.ofConfined()) {
            QuantizedTensor q = QuantizedTensor.allocate(Q4_K.INSTANCE, new long[] {1, 320}, arena);
            MemorySegment data = q.plane(0).data();
            MemorySegment sc = q.plane(1).data();
            MemorySegment mn = q.plane(2).data();
            MemorySegment sup = q.plane(3).data();
            // sub-block 9 lives in super-block 1: D = 2, M = 1
            sup.setAtIndex(HALF, 2, (short) 0x4000);
            sup.setAtIndex(HALF, 3, (short) 0x3c00);
            sc.set(ValueLayout.JAVA_BYTE, 9, (byte) 255);   // d = 2 · 255 / 255 = 2
            mn.set(ValueLayout.JAVA_BYTE, 9, (byte) -127);  // m = 1 · -127 / 127 = -1
            data.set(ValueLayout.JAVA_BYTE, 9 * 16, (byte) 0x3f);
            // sub-block 0 in super-block 0: D = 4, M = 0.5; sc = 51 → d = 0.8, mn = 127 → m = 0.5
            sup.setAtIndex(HALF, 0, (short) 0x4400);
            sup.setAtIndex(HALF, 1, (short) 0x3800);
            sc.set(ValueLayout.JAVA_BYTE, 0, (byte) 51);
            mn.set(ValueLayout.JAVA_BYTE, 0, (byte) 127);
            data.set(ValueLayout.JAVA_BYTE, 1, (byte) 0x20);
            float[] out = new float[320];
            Q4_K.INSTANCE.dequantizeRow(q, 0, out, 0);
            assertEquals(29f, out[9 * 32]);        // 15 · 2 − 1
            assertEquals(5f, out[9 * 32 + 16]);    // 3 · 2 − 1
            assertEquals(-1f, out[9 * 32 + 1]);    // code 0
            assertEquals(0.5f, out[1]);            // code 0 · 0.8 + 0.5
            assertEquals(4f * 51 / 255f * 2 + 0.5f, out[17]);
            assertEquals(0f, out[8 * 32]);         // sub-block 8: scale and offset 0
        }
    }

    @Test
    void q4_kEncodesAnExactGridExactly() {
        try (Arena arena = Arena.ofConfined()) {
            float[] x = new float[32];
            for (int i = 0; i < 32; i++) {
                x[i] = -1 + 2 * ((i * 7) % 16); // codes 0..15, all used; grid m = -1, d = 2
            }
            QuantizedTensor q = QuantizedTensor.allocate(Q4_K.INSTANCE, new long[] {1, 32}, arena);
            Q4_K.INSTANCE.quantizeRow(x, 0, q, 0);
            assertEquals((short) 0x4000, half(q.plane(3), 0));  // D = max d = 2
            assertEquals((short) 0x3c00, half(q.plane(3), 1));  // M = max |m| = 1
            assertEquals((byte) 255, bytes(q.plane(1))[0]);
            assertEquals((byte) -127, bytes(q.plane(2))[0]);
            byte[] data = bytes(q.plane(0));
            for (int j = 0; j < 16; j++) {
                int lo = (j * 7) % 16;
                int hi = ((j + 16) * 7) % 16;
                assertEquals((byte) (lo | hi << 4), data[j], "byte " + j);
            }
            float[] back = new float[32];
            Q4_K.INSTANCE.dequantizeRow(q, 0, back, 0);
            assertArrayEquals(x, back);
        }
    }
}
