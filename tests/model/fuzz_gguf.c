/* libFuzzer entry for the GGUF reader (clang only; see tests/model/meson.build for
 * how to build and run it). Any input must either open and survive a full walk
 * or fail with a message; the sanitizers catch the rest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    pvk_fail(PHIVK_OK, "%s", "");
    phivk_status st = gguf_open_memory(data, size, &f);
    if (st == PHIVK_OK)
        gguf_walk(f);
    else if (!pvk_errmsg()[0])
        abort(); /* a rejection must say why */
    gguf_close(f);
    return 0;
}
