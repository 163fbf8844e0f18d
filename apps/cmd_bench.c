/* phivk bench: prompt processing and generation speed, as llama-bench measures
 * them, on a GGUF file or on a synthetic model of a named shape built in memory,
 * next to the device's read bandwidth measured by a compute kernel (the roofline a
 * memory-bound decode is held against; the copy engine's figure is shown as
 * information). Results on stdout (a table, or JSON); progress on stderr. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app_common.h"
#include "commands.h"

#define GIB (1024.0 * 1024 * 1024)
#define MAX_REPS 1000
/* --parallel: at most this many counts, each at most MAX_SEQS sequences. */
#define MAX_PARALLEL 8
#define MAX_SEQS 64
/* Tokens of the untimed and timed warm-up prefills. */
#define WARM_PREFILL 16

typedef struct bench_opts {
    const char *model, *shape, *type;
    int32_t n_prompt, n_gen, reps, batch;
    double max_seconds;
    uint64_t copy_bytes;
    int32_t parallel[MAX_PARALLEL]; /* tg with this many sequences decoding together */
    int n_parallel, max_seqs;
    bool json;
    phivk_runtime_params rt;
    app_opts run;            /* the session options bench shares with run (KV types, RoPE, SWA) */
} bench_opts;

/* One test (pp or tg) and its samples. */
typedef struct bench_test {
    char name[32];           /* "pp512", "tg128" */
    int32_t n_prompt, n_gen;
    int32_t seqs;            /* sequences decoding together (tg, --parallel); 0: one, alone */
    double *ts;              /* tokens per second of each repetition (all sequences) */
    double *ns;              /* nanoseconds of each repetition */
    double avg_ts, sd_ts, avg_ns, sd_ns;
    double weights_gbps;     /* tg: weight bytes per step x steps/s */
    double decode_gbps;      /* tg: weight plus KV-cache bytes per token x tokens/s */
    uint64_t kv_bytes;       /* tg: KV-cache bytes a token reads, on average */
    /* tg: per decode token, over every repetition (phivk_session_last_step) */
    double dispatches, barriers, host_ms, token_ms;
} bench_test;

/* What the table and the JSON say about the model and device. */
typedef struct bench_model {
    const char *name, *arch, *type, *device;
    char *kernels;            /* phivk_model_kernels_text, owned */
    uint64_t size, token_bytes, kv_bytes_per_pos;
    int64_t params;
    double copy_gbps, read_gbps;
} bench_model;

static void names_line(FILE *out, const char *what, const char *const *names) {
    fprintf(out, "  %s:", what);
    for (int i = 0; names[i]; i++) fprintf(out, " %s", names[i]);
    fputc('\n', out);
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: phivk bench [-m MODEL.gguf | --shape NAME --type TYPE] [OPTIONS]\n\n"
            "Prompt processing (ppN) and generation (tgN) speed in tokens/s, mean +- standard\n"
            "deviation over the repetitions, and decode's bandwidth (weight plus KV-cache bytes\n"
            "read per token x tokens/s) as a fraction of the device's read bandwidth, measured\n"
            "by a compute kernel reading a buffer of twice --copy-mib. Per decode token: the\n"
            "dispatches, the barriers and the host time recording and submitting.\n"
            "Without -m it benchmarks a synthetic model of the named shape, built in memory\n"
            "(random weights; layers share bytes, so the sizes are real and the build fast).\n\n"
            "  -m, --model FILE        benchmark a GGUF file\n"
            "  --shape NAME            synthetic model shape (default phi3-mini)\n"
            "  --type TYPE             synthetic weight type (default q4_k_m)\n"
            "  -p, --n-prompt N        prompt tokens for pp (default 512; 0 skips pp)\n"
            "  -n, --n-gen N           generated tokens for tg (default 128; 0 skips tg)\n"
            "  -r, --repetitions N     repetitions of each test (default 3), in rounds: each\n"
            "                          round runs every test once\n"
            "  -b, --batch-size N      prefill chunk (default 512)\n"
            "  --parallel N,N,...      tg with N sequences decoding together (one step for all:\n"
            "                          phivk_decode_batch), aggregate tokens/s, one row per N\n"
            "  --max-seconds S         refuse runs projected to take longer (default 600)\n"
            "  --copy-mib N            buffer size of the copy-bandwidth test (default 256;\n"
            "                          the read test reads twice as much)\n"
            "  --device N|NAME         Vulkan device (see 'phivk devices')\n"
            "  --kv-type T, -ctk T, -ctv T  KV cache type f16|q8_0|q4_0 (both, K, V)\n"
            "  --rope-factors auto|short|long, --no-swa  as for 'phivk run'\n"
            "  --json                  JSON records on stdout instead of the table\n");
    names_line(out, "shapes", phivk_synth_shapes());
    names_line(out, "types", phivk_synth_types());
}

