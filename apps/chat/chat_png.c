#include "chat_png.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static bool chunk(FILE *f, const char *type, const unsigned char *data, uint32_t n) {
    unsigned char hdr[8], crc[4];
    be32(hdr, n);
    memcpy(hdr + 4, type, 4);
    uLong c = crc32(0, hdr + 4, 4);
    if (n) c = crc32(c, data, n);
    be32(crc, (uint32_t)c);
    return fwrite(hdr, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) &&
           fwrite(crc, 1, 4, f) == 4;
}

bool chat_png_write(const char *path, const unsigned char *rgb, int w, int h, int pitch) {
    if (w <= 0 || h <= 0) {
        errno = EINVAL;
        return false;
    }
    /* Filter "Up" on every row: UI pixels repeat vertically, so the rows become
     * mostly zeros and deflate well. */
    size_t row = (size_t)w * 3 + 1, raw_n = row * (size_t)h;
    unsigned char *raw = malloc(raw_n);
    uLongf z_n = compressBound((uLong)raw_n);
    unsigned char *z = malloc(z_n);
    char *tmp = malloc(strlen(path) + 8);
    FILE *f = NULL;
    bool ok = false;
    if (!raw || !z || !tmp) {
        errno = ENOMEM;
        goto done;
    }
    for (int y = 0; y < h; y++) {
        unsigned char *d = raw + row * (size_t)y;
        const unsigned char *s = rgb + (size_t)pitch * (size_t)y;
        const unsigned char *up = y ? s - pitch : NULL;
        d[0] = 2;
        for (size_t x = 0; x < (size_t)w * 3; x++) d[1 + x] = (unsigned char)(s[x] - (up ? up[x] : 0));
    }
    if (compress2(z, &z_n, raw, (uLong)raw_n, 9) != Z_OK) {
        errno = ENOMEM;
        goto done;
    }
    unsigned char ihdr[13] = {0};
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8; /* bit depth */
    ihdr[9] = 2; /* truecolour */
    sprintf(tmp, "%s.tmp", path);
    f = fopen(tmp, "wb");
    if (!f) goto done;
    ok = fwrite("\x89PNG\r\n\x1a\n", 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, 13) &&
         chunk(f, "IDAT", z, (uint32_t)z_n) && chunk(f, "IEND", NULL, 0);
    ok = (fclose(f) == 0) && ok;
    f = NULL;
    if (ok) ok = rename(tmp, path) == 0;
    if (!ok) remove(tmp);
done:
    free(raw);
    free(z);
    free(tmp);
    return ok;
}
