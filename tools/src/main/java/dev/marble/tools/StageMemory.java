package dev.marble.tools;

import dev.marble.runtime.GenerationListener;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.StringJoiner;

/** The process's peak resident memory during the load and during each stage of a generation (--verbose). */
final class StageMemory {
    private final Map<String, Double> peaks = new LinkedHashMap<>();

    StageMemory() {
        BenchCommand.resetPeakRss();
    }

    /** The model is loaded: the peak so far is the load's. */
    void loaded() {
        peaks.put("load", BenchCommand.peakRssMb());
    }

    void started() {
        BenchCommand.resetPeakRss();
    }

    void finished(GenerationListener.Stage stage) {
        peaks.merge(stage.name().toLowerCase(Locale.ROOT).replace('_', '-'), BenchCommand.peakRssMb(), Math::max);
    }

    @Override
    public String toString() {
        StringJoiner j = new StringJoiner(", ");
        peaks.forEach((k, v) -> j.add(String.format(Locale.ROOT, "%s %.0f MB", k, v)));
        return j.toString();
    }
}
