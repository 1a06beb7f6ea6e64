/* UTF-8 as the tokenizers need it: well-formedness (Unicode Table 3-7) and
 * encoding a code point. After a lead byte the next byte must lie in a
 * lead-specific range (E0: A0..BF, ED: 80..9F, F0: 90..BF, F4: 80..8F,
 * otherwise 80..BF), the later ones in 80..BF. C0, C1, F5..FF and a stray
 * 80..BF are never valid. */
#ifndef RWKV_TOKENIZER_UTF8_H
#define RWKV_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* For a lead byte: the count of continuation bytes (0 for ASCII, -1 invalid)
 * and the range allowed for the first continuation byte. */
static inline int tok_utf8_lead(unsigned c, unsigned *lo, unsigned *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (c < 0x80) return 0;
    if (c < 0xC2) return -1;
    if (c < 0xE0) return 1;
    if (c < 0xF0) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 2;
    }
    if (c < 0xF5) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 3;
    }
    return -1;
}

/* Length of the longest valid UTF-8 prefix of s[0..n) (== n when valid). */
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n);
/* Encodes code point cp (<= 0x10FFFF) into out; returns the byte count. */
int tok_utf8_encode(uint32_t cp, char out[4]);

#endif
