package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;

/**
 * A diffusion sampler, as the diffusers scheduler classes of the same names. It sees only latents
 * (F32, NCHW), model outputs and a random generator, never weights. The sampling loop is:
 *
 * <pre>
 * x = noise * initNoiseSigma()                       // or addNoise(image latents, noise, start) for img2img
 * for (int i = start; i &lt; timesteps().length; i++) {
 *     Tensor in = scaleModelInput(x, i);
 *     Tensor eps = model(in, timesteps()[i]);          // guidance is the pipeline's business
 *     x = step(eps, i, x, generator);
 * }
 * </pre>
 *
 * <p>An instance is made for one generation with a fixed number of inference steps and holds that
 * generation's state (PNDM's and LMS's history, DPM-Solver's previous outputs, ...): create a fresh one
 * per generation (see {@link Schedulers#create}), and call {@link #step} once per index, in order.
 * Tensors it returns live in the arena it was created with. Not thread-safe.
 */
public interface Scheduler {
    /** The diffusers class this scheduler reproduces, e.g. "EulerDiscreteScheduler". */
    String className();

    /** The number of inference steps it was made for. */
    int numInferenceSteps();

    /**
     * The timestep passed to the model at each step index (float32; fractional for some schedules).
     * PNDM repeats one timestep, so its array has numInferenceSteps + 1 entries.
     */
    float[] timesteps();

    /** The sigma of each step plus the final one, for the sigma-based samplers; empty for the others. */
    float[] sigmas();

    /** The training schedule's betas [T] (float32). */
    float[] betas();

    /** The training schedule's cumulative alphas [T] (float32). */
    float[] alphasCumprod();

    /** Standard deviation of the initial noise: txt2img latents are {@code randn * initNoiseSigma()}. */
    float initNoiseSigma();

    /** The model input for step {@code stepIndex}; the sample itself when this scheduler does not scale. */
    Tensor scaleModelInput(Tensor sample, int stepIndex);

    /**
     * One denoising step: from the (guided) model output at {@code timesteps()[stepIndex]} and the
     * current sample, the sample at the next step. {@code generator} is only drawn from by samplers
     * that inject noise (DDPM, Euler ancestral, LCM, DDIM with eta > 0, ...), exactly as often as
     * diffusers does; it may be null for the others.
     */
    Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator);

    /** Noises clean latents to the level of step {@code stepIndex} (img2img's starting point). */
    Tensor addNoise(Tensor original, Tensor noise, int stepIndex);

    /** diffusers' {@code scheduler.order}: model calls per step (1 for every scheduler here). */
    default int order() {
        return 1;
    }

    /**
     * The first step index of an img2img run with {@code strength} in [0, 1], as diffusers'
     * {@code get_timesteps}: init = min(int(N * strength), N), start = max(N - init, 0) * order.
     */
    default int img2imgStartIndex(double strength) {
        if (!(strength >= 0 && strength <= 1)) {
            throw new MarbleException("img2img strength " + strength + " is not in [0, 1]");
        }
        int n = numInferenceSteps();
        int init = Math.min((int) (n * strength), n);
        return Math.max(n - init, 0) * order();
    }
}
