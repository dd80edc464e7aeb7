package dev.marble.runtime.schedulers;

import dev.marble.tensors.MarbleException;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Makes schedulers by name from a model's scheduler config, as
 * {@code SchedulerClass.from_config(pipe.scheduler.config, **overrides)} does in diffusers.
 *
 * <p>Names are case-insensitive, and '_' equals ' ': the A1111 sampler names ("Euler a", "DPM++ 2M
 * Karras", "PLMS", ...), short ids ("euler_a", "dpmpp_2m_karras", ...), the diffusers class names, and
 * "default" for the class named in the config's {@code _class_name}.
 *
 * <p>A scheduler holds the state of one generation: create a new one for every generation.
 */
public final class Schedulers {
    private interface Maker {
        Scheduler make(SchedulerConfig cfg, int steps, Arena arena);
    }

    private record Entry(String display, String className, Map<String, Object> overrides) {}

    private static final Map<String, Entry> BY_NAME = new LinkedHashMap<>();

    static {
        add(List.of("Euler a", "euler_ancestral"), EulerAncestralDiscreteScheduler.NAME, Map.of());
        add(List.of("Euler"), EulerDiscreteScheduler.NAME, Map.of());
        add(List.of("Euler Karras"), EulerDiscreteScheduler.NAME, Map.of("use_karras_sigmas", true));
        add(List.of("Euler trailing"), EulerDiscreteScheduler.NAME, Map.of("timestep_spacing", "trailing"));
        add(List.of("Euler linspace"), EulerDiscreteScheduler.NAME, Map.of("timestep_spacing", "linspace"));
        Map<String, Object> dpm2m = Map.of("algorithm_type", "dpmsolver++", "solver_order", 2);
        add(List.of("DPM++ 2M", "dpmpp_2m"), DPMSolverMultistepScheduler.NAME, dpm2m);
        add(List.of("DPM++ 2M Karras", "dpmpp_2m_karras"), DPMSolverMultistepScheduler.NAME,
                with(dpm2m, "use_karras_sigmas", true));
        Map<String, Object> sde = Map.of("algorithm_type", "sde-dpmsolver++", "solver_order", 2);
        add(List.of("DPM++ 2M SDE", "dpmpp_2m_sde"), DPMSolverMultistepScheduler.NAME, sde);
        add(List.of("DPM++ 2M SDE Karras", "dpmpp_2m_sde_karras"), DPMSolverMultistepScheduler.NAME,
                with(sde, "use_karras_sigmas", true));
        add(List.of("DDIM"), DDIMScheduler.NAME, Map.of());
        add(List.of("DDIM trailing"), DDIMScheduler.NAME, Map.of("timestep_spacing", "trailing"));
        add(List.of("PLMS"), PNDMScheduler.NAME, Map.of("skip_prk_steps", true));
        add(List.of("PNDM"), PNDMScheduler.NAME, Map.of());
        add(List.of("LMS"), LMSDiscreteScheduler.NAME, Map.of());
        add(List.of("LMS Karras"), LMSDiscreteScheduler.NAME, Map.of("use_karras_sigmas", true));
        add(List.of("LCM"), LCMScheduler.NAME, Map.of());
        add(List.of("DDPM"), DDPMScheduler.NAME, Map.of());
        for (String cls : List.of(PNDMScheduler.NAME, DDIMScheduler.NAME, DDPMScheduler.NAME,
                EulerDiscreteScheduler.NAME, EulerAncestralDiscreteScheduler.NAME,
                DPMSolverMultistepScheduler.NAME, LMSDiscreteScheduler.NAME, LCMScheduler.NAME)) {
            add(List.of(cls), cls, Map.of());
        }
    }

    private Schedulers() {}

    private static Map<String, Object> with(Map<String, Object> base, String key, Object value) {
        Map<String, Object> m = new LinkedHashMap<>(base);
        m.put(key, value);
        return m;
    }

    private static void add(List<String> names, String className, Map<String, Object> overrides) {
        Entry e = new Entry(names.get(0), className, overrides);
        for (String n : names) {
            BY_NAME.put(normalize(n), e);
        }
    }

    private static String normalize(String name) {
        return name.trim().toLowerCase(Locale.ROOT).replace('_', ' ').replaceAll("\\s+", " ");
    }

    /**
     * The A1111 display name of a sampler name ("euler_a" → "Euler a"); "default" names the class of
     * {@code config} the way A1111 does (PNDM's PLMS → "PLMS").
     */
    public static String displayName(String name, SchedulerConfig config) {
        String key = normalize(name);
        if (key.equals("default")) {
            String cls = config.className();
            for (Entry e : BY_NAME.values()) {
                if (e.className().equals(cls)) {
                    return e.display();
                }
            }
            return cls == null ? "default" : cls;
        }
        Entry e = BY_NAME.get(key);
        return e == null ? name : e.display();
    }

    /** The names {@link #create} accepts (one display form per sampler, then the class names and "default"). */
    public static List<String> names() {
        List<String> out = new ArrayList<>();
        for (Entry e : BY_NAME.values()) {
            if (!out.contains(e.display())) {
                out.add(e.display());
            }
        }
        out.add("default");
        return out;
    }

    /**
     * A new scheduler for one generation of {@code steps} inference steps. {@code config} is the
     * model's scheduler config ({@link SchedulerConfig#empty()} for the class defaults); result tensors
     * are allocated in {@code arena}. DDIM runs with eta = 0 (see {@link #ddim} for eta > 0).
     *
     * @throws MarbleException for an unknown name (the message lists the valid ones) or a config
     *         value the scheduler does not support
     */
    public static Scheduler create(String name, SchedulerConfig config, int steps, Arena arena) {
        if (name == null) {
            throw new MarbleException("scheduler name is missing; valid names: " + String.join(", ", names()));
        }
        String key = normalize(name);
        if (key.equals("default")) {
            String cls = config.className();
            if (cls == null || !BY_NAME.containsKey(normalize(cls))) {
                throw new MarbleException("scheduler config names class " + cls
                        + ", which is not supported; valid names: " + String.join(", ", names()));
            }
            return byClass(cls, config, steps, arena);
        }
        Entry e = BY_NAME.get(key);
        if (e == null) {
            throw new MarbleException("unknown scheduler '" + name + "'; valid names: " + String.join(", ", names()));
        }
        return byClass(e.className(), config.with(e.overrides()), steps, arena);
    }

    /** DDIM with {@code eta} (0 = deterministic; 1 = DDPM-like noise drawn from the generator each step). */
    public static Scheduler ddim(SchedulerConfig config, int steps, float eta, Arena arena) {
        return new DDIMScheduler(config, steps, eta, arena);
    }

    private static Scheduler byClass(String className, SchedulerConfig cfg, int steps, Arena arena) {
        Maker m = switch (className) {
            case PNDMScheduler.NAME -> PNDMScheduler::new;
            case DDIMScheduler.NAME -> (c, s, a) -> new DDIMScheduler(c, s, 0f, a);
            case DDPMScheduler.NAME -> DDPMScheduler::new;
            case EulerDiscreteScheduler.NAME -> EulerDiscreteScheduler::new;
            case EulerAncestralDiscreteScheduler.NAME -> EulerAncestralDiscreteScheduler::new;
            case DPMSolverMultistepScheduler.NAME -> DPMSolverMultistepScheduler::new;
            case LMSDiscreteScheduler.NAME -> LMSDiscreteScheduler::new;
            case LCMScheduler.NAME -> LCMScheduler::new;
            default -> throw new MarbleException("scheduler class " + className + " is not supported; valid names: "
                    + String.join(", ", names()));
        };
        return m.make(cfg, steps, arena);
    }
}
