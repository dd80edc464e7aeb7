package dev.marble.tools;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/** Options every subcommand shares: --verbose and --threads. */
public final class Options {
    @Option(names = {"-v", "--verbose"}, description = "Say which kernel path runs, list unused weights, show stack traces.")
    boolean verbose;

    @Option(names = "--threads", paramLabel = "N", description = "Worker threads (default: all cores).")
    Integer threads;

    /** Applies --threads and, with --verbose, reports the kernel path on stderr. */
    public void apply() {
        if (threads != null) {
            Parallel.setThreads(threads);
        }
        if (verbose) {
            System.err.println("marble: " + Simd.describe());
        }
    }

    public boolean verbose() {
        return verbose;
    }

    static boolean isVerbose(CommandLine.ParseResult parsed) {
        for (CommandLine.ParseResult p = parsed; p != null; p = p.subcommand()) {
            if (p.hasMatchedOption("--verbose")) {
                return true;
            }
        }
        return false;
    }
}
