package dev.marble.tools;

import dev.marble.tensors.MarbleException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code marble} command: parses arguments, runs a subcommand, maps errors to one line. */
@Command(name = "marble",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Text-to-image with Stable Diffusion models, in pure Java on the CPU.",
        subcommands = {GenerateCommand.class, TokenizeCommand.class, RunCommand.class, InspectCommand.class,
            SynthCommand.class, BenchCommand.class, QuantizeCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the CLI and returns the exit code (tests call this). */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            boolean verbose = Options.isVerbose(parsed);
            PrintWriter err = cmd.getErr();
            if (ex instanceof MarbleException) {
                err.println("marble: error: " + ex.getMessage());
            } else {
                err.println("marble: error: " + ex);
            }
            if (verbose) {
                ex.printStackTrace(err);
            }
            err.flush();
            return 1;
        });
        cl.setParameterExceptionHandler((ex, a) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("marble: error: " + ex.getMessage());
            err.println("Try 'marble " + commandPath(ex.getCommandLine()) + "--help' for usage.");
            err.flush();
            return 2;
        });
        return cl.execute(args);
    }

    private static String commandPath(CommandLine cl) {
        StringBuilder sb = new StringBuilder();
        for (CommandLine c = cl; c.getParent() != null; c = c.getParent()) {
            sb.insert(0, c.getCommandName() + " ");
        }
        return sb.toString();
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** --version prints the jar's version and the kernel path. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {
                "marble " + (v == null ? "dev" : v),
                "Java " + Runtime.version() + " (" + System.getProperty("java.vm.name") + ")",
            };
        }
    }
}
