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

int app_opts_parse(app_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    /* Flags without a value. */
    if (!strcmp(a, "--no-swa")) { o->sess.no_swa = true; return 1; }
    if (!strcmp(a, "--validate")) { o->rt.validate = true; return 1; }

    static const char *const with_value[] = {
        "-m", "--model", "-p", "--prompt", "-f", "--file", "-n", "--n-predict", "-c",
        "--ctx-size", "--ctx", "-s", "--seed", "--temp", "--top-k", "--top-p", "--min-p",
        "--repeat-penalty", "--repeat-last-n", "--device", "--kv-type", "--cache-type-k",
        "--cache-type-v", "-ctk", "-ctv", "--rope-factors", "-b", "--batch-size", "--tokenizer", NULL};
    bool known = false;
    for (int k = 0; with_value[k]; k++) known |= !strcmp(a, with_value[k]);
    if (!known) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "phivk: option %s needs a value\n", a);
        return -1;
    }
    const char *v = argv[++*i];
    long n;
    bool ok = true;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
    else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
    else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) o->prompt = v;
    else if (!strcmp(a, "-f") || !strcmp(a, "--file")) o->prompt_file = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
        ok = parse_long(v, -1, APP_MAX_N_PREDICT, &n);
        o->n_predict = (int32_t)n;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size") || !strcmp(a, "--ctx")) {
        if (!strcmp(v, "auto")) o->sess.ctx = 0;
        else {
            ok = parse_long(v, 1, 1 << 24, &n);
            o->sess.ctx = (int32_t)n;
        }
    } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
        ok = parse_long(v, 1, 1 << 16, &n);
        o->sess.batch = (int32_t)n;
    } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        ok = !errno && end != v && !*end;
        o->samp.seed = s;
        o->seed_given = true;
    } else if (!strcmp(a, "--temp")) {
        ok = parse_float(v, 0, 100, &o->samp.temp);
        o->temp_given = true;
    }
    else if (!strcmp(a, "--top-k")) {
        ok = parse_long(v, 0, 1 << 30, &n);
        o->samp.top_k = (int32_t)n;
    } else if (!strcmp(a, "--top-p")) ok = parse_float(v, 0, 1, &o->samp.top_p);
    else if (!strcmp(a, "--min-p")) ok = parse_float(v, 0, 1, &o->samp.min_p);
    else if (!strcmp(a, "--repeat-penalty")) ok = parse_float(v, 0, 100, &o->samp.repeat_penalty);
    else if (!strcmp(a, "--repeat-last-n")) {
        ok = parse_long(v, 0, 1 << 20, &n);
        o->samp.repeat_last_n = (int32_t)n;
    } else if (!strcmp(a, "--device")) o->rt.device = v;
    else if (!strcmp(a, "--kv-type")) {
        ok = phivk_kv_type_parse(v, &o->sess.k_type);
        o->sess.v_type = o->sess.k_type;
    } else if (!strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk")) ok = phivk_kv_type_parse(v, &o->sess.k_type);
    else if (!strcmp(a, "--cache-type-v") || !strcmp(a, "-ctv")) ok = phivk_kv_type_parse(v, &o->sess.v_type);
    else if (!strcmp(a, "--rope-factors")) {
        if (!strcmp(v, "auto")) o->sess.rope_factors = PHIVK_ROPE_AUTO;
        else if (!strcmp(v, "short")) o->sess.rope_factors = PHIVK_ROPE_SHORT;
        else if (!strcmp(v, "long")) o->sess.rope_factors = PHIVK_ROPE_LONG;
        else ok = false;
    }
    if (!ok) {
        fprintf(stderr, "phivk: bad value '%s' for %s\n", v, a);
        return -1;
    }
    return 1;
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
