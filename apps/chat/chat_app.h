/* phivk-chat's state: the conversation, the edit fields, settings, what the
 * worker reported, layout and counters. One call handles one SDL event, another
 * draws one frame, so tests drive the app with SDL_PushEvent and read this
 * struct. */
#ifndef PHIVK_CHAT_APP_H
#define PHIVK_CHAT_APP_H

#include <SDL2/SDL.h>
#include <SDL2/SDL_ttf.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "chat_md.h"
#include "chat_text.h"
#include "chat_worker.h"
#include "phivk.h"

typedef enum chat_role { CHAT_USER = 0, CHAT_ASSISTANT = 1 } chat_role;

typedef enum chat_state {
    CHAT_DONE = 0,
    CHAT_QUEUED,    /* a user message waiting for the current answer to end */
    CHAT_STREAMING, /* an answer being generated */
    CHAT_STOPPED,   /* an answer the user stopped */
    CHAT_FAILED,    /* an answer that ended with an error (in note) */
} chat_state;

/* An answer's Markdown laid out for one width (chat_draw.c): text pieces, each
 * one run's text on one line, and boxes drawn under them; coordinates from the
 * bubble's top left. Kept until the text or the width changes, so a frame only
 * draws; while an answer streams, only the blocks that changed are laid again. */
typedef struct chat_md_piece {
    int x, y, w;
    size_t off, len; /* in the doc's text */
    int run;
} chat_md_piece;
typedef enum chat_md_box_kind {
    CHAT_BOX_CODE,   /* a code block's background */
    CHAT_BOX_COPY,   /* its Copy button */
    CHAT_BOX_QUOTE,  /* a block quote's bar */
    CHAT_BOX_RULE,
    CHAT_BOX_CELL,   /* a table cell's border */
} chat_md_box_kind;
typedef struct chat_md_box {
    SDL_Rect r;
    chat_md_box_kind kind;
    int block;
} chat_md_box;
typedef struct chat_md_layout {
    chat_md_piece *pieces;
    int n_pieces, cap_pieces;
    chat_md_box *boxes;
    int n_boxes, cap_boxes;
    int *block_y;      /* where each block starts (before its gap) */
    int cap_block_y;
    int width;         /* the width laid out for */
    int pad;           /* the bubble's padding, added to every position */
    int next;          /* blocks laid out so far; the rest follow in the next frames */
    int relaid;        /* blocks laid out since the text last changed (the others were kept) */
    int w, h;          /* the content's size, without the bubble's padding */
} chat_md_layout;

typedef struct chat_msg {
    int id;
    chat_role role;
    chat_state state;
    text_buf text;
    char note[256];    /* shown under the message: why it was cut, stopped, failed */
    char doc_name[128]; /* a dropped document's file name, until it is answered */
    int32_t n_tokens;  /* an answer's generated tokens */
    /* layout, in pixels */
    text_lines lines;  /* a user's message: plain text */
    chat_md_doc md;    /* an answer: Markdown */
    chat_md_layout lay;
    int wrap_w;        /* width the lines or layout are for; 0: stale */
    int y, h, x, w;    /* bubble in transcript coordinates */
} chat_msg;

typedef struct chat_settings {
    char system[4096];
    float temp, top_p;
    int32_t n_predict; /* -1: unlimited */
    int32_t ctx;       /* 0: auto */
    char device[256];  /* "" : best; else the index as text */
    phivk_sampler_params samp; /* the rest of the sampler (top-k, seed, ...) */
} chat_settings;

typedef struct chat_config {
    const char *model;      /* loaded at start; NULL: the saved chat's model, if any */
    const char *data_dir;   /* NULL: $XDG_DATA_HOME/phivk (or ~/.local/share/phivk) */
    const char *screenshot; /* written on exit */
    bool software;          /* software renderer */
    float scale;            /* 0: from the display */
    int width, height;      /* window size in window coordinates; 0: default */
    chat_settings settings;
    bool system_given;      /* settings.system comes from the command line */
    bool settings_given;    /* so do the sampling, context and device settings */
} chat_config;

enum { CHAT_FOCUS_INPUT = 0, CHAT_FOCUS_SYSTEM, CHAT_FOCUS_SEARCH, CHAT_FOCUS_RENAME, CHAT_FOCUS_MODEL_PATH };

