/* A small PNG writer (8-bit RGB, zlib from Debian's zlib1g): SDL2 itself only
 * writes BMP, and screenshots of a flat UI compress tenfold in PNG. */
#ifndef PHIVK_CHAT_PNG_H
#define PHIVK_CHAT_PNG_H

#include <stdbool.h>

/* rgb: h rows of w*3 bytes, pitch bytes apart. Writes atomically (temp file +
 * rename). False with errno set on failure. */
bool chat_png_write(const char *path, const unsigned char *rgb, int w, int h, int pitch);

#endif
