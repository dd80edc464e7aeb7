package dev.marble.runtime;

import dev.marble.runtime.image.Images;
import java.util.List;

/** The images of one {@link Marble#generate} call, one per batch-count entry. */
public record GenerationResult(List<Image> images) {
    public GenerationResult {
        images = List.copyOf(images);
    }

    /** The first (often the only) image. */
    public Image image() {
        return images.get(0);
    }

    /**
     * Seconds per stage of one image: the prompt encoding (shared by a batch, counted for its first
     * image), the denoising loop, and the VAE decode (with the img2img encode counted in denoising).
     * {@code loading} is the time spent loading components within the generation, which only a model
     * loaded with {@link LoadOptions#staged()} does (once per batch, counted for its first image); the
     * stage times do not include it.
     */
    public record Timings(double textEncoder, double denoising, int steps, double vaeDecode, double loading) {
        public double total() {
            return textEncoder + denoising + vaeDecode + loading;
        }
    }

    /**
     * One generated image.
     *
     * @param width        pixels
     * @param height       pixels
     * @param pixels       RGB in [0, 1], [height, width, 3] row-major, before 8-bit rounding
     * @param latents      the latents after the last step, before the division by the VAE scaling factor
     * @param latentShape  their shape [1, C, h, w]
     * @param seed         the seed this image was drawn with
     * @param parameters   the A1111-style parameters text stored in the PNG
     * @param timings      where the time went
     */
    public record Image(int width, int height, float[] pixels, float[] latents, long[] latentShape, long seed,
            String parameters, Timings timings) {
        /** 8-bit RGB, [height, width, 3]. */
        public byte[] rgb8() {
            return Images.toRgb8(pixels);
        }
    }
}
