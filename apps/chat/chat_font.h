/* Finding the UI font: fontconfig's match for a family, else DejaVu Sans where
 * Debian's fonts-dejavu-core puts it. */
#ifndef PHIVK_CHAT_FONT_H
#define PHIVK_CHAT_FONT_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the path of a readable font file for pattern (e.g. "DejaVu Sans" or
 * "DejaVu Sans:bold") into out. False, with the reason in out, when neither
 * fontconfig nor the fallback path gives one. */
bool chat_font_find(const char *pattern, const char *fallback, char *out, size_t cap);

#define CHAT_FONT_REGULAR "DejaVu Sans"
#define CHAT_FONT_REGULAR_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define CHAT_FONT_BOLD "DejaVu Sans:bold"
#define CHAT_FONT_BOLD_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
#define CHAT_FONT_MONO "DejaVu Sans Mono"
#define CHAT_FONT_MONO_PATH "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"

#endif