/* A saved conversation in the sidebar (chat_store_list). */
typedef struct chat_entry {
    char *path;
    char title[160];   /* the user's rename, else the first line of the first user message */
    time_t mtime;      /* last saved */
    char *text;        /* the title and every message, for the search box */
    bool shown;        /* it matches the search box (chat_convs_filter) */
} chat_entry;

/* A model file in the Open model picker (chat_models.c). */
typedef struct chat_model_file {
    char *path;
    phivk_model_brief brief;
    char error[160];   /* why it cannot be described; "" when it can */
} chat_model_file;

/* What a click on a button does; arg says which notice / setting / direction. */
typedef enum chat_action {
    CHAT_ACT_SEND = 1,
    CHAT_ACT_STOP,
    CHAT_ACT_NEW,
    CHAT_ACT_EXPORT,
    CHAT_ACT_PANEL,
    CHAT_ACT_DISMISS, /* arg: notice index */
    CHAT_ACT_STEP,    /* arg: setting * 2 + (0: down, 1: up) */
    CHAT_ACT_APPLY,
    CHAT_ACT_OPEN_LINK,   /* the confirmed link in link_url */
    CHAT_ACT_CANCEL_LINK,
    CHAT_ACT_REGENERATE,  /* the last answer */
    CHAT_ACT_EDIT,        /* arg: the user message's index */
    CHAT_ACT_LOAD_ASKED, /* loads ask_model (arg: the notice that asked) */
    CHAT_ACT_SWITCH,      /* arg: the conversation's index in convs */
    CHAT_ACT_RENAME,      /* arg: the conversation's index */
    CHAT_ACT_DELETE,      /* arg: the conversation's index */
    CHAT_ACT_UNDO_DELETE, /* arg: the notice that offers it */
    CHAT_ACT_PICKER,      /* opens or closes Open model */
    CHAT_ACT_PICK,        /* arg: the index in models */
    CHAT_ACT_OPEN_PATH,   /* loads the path typed in the picker */
    CHAT_ACT_CANCEL_SUMMARY,
} chat_action;
/* CPU a frame may spend laying out Markdown (the rest follows in the next
 * frames), and the bytes of a user's message shown. */
/* A dropped document's message: this, then the document. */
#define CHAT_DOC_HEAD "Summarize the following document:\n\n"
enum { CHAT_LAYOUT_BUDGET_MS = 12, CHAT_USER_SHOWN = 32 << 10 };
enum { CHAT_MAX_BUTTONS = 160, CHAT_MAX_NOTICES = 8, CHAT_TEXT_CACHE = 256, CHAT_KEY_BYTES = 16 };

typedef struct chat_button {
    SDL_Rect r;
    int action, arg;
} chat_button;

typedef struct chat_notice {
    char text[1024];
    bool error;
    int action;       /* a chat_action offered as a button under the text; 0: none */
    const char *label;
} chat_notice;

typedef struct chat_tex {
    uint64_t hash;
    TTF_Font *font;
    uint32_t color;
    char *s;
    SDL_Texture *tex;
    int w, h;
    uint64_t used; /* frame number */
} chat_tex;

