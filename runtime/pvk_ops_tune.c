/* Per-device choice of matrix-product variants by measurement (pvk_ops_tune). How
 * weights and activations are best read differs by device more than a vendor table
 * can say: on lavapipe int8 activations with integer dot products were 25% faster
 * for Q4_0 decode, on a GPU with slow 4x8-bit dot products they may lose; fp16 tiles
 * halve a GPU's shared-memory traffic but run at 1/64 rate on some. So each type's
 * candidates run on the device once, and the winner is kept in a small text file
 * beside the pipeline cache:
 *   <type> <k> <candidates key> <int8 0|1> <rows> <f16 0|1> <coopmat 0|1> <repack 0|1> <wg> <lf> <lanes 0|1>
 * where the key (int8, fp16, the cooperative-matrix form and the repacked layout
 * offered, the tuning's workgroup size, rows and rows per lane) makes
 * a choice measured under other conditions (a kill switch, another tuning) not
 * apply. */
#include "pvk_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TUNE_ROWS 4096u   /* weight rows of the measured matrix: a Phi MLP's order */
#define TUNE_M 64u        /* x rows of the measured tiled product: a prompt's order */
#define TUNE_REPS 8       /* dispatches per timed submit */
#define TUNE_ROUNDS 5     /* timed submits per candidate; the fastest counts */
#define MAX_LINES 256

typedef struct tune_line { char type[16]; uint32_t k; char key[24]; pvk_mm_choice c; } tune_line;

typedef struct tune_file {
    char path[1024];          /* "" without a cache folder: measure, keep nothing */
    tune_line lines[MAX_LINES];
    int n;
} tune_file;

static void file_load(tune_file *f) {
    FILE *in = f->path[0] ? fopen(f->path, "r") : NULL;
    if (!in) return;
    char buf[160];
    while (f->n < MAX_LINES && fgets(buf, sizeof buf, in)) {
        tune_line *l = &f->lines[f->n];
        unsigned int8 = 0, f16 = 0, cm = 0, repack = 0, lanes = 0;
        /* A malformed line (an older or damaged file) is skipped, never trusted. */
        if (sscanf(buf, "%15s %u %23s %u %u %u %u %u %u %u %u", l->type, &l->k, l->key, &int8, &l->c.rows, &f16, &cm,
                   &repack, &l->c.wg, &l->c.lf, &lanes) == 11 &&
            int8 <= 1 && f16 <= 1 && cm <= 1 && repack <= 1 && lanes <= 1) {
            l->c.lanes = lanes;
            l->c.int8 = int8;
            l->c.f16 = f16;
            l->c.coopmat = cm;
            l->c.repack = repack;
            f->n++;
        }
    }
    fclose(in);
}

/* Written beside and renamed over, as the pipeline cache is. */
static void file_save(const tune_file *f) {
    if (!f->path[0] || !pvk_cache_make_parent(f->path)) return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", f->path, (long)getpid());   /* processes tuning at once */
    FILE *out = fopen(tmp, "w");
    if (!out) return;
    bool ok = true;
    for (int i = 0; i < f->n; i++)
        ok &= fprintf(out, "%s %u %s %u %u %u %u %u %u %u %u\n", f->lines[i].type, f->lines[i].k, f->lines[i].key,
                      (unsigned)f->lines[i].c.int8, f->lines[i].c.rows, (unsigned)f->lines[i].c.f16,
                      (unsigned)f->lines[i].c.coopmat, (unsigned)f->lines[i].c.repack, f->lines[i].c.wg,
                      f->lines[i].c.lf, (unsigned)f->lines[i].c.lanes) > 0;
    ok &= fclose(out) == 0;
    if (!ok || rename(tmp, f->path)) remove(tmp);
}

static tune_line *file_find(tune_file *f, const char *type, uint32_t k, const char *key) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->lines[i].type, type) && f->lines[i].k == k && !strcmp(f->lines[i].key, key))
            return &f->lines[i];
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define MAX_CANDIDATES 16

