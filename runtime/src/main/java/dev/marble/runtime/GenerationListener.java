package dev.marble.runtime;

/** Hears each denoising step of a generation and may stop it between steps; may also hear its stages. */
@FunctionalInterface
public interface GenerationListener {
    /** The stages of a generation, in the order they run (the VAE encode only for img2img). */
    enum Stage {
        TEXT_ENCODER, VAE_ENCODE, UNET, VAE_DECODE
    }

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

    /** Called as a stage starts, before its component is loaded (when the model is staged). */
    default void stageStarted(Stage stage) {
    }

    /** Called after a stage, once its component (when staged) and its scratch memory are freed. */
    default void stageFinished(Stage stage) {
    }
}
