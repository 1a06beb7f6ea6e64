/* Chat messages -> the prompt text of the RWKV chat formats, the formats
 * `rwkv chat` speaks (docs/serve.md):
 *   World and byte-level tokenizers:  "System: S\n\nUser: U\n\nAssistant: A\n\n...Assistant:"
 *   NeoX (Raven models):              "S\n\nBob: U\n\nAlice: A\n\n...Alice:"
 * A turn ends at a blank line, so each message's text is cleaned the way
 * `rwkv chat` cleans a line: "\r\n" -> "\n", runs of newlines -> one,
 * surrounding whitespace stripped. */
#ifndef RWKV_SERVE_CHAT_PROMPT_H
#define RWKV_SERVE_CHAT_PROMPT_H

#include <stddef.h>

typedef struct chat_names {
    const char *system; /* NULL: the system text stands alone (Raven) */
    const char *user, *assistant;
} chat_names;

/* The role names of a tokenizer kind ("neox": Bob/Alice, else System/User/Assistant). */
chat_names chat_names_for(const char *tokenizer_kind);

/* Appends one message (role "system", "user" or "assistant"; text of
 * text_len bytes) to the prompt in *buf (malloc'd, grown as needed; *len
 * bytes). 0, or -1 when out of memory. */
int chat_prompt_add(char **buf, size_t *len, const chat_names *names, const char *role, const char *text,
                    size_t text_len);
/* Appends the assistant's cue that starts the reply. */
int chat_prompt_finish(char **buf, size_t *len, const chat_names *names);

#endif
