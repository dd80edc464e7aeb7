package dev.marble.tensors;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector width every kernel uses, chosen once per JVM. The default is the machine's preferred
 * width; {@code -Dmarble.vector.bits=128|256|512} forces a narrower one (tests run each width
 * the machine supports), and {@code -Dmarble.vector.bits=0} forces the scalar twins.
 */
public final class Simd {
    /** The float species of the kernels; kernels copy it into their own static final constant. */
    public static final VectorSpecies<Float> FLOAT;
    /** Whether the SIMD kernels run; false runs the scalar twins. */
    public static final boolean ENABLED;

    static {
        int preferred = FloatVector.SPECIES_PREFERRED.vectorBitSize();
        int bits = Integer.getInteger("marble.vector.bits", preferred);
        if (bits == 0) {
            ENABLED = false;
            FLOAT = FloatVector.SPECIES_128;
        } else {
            if (bits != 128 && bits != 256 && bits != 512 || bits > preferred) {
                throw new MarbleException("marble.vector.bits=" + bits + " is not supported here (128.."
                        + preferred + ", or 0 for scalar)");
            }
            ENABLED = true;
            FLOAT = VectorSpecies.of(float.class, VectorShape.forBitSize(bits));
        }
    }

    private Simd() {
    }

    /** Float lanes per vector. */
    public static int lanes() {
        return FLOAT.length();
    }

    /** The widest width this CPU supports, in bits. */
    public static int maxBits() {
        return FloatVector.SPECIES_PREFERRED.vectorBitSize();
    }

    /** One line for --verbose: which kernel path runs. */
    public static String describe() {
        return ENABLED
                ? "kernels: Vector API, " + FLOAT.vectorBitSize() + "-bit (" + lanes() + " float lanes), "
                        + Parallel.threads() + " threads"
                : "kernels: scalar, " + Parallel.threads() + " threads";
    }
}
