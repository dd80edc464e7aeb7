package dev.marble.runtime;

import dev.marble.tensors.MarbleException;

/** Thrown when a {@link GenerationListener} cancels a generation. */
public final class GenerationCancelledException extends MarbleException {
    public GenerationCancelledException() {
        super("generation cancelled");
    }
}
