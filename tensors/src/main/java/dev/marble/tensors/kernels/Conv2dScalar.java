package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twin of {@link Conv2d}: direct convolution, the test oracle. */
final class Conv2dScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Conv2dScalar() {
    }

    static void forward(Tensor x, ConvWeights w, int stride, int padTop, int padLeft, Tensor out) {
        int b = x.size(0);
        int h = x.size(1);
        int wd = x.size(2);
        int ic = x.size(3);
        int oh = out.size(1);
        int ow = out.size(2);
        int oc = out.size(3);
        int kh = w.kernelHeight();
        int kw = w.kernelWidth();
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        // Widen the weight once per call into [OC][KH][KW][IC] so the inner loop runs over IC.
        float[] wf = new float[oc * kh * kw * ic];
        for (int o = 0; o < oc; o++) {
            for (int y = 0; y < kh; y++) {
                for (int xx = 0; xx < kw; xx++) {
                    for (int i = 0; i < ic; i++) {
                        wf[((o * kh + y) * kw + xx) * ic + i] = w.get(o, i, y, xx);
                    }
                }
            }
        }
        Parallel.forChunks(b * oh, (chunk, r0, r1) -> {
            float[] pix = new float[ic];
            for (int r = r0; r < r1; r++) {
                int n = r / oh;
                int oy = r % oh;
                for (int ox = 0; ox < ow; ox++) {
                    long obase = (((long) n * oh + oy) * ow + ox) * oc;
                    for (int o = 0; o < oc; o++) {
                        os.setAtIndex(F, obase + o, w.bias(o));
                    }
                    for (int y = 0; y < kh; y++) {
                        int iy = oy * stride - padTop + y;
                        if (iy < 0 || iy >= h) {
                            continue;
                        }
                        for (int xx = 0; xx < kw; xx++) {
                            int ix = ox * stride - padLeft + xx;
                            if (ix < 0 || ix >= wd) {
                                continue;
                            }
                            MemorySegment.copy(xs, F, (((long) n * h + iy) * wd + ix) * ic * 4L, pix, 0, ic);
                            for (int o = 0; o < oc; o++) {
                                int wb = ((o * kh + y) * kw + xx) * ic;
                                float acc = 0f;
                                for (int i = 0; i < ic; i++) {
                                    acc += pix[i] * wf[wb + i];
                                }
                                os.setAtIndex(F, obase + o, os.getAtIndex(F, obase + o) + acc);
                            }
                        }
                    }
                }
            }
        });
    }
}
