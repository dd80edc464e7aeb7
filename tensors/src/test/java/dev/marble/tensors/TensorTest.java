package dev.marble.tensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

class TensorTest {
    @Test
    void viewsShareMemoryAndIndexCorrectly() {
        try (Arena arena = Arena.ofConfined()) {
            float[] v = new float[24];
            for (int i = 0; i < v.length; i++) {
                v[i] = i;
            }
            Tensor t = Tensor.fromFloats(arena, v, 2, 3, 4);
            assertEquals(13f, t.getFloat(1, 0, 1));
            Tensor p = t.permute(2, 0, 1); // [4, 2, 3]
            assertArrayEquals(new long[] {4, 2, 3}, p.shape());
            assertEquals(t.getFloat(1, 2, 3), p.getFloat(3, 1, 2));
            Tensor s = t.slice(1, 1, 3); // [2, 2, 4]
            assertEquals(t.getFloat(1, 2, 0), s.getFloat(1, 1, 0));
            Tensor c = p.contiguous(arena);
            assertEquals(p.getFloat(2, 1, 0), c.getFloat(2, 1, 0));
            assertArrayEquals(new long[] {6, 4}, t.reshape(-1, 4).shape());
            assertThrows(MarbleException.class, () -> p.reshape(24));
            assertThrows(MarbleException.class, () -> t.reshape(5, -1));
        }
    }
}