/* The candidates of one round of choosing: each a choice of type t and the tensor it
 * reads (GGUF's layout or the repacked one). */
typedef struct candidates {
    pvk_mm_choice c[MAX_CANDIDATES];
    const pvk_tensor *w[MAX_CANDIDATES];
    int n;
} candidates;

static void add(candidates *cs, pvk_mm_choice c, const pvk_tensor *w, const pvk_tensor *wr) {
    if (cs->n == MAX_CANDIDATES) return;
    cs->c[cs->n] = c;
    cs->w[cs->n++] = c.repack ? wr : w;
}

/* The fastest of the candidates for products with m rows of x: each one's pipeline
 * compiles in an untimed submit, then each of TUNE_ROUNDS rounds times every candidate
 * once (TUNE_REPS dispatches a submit), so a slow spell of a shared machine, or a GPU's
 * clock still rising, weighs on all of them alike; a candidate's fastest round counts.
 * cs->c[0] should be the best so far, measured again beside the others. */
static phivk_status fastest(pvk_ops *o, pvk_cmd *cmd, pvk_type t, const candidates *cs, const pvk_input *x,
                          const pvk_buf *y, uint32_t m, pvk_mm_choice *best) {
    double sec[MAX_CANDIDATES];
    phivk_status st = PHIVK_OK;
    for (int i = 0; i < cs->n; i++) sec[i] = 1e30;
    for (int round = 0; round <= TUNE_ROUNDS && !st; round++)
        for (int i = 0; i < cs->n && !st; i++) {
            if ((st = pvk_ops_set_mm_choice(o, t, cs->c[i]))) break;
            int reps = round ? TUNE_REPS : 1;
            double t0 = now_s();
            if ((st = pvk_cmd_begin(cmd))) break;
            for (int r = 0; r < reps && !st; r++)   /* each rewrites y: the recorder orders them */
                st = pvk_op_matmul_in(o, cmd, cs->w[i], NULL, x, y, m, false, (uint32_t)cs->w[i]->rows, 0);
            if (!st) st = pvk_cmd_submit(cmd);
            double dt = (now_s() - t0) / reps;
            if (round && dt < sec[i]) sec[i] = dt;
        }
    int b = 0;
    for (int i = 1; i < cs->n; i++)
        if (sec[i] < sec[b]) b = i;
    if (!st && cs->n) *best = cs->c[b];
    return st;
}

/* Whether the tuner measures the repacked layout of t against GGUF's: where the type
 * has one and PHIVK_REPACK does not decide. */
static bool repack_offered(pvk_type t) {
    const char *env = getenv("PHIVK_REPACK");
    return pvk_ops_can_repack(t) && !(env && *env);
}