/* "1,4,8" into o->parallel; false for anything else. */
static bool parse_parallel(const char *v, bench_opts *o) {
    char buf[128];
    if (strlen(v) >= sizeof buf) return false;
    strcpy(buf, v);
    o->n_parallel = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long n;
        if (o->n_parallel == MAX_PARALLEL || !app_parse_long(tok, 1, MAX_SEQS, &n)) return false;
        o->parallel[o->n_parallel++] = (int32_t)n;
        if (n > o->max_seqs) o->max_seqs = (int32_t)n;
    }
    return o->n_parallel > 0;
}

/* Parses argv; 0 to run, else the exit status (help: 0 via *done). */
static int parse(int argc, char **argv, bench_opts *o, bool *done) {
    *o = (bench_opts){.shape = "phi3-mini", .type = "q4_k_m", .n_prompt = 512, .n_gen = 128,
                      .reps = 3, .batch = 512, .max_seconds = 600, .copy_bytes = 256u << 20,
                      .rt = phivk_runtime_default_params()};
    *done = false;
    app_opts_init(&o->run);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            *done = true;
            return 0;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--validate")) {
            o->rt.validate = true;
            continue;
        }
        int took = app_opts_parse_group(&o->run, argc, argv, &i, APP_OPT_SESSION);
        if (took < 0) return 2;
        if (took) continue;
        if (a[0] != '-' && !o->model) {
            o->model = a;
            continue;
        }
        if (a[0] != '-' || i + 1 >= argc) {
            fprintf(stderr, "phivk bench: %s '%s' (see --help)\n",
                    a[0] == '-' ? "option needs a value:" : "unexpected argument", a);
            return 2;
        }
        const char *v = argv[++i];
        long n = 0;
        bool ok = true;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--shape")) o->shape = v;
        else if (!strcmp(a, "--type")) o->type = v;
        else if (!strcmp(a, "--device")) o->rt.device = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            ok = app_parse_long(v, 0, 1 << 20, &n);
            o->n_prompt = (int32_t)n;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            ok = app_parse_long(v, 0, 1 << 20, &n);
            o->n_gen = (int32_t)n;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            ok = app_parse_long(v, 1, MAX_REPS, &n);
            o->reps = (int32_t)n;
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            ok = app_parse_long(v, 1, 1 << 16, &n);
            o->batch = (int32_t)n;
        } else if (!strcmp(a, "--max-seconds")) {
            ok = app_parse_long(v, 1, 1L << 30, &n);
            o->max_seconds = (double)n;
        } else if (!strcmp(a, "--parallel")) {
            ok = parse_parallel(v, o);
        } else if (!strcmp(a, "--copy-mib")) {
            ok = app_parse_long(v, 1, 1 << 16, &n);
            o->copy_bytes = (uint64_t)n << 20;
        } else {
            fprintf(stderr, "phivk bench: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "phivk bench: bad value '%s' for %s (see --help)\n", v, a);
            return 2;
        }
    }
    if (!o->n_prompt && !o->n_gen) {
        fprintf(stderr, "phivk bench: -p and -n are both 0: nothing to measure\n");
        return 2;
    }
    if (o->n_parallel && !o->n_gen) {
        fprintf(stderr, "phivk bench: --parallel measures generation, but -n is 0\n");
        return 2;
    }
    if (o->max_seqs > o->batch) {
        fprintf(stderr, "phivk bench: --parallel %d exceeds the batch size %d (-b)\n", o->max_seqs, o->batch);
        return 2;
    }
    if (!o->model) {
        phivk_synth_info info;
        if (phivk_synth_describe(o->shape, o->type, &info) != PHIVK_OK) {
            fprintf(stderr, "phivk bench: %s\n", phivk_last_error());
            return 2;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ memory, time */

/* The largest shape (other than shape) whose type-weights plus a KV cache of ctx
 * tokens stay under limit bytes of weights+KV; NULL when none. */
static const char *smaller_shape(const char *shape, const char *type, int32_t ctx, uint64_t limit) {
    const char *best = NULL;
    uint64_t best_bytes = 0;
    const char *const *names = phivk_synth_shapes();
    for (int i = 0; names[i]; i++) {
        phivk_synth_info info;
        if (!strcmp(names[i], shape) || phivk_synth_describe(names[i], type, &info) != PHIVK_OK)
            continue;
        uint64_t need = info.bytes + info.kv_bytes_per_token * (uint64_t)ctx;
        /* of near-equal shapes (phi3-mini and its 128k variant) the first listed */
        if (need <= limit && need > best_bytes + best_bytes / 100) {
            best = names[i];
            best_bytes = need;
        }
    }
    return best;
}

/* The host RAM available now; UINT64_MAX when the system does not say. */
static uint64_t host_available(void) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
}

/* Refuses a model that cannot fit the device, and a synthetic one whose image
 * cannot be built in RAM (the writer holds it twice), before building it. */
static bool check_memory(const bench_opts *o, uint64_t budget, int32_t ctx, const char *device) {
    uint64_t usable = budget / 10 * 9; /* the session planner's margin */
    if (o->model) {
        struct stat sb;
        if (stat(o->model, &sb) || (uint64_t)sb.st_size <= usable) return true; /* load says why */
        fprintf(stderr, "phivk bench: %s is %.2f GiB but %s has %.2f GiB usable; try a smaller "
                        "model or a synthetic one (--shape, --type)\n",
                o->model, sb.st_size / GIB, device, usable / GIB);
        return false;
    }
    phivk_synth_info info;
    phivk_synth_describe(o->shape, o->type, &info); /* parse() checked the names */
    uint64_t kv = info.kv_bytes_per_token * (uint64_t)ctx, host = host_available();
    bool device_ok = info.bytes + kv <= usable, host_ok = info.bytes <= host / 2;
    if (device_ok && host_ok) return true;
    const char *alt = smaller_shape(o->shape, o->type, ctx, usable < host / 2 ? usable : host / 2);
    if (!device_ok)
        fprintf(stderr, "phivk bench: %s %s needs %.2f GiB (weights %.2f GiB + KV cache %.2f GiB "
                        "for %d tokens) but %s has %.2f GiB usable; ",
                o->shape, o->type, (info.bytes + kv) / GIB, info.bytes / GIB, kv / GIB, ctx, device,
                usable / GIB);
    else
        fprintf(stderr, "phivk bench: building %s %s in memory needs %.2f GiB of RAM (the image "
                        "twice while it is written) but %.2f GiB are available; ",
                o->shape, o->type, 2 * info.bytes / GIB, host / GIB);
    if (alt) fprintf(stderr, "try --shape %s or a smaller --type\n", alt);
    else fprintf(stderr, "try a smaller shape or --type\n");
    return false;
}

/* Runs the untimed warm-up (every pipeline the tests use is compiled on its first
 * dispatch), then a timed short prefill and one timed decode token, and refuses the
 * run when the tests would take longer than max_seconds. */
static bool warm_up(const bench_opts *o, phivk_session *s, const int32_t *ids,
                    const bench_model *bm) {
    int32_t w = o->n_prompt < WARM_PREFILL ? o->n_prompt : WARM_PREFILL;
    double t_w = 0, t_1 = 0;
    for (int pass = 0; pass < 2; pass++) {
        phivk_session_truncate(s, 0);
        double t0 = app_now();
        if (w && phivk_decode(s, ids, w, NULL, false) != PHIVK_OK) goto fail;
        double t1 = app_now();
        if (o->n_gen && phivk_decode(s, ids + w, 1, NULL, false) != PHIVK_OK) goto fail;
        t_w = t1 - t0;
        t_1 = app_now() - t1;
    }
    phivk_session_truncate(s, 0);
    /* --parallel: each row's step counted as one token's (a lower bound) */
    int tg_rows = o->n_parallel ? o->n_parallel : 1;
    double projected = o->reps * ((w ? t_w / w * o->n_prompt : 0) + t_1 * o->n_gen * tg_rows);
    if (projected <= o->max_seconds) return true;
    char alt_text[96] = "a smaller model";
    if (!o->model) {
        /* time scales with the bytes read per token */
        phivk_synth_info info;
        phivk_synth_describe(o->shape, o->type, &info);
        const char *alt = smaller_shape(o->shape, o->type, 0,
                                        (uint64_t)(info.bytes * (o->max_seconds / projected)));
        snprintf(alt_text, sizeof alt_text, "%s%s or a smaller --type", alt ? "--shape " : "a smaller shape",
                 alt ? alt : "");
    }
    fprintf(stderr, "phivk bench: this run would take about %.0f s on %s (prefill %.2f s/token, "
                    "decode %.2f s/token) but --max-seconds is %.0f; try %s, fewer tokens (-p, -n), "
                    "fewer repetitions (-r) or a larger --max-seconds\n",
            projected, bm->device, w ? t_w / w : 0.0, t_1, o->max_seconds, alt_text);
    return false;
fail:
    fprintf(stderr, "phivk bench: %s %s: %s\n", bm->name, bm->type, phivk_last_error());
    return false;
}

/* ------------------------------------------------------------------- tests */

static void stats(const double *x, int n, double *avg, double *sd) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    *avg = sum / n;
    for (int i = 0; i < n; i++) sq += (x[i] - *avg) * (x[i] - *avg);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0; /* sample deviation, as llama-bench */
}

