#include "app_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double app_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void app_opts_init(app_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = -1;
    o->rt = phivk_runtime_default_params();
    o->sess = phivk_session_default_params();
    o->samp = phivk_sampler_default_params();
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool app_parse_long(const char *s, long lo, long hi, long *out) { return parse_long(s, lo, hi, out); }

static bool parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

/* The shared options, once: their names (llama.cpp's where one exists), whether
 * they take a value, and which group they belong to (bench takes the session's). */
typedef enum opt_id {
    OPT_MODEL, OPT_TOKENIZER, OPT_PROMPT, OPT_FILE, OPT_N_PREDICT, OPT_CTX, OPT_BATCH, OPT_SEED,
    OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REPEAT_PENALTY, OPT_REPEAT_LAST_N, OPT_DEVICE,
    OPT_KV_TYPE, OPT_K_TYPE, OPT_V_TYPE, OPT_ROPE_FACTORS, OPT_NO_SWA, OPT_VALIDATE,
} opt_id;

static const struct {
    opt_id id;
    const char *names[4];
    bool value;
    unsigned groups;
} shared_opts[] = {
    {OPT_MODEL, {"-m", "--model"}, true, APP_OPT_MODEL},
    {OPT_TOKENIZER, {"--tokenizer"}, true, APP_OPT_MODEL},
    {OPT_PROMPT, {"-p", "--prompt"}, true, APP_OPT_MODEL},
    {OPT_FILE, {"-f", "--file"}, true, APP_OPT_MODEL},
    {OPT_N_PREDICT, {"-n", "--n-predict"}, true, APP_OPT_MODEL},
    {OPT_CTX, {"-c", "--ctx-size", "--ctx"}, true, APP_OPT_MODEL},
    {OPT_BATCH, {"-b", "--batch-size"}, true, APP_OPT_MODEL},
    {OPT_SEED, {"-s", "--seed"}, true, APP_OPT_MODEL},
    {OPT_TEMP, {"--temp"}, true, APP_OPT_MODEL},
    {OPT_TOP_K, {"--top-k"}, true, APP_OPT_MODEL},
    {OPT_TOP_P, {"--top-p"}, true, APP_OPT_MODEL},
    {OPT_MIN_P, {"--min-p"}, true, APP_OPT_MODEL},
    {OPT_REPEAT_PENALTY, {"--repeat-penalty"}, true, APP_OPT_MODEL},
    {OPT_REPEAT_LAST_N, {"--repeat-last-n"}, true, APP_OPT_MODEL},
    {OPT_DEVICE, {"--device"}, true, APP_OPT_MODEL},
    {OPT_KV_TYPE, {"--kv-type"}, true, APP_OPT_MODEL | APP_OPT_SESSION},
    {OPT_K_TYPE, {"--cache-type-k", "-ctk"}, true, APP_OPT_MODEL | APP_OPT_SESSION},
    {OPT_V_TYPE, {"--cache-type-v", "-ctv"}, true, APP_OPT_MODEL | APP_OPT_SESSION},
    {OPT_ROPE_FACTORS, {"--rope-factors"}, true, APP_OPT_MODEL | APP_OPT_SESSION},
    {OPT_NO_SWA, {"--no-swa"}, false, APP_OPT_MODEL | APP_OPT_SESSION},
    {OPT_VALIDATE, {"--validate"}, false, APP_OPT_MODEL},
};

/* The entry of shared_opts named a within groups, or -1. */
static int find_opt(const char *a, unsigned groups) {
    for (size_t k = 0; k < sizeof shared_opts / sizeof shared_opts[0]; k++)
        for (int j = 0; j < 4 && shared_opts[k].names[j]; j++)
            if ((shared_opts[k].groups & groups) && !strcmp(a, shared_opts[k].names[j])) return (int)k;
    return -1;
}