typedef struct chat_app {
    chat_config cfg;
    chat_settings set;
    SDL_Window *win;
    SDL_Renderer *ren;
    Uint32 wake_type;          /* the SDL event the worker pushes */
    char font_path[1024], bold_path[1024];
    TTF_Font *font, *bold, *small;
    TTF_Font *italic, *bold_italic, *mono, *heading; /* Markdown */
    char mono_path[1024];
    int line_h, small_h, heading_h;
    float scale;               /* UI scale (HiDPI) */
    float px_per_coord;        /* renderer pixels per window coordinate */
    int out_w, out_h;          /* renderer output in pixels */
    chat_tex texts[CHAT_TEXT_CACHE];

    chat_worker *worker;
    chat_msg *msgs;
    int n_msgs, cap_msgs, next_id;
    int selected;              /* message index, -1: none */
    int answering;             /* id of the answer being generated, 0: none */
    int editing;               /* id of the sent message the input box edits, 0: none */
    text_field input, system;
    int focus;
    bool selecting;            /* the mouse button is down in an edit field */
    char **history;            /* sent messages, oldest first */
    int n_history, history_pos; /* history_pos == n_history: not browsing */
    char *history_draft;       /* what was typed before browsing */

    /* model */
    bool loaded;
    int loads_pending;         /* load jobs not answered yet */
    int32_t pending_ctx;       /* what the newest load asked for */
    char pending_device[256];
    char model_name[256], device_name[256], model_path[1024];
    char ask_model[1024];      /* named by a chat file without our mark: loaded only when asked */
    int32_t ctx_used, ctx_total, loaded_ctx_req;
    int32_t ctx_kept;          /* cached tokens the last answer reused (the rest was read) */
    char loaded_device[256];
    double tok_per_s;
    int32_t last_tokens;
    char progress_stage[32];
    uint64_t progress_done, progress_total;
    phivk_device_desc *devices;
    int n_devices;

    chat_notice notices[CHAT_MAX_NOTICES];
    int n_notices;
    char *link_url;            /* a clicked link waiting for Open / Cancel */

    /* transcript scrolling, in pixels */
    int scroll, content_h, view_h;
    bool follow;               /* keep the newest text in view */
    bool dragging;
    int drag_grab;             /* pointer offset inside the thumb */
    bool panel_open;

    /* the conversation list (chat_convs.c) */
    chat_entry *convs;         /* newest first */
    int n_convs;
    char title[160];           /* the current chat's rename; "" : from its first message */
    text_field search, rename;
    int renaming;              /* index in convs of the title being edited, -1: none */
    int conv_scroll;           /* pixels */
    char *trash, *trash_from;  /* a deleted chat kept for Undo, and where it was */
    bool trash_was_current;
    bool prefilling;           /* the model reads a switched-to conversation into its cache */
    int32_t prefill_tokens;    /* its tokens, once read */

    /* Open model (chat_models.c) */
    bool picker_open;
    chat_model_file *models;
    int n_models;
    int picker_first;          /* the first row shown (the wheel scrolls) */
    char **recent;             /* models opened last, newest first */
    int n_recent;
    text_field model_field;

    /* a document summarized in parts */
    int summary_id;            /* the answer it arrives as, 0: none */
    int summary_pass;
    int64_t summary_chunk, summary_chunks, summary_done;
    double summary_t0, summary_chunk_t0;

    /* layout of the last frame, for hit tests */
    SDL_Rect r_transcript, r_input, r_scroll_track, r_scroll_thumb, r_system, r_status;
    SDL_Rect r_sidebar, r_search, r_rename, r_model_path;
    chat_button buttons[CHAT_MAX_BUTTONS];
    int n_buttons;

    /* persistence */
    char *chats_dir, *chat_path;
    uint8_t key[CHAT_KEY_BYTES]; /* marks the models of our own saves (chat_store.c) */
    bool have_key;
    bool dirty;
    double dirty_since;
    int unsaved_tokens;

    bool save_failed_shown;

    /* counters for tests and the status bar */
    uint64_t frames, events;
    double last_frame_ms;
    int summary_events;        /* progress reports of summaries in parts */
    bool quit;
} chat_app;

/* Opens the window and starts the worker; restores the last conversation and
 * draft from the data directory. NULL with a message on stderr on failure. */
chat_app *chat_app_create(const chat_config *cfg);
void chat_app_destroy(chat_app *a); /* saves first */

/* Waits up to wait_ms for events, handles them all plus the worker's, draws
 * one frame. False once the user asked to quit. */
bool chat_app_step(chat_app *a, int wait_ms);
void chat_app_handle_event(chat_app *a, const SDL_Event *e);
void chat_app_take_worker_events(chat_app *a);
void chat_app_draw(chat_app *a);    /* one frame, presented */
/* Draws a frame and writes it as PNG. False with a notice on failure. */
bool chat_app_screenshot(chat_app *a, const char *path);

/* Actions that buttons and keys share. */
bool chat_app_send(chat_app *a);   /* the input box as a user message */
void chat_app_stop(chat_app *a);
void chat_app_new_chat(chat_app *a);
bool chat_app_export(chat_app *a); /* Markdown next to the saved chat */
/* Drops the last answer and answers its message again. False when there is
 * none or the model is busy. */
bool chat_app_regenerate(chat_app *a);
/* Puts sent message i in the input box; sending it then replaces the message
 * and drops everything after it (the model's cache keeps what came before). */
void chat_app_edit(chat_app *a, int i);
void chat_app_edit_cancel(chat_app *a); /* empties the input box */
/* Whether message i shows a Regenerate (the last answer) or Edit (a selected
 * message of the user's) button under it: the action, or 0. */
