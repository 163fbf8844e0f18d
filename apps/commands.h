/* The subcommands of the phivk tool: each returns the process exit status
 * (0 success, 1 failure with a one-line reason on stderr, 2 bad usage). */
#ifndef PHIVK_APPS_COMMANDS_H
#define PHIVK_APPS_COMMANDS_H

#define PHIVK_VERSION "0.1.0"

int cmd_devices(int argc, char **argv);  /* cmd_devices.c */

int cmd_tokenize(int argc, char **argv);   /* cmd_tokenize.c */
int cmd_detokenize(int argc, char **argv); /* cmd_tokenize.c */

int cmd_info(int argc, char **argv);     /* cmd_info.c */
int cmd_convert(int argc, char **argv);  /* cmd_convert.c */

int cmd_run(int argc, char **argv);      /* cmd_run.c */
int cmd_eval(int argc, char **argv);     /* cmd_eval.c */
int cmd_chat(int argc, char **argv);     /* cmd_chat.c */
int cmd_bench(int argc, char **argv);    /* cmd_bench.c */
int cmd_summarize(int argc, char **argv); /* cmd_summarize.c */
int cmd_serve(int argc, char **argv);    /* cmd_serve.c */

#endif