/* One step of t->seqs sequences, token i of each (sequence j starts j tokens on). */
static phivk_status parallel_step(phivk_session **seqs, const bench_test *t, const int32_t *ids, int32_t i) {
    int32_t tok[MAX_SEQS];
    for (int32_t j = 0; j < t->seqs; j++) tok[j] = ids[(i + j) % t->n_gen];
    return phivk_decode_batch(seqs, tok, t->seqs, NULL);
}

/* seqs[0..max_seqs): the session, then those sharing its scratch (--parallel). */

/* Untimed: a --parallel test's matrix kernels for its count of columns compile on
 * first use. From empty caches, as a pp test before may have filled the first. */
static bool prepare_test(phivk_session **seqs, const int32_t *ids, const bench_test *t) {
    if (!t->seqs) return true;
    for (int32_t j = 0; j < t->seqs; j++) phivk_session_truncate(seqs[j], 0);
    phivk_status st = parallel_step(seqs, t, ids, 0);
    for (int32_t j = 0; j < t->seqs; j++) phivk_session_truncate(seqs[j], 0);
    if (st != PHIVK_OK) fprintf(stderr, "phivk bench: %s: %s\n", t->name, phivk_last_error());
    return st == PHIVK_OK;
}

/* Repetition r of t, from empty caches. */
static bool run_rep(const bench_opts *o, phivk_session **seqs, const int32_t *ids, bench_test *t, int r) {
    phivk_session *s = seqs[0];
    for (int32_t j = 0; j < (t->seqs ? t->seqs : 1); j++) phivk_session_truncate(seqs[j], 0);
    double t0 = app_now();
    phivk_status st = PHIVK_OK;
    if (t->n_prompt) st = phivk_decode(s, ids, t->n_prompt, NULL, false);
    for (int32_t i = 0; i < t->n_gen && st == PHIVK_OK; i++) {
        st = t->seqs ? parallel_step(seqs, t, ids, i) : phivk_decode(s, ids + i, 1, NULL, false);
        phivk_step_stats ss = phivk_session_last_step(s); /* a batch step records into s */
        t->dispatches += ss.dispatches;
        t->barriers += ss.barriers;
        t->host_ms += ss.host_s * 1e3;
    }
    double dt = app_now() - t0;
    if (st != PHIVK_OK) {
        fprintf(stderr, "phivk bench: %s: %s\n", t->name, phivk_last_error());
        return false;
    }
    t->ns[r] = dt * 1e9;
    t->ts[r] = (t->n_prompt + t->n_gen * (t->seqs ? t->seqs : 1)) / dt;
    if (!o->json) fprintf(stderr, "%s %d/%d: %.2f tokens/s\n", t->name, r + 1, o->reps, t->ts[r]);
    return true;
}

