package dev.marble.runtime;

/** Hears each denoising step of a generation and may stop it between steps. */
@FunctionalInterface
public interface GenerationListener {
    /** A listener that hears nothing and never cancels. */
    GenerationListener NONE = (image, step, total, timestep) -> true;

    /**
     * Called after each step.
     *
     * @param image    index of the image within the batch count
     * @param step     steps done so far (1-based)
     * @param total    steps in all
     * @param timestep the step's timestep
     * @return false to cancel: the generation then stops with {@link GenerationCancelledException}
     */
    boolean onStep(int image, int step, int total, double timestep);
}
