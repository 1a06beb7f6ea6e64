#include "formats/json_bounds.h"

#include <stdlib.h>
#include <string.h>

#include "core/fs.h"

json_counts json_count(const char *text, size_t len) {
    json_counts c = {0, 0};
    int in_string = 0, escaped = 0;
    size_t depth = 0;
    int top_has_value = 0; /* the outermost container holds at least one value */
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        if (in_string) {
            if (escaped) escaped = 0;
            else if (ch == '\\') escaped = 1;
            else if (ch == '"') in_string = 0;
            continue;
        }
        switch (ch) {
        case '"':
            if (depth == 1) top_has_value = 1;
            in_string = 1;
            break;
        case '{':
        case '[':
            if (depth == 1) top_has_value = 1;
            depth++;
            c.values++;
            break;
        case '}':
        case ']':
            if (depth > 0) depth--;
            break;
        case ',':
        case ':':
            c.values++;
            if (depth == 1 && ch == ',') c.top_members++;
            break;
        default:
            if (depth == 1 && ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') top_has_value = 1;
        }
    }
    if (top_has_value) c.top_members++;
    return c;
}

rwkv_status json_read_file(const char *path, size_t max_bytes, size_t max_values, size_t flags, json_t **out,
                           rwkv_error *err) {
    char *text;
    size_t len;
    rwkv_status s = read_regular_file(path, max_bytes, "JSON file here", &text, &len, err);
    if (s != RWKV_OK) return s;
    json_counts counts = json_count(text, len);
    if (counts.values > max_values) {
        free(text);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %zu JSON values, more than the %zu accepted here", path,
                         counts.values, max_values);
    }
    json_error_t jerr;
    *out = json_loadb(text, len, flags, &jerr);
    free(text);
    if (!*out)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: bad JSON at line %d: %.*s", path, jerr.line,
                         (int)strcspn(jerr.text, "\r\n"), jerr.text);
    return RWKV_OK;
}
