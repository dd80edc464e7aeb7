package dev.marble.runtime.image;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PngTest {
    @Test
    void javaImageIoReadsBackTheExactPixelsAndTheTextChunks(@TempDir Path dir) throws Exception {
        int w = 13;
        int h = 7;
        byte[] rgb = new byte[w * h * 3];
        new Random(1).nextBytes(rgb);
        Map<String, String> text = new LinkedHashMap<>();
        text.put("parameters", "a cat\nSteps: 20, Seed: 42");
        text.put("comment", "猫");
        Path out = dir.resolve("x.png");
        Png.write(out, w, h, rgb, text);
        BufferedImage img = ImageIO.read(out.toFile());
        assertEquals(w, img.getWidth());
        assertEquals(h, img.getHeight());
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int p = img.getRGB(x, y);
                int o = (y * w + x) * 3;
                assertEquals(rgb[o] & 0xff, (p >> 16) & 0xff);
                assertEquals(rgb[o + 1] & 0xff, (p >> 8) & 0xff);
                assertEquals(rgb[o + 2] & 0xff, p & 0xff);
            }
        }
        String raw = new String(Files.readAllBytes(out), StandardCharsets.ISO_8859_1);
        assertTrue(raw.contains("tEXtparameters\0a cat\nSteps: 20, Seed: 42"));
        assertTrue(raw.contains("iTXtcomment\0\0\0\0\0"));
        assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(out)));
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "no temporary file is left behind");
        }
    }
}