int app_opts_parse_group(app_opts *o, int argc, char **argv, int *i, unsigned groups) {
    const char *a = argv[*i];
    int k = find_opt(a, groups);
    if (k < 0) return 0;
    const char *v = NULL;
    if (shared_opts[k].value) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "phivk: option %s needs a value\n", a);
            return -1;
        }
        v = argv[++*i];
    }
    long n;
    bool ok = true;
    switch (shared_opts[k].id) {
    case OPT_MODEL: o->model = v; break;
    case OPT_TOKENIZER: o->tokenizer = v; break;
    case OPT_PROMPT: o->prompt = v; break;
    case OPT_FILE: o->prompt_file = v; break;
    case OPT_N_PREDICT:
        ok = parse_long(v, -1, APP_MAX_N_PREDICT, &n);
        o->n_predict = (int32_t)n;
        break;
    case OPT_CTX:
        if (!strcmp(v, "auto")) o->sess.ctx = 0;
        else {
            ok = parse_long(v, 1, 1 << 24, &n);
            o->sess.ctx = (int32_t)n;
        }
        break;
    case OPT_BATCH:
        ok = parse_long(v, 1, 1 << 16, &n);
        o->sess.batch = (int32_t)n;
        break;
    case OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        ok = !errno && end != v && !*end;
        o->samp.seed = s;
        o->seed_given = true;
        break;
    }
    case OPT_TEMP:
        ok = parse_float(v, 0, 100, &o->samp.temp);
        o->temp_given = true;
        break;
    case OPT_TOP_K:
        ok = parse_long(v, 0, 1 << 30, &n);
        o->samp.top_k = (int32_t)n;
        break;
    case OPT_TOP_P: ok = parse_float(v, 0, 1, &o->samp.top_p); break;
    case OPT_MIN_P: ok = parse_float(v, 0, 1, &o->samp.min_p); break;
    case OPT_REPEAT_PENALTY: ok = parse_float(v, 0, 100, &o->samp.repeat_penalty); break;
    case OPT_REPEAT_LAST_N:
        ok = parse_long(v, 0, 1 << 20, &n);
        o->samp.repeat_last_n = (int32_t)n;
        break;
    case OPT_DEVICE: o->rt.device = v; break;
    case OPT_KV_TYPE:
        ok = phivk_kv_type_parse(v, &o->sess.k_type);
        o->sess.v_type = o->sess.k_type;
        break;
    case OPT_K_TYPE: ok = phivk_kv_type_parse(v, &o->sess.k_type); break;
    case OPT_V_TYPE: ok = phivk_kv_type_parse(v, &o->sess.v_type); break;
    case OPT_ROPE_FACTORS:
        if (!strcmp(v, "auto")) o->sess.rope_factors = PHIVK_ROPE_AUTO;
        else if (!strcmp(v, "short")) o->sess.rope_factors = PHIVK_ROPE_SHORT;
        else if (!strcmp(v, "long")) o->sess.rope_factors = PHIVK_ROPE_LONG;
        else ok = false;
        break;
    case OPT_NO_SWA: o->sess.no_swa = true; break;
    case OPT_VALIDATE: o->rt.validate = true; break;
    }
    if (!ok) {
        fprintf(stderr, "phivk: bad value '%s' for %s\n", v, a);
        return -1;
    }
    return 1;
}

int app_opts_parse(app_opts *o, int argc, char **argv, int *i) {
    return app_opts_parse_group(o, argc, argv, i, APP_OPT_MODEL);
}

int app_parse_args(app_opts *o, int argc, char **argv, const char *cmd, void (*usage)(void),
                   const app_option *own, const char **second) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        const app_option *opt = own;
        while (opt && opt->name && strcmp(opt->name, a)) opt++;
        if (opt && opt->name) {
            if (opt->flag) {
                *opt->flag = true;
            } else if (i + 1 < argc) {
                *opt->value = argv[++i];
            } else {
                fprintf(stderr, "phivk %s: option %s needs a value\n", cmd, a);
                return 2;
            }
            continue;
        }
        int r = app_opts_parse(o, argc, argv, &i);
        if (r < 0) return 2;
        if (r > 0) continue;
        if ((a[0] == '-' && a[1]) || (o->model && (!second || *second))) {
            fprintf(stderr, "phivk %s: unexpected argument '%s' (see --help)\n", cmd, a);
            return 2;
        }
        if (!o->model) o->model = a;
        else *second = a;
    }
    return -1;
}

void app_opts_usage(void) {
    printf("model options:\n"
           "  -m, --model FILE        GGUF model (or give it as the first argument)\n"
           "  --tokenizer FILE        the model is a llama2.c .bin with this tokenizer.bin\n"
           "  -c, --ctx N|auto        context in tokens (default auto: the model's trained context\n"
           "                          up to 131072, reduced to fit)\n"
           "  -b, --batch-size N      prefill chunk (default 512)\n"
           "  --kv-type f16|q8_0|q4_0 KV cache type for K and V (-ctk / -ctv for each)\n"
           "  --rope-factors auto|short|long  LongRoPE table (default auto)\n"
           "  --no-swa                ignore the Phi-3 sliding window\n"
           "  --device N|NAME         Vulkan device (see 'phivk devices')\n"
           "sampling:\n"
           "  -n, --n-predict N       tokens to generate (-1: until a stop token)\n"
           "  -s, --seed N            random seed\n"
           "  --temp T                temperature (0: greedy; default %.2f)\n"
           "  --top-k K  --top-p P  --min-p P  --repeat-penalty R  --repeat-last-n N\n",
           (double)phivk_sampler_default_params().temp);
}

