package dev.marble.tools;

import java.io.PrintStream;
import java.util.Locale;

/** A one-line progress bar on stderr: steps done, it/s and ETA, redrawn in place. */
final class ProgressBar {
    private static final int WIDTH = 30;

    private final PrintStream out;
    private final String label;
    private final long startNanos = System.nanoTime();
    private boolean drawn;

    ProgressBar(PrintStream out, String label) {
        this.out = out;
        this.label = label;
    }

    void update(int done, int total) {
        double elapsed = (System.nanoTime() - startNanos) / 1e9;
        double rate = done > 0 ? done / elapsed : 0;
        int filled = total > 0 ? (int) Math.round((double) WIDTH * done / total) : 0;
        String bar = "#".repeat(filled) + ".".repeat(WIDTH - filled);
        String speed = rate >= 1 || rate == 0 ? String.format(Locale.ROOT, "%.2f it/s", rate)
                : String.format(Locale.ROOT, "%.2f s/it", 1 / rate);
        String eta = rate > 0 ? clock((total - done) / rate) : "--:--";
        out.print(String.format(Locale.ROOT, "\r%s [%s] %d/%d  %s  ETA %s  ", label, bar, done, total, speed, eta));
        out.flush();
        drawn = true;
    }

    /** Ends the line so later output starts on a fresh one. */
    void finish() {
        if (drawn) {
            out.println();
            drawn = false;
        }
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%02d:%02d", s / 60, s % 60);
    }
}
