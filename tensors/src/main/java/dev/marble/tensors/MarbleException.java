package dev.marble.tensors;

/**
 * The one unchecked exception family of Marble. Its message is a single line that names the file,
 * tensor or argument at fault and what is wrong with it; the CLI prints just that line.
 */
public class MarbleException extends RuntimeException {
    public MarbleException(String message) {
        super(message);
    }

    public MarbleException(String message, Throwable cause) {
        super(message, cause);
    }
}
