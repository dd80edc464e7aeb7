package dev.marble.runtime;

/** The parts of a Stable Diffusion model, named as a diffusers folder names its subfolders. */
public enum Component {
    TOKENIZER("tokenizer"), TEXT_ENCODER("text_encoder"), UNET("unet"), VAE("vae"), SCHEDULER("scheduler");

    private final String folder;

    Component(String folder) {
        this.folder = folder;
    }

    /** The subfolder name in a diffusers model. */
    public String folder() {
        return folder;
    }
}
