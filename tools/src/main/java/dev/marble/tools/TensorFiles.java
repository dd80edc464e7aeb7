package dev.marble.tools;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.weights.SafetensorsFile;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Arrays;

/** Reading named input tensors for the stage commands, with one-line errors naming file and tensor. */
final class TensorFiles {
    private TensorFiles() {
    }

    /** Tensor {@code name} of {@code file} as a contiguous F32 copy in {@code arena}; rank checked when given. */
    static Tensor readF32(Path file, String name, Arena arena, int rank) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            if (!f.contains(name)) {
                throw new MarbleException(file + ": missing tensor '" + name + "' (has " + f.names() + ")");
            }
            Tensor t = f.tensor(name);
            if (!t.dtype().isFloatingPoint()) {
                throw new MarbleException(file + ": tensor '" + name + "' is " + t.dtype() + ", expected a float type");
            }
            if (rank >= 0 && t.rank() != rank) {
                throw new MarbleException(file + ": tensor '" + name + "' has shape " + Arrays.toString(t.shape())
                        + ", expected rank " + rank);
            }
            return Tensor.fromFloats(arena, t.toFloatArray(), t.shape());
        }
    }

    /** An integer tensor (token ids) as int rows [B][L]. */
    static int[][] readIds(Path file, String name) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            if (!f.contains(name)) {
                throw new MarbleException(file + ": missing tensor '" + name + "' (has " + f.names() + ")");
            }
            Tensor t = f.tensor(name);
            if (t.rank() != 2 || t.dtype() == DType.F32 || t.dtype().isFloatingPoint()) {
                throw new MarbleException(file + ": tensor '" + name + "' must be integer [B, L], got " + t);
            }
            int b = t.size(0);
            int l = t.size(1);
            int[][] ids = new int[b][l];
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < l; j++) {
                    ids[i][j] = (int) t.getFloat(i, j);
                }
            }
            return ids;
        }
    }
}