/* t's figures from its repetitions. */
static void summarize_test(const bench_opts *o, bench_test *t, const bench_model *bm) {
    stats(t->ts, o->reps, &t->avg_ts, &t->sd_ts);
    stats(t->ns, o->reps, &t->avg_ns, &t->sd_ns);
    if (t->n_gen) {
        int32_t n = t->seqs ? t->seqs : 1;   /* tokens per step */
        t->weights_gbps = bm->token_bytes * t->avg_ts / n * 1e-9;
        /* the token at depth d reads d + 1 positions; tg starts from an empty cache */
        t->kv_bytes = bm->kv_bytes_per_pos * (uint64_t)(t->n_gen + 1) / 2;
        t->decode_gbps = (double)(bm->token_bytes + (uint64_t)n * t->kv_bytes) * t->avg_ts / n * 1e-9;
        double steps = (double)t->n_gen * o->reps;
        t->dispatches /= steps;
        t->barriers /= steps;
        t->host_ms /= steps;
        t->token_ms = t->avg_ns * 1e-6 / t->n_gen;
    }
}

/* The tests' repetitions in rounds, round r running every test once: on a shared
 * machine a slow spell then falls on all of them alike, where back to back it would
 * fall on one (and skew --parallel's ratios, which are what it is for). */
static bool run_tests(const bench_opts *o, phivk_session **seqs, const int32_t *ids, bench_test *tests, int n,
                      const bench_model *bm) {
    for (int i = 0; i < n; i++)
        if (!prepare_test(seqs, ids, &tests[i])) return false;
    for (int r = 0; r < o->reps; r++)
        for (int i = 0; i < n; i++)
            if (!run_rep(o, seqs, ids, &tests[i], r)) return false;
    for (int i = 0; i < n; i++) summarize_test(o, &tests[i], bm);
    return true;
}

