/* Chat messages rendered in the RWKV chat formats (serve/chat_prompt.h). */
#include <stdlib.h>
#include <string.h>

#include "chat_prompt.h"

chat_names chat_names_for(const char *kind) {
    if (strcmp(kind, "neox") == 0) return (chat_names){NULL, "Bob", "Alice"};
    return (chat_names){"System", "User", "Assistant"};
}

static int append(char **buf, size_t *len, const char *s, size_t n) {
    char *p = realloc(*buf, *len + n + 1);
    if (!p) return -1;
    memcpy(p + *len, s, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return 0;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The cleaned message appended (see chat_prompt.h). */
static int append_clean(char **buf, size_t *len, const char *text, size_t text_len) {
    size_t b = 0, e = text_len;
    while (b < e && is_space(text[b])) b++;
    while (e > b && is_space(text[e - 1])) e--;
    char *clean = malloc(e - b + 1);
    if (!clean) return -1;
    size_t w = 0;
    for (size_t r = b; r < e; r++) {
        char c = text[r];
        if (c == '\r' && r + 1 < e && text[r + 1] == '\n') continue;
        if (c == '\n' && w > 0 && clean[w - 1] == '\n') continue;
        clean[w++] = c;
    }
    int rc = append(buf, len, clean, w);
    free(clean);
    return rc;
}

int chat_prompt_add(char **buf, size_t *len, const chat_names *names, const char *role, const char *text,
                    size_t text_len) {
    const char *name = !strcmp(role, "user")        ? names->user
                       : !strcmp(role, "assistant") ? names->assistant
                                                    : names->system;
    if (name && (append(buf, len, name, strlen(name)) != 0 || append(buf, len, ": ", 2) != 0)) return -1;
    if (append_clean(buf, len, text, text_len) != 0) return -1;
    return append(buf, len, "\n\n", 2);
}

int chat_prompt_finish(char **buf, size_t *len, const chat_names *names) {
    if (append(buf, len, names->assistant, strlen(names->assistant)) != 0) return -1;
    return append(buf, len, ":", 1);
}
