#include "chat_font.h"

#include <fontconfig/fontconfig.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* fontconfig answers every query with its best match, which may be another
 * family; only accept a file that is what we asked for, so the fallback path
 * gets its turn before a stranger font. */
static bool fc_lookup(const char *pattern, char *out, size_t cap) {
    bool ok = false;
    FcConfig *cfg = FcInitLoadConfigAndFonts();
    if (!cfg) return false;
    FcPattern *pat = FcNameParse((const FcChar8 *)pattern);
    FcPattern *match = NULL;
    if (pat) {
        FcConfigSubstitute(cfg, pat, FcMatchPattern);
        FcDefaultSubstitute(pat);
        FcResult res;
        match = FcFontMatch(cfg, pat, &res);
    }
    FcChar8 *file = NULL, *family = NULL;
    char want[128];
    snprintf(want, sizeof want, "%s", pattern);
    want[strcspn(want, ":")] = 0;
    if (match && FcPatternGetString(match, FC_FILE, 0, &file) == FcResultMatch &&
        FcPatternGetString(match, FC_FAMILY, 0, &family) == FcResultMatch &&
        !strcasecmp((const char *)family, want) && access((const char *)file, R_OK) == 0 &&
        strlen((const char *)file) < cap) {
        snprintf(out, cap, "%s", (const char *)file);
        ok = true;
    }
    if (match) FcPatternDestroy(match);
    if (pat) FcPatternDestroy(pat);
    FcConfigDestroy(cfg);
    return ok;
}

bool chat_font_find(const char *pattern, const char *fallback, char *out, size_t cap) {
    if (fc_lookup(pattern, out, cap)) return true;
    if (fallback && access(fallback, R_OK) == 0) {
        snprintf(out, cap, "%s", fallback);
        return true;
    }
    snprintf(out, cap,
             "no font found: fontconfig has no \"%s\" and %s is missing. "
             "Install it with: sudo apt-get install fonts-dejavu-core",
             pattern, fallback ? fallback : "the fallback");
    return false;
}
