/* The GPT-2 pre-tokenizer (used by the NeoX ByteLevel pre-tokenizer), as a
 * hand-written scanner that gives exactly the matches of
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * under backtracking (leftmost-first) semantics, alternatives tried in order:
 *  1. a contraction (case-sensitive) right after an apostrophe U+0027;
 *  2-4. an optional single U+0020 followed by a maximal run of letters, of
 *     numbers, or of "other" characters (neither \s nor L nor N; this includes
 *     the apostrophe when no contraction matched);
 *  5. a whitespace run not followed by a non-space: the maximal run if it ends
 *     the text, else the run minus its last character (which then starts the
 *     next pre-token, e.g. " word"), when that leaves at least one character;
 *  6. otherwise the (one-character) whitespace run.
 * Every character belongs to exactly one class, so the matches tile the text.
 * \p{L} = general categories Lu Ll Lt Lm Lo, \p{N} = Nd Nl No (from
 * utf8proc's tables), \s = the Unicode White_Space property (the definition
 * of Rust's regex and of Oniguruma in Unicode mode). */
#include <utf8proc.h>

#include "tokenizer/tokenizer_internal.h"

enum { C_SPACE = 0, C_LETTER, C_NUMBER, C_OTHER };

/* Code point of the valid UTF-8 sequence at s (the caller validated it). */
static inline uint32_t decode(const unsigned char *s, size_t *len) {
    unsigned c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (c < 0xE0) {
        *len = 2;
        return (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (c < 0xF0) {
        *len = 3;
        return (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* White_Space (PropList.txt; unchanged since Unicode 6.3). */
static int is_white_space(uint32_t c) {
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
    if (c < 0x85) return 0;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static int class_of_cp(uint32_t c) {
    if (is_white_space(c)) return C_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return C_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return C_NUMBER;
    default: return C_OTHER;
    }
}

static inline int ascii_class(unsigned c) {
    if ((unsigned)((c | 32) - 'a') < 26) return C_LETTER;
    if ((unsigned)(c - '0') < 10) return C_NUMBER;
    if (c == ' ' || (unsigned)(c - 9) < 5) return C_SPACE;
    return C_OTHER;
}

static inline int class_at(const unsigned char *s, size_t *len) {
    if (s[0] < 0x80) {
        *len = 1;
        return ascii_class(s[0]);
    }
    return class_of_cp(decode(s, len));
}

size_t tok_gpt2_pretoken_end(const unsigned char *s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if (i + 2 < n) {
            unsigned char b = s[i + 2];
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
        }
    }
    size_t l;
    int k = class_at(s + i, &l);
    size_t j = i + l;
    if (s[i] == ' ' && j < n) {
        int k2 = class_at(s + j, &l);
        if (k2 != C_SPACE) {
            k = k2;
            j += l;
        }
    }
    if (k != C_SPACE) {
        while (j < n && class_at(s + j, &l) == k) j += l;
        return j;
    }
    size_t last = i; /* start of the run's last character */
    while (j < n && class_at(s + j, &l) == C_SPACE) {
        last = j;
        j += l;
    }
    if (j == n || last == i) return j;
    return last;
}