/* Measures type t's candidates at k columns; leaves the fastest set in o. */
static phivk_status measure(pvk_ops *o, pvk_type t, uint32_t k, pvk_mm_choice *out) {
    pvk_dev *d = pvk_ops_dev(o);
    pvk_mm_choice def = pvk_ops_mm_default(o, t);
    pvk_tensor w = {0}, wr = {0};   /* GGUF's layout, and the repacked one where offered */
    pvk_buf x = {0}, xq = {0}, y = {0};
    pvk_cmd *cmd = NULL;
    phivk_status st;
    const pvk_caps *caps = pvk_dev_caps(d);
    bool tiled = caps->fp16 && pvk_ops_get_tuning(o)->mv_max_m < TUNE_M;
    uint32_t x_rows = tiled ? TUNE_M : 1;
    bool repack = repack_offered(t), block = pvk_type_get(t)->block_elems > 1;
    if ((st = pvk_tensor_create(d, t, k, TUNE_ROWS, NULL, &w)) ||
        (repack && (st = pvk_tensor_create_layout(d, t, k, TUNE_ROWS, NULL, true, &wr))) ||
        (st = pvk_buf_create(d, 4ull * k * x_rows, PVK_MEM_DEVICE, &x)) ||
        (st = pvk_buf_create(d, pvk_q8_bytes(1, k), PVK_MEM_DEVICE, &xq)) ||
        (st = pvk_buf_create(d, 4ull * TUNE_ROWS * x_rows, PVK_MEM_DEVICE, &y)) || (st = pvk_cmd_create(d, &cmd)) ||
        (st = pvk_cmd_begin(cmd)))
        goto out;
    /* Zeros: the timing does not depend on the values, and nothing reads garbage. */
    pvk_cmd_fill(cmd, &w.buf, 0, w.buf.size, 0);
    if (repack) pvk_cmd_fill(cmd, &wr.buf, 0, wr.buf.size, 0);
    pvk_cmd_fill(cmd, &x, 0, x.size, 0);
    pvk_cmd_fill(cmd, &xq, 0, xq.size, 0);
    pvk_cmd_barrier(cmd, PVK_TRANSFER_TO_COMPUTE);
    if ((st = pvk_cmd_submit(cmd))) goto out;

    pvk_input in = {.f32 = &x, .q8 = &xq};
    bool int8_offered = def.int8 || (pvk_type_get(t)->block_elems > 1 && caps->int_dot && caps->subgroup);
    *out = def;
    /* Layout, int8 and rows per workgroup with lanes splitting K; and lanes owning rows
     * (f32 x through the sampler) in either layout where the tuning has them: the form
     * every m > 1 takes there, and on lavapipe often m 1's best. */
    candidates cs = {.n = 0};
    for (int rp = 0; rp <= (int)repack; rp++) {
        for (int int8 = 0; int8 <= (int)int8_offered; int8++)
            for (uint32_t rows = def.rows > 1 ? def.rows / 2 : 1; rows <= def.rows * 2 && rows <= 64; rows *= 2)
                add(&cs, (pvk_mm_choice){int8, rows, def.f16, def.coopmat, rp != 0, def.wg, def.lf, false}, &w, &wr);
        if (pvk_ops_get_tuning(o)->mv_lane_rows)
            add(&cs, (pvk_mm_choice){false, def.rows, def.f16, def.coopmat, rp != 0, def.wg, def.lf, true}, &w, &wr);
    }
    if ((st = fastest(o, cmd, t, &cs, &in, &y, 1, out))) goto out;
    /* Then, from the best so far, more subgroups per workgroup (GPUs only: on a CPU
     * device a workgroup wider than its subgroup reduces through barriers, which are
     * coroutine switches on lavapipe), then more loads in flight (the K split's). */
    uint32_t wg_cap = caps->max_wg_invocations;
    cs.n = 0;
    add(&cs, *out, &w, &wr);
    for (uint32_t wg = def.wg * 2; !out->lanes && caps->type != VK_PHYSICAL_DEVICE_TYPE_CPU && wg <= def.wg * 4 &&
                                   wg <= wg_cap;
         wg *= 2) {
        pvk_mm_choice c = *out;
        c.wg = wg;
        add(&cs, c, &w, &wr);
    }
    if (cs.n > 1 && (st = fastest(o, cmd, t, &cs, &in, &y, 1, out))) goto out;
    cs.n = 0;
    add(&cs, *out, &w, &wr);
    for (uint32_t lf = 2; block && !out->lanes && lf <= 4; lf *= 2) {
        pvk_mm_choice c = *out;
        c.lf = lf;
        add(&cs, c, &w, &wr);
    }
    if (cs.n > 1 && (st = fastest(o, cmd, t, &cs, &in, &y, 1, out))) goto out;
    /* The tiled kernel: fp16 or f32 arithmetic, then cooperative matrices where the
     * op set has a form (their fp16 tiles need caps.fp16 too, so tiled holds) and
     * the weights keep GGUF's layout (the forms read no other). */
    bool cm = pvk_ops_coopmat(o) != PVK_CM_COUNT && !out->repack;
    cs.n = 0;
    for (int v = 0; tiled && v <= (cm ? 2 : 1); v++) {
        pvk_mm_choice c = *out;
        c.f16 = v == 1 || (v == 2 && out->f16);
        c.coopmat = v == 2;
        add(&cs, c, &w, &wr);
    }
    if (cs.n && (st = fastest(o, cmd, t, &cs, &in, &y, TUNE_M, out))) goto out;
    st = pvk_ops_set_mm_choice(o, t, *out);
out:
    if (st) pvk_ops_set_mm_choice(o, t, def);
    pvk_cmd_destroy(cmd);
    pvk_tensor_destroy(d, &w);
    pvk_tensor_destroy(d, &wr);
    pvk_buf_destroy(d, &x);
    pvk_buf_destroy(d, &xq);
    pvk_buf_destroy(d, &y);
    return st;
}

