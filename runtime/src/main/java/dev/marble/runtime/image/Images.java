package dev.marble.runtime.image;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;

/** Conversions between images and the pipeline's float tensors. */
public final class Images {
    private Images() {
    }

    /**
     * NHWC float pixels in [0, 1] ([1, H, W, 3] or [H, W, 3]) → 8-bit RGB bytes, as diffusers'
     * numpy_to_pil does: round(x · 255) after clamping.
     */
    public static byte[] toRgb8(Tensor image) {
        return toRgb8(image.toFloatArray());
    }

    /** The same for a plain array of [0, 1] floats. */
    public static byte[] toRgb8(float[] v) {
        byte[] out = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            float x = Math.min(1f, Math.max(0f, v[i]));
            out[i] = (byte) (int) Math.rint(x * 255f); // numpy rounds half to even
        }
        return out;
    }

    /** Reads a PNG or JPEG as RGB floats in [0, 1], NHWC [1, H, W, 3] (alpha dropped). */
    public static float[] readRgb(Path file, int[] sizeOut) {
        if (!Files.isRegularFile(file)) {
            throw new MarbleException(file + ": no such image file");
        }
        BufferedImage img;
        try {
            img = ImageIO.read(file.toFile());
        } catch (IOException e) {
            throw new MarbleException(file + ": cannot read image: " + e.getMessage());
        }
        if (img == null) {
            throw new MarbleException(file + ": not a PNG or JPEG image");
        }
        int w = img.getWidth();
        int h = img.getHeight();
        float[] out = new float[h * w * 3];
        int[] row = new int[w];
        for (int y = 0; y < h; y++) {
            img.getRGB(0, y, w, 1, row, 0, w);
            for (int x = 0; x < w; x++) {
                int p = row[x];
                int o = (y * w + x) * 3;
                out[o] = ((p >> 16) & 0xff) / 255f;
                out[o + 1] = ((p >> 8) & 0xff) / 255f;
                out[o + 2] = (p & 0xff) / 255f;
            }
        }
        sizeOut[0] = h;
        sizeOut[1] = w;
        return out;
    }
}