/* ------------------------------------------------------------------ output */

enum { COLS = 9, ROWS_MAX = 1 + MAX_PARALLEL };
/* The read test's buffer, in copy buffers: one buffer where the copy needs two. */
#define READ_COPIES 2

static void print_table(const bench_model *bm, const bench_opts *o, const bench_test *tests, int n) {
    static const char *const head[COLS] = {"model", "size", "params", "type", "device", "test",
                                           "t/s", "decode GB/s", "of read bw"};
    char cell[ROWS_MAX][COLS][160];
    for (int r = 0; r < n; r++) {
        const bench_test *t = &tests[r];
        snprintf(cell[r][0], sizeof cell[r][0], "%s", bm->name);
        phivk_format_bytes(cell[r][1], bm->size);
        if (bm->params >= 1000000000) snprintf(cell[r][2], sizeof cell[r][2], "%.2f B", bm->params * 1e-9);
        else snprintf(cell[r][2], sizeof cell[r][2], "%.2f M", bm->params * 1e-6);
        snprintf(cell[r][3], sizeof cell[r][3], "%s", bm->type);
        snprintf(cell[r][4], sizeof cell[r][4], "%s", bm->device);
        snprintf(cell[r][5], sizeof cell[r][5], "%.31s", t->name);
        snprintf(cell[r][6], sizeof cell[r][6], "%.2f ± %.2f", t->avg_ts, t->sd_ts);
        snprintf(cell[r][7], sizeof cell[r][7], t->n_gen ? "%.2f" : "", t->decode_gbps);
        snprintf(cell[r][8], sizeof cell[r][8], t->n_gen ? "%.1f%%" : "",
                 100 * t->decode_gbps / bm->read_gbps);
    }
    int w[COLS];
    for (int c = 0; c < COLS; c++) {
        w[c] = (int)strlen(head[c]);
        for (int r = 0; r < n; r++) {
            /* display width: "±" is 2 bytes, 1 column */
            int len = (int)strlen(cell[r][c]) - (c == 6 ? 1 : 0);
            if (len > w[c]) w[c] = len;
        }
    }
    for (int c = 0; c < COLS; c++) printf("| %-*s ", w[c], head[c]);
    printf("|\n");
    for (int c = 0; c < COLS; c++) {
        printf("| ");
        for (int k = 1; k < w[c]; k++) putchar('-');
        printf(c >= 6 ? ": " : "- "); /* numbers align right */
    }
    printf("|\n");
    for (int r = 0; r < n; r++) {
        for (int c = 0; c < COLS; c++)
            printf(c >= 6 ? "| %*s " : "| %-*s ", w[c] + (c == 6 ? 1 : 0), cell[r][c]);
        printf("|\n");
    }
    printf("\nread bandwidth of %s: %.2f GB/s (a compute kernel's 16-byte loads over %llu MiB, submit "
           "cost excluded); copy bandwidth: %.2f GB/s (vkCmdCopyBuffer of %llu MiB, for information); "
           "decode reads %.2f MiB of weights per token",
           bm->device, bm->read_gbps, (unsigned long long)(READ_COPIES * o->copy_bytes >> 20), bm->copy_gbps,
           (unsigned long long)(o->copy_bytes >> 20), bm->token_bytes / (1024.0 * 1024));
    for (int r = 0; r < n; r++)
        if (tests[r].n_gen) { /* every tg test decodes n_gen tokens per sequence: one figure */
            printf(" + %.2f MiB of KV cache per sequence on average in tg", tests[r].kv_bytes / (1024.0 * 1024));
            break;
        }
    printf("\n");
    if (bm->kernels) printf("matrix kernels: %s\n", bm->kernels);
    for (int r = 0; r < n; r++)
        if (tests[r].n_gen)
            printf("%s per decode %s: %.0f dispatches, %.0f barriers, host %.3f ms recording and "
                   "submitting (%.1f%% of its %.2f ms)\n", tests[r].name, tests[r].seqs ? "step" : "token", tests[r].dispatches,
                   tests[r].barriers, tests[r].host_ms, 100 * tests[r].host_ms / tests[r].token_ms,
                   tests[r].token_ms);
}