phivk_status pvk_ops_tune(pvk_ops *o, const pvk_type *types, int n, uint32_t k,
                        void (*progress)(void *user, int done, int total), void *user) {
    const char *env = getenv("PHIVK_TUNE");
    if (env && !strcmp(env, "0")) return PHIVK_OK;
    pvk_dev *d = pvk_ops_dev(o);
    const pvk_caps *caps = pvk_dev_caps(d);
    tune_file *f = calloc(1, sizeof *f);
    if (!f) return pvk_fail(PHIVK_ERR_HOST_MEMORY, "tune: out of host memory");
    if (!pvk_cache_path(d, "tuning", ".txt", f->path, sizeof f->path)) f->path[0] = 0;
    file_load(f);

    /* Each distinct type that has a matvec for rows of k and no usable kept choice. */
    pvk_type todo[PVK_TYPE_COUNT];
    tune_line *kept[PVK_TYPE_COUNT];
    char keys[PVK_TYPE_COUNT][24];
    int n_todo = 0;
    for (int i = 0; i < n; i++) {
        pvk_type t = types[i];
        bool seen = false;
        for (int j = 0; j < i; j++) seen |= types[j] == t;
        if (seen || !pvk_ops_reads_weights(t) || k % pvk_type_get(t)->block_elems) continue;
        char *key = keys[n_todo];
        snprintf(key, sizeof keys[0], "i%dh%dc%dw%ur%up%dl%u", caps->int_dot && caps->subgroup,
                 caps->fp16 && pvk_ops_get_tuning(o)->mv_max_m < TUNE_M, (int)pvk_ops_coopmat(o),
                 pvk_ops_get_tuning(o)->mv_wg, pvk_ops_mm_default(o, t).rows, repack_offered(t),
                 pvk_ops_get_tuning(o)->mv_lane_rows);
        tune_line *l = file_find(f, pvk_type_get(t)->name, k, key);
        if (l && pvk_ops_set_mm_choice(o, t, l->c) == PHIVK_OK) continue;
        kept[n_todo] = l;   /* unusable: measured over */
        todo[n_todo++] = t;
    }
    phivk_status st = PHIVK_OK;
    bool changed = false;
    if (progress && n_todo) progress(user, 0, n_todo);
    for (int i = 0; i < n_todo && !st; i++) {
        pvk_mm_choice c;
        if ((st = measure(o, todo[i], k, &c))) break;
        tune_line *l = kept[i];
        if (!l && f->n < MAX_LINES) l = &f->lines[f->n++];
        if (l) {
            snprintf(l->type, sizeof l->type, "%s", pvk_type_get(todo[i])->name);
            snprintf(l->key, sizeof l->key, "%s", keys[i]);
            l->k = k;
            l->c = c;
            changed = true;
        }
        if (progress) progress(user, i + 1, n_todo);
    }
    if (changed) file_save(f);
    free(f);
    return st;
}
