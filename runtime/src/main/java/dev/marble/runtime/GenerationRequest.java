package dev.marble.runtime;

import dev.marble.tensors.MarbleException;
import java.util.OptionalLong;

/**
 * What to generate. Immutable; build with {@link #builder()}. Defaults: 20 steps (as A1111),
 * guidance 7.5, the model's own scheduler, and the model's own size (its UNet sample size times the
 * VAE's downscale factor).
 *
 * @param prompt         the text to draw
 * @param negativePrompt the text to steer away from ("" by default)
 * @param steps          denoising steps (for img2img, before the strength cut)
 * @param cfgScale       classifier-free guidance scale; ≤ 1 skips the unconditional pass
 * @param guidanceRescale diffusers' {@code guidance_rescale} in [0, 1]: 0 (the default) is plain
 *                       guidance; about 0.7 suits models trained with zero terminal SNR
 * @param sampler        scheduler name (golden ids such as "euler_a" or A1111 names such as "Euler a"); null = the model's own
 * @param seed           torch-compatible seed; empty = a random one, reported in the result
 * @param width          image width in pixels, a multiple of the VAE's downscale factor; 0 = the model's default
 * @param height         image height in pixels; 0 = the model's default
 * @param batchCount     images to make one after another, image i with seed + i
 * @param initLatents    starting latents [1, C, h, w] (NCHW, row-major) replacing the seeded noise, or null
 * @param initImage      img2img source pixels NHWC [1, H, W, 3] in [0, 1], or null
 * @param strength       img2img strength in (0, 1]
 */
public record GenerationRequest(String prompt, String negativePrompt, int steps, double cfgScale,
        double guidanceRescale, String sampler, OptionalLong seed, int width, int height, int batchCount,
        Image initLatents, Image initImage, double strength) {

    /** A float tensor passed by value: row-major data and its shape. */
    public record Image(float[] data, long[] shape) {
    }

    public GenerationRequest {
        if (prompt == null) {
            throw new MarbleException("prompt: missing");
        }
        if (negativePrompt == null) {
            negativePrompt = "";
        }
        if (steps < 1 || steps > 10_000) {
            throw new MarbleException("steps: must be between 1 and 10000, got " + steps);
        }
        if (!(cfgScale >= 0) || cfgScale > 1000) {
            throw new MarbleException("cfg scale: must be between 0 and 1000, got " + cfgScale);
        }
        if (!(guidanceRescale >= 0 && guidanceRescale <= 1)) {
            throw new MarbleException("guidance rescale: must be between 0 and 1, got " + guidanceRescale);
        }
        if (width < 0 || height < 0 || width > 16384 || height > 16384) {
            throw new MarbleException("size: " + width + "x" + height + " is out of range");
        }
        if (batchCount < 1 || batchCount > 10_000) {
            throw new MarbleException("batch count: must be at least 1, got " + batchCount);
        }
        if (initImage != null && !(strength > 0 && strength <= 1)) {
            throw new MarbleException("strength: must be in (0, 1], got " + strength);
        }
        if (seed == null) {
            seed = OptionalLong.empty();
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder with the defaults above. */
    public static final class Builder {
        private String prompt;
        private String negativePrompt = "";
        private int steps = 20;
        private double cfgScale = 7.5;
        private double guidanceRescale;
        private String sampler;
        private OptionalLong seed = OptionalLong.empty();
        private int width;
        private int height;
        private int batchCount = 1;
        private Image initLatents;
        private Image initImage;
        private double strength = 0.75;

        public Builder prompt(String v) {
            prompt = v;
            return this;
        }

        public Builder negativePrompt(String v) {
            negativePrompt = v;
            return this;
        }

        public Builder steps(int v) {
            steps = v;
            return this;
        }

        public Builder cfgScale(double v) {
            cfgScale = v;
            return this;
        }

        public Builder guidanceRescale(double v) {
            guidanceRescale = v;
            return this;
        }

        public Builder sampler(String v) {
            sampler = v;
            return this;
        }

        public Builder seed(long v) {
            seed = OptionalLong.of(v);
            return this;
        }

        public Builder size(int w, int h) {
            width = w;
            height = h;
            return this;
        }

        public Builder batchCount(int v) {
            batchCount = v;
            return this;
        }

        public Builder initLatents(float[] data, long... shape) {
            initLatents = new Image(data.clone(), shape.clone());
            return this;
        }

        public Builder initImage(float[] nhwc, int h, int w) {
            initImage = new Image(nhwc.clone(), new long[] {1, h, w, 3});
            return this;
        }

        public Builder strength(double v) {
            strength = v;
            return this;
        }

        public GenerationRequest build() {
            return new GenerationRequest(prompt, negativePrompt, steps, cfgScale, guidanceRescale, sampler, seed,
                    width, height, batchCount, initLatents, initImage, strength);
        }
    }
}