char *app_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "phivk: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "phivk: cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

void app_write_generated(FILE *out, const char *text, size_t n) {
    if (!isatty(fileno(out))) {
        fwrite(text, 1, n, out);
    } else {
        char small[4 * 256 + 1], *buf = n <= 256 ? small : malloc(4 * n + 1);
        if (buf) fwrite(buf, 1, phivk_text_visible(text, n, true, buf, 4 * n + 1), out);
        if (buf != small) free(buf);
    }
    fflush(out);
}

/* On a terminal: a bar once the stage has run for a second, redrawn at most 10
 * times a second, ended with a newline when done == total. Into a log (stderr not
 * a terminal): a plain line every 5 seconds and at the end. */
void app_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
    static const char *cur_stage;
    static double start, last;
    static bool shown;
    double now = app_now();
    (void)user;
    if (stage != cur_stage || done == 0) {
        cur_stage = stage;
        start = now;
        last = now;
        shown = false;
    }
    bool finished = done >= total, tty = isatty(STDERR_FILENO);
    if (now - start < 1.0 && !(shown && finished)) return;
    if (!finished && now - last < (tty ? 0.1 : 5.0)) return;
    last = now;
    shown = true;
    double frac = total ? (double)done / total : 1;
    double rate = done / (now - start + 1e-9);
    double eta = rate > 0 ? (total - done) / rate : 0;
    if (!tty) {
        fprintf(stderr, "%s: %llu/%llu (%.1f/s, ETA %.0fs)\n", stage, (unsigned long long)done,
                (unsigned long long)total, rate, eta);
        return;
    }
    int width = 30, fill = (int)(frac * width);
    fprintf(stderr, "\r%s [%.*s%*s] %llu/%llu (%.1f/s, ETA %.0fs)  ", stage, fill,
            "##############################", width - fill, "", (unsigned long long)done,
            (unsigned long long)total, rate, eta);
    if (finished) fputc('\n', stderr);
    fflush(stderr);
}

void app_note_cpu_device(const phivk_runtime *rt) {
    static bool noted;
    if (!noted && !strcmp(phivk_runtime_device_kind(rt), "cpu")) {
        /* Said once: without a GPU, phivk is no faster than the CPU, and the native
         * CPU engines are faster than a CPU emulating a GPU. */
        fprintf(stderr, "phivk: %s is a CPU implementation of Vulkan, not a GPU: expect the speed of this "
                "machine's CPU (a native CPU engine is faster here); phivk uses a GPU's Vulkan driver "
                "when one is installed\n", phivk_runtime_device_name(rt));
        noted = true;
    }
}

bool app_model_open(const app_opts *o, app_model *am) {
    memset(am, 0, sizeof *am);
    if (!o->model) {
        fprintf(stderr, "phivk: no model given (use -m MODEL.gguf)\n");
        return false;
    }
    am->rt = phivk_runtime_create(&o->rt);
    if (!am->rt) goto fail;
    phivk_session_params sp = o->sess;
    sp.progress = app_progress;
    phivk_model_params mp = phivk_model_default_params();
    mp.progress = app_progress;
    mp.session = &sp;
    if (o->tokenizer) {
        /* a llama2.c checkpoint: converted in memory, in f32 as run.c computes */
        phivk_convert_params cp = phivk_convert_default_params();
        size_t size;
        cp.type = "f32";
        cp.tokenizer = o->tokenizer;
        if (phivk_convert_memory(o->model, &cp, &am->image, &size) != PHIVK_OK) goto fail;
        am->model = phivk_model_load_memory(am->rt, am->image, size, o->model, &mp);
    } else {
        am->model = phivk_model_load(am->rt, o->model, &mp);
    }
    if (!am->model) goto fail;
    am->sess = phivk_session_create(am->model, &sp);
    if (!am->sess) goto fail;
    app_note_cpu_device(am->rt);
    char *plan = phivk_session_plan_text(am->sess);
    if (plan) fprintf(stderr, "%s\n", plan);
    free(plan);
    return true;
fail:
    fprintf(stderr, "phivk: %s\n", phivk_last_error());
    app_model_close(am);
    return false;
}

void app_model_close(app_model *am) {
    phivk_session_free(am->sess);
    phivk_model_free(am->model);
    free(am->image);
    phivk_runtime_free(am->rt);
    memset(am, 0, sizeof *am);
}
