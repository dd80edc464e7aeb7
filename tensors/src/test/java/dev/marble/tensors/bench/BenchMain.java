package dev.marble.tensors.bench;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;

/**
 * Runs JMH with the given command line (the same arguments as {@code org.openjdk.jmh.Main}), then
 * prints one line per benchmark and parameter set: its FLOP/s from the {@link FlopCounter}, the
 * fraction of the machine's nominal fp32 peak, and, when {@link GemmBenchYardstick} ran too, the
 * fraction of the yardstick with the same {@code threads} (what the cores deliver right now).
 */
public final class BenchMain {
    /** fp32 peak of the 2-core target: 2 cores × 16 lanes × 2 flops (FMA) × ~3.6 GHz. */
    static final double PEAK_GFLOPS = 230;
    /** One core's share of the peak; a {@code threads} parameter of 1 is also compared with it. */
    static final double CORE_GFLOPS = 115;

    private BenchMain() {
    }

    public static void main(String[] args) throws RunnerException, CommandLineOptionException, IOException {
        CommandLineOptions options = new CommandLineOptions(args);
        if (options.shouldHelp() || options.shouldList() || options.shouldListWithParams()
                || options.shouldListProfilers() || options.shouldListResultFormats()) {
            org.openjdk.jmh.Main.main(args);
            return;
        }
        Collection<RunResult> results = new Runner(options).run();
        System.out.println();
        System.out.println(table(results));
    }

    static String table(Collection<RunResult> results) {
        Map<String, Double> yardstick = new HashMap<>();
        for (RunResult r : results) {
            Result<?> flop = r.getSecondaryResults().get("flop");
            if (r.getParams().getBenchmark().endsWith(GemmBenchYardstick.class.getSimpleName() + ".fma") && flop != null) {
                yardstick.put(r.getParams().getParam("threads"), flop.getScore() / 1e9);
            }
        }
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"Benchmark", "Params", "GFLOP/s", "of 230 peak", "of 115 core", "of yardstick"});
        for (RunResult r : results) {
            String name = r.getParams().getBenchmark();
            name = name.substring(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1);
            StringBuilder params = new StringBuilder();
            for (String key : r.getParams().getParamsKeys()) {
                params.append(params.isEmpty() ? "" : " ").append(key).append('=').append(r.getParams().getParam(key));
            }
            Result<?> flop = r.getSecondaryResults().get("flop");
            if (flop == null) {
                Result<?> p = r.getPrimaryResult();
                rows.add(new String[] {name, params.toString(), String.format(Locale.ROOT, "(%.3g %s)", p.getScore(),
                        p.getScoreUnit()), "", "", ""});
                continue;
            }
            double gflops = flop.getScore() / 1e9;
            String threads = r.getParams().getParam("threads");
            Double yard = threads == null ? null : yardstick.get(threads);
            rows.add(new String[] {name, params.toString(), String.format(Locale.ROOT, "%.1f", gflops),
                    String.format(Locale.ROOT, "%.0f%%", 100 * gflops / PEAK_GFLOPS),
                    "1".equals(threads) ? String.format(Locale.ROOT, "%.0f%%", 100 * gflops / CORE_GFLOPS) : "",
                    yard == null ? "" : String.format(Locale.ROOT, "%.0f%%", 100 * gflops / yard)});
        }
        int[] width = new int[rows.getFirst().length];
        for (String[] row : rows) {
            for (int i = 0; i < row.length; i++) {
                width[i] = Math.max(width[i], row[i].length());
            }
        }
        StringBuilder out = new StringBuilder();
        for (String[] row : rows) {
            for (int i = 0; i < row.length; i++) {
                String cell = i >= 2 ? " ".repeat(width[i] - row[i].length()) + row[i]
                        : row[i] + " ".repeat(width[i] - row[i].length());
                out.append(cell).append(i + 1 < row.length ? "  " : "\n");
            }
        }
        return out.toString();
    }
}
