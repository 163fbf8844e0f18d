/* Whole small files (JSON configs, tokenizers, indexes) read into memory. */
#ifndef PHIVK_FILE_TEXT_H
#define PHIVK_FILE_TEXT_H

#include <stddef.h>

#include "pvk_err.h"

/* Reads path into a malloc'd, NUL-terminated buffer (*out; caller frees) of *len
 * bytes (len may be NULL). PHIVK_ERR_IO naming the file when it cannot be read. */
phivk_status file_read_text(const char *path, char **out, size_t *len);

#endif