int chat_msg_action(const chat_app *a, int i);
void chat_app_open_file(chat_app *a, const char *path); /* a dropped file */
void chat_app_apply_settings(chat_app *a); /* reload for a new device / context */
void chat_app_notice(chat_app *a, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* chat_draw.c: layout and drawing. */
void chat_layout(chat_app *a);     /* wraps messages for the current width */
int chat_draw_frame(chat_app *a);  /* draws without presenting; 0 or -1 */
bool chat_fonts_open(chat_app *a); /* at a.scale; false with a notice */
void chat_fonts_close(chat_app *a);
void chat_text_cache_clear(chat_app *a);
void chat_scroll_to(chat_app *a, int y);
/* The byte offset in field f, drawn in r, nearest to pixel (x, y). */
size_t chat_field_offset(chat_app *a, const text_field *f, SDL_Rect r, int x, int y);
TTF_Font *chat_md_ttf(const chat_app *a, chat_md_font f);

/* chat_store.c: the conversation on disk. */
char *chat_store_dir(const char *data_dir); /* creates it; NULL with a message */
char *chat_store_new_path(const char *dir);
char *chat_store_latest(const char *dir);   /* NULL when there is none */
/* The installation's key in dir (made on first use); false with a message. */
bool chat_store_key(const char *dir, uint8_t key[CHAT_KEY_BYTES]);
bool chat_store_save(const chat_app *a, const char *path);
/* The model of a file this installation saved goes to model_path, any other's
 * to ask_model. */
bool chat_store_load(chat_app *a, const char *path);
char *chat_store_export(const chat_app *a, const char *json_path); /* the .md path */
/* Every chat file in dir, newest first (the names carry the time they were
 * made). A file that does not parse is left as it is and its name goes to
 * *bad (malloc'd array of malloc'd names, *n_bad of them). False only when out
 * of memory or dir cannot be read. */
bool chat_store_list(const char *dir, chat_entry **out, int *n, char ***bad, int *n_bad);
void chat_entries_free(chat_entry *e, int n);
/* Rewrites the title in a saved chat; false with the file unchanged. */
bool chat_store_set_title(const char *path, const char *title);
/* The first line of text, cut to fit out[cap] on a code point boundary. */
void chat_title_from(const char *text, char *out, size_t cap);

/* chat_convs.c: saving the open chat and the conversation list. */
void chat_app_save(chat_app *a); /* the open chat to its file (a new one the first time) */
void chat_convs_refresh(chat_app *a, bool report_bad); /* reads the folder again */
bool chat_conv_shown(const chat_app *a, int i); /* passes the search box */
void chat_convs_filter(chat_app *a); /* the search box changed: which chats pass it */
int chat_conv_current(const chat_app *a); /* index of the open chat, -1: none */
/* Opens conversation i: the current one is saved, the model stays and reads
 * the conversation into its cache (with progress). False when it cannot be read. */
bool chat_app_switch(chat_app *a, int i);
void chat_app_rename_begin(chat_app *a, int i);
void chat_app_rename_end(chat_app *a, bool commit);
void chat_app_delete(chat_app *a, int i); /* Undo is offered in a notice */
bool chat_app_undo_delete(chat_app *a);
void chat_convs_close(chat_app *a); /* frees the list; a deleted chat is gone for good */

/* chat_models.c: Open model. */
void chat_picker_open(chat_app *a);  /* lists the model files in the usual places */
void chat_picker_close(chat_app *a);
void chat_app_load_model(chat_app *a, const char *path); /* the current model stays until it loads */
void chat_recent_read(chat_app *a);
void chat_recent_add(chat_app *a, const char *path); /* a model loaded: remembered first */
void chat_recent_free(chat_app *a);

/* chat_state.c: the settings the panel steps through (temperature, top-p, max
 * tokens, context, device), the message list, notices, the unsaved mark. */
double chat_now(void);                  /* seconds, monotonic */
void chat_app_mark_dirty(chat_app *a);  /* the autosave writes it soon */
void chat_msgs_drop_from(chat_app *a, int from); /* removes messages from index from on */
void chat_md_layout_free(chat_md_layout *l);     /* a message's laid-out Markdown */
int chat_setting_count(void);
const char *chat_setting_label(int i);
void chat_setting_value(const chat_app *a, int i, char *out, size_t cap);
void chat_setting_step(chat_app *a, int i, int dir);
bool chat_settings_need_reload(const chat_app *a);
chat_msg *chat_msg_add(chat_app *a, int at, chat_role role, chat_state st, const char *text, size_t n);
void chat_msgs_clear(chat_app *a);
bool chat_app_open_link(chat_app *a); /* runs xdg-open on link_url; false with a notice */

#endif
