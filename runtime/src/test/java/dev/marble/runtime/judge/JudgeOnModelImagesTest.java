package dev.marble.runtime.judge;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.runtime.image.Images;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * The judge on real model output: 27 images of the trained shapes model (test-data/judge/generated,
 * see labels.json for where they come from), whose colour and position were labelled by eye. Blurry
 * blobs, textured backgrounds and halos are what the true renders of {@link JudgeTest} lack.
 */
class JudgeOnModelImagesTest {
    @Test
    void judgeAgreesWithLabelsByEye() throws IOException {
        Path dir = Fixtures.testData().resolve("judge/generated");
        JsonNode labels = new ObjectMapper().readTree(dir.resolve("labels.json").toFile()).get("labels");
        int[] agree = new int[2];
        int[] labelled = new int[2];
        StringBuilder misses = new StringBuilder();
        for (JsonNode l : labels) {
            int[] hw = new int[2];
            float[] rgb = Images.readRgb(dir.resolve(l.get("file").asText()), hw);
            Judge.Verdict v = Judge.judge(rgb, hw[1], hw[0], l.get("caption").asText());
            Boolean[] judged = {v.colour(), v.position()};
            String[] part = {"colour", "position"};
            for (int i = 0; i < 2; i++) {
                JsonNode want = l.get(part[i]);
                if (want.isNull()) {
                    continue;
                }
                labelled[i]++;
                if (judged[i] != null && judged[i] == want.asBoolean()) {
                    agree[i]++;
                } else {
                    misses.append(String.format(Locale.ROOT, "%n  %s '%s': %s by eye %s, judge %s", l.get("file").asText(),
                            l.get("caption").asText(), part[i], want.asBoolean(), judged[i]));
                }
            }
        }
        String summary = String.format(Locale.ROOT, "colour %d/%d, position %d/%d agree%s", agree[0], labelled[0],
                agree[1], labelled[1], misses);
        System.out.println("judge vs labels by eye on model images: " + summary);
        assertTrue(labelled[0] >= 20 && labelled[1] >= 20, summary);
        assertTrue(agree[0] >= 0.85 * labelled[0], summary);
        assertTrue(agree[1] >= 0.85 * labelled[1], summary);
    }
}
