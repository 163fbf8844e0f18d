/* The safetensors reader on hostile input, built with ASan + UBSan (meson.build):
 * every truncation of a valid file and seeded random byte changes in its header
 * and length field. Each input must open (and then every float tensor reads in
 * full: the reader mapped the file, so a read past its end faults where it crosses
 * the last page) or fail with a non-empty message; none may crash. */
#define HARNESS_MAIN
#include "harness.h"

#include <stdint.h>
#include <unistd.h>

#include "safetensors.h"

static char path[] = "/tmp/phivk-safetensors-XXXXXX";

/* A valid file: two F32 tensors, one F16, one BF16, 8-byte aligned header. */
static size_t valid_file(uint8_t *buf) {
    static const char header[] =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[24,32]},"
        "\"c\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[32,40]},"
        "\"d\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[40,44]}}";
    size_t hl = sizeof header - 1, padded = (hl + 7) / 8 * 8;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    for (int i = 0; i < 44; i++) buf[8 + padded + i] = (uint8_t)(i * 37);
    return 8 + padded + 44;
}

/* Writes buf to the scratch file and opens it; an accepted file is read in full. */
static phivk_status try_open(const uint8_t *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f)) abort();
    pvk_fail(PHIVK_OK, "%s", "");
    safet_set *s = NULL;
    phivk_status st = safet_open_file(path, &s);
    for (int64_t i = 0; !st && i < safet_count(s); i++) {
        const safet_tensor *t = safet_at(s, i);
        float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
        const phivk_status rs = safet_read_f32(t, 0, t->numel, v);
        CHECK(rs == PHIVK_OK || t->dtype > SAFET_BF16, "float tensor %s does not read: %s", t->name, pvk_errmsg());
        free(v);
    }
    if (st) CHECK(pvk_errmsg()[0] != 0, "a rejected file has no message");
    safet_close(s);
    return st;
}

TEST(the_valid_file_opens) {
    uint8_t buf[512];
    const size_t n = valid_file(buf);
    REQUIRE(try_open(buf, n) == PHIVK_OK, "%s", pvk_errmsg());
}

TEST(every_truncation_is_rejected_with_a_message) {
    uint8_t buf[512];
    const size_t n = valid_file(buf);
    int rejected = 0;
    for (size_t k = 0; k < n; k++) rejected += try_open(buf, k) != PHIVK_OK;
    CHECK(rejected == (int)n, "%d of %zu truncations rejected", rejected, n);
}

TEST(random_header_changes_never_crash) {
    uint8_t buf[512], bad[512];
    const size_t n = valid_file(buf);
    uint64_t r = 0x9e3779b97f4a7c15ull;
    int accepted = 0, tried = 0;
    for (int round = 0; round < 3000; round++, tried++) {
        memcpy(bad, buf, n);
        for (int flips = 1 + round % 4; flips > 0; flips--) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            const size_t at = (size_t)(r >> 33) % (n - 44); /* the length field and the header */
            static const char pick[] = "0123456789[],:{}\"FBI6 -e.";
            bad[at] = (r >> 20) & 1 ? (uint8_t)(r >> 40) : (uint8_t)pick[(r >> 24) % (sizeof pick - 1)];
        }
        accepted += try_open(bad, n) == PHIVK_OK;
    }
    printf("    %d of %d changed files still valid\n", accepted, tried);
}

__attribute__((destructor)) static void cleanup(void) { unlink(path); }

__attribute__((constructor)) static void scratch(void) {
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
}