static cJSON *number_array(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

/* llama-bench's record fields, plus the bandwidth ones. */
static bool print_json(const bench_model *bm, const bench_opts *o, const bench_test *tests, int n) {
    cJSON *all = cJSON_CreateArray();
    for (int i = 0; all && i < n; i++) {
        const bench_test *t = &tests[i];
        cJSON *r = cJSON_CreateObject();
        if (!r) break;
        cJSON_AddItemToArray(all, r);
        cJSON_AddStringToObject(r, "model_filename", o->model ? o->model : "");
        cJSON_AddStringToObject(r, "model_name", bm->name);
        cJSON_AddStringToObject(r, "model_arch", bm->arch);
        cJSON_AddStringToObject(r, "model_type", bm->type);
        cJSON_AddBoolToObject(r, "synthetic", !o->model);
        cJSON_AddNumberToObject(r, "model_size", (double)bm->size);
        cJSON_AddNumberToObject(r, "model_n_params", (double)bm->params);
        cJSON_AddStringToObject(r, "device", bm->device);
        cJSON_AddStringToObject(r, "kernels", bm->kernels ? bm->kernels : "");
        cJSON_AddStringToObject(r, "test", t->name);
        cJSON_AddNumberToObject(r, "n_prompt", t->n_prompt);
        cJSON_AddNumberToObject(r, "n_gen", t->n_gen);
        cJSON_AddNumberToObject(r, "n_parallel", t->seqs ? t->seqs : 1);
        cJSON_AddNumberToObject(r, "n_batch", o->batch);
        cJSON_AddNumberToObject(r, "repetitions", o->reps);
        cJSON_AddNumberToObject(r, "avg_ns", t->avg_ns);
        cJSON_AddNumberToObject(r, "stddev_ns", t->sd_ns);
        cJSON_AddNumberToObject(r, "avg_ts", t->avg_ts);
        cJSON_AddNumberToObject(r, "stddev_ts", t->sd_ts);
        cJSON_AddItemToObject(r, "samples_ns", number_array(t->ns, o->reps));
        cJSON_AddItemToObject(r, "samples_ts", number_array(t->ts, o->reps));
        cJSON_AddNumberToObject(r, "copy_gbps", bm->copy_gbps);
        cJSON_AddNumberToObject(r, "copy_bytes", (double)o->copy_bytes);
        cJSON_AddNumberToObject(r, "token_weight_bytes", (double)bm->token_bytes);
        cJSON_AddNumberToObject(r, "read_gbps", bm->read_gbps);
        cJSON_AddNumberToObject(r, "read_bytes", (double)(READ_COPIES * o->copy_bytes));
        if (t->n_gen) {
            cJSON_AddNumberToObject(r, "weights_gbps", t->weights_gbps);
            cJSON_AddNumberToObject(r, "copy_fraction", t->weights_gbps / bm->copy_gbps);
            cJSON_AddNumberToObject(r, "token_kv_bytes", (double)t->kv_bytes);
            cJSON_AddNumberToObject(r, "decode_gbps", t->decode_gbps);
            cJSON_AddNumberToObject(r, "read_fraction", t->decode_gbps / bm->read_gbps);
            cJSON_AddNumberToObject(r, "token_dispatches", t->dispatches);
            cJSON_AddNumberToObject(r, "token_barriers", t->barriers);
            cJSON_AddNumberToObject(r, "token_host_ms", t->host_ms);
            cJSON_AddNumberToObject(r, "token_host_fraction", t->host_ms / t->token_ms);
        }
    }
    char *text = all ? cJSON_Print(all) : NULL;
    cJSON_Delete(all);
    if (!text) {
        fprintf(stderr, "phivk bench: out of host memory for the JSON\n");
        return false;
    }
    printf("%s\n", text);
    free(text);
    return true;
}

/* ------------------------------------------------------------------- main */

int cmd_bench(int argc, char **argv) {
    bench_opts o;
    bool done;
    int rc = parse(argc, argv, &o, &done);
    if (rc || done) return rc;

    int status = 1;
    phivk_runtime *rt = NULL;
    phivk_model *model = NULL;
    phivk_session *seqs[MAX_SEQS] = {0};
    void *image = NULL;
    size_t image_size = 0;
    int32_t *ids = NULL;
    double *samples = NULL;
    bench_test tests[ROWS_MAX];
    memset(tests, 0, sizeof tests);
    int n_tests = 0;
    bench_model bm = {0};

    /* The context is what the tests need, rounded up: each test starts from an empty
     * cache (pp: n_prompt tokens, tg: n_gen), the warm-up decodes a short prefill + 1. */
    int32_t warm = o.n_prompt < WARM_PREFILL ? o.n_prompt : WARM_PREFILL;
    int32_t need = o.n_prompt > o.n_gen ? o.n_prompt : o.n_gen;
    if (warm + 1 > need) need = warm + 1;
    int32_t ctx = (need + 63) / 64 * 64;

    if (!(rt = phivk_runtime_create(&o.rt))) goto fail;
    bm.device = phivk_runtime_device_name(rt);
    uint64_t budget = phivk_runtime_memory_budget(rt);
    int32_t n_seqs = o.max_seqs ? o.max_seqs : 1;
    if (!check_memory(&o, budget, ctx * n_seqs, bm.device)) goto done;
    /* before the model, so the two buffers have the memory to themselves */
    uint64_t copy_bytes = o.copy_bytes;
    if (copy_bytes > budget / 8) copy_bytes = budget / 8 & ~(uint64_t)((1 << 20) - 1);
    o.copy_bytes = copy_bytes;
    if (phivk_runtime_copy_bandwidth(rt, copy_bytes, &bm.copy_gbps) != PHIVK_OK ||
        phivk_runtime_read_bandwidth(rt, READ_COPIES * copy_bytes, &bm.read_gbps) != PHIVK_OK)
        goto fail;

    phivk_session_params sp = o.run.sess;
    sp.ctx = ctx;
    sp.batch = o.batch;
    sp.slots = n_seqs;
    phivk_model_params mp = phivk_model_default_params();
    mp.progress = app_progress;
    mp.session = &sp;
    if (o.model) {
        model = phivk_model_load(rt, o.model, &mp);
    } else {
        double t0 = app_now();
        if (phivk_synth_build(o.shape, o.type, &image, &image_size) != PHIVK_OK) goto fail;
        if (!o.json) {
            char size[32];
            phivk_format_bytes(size, image_size);
            fprintf(stderr, "built synthetic %s %s in memory: %s in %.1f s\n", o.shape, o.type,
                    size, app_now() - t0);
        }
        model = phivk_model_load_memory(rt, image, image_size, o.shape, &mp);
    }
    if (!model) goto fail;
    bm.name = phivk_model_name(model);
    bm.arch = phivk_model_arch(model);
    bm.type = o.model ? phivk_model_weight_type(model) : o.type;
    bm.size = phivk_model_weight_bytes(model);
    bm.token_bytes = phivk_model_token_bytes(model);
    bm.params = phivk_model_param_count(model);
    app_note_cpu_device(rt);
    bm.kernels = phivk_model_kernels_text(model);

    for (int32_t j = 0; j < n_seqs; j++) {
        if (!(seqs[j] = phivk_session_create(model, &sp))) goto fail;
        sp.share_scratch = seqs[0];
    }
    bm.kv_bytes_per_pos = phivk_session_kv_bytes_per_token(seqs[0]);

    /* random tokens, as llama-bench uses */
    int32_t n_vocab = phivk_model_n_vocab(model);
    ids = malloc(sizeof *ids * (size_t)need);
    samples = malloc(sizeof *samples * 2 * ROWS_MAX * (size_t)o.reps);
    if (!ids || !samples) {
        fprintf(stderr, "phivk bench: out of host memory\n");
        goto done;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int32_t i = 0; i < need; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % (uint64_t)n_vocab);
    }
    if (o.n_prompt) {
        bench_test *t = &tests[n_tests++];
        snprintf(t->name, sizeof t->name, "pp%d", (int)o.n_prompt);
        t->n_prompt = o.n_prompt;
    }
    if (o.n_gen && !o.n_parallel) {
        bench_test *t = &tests[n_tests++];
        snprintf(t->name, sizeof t->name, "tg%d", (int)o.n_gen);
        t->n_gen = o.n_gen;
    }
    for (int i = 0; i < o.n_parallel; i++) {
        bench_test *t = &tests[n_tests++];
        snprintf(t->name, sizeof t->name, "tg%d x%d", (int)o.n_gen, (int)o.parallel[i]);
        t->n_gen = o.n_gen;
        t->seqs = o.parallel[i];
    }
    for (int i = 0; i < n_tests; i++) {
        tests[i].ts = samples + (size_t)(2 * i) * o.reps;
        tests[i].ns = samples + (size_t)(2 * i + 1) * o.reps;
    }
    if (!warm_up(&o, seqs[0], ids, &bm)) goto done;
    if (!run_tests(&o, seqs, ids, tests, n_tests, &bm)) goto done;
    if (o.json) {
        if (!print_json(&bm, &o, tests, n_tests)) goto done;
    } else {
        print_table(&bm, &o, tests, n_tests);
    }
    status = 0;
    goto done;
fail:
    fprintf(stderr, "phivk bench: %s\n", phivk_last_error());
done:
    free(samples);
    free(ids);
    for (int32_t j = MAX_SEQS - 1; j >= 0; j--) phivk_session_free(seqs[j]);   /* the owner last */
    free(bm.kernels);
    phivk_model_free(model);
    free(image);
    phivk_runtime_free(rt);
    return status;
}
