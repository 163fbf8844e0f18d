/* phivk-chat: the SDL2 desktop chat window. Options, then the event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../app_common.h"
#include "chat_app.h"

static void usage(void) {
    printf("usage: phivk-chat [MODEL.gguf] [OPTIONS]\n\n"
           "A chat window for phivk. Drop a .gguf file on it (or use Open model..., Ctrl+O) to\n"
           "load a model, or a .txt / .md file to summarize it, in parts when it is longer than\n"
           "the context. Conversations and what you type are saved as you go (under\n"
           "$XDG_DATA_HOME/phivk/chats, else ~/.local/share/phivk/chats), listed in the sidebar\n"
           "and the last one is restored on the next start.\n\n"
           "options:\n"
           "  --device N|NAME   Vulkan device (see 'phivk devices')\n"
           "  -c N|auto         context in tokens (default: the model's, reduced to fit)\n"
           "  --temp T          temperature (0: greedy; default %.1f)\n"
           "  --top-p P         nucleus sampling (default %.2f)\n"
           "  -n N              most tokens per answer (-1: no limit; default 1024)\n"
           "  --system TEXT     system prompt\n"
           "  --data-dir DIR    keep conversations in DIR/chats instead\n"
           "  --scale F         UI scale (default: from the display's DPI)\n"
           "  --size WxH        window size\n"
           "  --software        draw with SDL's software renderer\n"
           "  --screenshot PNG  write the window to PNG on exit\n"
           "  -h, --help        this text\n"
           "The model options of 'phivk run' (--kv-type, -b, --no-swa, --top-k, --min-p, -s ...)\n"
           "are accepted too.\n",
           (double)phivk_sampler_default_params().temp, (double)phivk_sampler_default_params().top_p);
}

int main(int argc, char **argv) {
    app_opts o;
    app_opts_init(&o);
    o.n_predict = 1024;
    chat_config cfg = {0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        static const char *const sampling[] = {"--temp", "--top-p", "-n", "--n-predict", "-c",
                                               "--ctx-size", "--device", NULL};
        for (int k = 0; sampling[k]; k++) cfg.settings_given |= !strcmp(arg, sampling[k]);
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage();
            return 0;
        }
        if (!strcmp(arg, "--software")) {
            cfg.software = true;
            continue;
        }
        static const char *const ours[] = {"--system", "--data-dir", "--screenshot", "--scale", "--size", NULL};
        int k = 0;
        while (ours[k] && strcmp(arg, ours[k])) k++;
        if (ours[k]) {
            if (i + 1 >= argc) {
                fprintf(stderr, "phivk-chat: option %s needs a value\n", arg);
                return 2;
            }
            const char *v = argv[++i];
            if (k == 0) {
                snprintf(cfg.settings.system, sizeof cfg.settings.system, "%s", v);
                cfg.system_given = true;
            } else if (k == 1) {
                cfg.data_dir = v;
            } else if (k == 2) {
                cfg.screenshot = v;
            } else if (k == 3) {
                char *end;
                cfg.scale = strtof(v, &end);
                if (*end || !(cfg.scale >= 0.5f && cfg.scale <= 8)) {
                    fprintf(stderr, "phivk-chat: bad value '%s' for --scale (0.5 to 8)\n", v);
                    return 2;
                }
            } else if (sscanf(v, "%dx%d", &cfg.width, &cfg.height) != 2 || cfg.width < 200 ||
                       cfg.height < 200) {
                fprintf(stderr, "phivk-chat: bad value '%s' for --size (e.g. 1024x720)\n", v);
                return 2;
            }
            continue;
        }
        int r = app_opts_parse(&o, argc, argv, &i);
        if (r < 0) return 2;
        if (r == 0) {
            if (arg[0] == '-' || o.model) {
                fprintf(stderr, "phivk-chat: unexpected argument '%s' (see --help)\n", arg);
                return 2;
            }
            o.model = arg;
        } else if (o.prompt || o.prompt_file) {
            fprintf(stderr, "phivk-chat: %s is an option of 'phivk run'; type in the window instead\n", arg);
            return 2;
        }
    }
    if (!o.seed_given) o.samp.seed = (uint64_t)time(NULL);
    cfg.model = o.model;
    cfg.settings.samp = o.samp;
    cfg.settings.temp = o.samp.temp;
    cfg.settings.top_p = o.samp.top_p;
    cfg.settings.n_predict = o.n_predict;
    cfg.settings.ctx = o.sess.ctx;
    if (o.rt.device) snprintf(cfg.settings.device, sizeof cfg.settings.device, "%s", o.rt.device);

    chat_app *a = chat_app_create(&cfg);
    if (!a) return 1;
    /* Wake at least every half second so the autosave of a draft runs. */
    while (chat_app_step(a, 500)) {
    }
    if (cfg.screenshot) chat_app_screenshot(a, cfg.screenshot);
    chat_app_destroy(a);
    return 0;
}
