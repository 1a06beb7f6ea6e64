/* Tokenizer tests: reference ids (docs §5.1, §5.2 and the test-vector
 * README), the whole mixed.txt against the reference ids, round trips, the
 * BPE merge loop against a naive reference on a synthetic vocabulary, the
 * streaming UTF-8 decoder, and malformed tokenizer files. */
#include <stdint.h>
#include <unistd.h>
#include <utf8proc.h>

#include "rwkv.h"
#include "rwkv_tokenizer.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static uint32_t rnd_below(uint32_t n) { return rnd() % n; }

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap + 1);
    size_t got;
    while (p && (got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *q = realloc(p, 2 * cap + 1);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) p[n] = '\0';
    *len = n;
    return p;
}

static int *read_ids(const char *path, size_t *n) {
    size_t len;
    char *s = read_all(path, &len);
    if (!s) return NULL;
    size_t cap = 1024, k = 0;
    int *ids = malloc(cap * sizeof *ids);
    char *p = s, *end;
    for (;;) {
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        ids[k++] = (int)v;
        p = end;
    }
    free(s);
    *n = k;
    return ids;
}

/* Loaded once; NULL when ../shared is absent. */
static rwkv_tokenizer *neox_tok, *world_tok;
static char neox_path[512], world_path[512], mixed_path[512];
static int have_neox, have_world, have_mixed;

static void load_shared(void) {
    rwkv_error err;
    have_neox = shared_path(neox_path, sizeof neox_path, "reference/rwkv-cpp/20B_tokenizer.json");
    have_world = shared_path(world_path, sizeof world_path, "reference/rwkv-cpp/rwkv_vocab_v20230424.txt");
    have_mixed = shared_path(mixed_path, sizeof mixed_path, "testvectors/tokenizer/mixed.txt");
    if (have_neox && rwkv_tokenizer_load(neox_path, &neox_tok, &err)) {
        printf("note: cannot load %s: %s\n", neox_path, err.message);
        neox_tok = NULL;
    }
    if (have_world && rwkv_tokenizer_load(world_path, &world_tok, &err)) {
        printf("note: cannot load %s: %s\n", world_path, err.message);
        world_tok = NULL;
    }
}

/* Encodes text and compares with want[0..nwant); on mismatch writes a
 * description to why and returns 0. */
static int ids_equal(const rwkv_tokenizer *tok, const char *text, size_t len, const int *want, size_t nwant,
                     char *why, size_t why_size) {
    int *ids;
    size_t n;
    rwkv_error err;
    if (rwkv_tokenize(tok, text, len, &ids, &n, &err)) {
        snprintf(why, why_size, "tokenize failed: %.200s", err.message);
        return 0;
    }
    size_t i = 0;
    while (i < n && i < nwant && ids[i] == want[i]) i++;
    int ok = i == n && i == nwant;
    if (!ok) {
        int o = snprintf(why, why_size, "%zu ids (want %zu); first difference at index %zu: got", n, nwant, i);
        for (size_t k = i; k < n && k < i + 6 && o > 0 && (size_t)o < why_size; k++)
            o += snprintf(why + o, why_size - (size_t)o, " %d", ids[k]);
        if (o > 0 && (size_t)o < why_size) o += snprintf(why + o, why_size - (size_t)o, ", want");
        for (size_t k = i; k < nwant && k < i + 6 && o > 0 && (size_t)o < why_size; k++)
            o += snprintf(why + o, why_size - (size_t)o, " %d", want[k]);
    }
    rwkv_free(ids);
    return ok;
}

typedef struct probe {
    const char *text;
    size_t len; /* 0: strlen */
    int ids[12];
    int n;
} probe;

static int run_probes(const rwkv_tokenizer *tok, const probe *p, size_t np, char *why, size_t why_size) {
    for (size_t i = 0; i < np; i++) {
        char sub[400];
        size_t len = p[i].len ? p[i].len : strlen(p[i].text);
        if (!ids_equal(tok, p[i].text, len, p[i].ids, (size_t)p[i].n, sub, sizeof sub)) {
            snprintf(why, why_size, "probe %zu: %.300s", i, sub);
            return 0;
        }
    }
    return 1;
}

static int round_trip(const rwkv_tokenizer *tok, const char *text, size_t len, const char *want, size_t wlen,
                      char *why, size_t why_size) {
    int *ids;
    size_t n, dl;
    char *back;
    rwkv_error err;
    if (rwkv_tokenize(tok, text, len, &ids, &n, &err)) {
        snprintf(why, why_size, "tokenize failed: %.200s", err.message);
        return 0;
    }
    if (rwkv_detokenize(tok, ids, n, &back, &dl, &err)) {
        rwkv_free(ids);
        snprintf(why, why_size, "detokenize failed: %.200s", err.message);
        return 0;
    }
    size_t i = 0;
    while (i < dl && i < wlen && back[i] == want[i]) i++;
    int ok = dl == wlen && i == wlen;
    if (!ok) snprintf(why, why_size, "decoded %zu bytes, want %zu; first difference at byte %zu", dl, wlen, i);
    rwkv_free(ids);
    rwkv_free(back);
    return ok;
}

static char *nfc(const char *s, size_t n, size_t *out_n) {
    utf8proc_uint8_t *dst;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return NULL;
    *out_n = (size_t)r;
    return (char *)dst;
}

static char *write_temp(const char *content, size_t len, char *path, size_t path_size) {
    snprintf(path, path_size, "/tmp/rwkv_tok_test_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return NULL;
    size_t o = 0;
    while (o < len) {
        ssize_t w = write(fd, content + o, len - o);
        if (w <= 0) break;
        o += (size_t)w;
    }
    close(fd);
    return o == len ? path : NULL;
}

/* ---- byte-level tokenizer ------------------------------------------------ */

static void test_bytes_basics(void) {
    rwkv_tokenizer *t;
    rwkv_error err;
    CHECK(rwkv_tokenizer_load("bytes", &t, &err) == RWKV_OK, "load bytes: %s", err.message);
    CHECK(strcmp(rwkv_tokenizer_kind(t), "bytes") == 0, "kind %s", rwkv_tokenizer_kind(t));
    CHECK(rwkv_tokenizer_vocab_size(t) == 256 && rwkv_tokenizer_eos(t) == -1, "vocab/eos");
    int *ids;
    size_t n;
    CHECK(rwkv_tokenize(t, "A\xff", 2, &ids, &n, &err) == RWKV_OK && n == 2 && ids[0] == 65 && ids[1] == 255,
          "bytes ids");
    rwkv_free(ids);
    int bad_ids[2] = {3, 256};
    char *s;
    size_t l;
    CHECK(rwkv_detokenize(t, bad_ids, 2, &s, &l, &err) == RWKV_ERR_ARG, "id 256 accepted");
    CHECK(strstr(err.message, "256") != NULL, "message: %s", err.message);
    CHECK(rwkv_tokenize(t, "", 0, &ids, &n, &err) == RWKV_OK && n == 0, "empty text");
    rwkv_free(ids);
    rwkv_tokenizer_free(t);
}

static void test_bytes_round_trip(void) {
    rwkv_tokenizer *t;
    CHECK(rwkv_tokenizer_new_bytes(&t, NULL) == RWKV_OK, "new_bytes");
    char buf[600], why[300];
    for (int it = 0; it < 200; it++) {
        size_t n = rnd_below(sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (char)rnd();
        if (!round_trip(t, buf, n, buf, n, why, sizeof why)) {
            rwkv_tokenizer_free(t);
            CHECK(0, "iteration %d: %s", it, why);
        }
    }
    rwkv_tokenizer_free(t);
}

/* ---- NeoX ----------------------------------------------------------------- */

static const probe neox_probes[] = {
    /* docs §5.1 */
    {"\n", 0, {187}, 1},
    {"\n\n", 0, {535}, 1},
    {"\nThe following is a", 0, {187, 510, 1563, 310, 247}, 5},
    {"User: hi\n\nBot:", 0, {6989, 27, 14260, 187, 187, 33355, 27}, 7}, /* "\n\n" before a word: 187 187 */
    {"Hello  world", 0, {12092, 50276, 10186}, 3},
    {"x                         y", 0, {89, 50254, 340}, 3},  /* 25 spaces */
    {"x                          y", 0, {89, 50254, 50276, 90}, 4}, /* 26 spaces */
    {"trailing  ", 0, {7604, 4837, 50276}, 3},
    {"e\xcc\x81", 0, {860}, 1},
    {"a<|endoftext|>  b", 0, {66, 0, 50276, 67}, 4},
    {"tab\t\tx", 0, {8476, 186, 186, 89}, 4},
    /* testvectors/tokenizer/README.md */
    {"Hello world", 0, {12092, 1533}, 2},
    {"  hello   world  ", 0, {50276, 25521, 50275, 10186, 50276}, 5},
    {"it's I'll we'd", 0, {262, 434, 309, 1833, 359, 1871}, 6},
    {"a\xcc\x81 e\xcc\x81", 0, {1757, 3974}, 2},
    {"1234567", 0, {42594, 2251}, 2},
    {"\t\ttabs\n  \n", 0, {186, 186, 33754, 187, 50276, 187}, 6},
    {"", 0, {0}, 0},
};

static void test_neox_reference_ids(void) {
    if (!have_neox) SKIP("shared 20B_tokenizer.json not found");
    CHECK(neox_tok, "20B_tokenizer.json did not load");
    CHECK(strcmp(rwkv_tokenizer_kind(neox_tok), "neox") == 0, "kind %s", rwkv_tokenizer_kind(neox_tok));
    CHECK(rwkv_tokenizer_vocab_size(neox_tok) == 50277, "vocab size %d", rwkv_tokenizer_vocab_size(neox_tok));
    CHECK(rwkv_tokenizer_eos(neox_tok) == 0, "eos %d", rwkv_tokenizer_eos(neox_tok));
    char why[600];
    CHECK(run_probes(neox_tok, neox_probes, sizeof neox_probes / sizeof *neox_probes, why, sizeof why), "%s", why);
    /* ChatRWKV's training split "\n\n" before the next word as [187, 187]: the
     * two decode identically. */
    int ids[2] = {187, 187};
    char *s;
    size_t l;
    CHECK(rwkv_detokenize(neox_tok, ids, 2, &s, &l, NULL) == RWKV_OK && l == 2 && memcmp(s, "\n\n", 2) == 0, "decode 187 187");
    rwkv_free(s);
}

static void test_neox_mixed(void) {
    char ids_path[512];
    if (!have_neox || !have_mixed || !shared_path(ids_path, sizeof ids_path, "testvectors/tokenizer/neox20b.ids"))
        SKIP("shared tokenizer vectors not found");
    CHECK(neox_tok, "20B_tokenizer.json did not load");
    size_t len, nwant;
    char *text = read_all(mixed_path, &len);
    int *want = read_ids(ids_path, &nwant);
    CHECK(text && want && nwant > 1000, "cannot read the vectors");
    char why[600];
    int ok = ids_equal(neox_tok, text, len, want, nwant, why, sizeof why);
    /* Decoding gives NFC(mixed.txt). */
    size_t nl;
    char *normed = nfc(text, len, &nl);
    char why2[300];
    int ok2 = normed && round_trip(neox_tok, text, len, normed, nl, why2, sizeof why2);
    free(normed);
    free(text);
    free(want);
    CHECK(ok, "mixed.txt: %s", why);
    CHECK(ok2, "mixed.txt decode != NFC(mixed.txt): %s", why2);
}

/* Random mixes of fragments that exercise every pre-tokenizer branch. */
static size_t random_utf8(char *buf, size_t cap) {
    static const char *frags[] = {
        "the", "The", " quick", "brown", " fox", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "''",
        " ", " ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\x8b",
        "\xcc\x81", "\xcc\x88", "e\xcc\x81", "\xe1\x84\x80\xe1\x85\xa1", "123", "4", "\xef\xbc\x91\xef\xbc\x92",
        "\xef\xac\x81", "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "\xe4\xb8\xad\xe6\x96\x87",
        "\xd0\xbf\xd1\x80\xd0\xb8", "\xce\xb1\xce\xb2", "\xd8\xb9\xd8\xb1\xd8\xa8", "\xe0\xa4\xb9\xe0\xa4\xbf",
        "!", "?!", ".", ",", "(", ")", "{", "}", "==", "->", "#", "$", "%", "\"", "\\", "\x01", "\x7f",
        "\xe2\x80\xa8", "\xe1\x9a\x80", "\xc2\x85", "\x0b", "\x0c", "\x1c", "\xe2\x80\xaf", "<|", "|>", "endoftext",
    };
    const size_t nf = sizeof frags / sizeof *frags;
    size_t n = 0;
    size_t target = rnd_below((uint32_t)cap - 16);
    while (n < target) {
        if (rnd_below(6) == 0) { /* a random code point */
            uint32_t cp;
            do {
                uint32_t r = rnd_below(4);
                cp = r == 0 ? rnd_below(0x80) : r == 1 ? rnd_below(0x800) : r == 2 ? rnd_below(0x10000) : rnd_below(0x110000);
            } while (cp >= 0xD800 && cp <= 0xDFFF);
            char u[4];
            int l = (int)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)u);
            if (n + (size_t)l > cap) break;
            memcpy(buf + n, u, (size_t)l);
            n += (size_t)l;
        } else if (rnd_below(10) == 0) { /* a long space run */
            size_t k = 2 + rnd_below(60);
            if (n + k > cap) break;
            memset(buf + n, ' ', k);
            n += k;
        } else {
            const char *f = frags[rnd_below((uint32_t)nf)];
            size_t l = strlen(f);
            if (n + l > cap) break;
            memcpy(buf + n, f, l);
            n += l;
        }
    }
    return n;
}

static void test_neox_round_trip(void) {
    if (!have_neox) SKIP("shared 20B_tokenizer.json not found");
    CHECK(neox_tok, "20B_tokenizer.json did not load");
    char buf[800], why[300];
    for (int it = 0; it < 400; it++) {
        size_t n = random_utf8(buf, sizeof buf);
        size_t nl;
        char *normed = nfc(buf, n, &nl);
        CHECK(normed, "utf8proc NFC failed");
        int ok = round_trip(neox_tok, buf, n, normed, nl, why, sizeof why);
        free(normed);
        CHECK(ok, "iteration %d: %s", it, why);
    }
    /* Every bit of byte-level text decodes back: a string with NUL bytes. */
    CHECK(round_trip(neox_tok, "a\0b\0\0 c", 7, "a\0b\0\0 c", 7, why, sizeof why), "NUL bytes: %s", why);
}

static void test_neox_errors(void) {
    if (!have_neox) SKIP("shared 20B_tokenizer.json not found");
    CHECK(neox_tok, "20B_tokenizer.json did not load");
    int *ids;
    size_t n;
    rwkv_error err;
    CHECK(rwkv_tokenize(neox_tok, "ok\xc3(", 4, &ids, &n, &err) == RWKV_ERR_ARG, "invalid UTF-8 accepted");
    CHECK(strstr(err.message, "offset 2"), "message: %s", err.message);
    CHECK(rwkv_tokenize(neox_tok, "\xed\xa0\x80", 3, &ids, &n, &err) == RWKV_ERR_ARG, "surrogate accepted");
    int bad[1] = {50277};
    char *s;
    size_t l;
    CHECK(rwkv_detokenize(neox_tok, bad, 1, &s, &l, &err) == RWKV_ERR_ARG, "id 50277 accepted");
    int special[3] = {0, 1, 66};
    CHECK(rwkv_detokenize(neox_tok, special, 3, &s, &l, &err) == RWKV_OK && l == 1 && s[0] == 'a',
          "special tokens should decode to nothing");
    rwkv_free(s);
    /* A long pre-token (one word of 200k letters) must not be quadratic. */
    size_t big = 200000;
    char *w = malloc(big);
    for (size_t i = 0; i < big; i++) w[i] = "abcdefghij"[rnd_below(10)];
    CHECK(rwkv_tokenize(neox_tok, w, big, &ids, &n, &err) == RWKV_OK, "long word: %s", err.message);
    char *back;
    CHECK(rwkv_detokenize(neox_tok, ids, n, &back, &l, &err) == RWKV_OK && l == big && memcmp(back, w, big) == 0,
          "long word round trip");
    rwkv_free(back);
    rwkv_free(ids);
    free(w);
}

/* ---- BPE against a naive reference on a synthetic tokenizer.json --------- */

/* Byte-level alphabet, written from the spec (docs §5.1 step 5). */
static uint32_t byte_cp(int b) {
    static uint32_t t[256];
    static int ready;
    if (!ready) {
        int k = 0;
        for (int i = 0; i < 256; i++)
            t[i] = ((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE) ? (uint32_t)i : (uint32_t)(256 + k++);
        ready = 1;
    }
    return t[b];
}

/* Writes s (byte-level string of raw bytes b[0..n)) as a JSON string. */
static void json_bytes(FILE *f, const unsigned char *b, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_cp(b[i]);
        if (cp == '"' || cp == '\\') fprintf(f, "\\%c", (char)cp);
        else if (cp < 0x80) fputc((int)cp, f);
        else fprintf(f, "\\u%04X", (unsigned)cp);
    }
    fputc('"', f);
}

#define SYN_ALPHA 4
#define SYN_MERGES 150
typedef struct syn_token {
    unsigned char b[16];
    int n;
} syn_token;
static syn_token syn_tok[256 + SYN_MERGES + 1];
static int syn_ml[SYN_MERGES], syn_mr[SYN_MERGES], syn_mnew[SYN_MERGES], syn_nmerges;

static int syn_find(const unsigned char *b, int n, int ntok) {
    for (int i = 0; i < ntok; i++)
        if (syn_tok[i].n == n && memcmp(syn_tok[i].b, b, (size_t)n) == 0) return i;
    return -1;
}

/* Builds the synthetic tokenizer.json: ids 0..255 = bytes, then merged
 * tokens over the letters a..d, then <|endoftext|> as a special token. */
static int write_synthetic(char *path, size_t path_size, int prefix_space) {
    int ntok = 256;
    for (int b = 0; b < 256; b++) {
        syn_tok[b].b[0] = (unsigned char)b;
        syn_tok[b].n = 1;
    }
    syn_nmerges = 0;
    while (syn_nmerges < SYN_MERGES) {
        int a, b;
        do {
            a = rnd_below(3) ? 'a' + (int)rnd_below(SYN_ALPHA) : 256 + (int)rnd_below((uint32_t)(ntok - 256 + 1));
            b = rnd_below(3) ? 'a' + (int)rnd_below(SYN_ALPHA) : 256 + (int)rnd_below((uint32_t)(ntok - 256 + 1));
        } while (a >= ntok || b >= ntok);
        unsigned char cat[32];
        int n = syn_tok[a].n + syn_tok[b].n;
        if (n > 12) continue;
        memcpy(cat, syn_tok[a].b, (size_t)syn_tok[a].n);
        memcpy(cat + syn_tok[a].n, syn_tok[b].b, (size_t)syn_tok[b].n);
        if (syn_find(cat, n, ntok) >= 0) continue; /* one merge per result */
        memcpy(syn_tok[ntok].b, cat, (size_t)n);
        syn_tok[ntok].n = n;
        syn_ml[syn_nmerges] = a;
        syn_mr[syn_nmerges] = b;
        syn_mnew[syn_nmerges] = ntok;
        syn_nmerges++;
        ntok++;
    }
    snprintf(path, path_size, "/tmp/rwkv_tok_syn_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) return -1;
    fprintf(f, "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":%d,\"content\":\"<|endoftext|>\",\"special\":true,"
               "\"normalized\":false}],\"normalizer\":{\"type\":\"NFC\"},"
               "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":%s},"
               "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"vocab\":{",
            ntok, prefix_space ? "true" : "false");
    for (int i = 0; i < ntok; i++) {
        if (i) fputc(',', f);
        json_bytes(f, syn_tok[i].b, (size_t)syn_tok[i].n);
        fprintf(f, ":%d", i);
    }
    fprintf(f, "},\"merges\":[");
    for (int r = 0; r < syn_nmerges; r++) {
        if (r) fputc(',', f);
        /* alternate both merge syntaxes */
        if (r % 2) {
            fputc('[', f);
            json_bytes(f, syn_tok[syn_ml[r]].b, (size_t)syn_tok[syn_ml[r]].n);
            fputc(',', f);
            json_bytes(f, syn_tok[syn_mr[r]].b, (size_t)syn_tok[syn_mr[r]].n);
            fputc(']', f);
        } else {
            fputc('"', f);
            for (int s = 0; s < 2; s++) {
                const syn_token *t = &syn_tok[s ? syn_mr[r] : syn_ml[r]];
                for (int i = 0; i < t->n; i++) fputc((int)byte_cp(t->b[i]), f); /* letters: ASCII */
                if (!s) fputc(' ', f);
            }
            fputc('"', f);
        }
    }
    fprintf(f, "]}}");
    return fclose(f) == 0 ? ntok : -1;
}

/* The textbook algorithm: merge the lowest-rank adjacent pair (leftmost on
 * ties) until none is left; O(n^2), obviously right. */
static size_t naive_bpe(const unsigned char *w, size_t n, int *out) {
    size_t ns = n;
    for (size_t i = 0; i < n; i++) out[i] = w[i];
    for (;;) {
        int best_r = -1;
        size_t best_i = 0;
        for (size_t i = 0; i + 1 < ns; i++)
            for (int r = 0; r < syn_nmerges; r++)
                if (syn_ml[r] == out[i] && syn_mr[r] == out[i + 1]) {
                    if (best_r < 0 || r < best_r) best_r = r, best_i = i;
                    break;
                }
        if (best_r < 0) return ns;
        out[best_i] = syn_mnew[best_r];
        memmove(out + best_i + 1, out + best_i + 2, (ns - best_i - 2) * sizeof *out);
        ns--;
    }
}

static void test_bpe_against_naive(void) {
    char path[64];
    int ntok = write_synthetic(path, sizeof path, 0);
    CHECK(ntok > 0, "cannot write the synthetic tokenizer");
    rwkv_tokenizer *t;
    rwkv_error err;
    rwkv_status st = rwkv_tokenizer_load(path, &t, &err);
    unlink(path);
    CHECK(st == RWKV_OK, "load synthetic: %s", err.message);
    CHECK(rwkv_tokenizer_vocab_size(t) == ntok + 1, "vocab size %d", rwkv_tokenizer_vocab_size(t));
    unsigned char w[400];
    int want[400];
    char why[400];
    for (int it = 0; it < 300; it++) {
        size_t n = 1 + rnd_below(it < 250 ? 40 : 399);
        for (size_t i = 0; i < n; i++) w[i] = (unsigned char)('a' + rnd_below(SYN_ALPHA));
        size_t nw = naive_bpe(w, n, want);
        if (!ids_equal(t, (const char *)w, n, want, nw, why, sizeof why)) {
            rwkv_tokenizer_free(t);
            CHECK(0, "word %d (%.*s): %s", it, (int)n, (const char *)w, why);
        }
    }
    /* The special token splits words: "ab<|endoftext|>cd". */
    int *ids;
    size_t n;
    CHECK(rwkv_tokenize(t, "ab<|endoftext|>ab", 17, &ids, &n, &err) == RWKV_OK, "%s", err.message);
    int nab = (int)naive_bpe((const unsigned char *)"ab", 2, want);
    int ok = n == (size_t)(2 * nab + 1) && ids[nab] == ntok;
    rwkv_free(ids);
    rwkv_tokenizer_free(t);
    CHECK(ok, "special token inside text");

    /* add_prefix_space: "ab" encodes as " ab". */
    ntok = write_synthetic(path, sizeof path, 1);
    CHECK(ntok > 0, "cannot write the synthetic tokenizer");
    st = rwkv_tokenizer_load(path, &t, &err);
    unlink(path);
    CHECK(st == RWKV_OK, "load synthetic: %s", err.message);
    size_t nw = naive_bpe((const unsigned char *)" abca", 5, want);
    ok = ids_equal(t, "abca", 4, want, nw, why, sizeof why);
    rwkv_tokenizer_free(t);
    CHECK(ok, "add_prefix_space: %s", why);
}

/* ---- World ---------------------------------------------------------------- */

static const probe world_probes[] = {
    {"Hello world", 0, {33155, 40213}, 2},
    {"\n\n", 0, {261}, 1},
    {"User: hi\n\nAssistant:", 0, {24281, 59, 4571, 261, 5585, 41693, 59}, 7},
    {"\n", 0, {11}, 1},
    {"\x80", 0, {129}, 1},          /* single bytes: id = byte + 1 */
    {"\xc2\x80", 0, {2423}, 1},     /* '\x80' is the code point U+0080 */
    {"\0", 1, {1}, 1},
    {"", 0, {0}, 0},
};

static void test_world_reference_ids(void) {
    if (!have_world) SKIP("shared rwkv_vocab_v20230424.txt not found");
    CHECK(world_tok, "rwkv_vocab_v20230424.txt did not load");
    CHECK(strcmp(rwkv_tokenizer_kind(world_tok), "world") == 0, "kind %s", rwkv_tokenizer_kind(world_tok));
    CHECK(rwkv_tokenizer_vocab_size(world_tok) == 65530, "vocab size %d", rwkv_tokenizer_vocab_size(world_tok));
    CHECK(rwkv_tokenizer_eos(world_tok) == 0, "eos %d", rwkv_tokenizer_eos(world_tok));
    char why[600];
    CHECK(run_probes(world_tok, world_probes, sizeof world_probes / sizeof *world_probes, why, sizeof why), "%s", why);
    int id0[3] = {0, 34, 0};
    char *s;
    size_t l;
    CHECK(rwkv_detokenize(world_tok, id0, 3, &s, &l, NULL) == RWKV_OK && l == 1 && s[0] == '!', "id 0 decodes to nothing");
    rwkv_free(s);
    int bad[1] = {65530};
    rwkv_error err;
    CHECK(rwkv_detokenize(world_tok, bad, 1, &s, &l, &err) == RWKV_ERR_ARG, "id 65530 accepted");
}

static void test_world_mixed(void) {
    char ids_path[512];
    if (!have_world || !have_mixed || !shared_path(ids_path, sizeof ids_path, "testvectors/tokenizer/world.ids"))
        SKIP("shared tokenizer vectors not found");
    CHECK(world_tok, "rwkv_vocab_v20230424.txt did not load");
    size_t len, nwant;
    char *text = read_all(mixed_path, &len);
    int *want = read_ids(ids_path, &nwant);
    CHECK(text && want && nwant > 1000, "cannot read the vectors");
    char why[600], why2[300];
    int ok = ids_equal(world_tok, text, len, want, nwant, why, sizeof why);
    int ok2 = round_trip(world_tok, text, len, text, len, why2, sizeof why2);
    free(text);
    free(want);
    CHECK(ok, "mixed.txt: %s", why);
    CHECK(ok2, "mixed.txt round trip: %s", why2);
}

static void test_world_round_trip(void) {
    if (!have_world) SKIP("shared rwkv_vocab_v20230424.txt not found");
    CHECK(world_tok, "rwkv_vocab_v20230424.txt did not load");
    char buf[800], why[300];
    for (int it = 0; it < 300; it++) {
        size_t n;
        if (it % 2) {
            n = rnd_below(sizeof buf);
            for (size_t i = 0; i < n; i++) buf[i] = (char)rnd();
        } else {
            n = random_utf8(buf, sizeof buf);
            for (size_t k = rnd_below(4); k > 0 && n; k--) buf[rnd_below((uint32_t)n)] = (char)rnd(); /* damage */
        }
        CHECK(round_trip(world_tok, buf, n, buf, n, why, sizeof why), "iteration %d: %s", it, why);
    }
}

/* Builds a small World vocabulary: the 256 bytes, then extra lines. */
static size_t small_world(char *buf, size_t cap, const char *extra) {
    size_t o = 0;
    for (int b = 0; b < 256; b++)
        o += (size_t)snprintf(buf + o, cap - o, b < 128 ? "%d '\\x%02x' %d\n" : "%d b'\\x%02x' %d\n", b + 1, b,
                              b < 128 ? 1 : 1);
    o += (size_t)snprintf(buf + o, cap - o, "%s", extra);
    return o;
}

static void test_world_small_vocab(void) {
    static char buf[16384];
    size_t n = small_world(buf, sizeof buf,
                           "257 'ab' 2\n"
                           "258 'abcd' 4\n"
                           "259 '\\u00e9t\\u00e9' 5\n"
                           "260 \"it's\" 4\n"
                           "261 '\\\\\\'' 2\n"
                           "262 'a b' 3\n"
                           "263 '\\t\\r\\n' 3\n"
                           "264 b'\\xe4\\xb8' 2\n"
                           "265 '\\U0001F600' 4\r\n");
    char path[64];
    CHECK(write_temp(buf, n, path, sizeof path), "cannot write a temp file");
    rwkv_tokenizer *t;
    rwkv_error err;
    rwkv_status st = rwkv_tokenizer_load(path, &t, &err);
    unlink(path);
    CHECK(st == RWKV_OK, "load: %s", err.message);
    CHECK(rwkv_tokenizer_vocab_size(t) == 266, "vocab size %d", rwkv_tokenizer_vocab_size(t));
    static const probe p[] = {
        {"abcx", 0, {257, 'c' + 1, 'x' + 1}, 3}, /* "abc" is not a token: back off to "ab" */
        {"abcd", 0, {258}, 1},
        {"abcab", 0, {257, 'c' + 1, 257}, 3},
        {"\xc3\xa9t\xc3\xa9", 0, {259}, 1},
        {"it's", 0, {260}, 1},
        {"\\'", 0, {261}, 1},
        {"a b", 0, {262}, 1},
        {"\t\r\n", 0, {263}, 1},
        {"\xe4\xb8\xad", 0, {264, 0xad + 1}, 2},
        {"\xf0\x9f\x98\x80", 0, {265}, 1},
        {"a", 0, {'a' + 1}, 1},
    };
    char why[400];
    int ok = run_probes(t, p, sizeof p / sizeof *p, why, sizeof why);
    rwkv_tokenizer_free(t);
    CHECK(ok, "%s", why);
}

/* ---- streaming decoder ---------------------------------------------------- */

/* Reference "replace" decoding (maximal subparts -> U+FFFD), one shot. */
static size_t lossy(const unsigned char *s, size_t n, unsigned char *out) {
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned c = s[i];
        int need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            out[o++] = (unsigned char)c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        size_t k = 1;
        while ((int)k <= need && i + k < n && s[i + k] >= (k == 1 ? lo : 0x80) && s[i + k] <= (k == 1 ? hi : 0xBF)) k++;
        if ((int)k == need + 1) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += k;
    }
    return o;
}

static void test_stream_split_characters(void) {
    rwkv_tokenizer *t;
    rwkv_error err;
    CHECK(rwkv_tokenizer_new_bytes(&t, NULL) == RWKV_OK, "new_bytes");
    rwkv_token_stream *s;
    CHECK(rwkv_token_stream_new(t, RWKV_STREAM_REPLACE, &s, &err) == RWKV_OK, "%s", err.message);
    const char *out;
    size_t len;
    /* "é" = C3 A9 arrives in two tokens. */
    CHECK(rwkv_token_stream_push(s, 0xC3, &out, &len, &err) == RWKV_OK && len == 0, "C3 alone must be held");
    CHECK(rwkv_token_stream_pending(s) == 1, "pending %zu", rwkv_token_stream_pending(s));
    CHECK(rwkv_token_stream_push(s, 0xA9, &out, &len, &err) == RWKV_OK && len == 2 && memcmp(out, "\xc3\xa9", 2) == 0,
          "C3 A9 -> é");
    /* A 4-byte emoji over four tokens. */
    const unsigned char emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    for (int i = 0; i < 3; i++)
        CHECK(rwkv_token_stream_push(s, emoji[i], &out, &len, &err) == RWKV_OK && len == 0, "emoji byte %d", i);
    CHECK(rwkv_token_stream_push(s, emoji[3], &out, &len, &err) == RWKV_OK && len == 4 && memcmp(out, emoji, 4) == 0,
          "emoji");
    /* Sequences that can never complete. */
    CHECK(rwkv_token_stream_push(s, 0xE4, &out, &len, &err) == RWKV_OK && len == 0, "E4 held");
    CHECK(rwkv_token_stream_push(s, 'x', &out, &len, &err) == RWKV_OK && len == 4 && memcmp(out, "\xef\xbf\xbdx", 4) == 0,
          "E4 x -> U+FFFD x");
    CHECK(rwkv_token_stream_push(s, 0xFF, &out, &len, &err) == RWKV_OK && len == 3, "FF -> U+FFFD");
    CHECK(rwkv_token_stream_push(s, 0xED, &out, &len, &err) == RWKV_OK && len == 0, "ED held");
    CHECK(rwkv_token_stream_push(s, 0xA0, &out, &len, &err) == RWKV_OK && len == 6, "ED A0 (surrogate) -> 2 x U+FFFD");
    CHECK(rwkv_token_stream_push(s, 0xF0, &out, &len, &err) == RWKV_OK && len == 0, "F0 held");
    rwkv_token_stream_flush(s, &out, &len);
    CHECK(len == 3 && memcmp(out, "\xef\xbf\xbd", 3) == 0, "flush of a held tail -> U+FFFD");
    rwkv_token_stream_flush(s, &out, &len);
    CHECK(len == 0, "second flush is empty");
    CHECK(rwkv_token_stream_push(s, 256, &out, &len, &err) == RWKV_ERR_ARG, "id 256 accepted");
    rwkv_token_stream_free(s);

    /* Random bytes, one per token: REPLACE output = one-shot lossy decoding,
     * RAW output = the bytes themselves. */
    rwkv_token_stream *raw;
    CHECK(rwkv_token_stream_new(t, RWKV_STREAM_REPLACE, &s, &err) == RWKV_OK, "%s", err.message);
    CHECK(rwkv_token_stream_new(t, RWKV_STREAM_RAW, &raw, &err) == RWKV_OK, "%s", err.message);
    static unsigned char in[300], want[1000], got[1000], got_raw[400];
    int ok = 1;
    for (int it = 0; it < 300 && ok; it++) {
        size_t n = rnd_below(sizeof in);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = rnd_below(4);
            in[i] = (unsigned char)(r == 0 ? rnd() : r == 1 ? 0x80 + rnd_below(0x40) : r == 2 ? 0xC0 + rnd_below(0x40) : rnd_below(0x80));
        }
        size_t nw = lossy(in, n, want), ng = 0, nr = 0;
        for (size_t i = 0; i < n; i++) {
            rwkv_token_stream_push(s, in[i], &out, &len, NULL);
            memcpy(got + ng, out, len);
            ng += len;
            rwkv_token_stream_push(raw, in[i], &out, &len, NULL);
            memcpy(got_raw + nr, out, len);
            nr += len;
        }
        rwkv_token_stream_flush(s, &out, &len);
        memcpy(got + ng, out, len);
        ng += len;
        rwkv_token_stream_flush(raw, &out, &len);
        memcpy(got_raw + nr, out, len);
        nr += len;
        ok = ng == nw && memcmp(got, want, nw) == 0 && nr == n && memcmp(got_raw, in, n) == 0;
    }
    rwkv_token_stream_free(s);
    rwkv_token_stream_free(raw);
    rwkv_tokenizer_free(t);
    CHECK(ok, "stream output differs from the one-shot decoding");
}

/* Streams the tokens of mixed.txt: every chunk is valid UTF-8 and the chunks
 * join to the full decoding; some characters span tokens. */
static void stream_check(const rwkv_tokenizer *t, const char *text, size_t len, const char *want, size_t wlen,
                         char *why, size_t why_size, int *ok) {
    int *ids;
    size_t n;
    rwkv_error err;
    *ok = 0;
    if (rwkv_tokenize(t, text, len, &ids, &n, &err)) {
        snprintf(why, why_size, "tokenize: %.200s", err.message);
        return;
    }
    rwkv_token_stream *s;
    rwkv_token_stream_new(t, 0, &s, NULL);
    char *acc = malloc(wlen + 16);
    size_t o = 0, held = 0;
    const char *out;
    size_t l;
    int valid = 1;
    for (size_t i = 0; i < n; i++) {
        rwkv_token_stream_push(s, ids[i], &out, &l, NULL);
        if (utf8proc_decompose((const utf8proc_uint8_t *)out, (utf8proc_ssize_t)l, NULL, 0, 0) < 0) valid = 0;
        if (rwkv_token_stream_pending(s)) held++;
        if (o + l <= wlen) memcpy(acc + o, out, l);
        o += l;
    }
    rwkv_token_stream_flush(s, &out, &l);
    o += l;
    *ok = valid && o == wlen && memcmp(acc, want, wlen) == 0 && held > 0;
    if (!*ok) snprintf(why, why_size, "valid %d, %zu bytes (want %zu), held %zu times", valid, o, wlen, held);
    free(acc);
    rwkv_token_stream_free(s);
    rwkv_free(ids);
}

static void test_stream_real_tokens(void) {
    if (!have_mixed || (!neox_tok && !world_tok)) SKIP("shared tokenizer vectors not found");
    size_t len;
    char *text = read_all(mixed_path, &len);
    CHECK(text, "cannot read mixed.txt");
    char why[300];
    int ok = 1;
    if (world_tok) stream_check(world_tok, text, len, text, len, why, sizeof why, &ok);
    if (ok && neox_tok) {
        size_t nl = 0;
        char *normed = nfc(text, len, &nl);
        if (normed) stream_check(neox_tok, text, len, normed, nl, why, sizeof why, &ok);
        free(normed);
    }
    free(text);
    CHECK(ok, "%s", why);
}

/* ---- malformed files ------------------------------------------------------ */

typedef struct bad_case {
    const char *content; /* for World cases: lines after the 256 byte tokens when world = 1 */
    int world;
    rwkv_status code;
    const char *needle; /* must occur in the message */
} bad_case;

static void test_bad_files(void) {
    static const bad_case cases[] = {
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0", 0, RWKV_ERR_FORMAT, "line 1"},
        {"{\"version\": \"1.0\"}", 0, RWKV_ERR_FORMAT, "model"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", 0, RWKV_ERR_UNSUPPORTED, "Unigram"},
        {"{\"model\": {\"type\": \"BPE\", \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0,
         RWKV_ERR_FORMAT, "model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0,
         RWKV_ERR_FORMAT, "model.merges"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\", \"a c\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "model.merges[1]: the right token 'c'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "merged token 'ab'"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"ab\"]},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "model.merges[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "same id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "model.vocab['a']"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 1}],"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_FORMAT, "added_tokens[0]"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
         " \"pre_tokenizer\": {\"type\": \"Metaspace\"}}", 0, RWKV_ERR_UNSUPPORTED, "Metaspace"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"},"
         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", 0, RWKV_ERR_UNSUPPORTED, "NFKC"},
        {"[1, 2]", 0, RWKV_ERR_FORMAT, "not a tokenizer"},
        {"", 0, RWKV_ERR_FORMAT, "not a tokenizer"},
        {"257 'a\\qb' 3\n", 1, RWKV_ERR_FORMAT, "line 257 (id 257): bad escape \\q"},
        {"257 'ab' 3\n", 1, RWKV_ERR_FORMAT, "line 257 (id 257): literal is 2 bytes but the line says 3"},
        {"257 'ab' 2\n257 'cd' 2\n", 1, RWKV_ERR_FORMAT, "line 258: duplicate id 257"},
        {"257 'ab' 2\n259 'cd' 2\n", 1, RWKV_ERR_FORMAT, "line 258: id 259 out of order"},
        {"257 'ab' 2\n256 'cd' 2\n", 1, RWKV_ERR_FORMAT, "line 258: id 256 out of order"},
        {"257 'ab\n", 1, RWKV_ERR_FORMAT, "line 257: expected"},
        {"257 'ab 2\n", 1, RWKV_ERR_FORMAT, "line 257 (id 257): literal does not end"},
        {"257 'a'b' 3\n", 1, RWKV_ERR_FORMAT, "unescaped quote"},
        {"257 '\\x4' 1\n", 1, RWKV_ERR_FORMAT, "hex digits"},
        {"257 b'\\u0041' 1\n", 1, RWKV_ERR_FORMAT, "not allowed in a bytes literal"},
        {"257 '\\ud800' 3\n", 1, RWKV_ERR_FORMAT, "no UTF-8 encoding"},
        {"257 'ab' x\n", 1, RWKV_ERR_FORMAT, "bad byte count"},
        {"257 'ab' 2\n\n258 'cd' 2\n", 1, RWKV_ERR_FORMAT, "line 258: empty line"},
        {"257 'a' 1\n", 1, RWKV_ERR_FORMAT, "same bytes as id 98"},
        {"257 '' 0\n", 1, RWKV_ERR_FORMAT, "empty token"},
        {"1 'a' 1\n2 'b' 1\n", 0, RWKV_ERR_FORMAT, "no token for the single byte 0x00"},
        {"1x 'a' 1\n", 0, RWKV_ERR_FORMAT, "line 1: bad id"},
    };
    static char buf[20000];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case *c = &cases[i];
        size_t n = c->world ? small_world(buf, sizeof buf, c->content) : (size_t)snprintf(buf, sizeof buf, "%s", c->content);
        char path[64];
        CHECK(write_temp(buf, n, path, sizeof path), "cannot write a temp file");
        rwkv_tokenizer *t = (rwkv_tokenizer *)&t; /* must be reset to NULL */
        rwkv_error err;
        memset(&err, 0, sizeof err);
        rwkv_status st = rwkv_tokenizer_load(path, &t, &err);
        unlink(path);
        if (st == RWKV_OK) rwkv_tokenizer_free(t);
        CHECK(st == c->code, "case %zu: status %s, want %s (%s)", i, rwkv_status_name(st), rwkv_status_name(c->code),
              err.message);
        CHECK(t == NULL, "case %zu: *out not NULL on failure", i);
        CHECK(strstr(err.message, path) && strstr(err.message, c->needle),
              "case %zu: message '%s' lacks the file name or '%s'", i, err.message, c->needle);
        CHECK(!strchr(err.message, '\n'), "case %zu: message has a newline", i);
    }
    rwkv_tokenizer *t;
    rwkv_error err;
    CHECK(rwkv_tokenizer_load("/nonexistent/tokenizer.json", &t, &err) == RWKV_ERR_IO, "missing file");
    CHECK(strstr(err.message, "/nonexistent/tokenizer.json"), "message: %s", err.message);
}

/* Truncations of the real files never crash and are rejected (or, for the
 * World file cut at a line end, loaded with fewer tokens). */
static void test_truncated_real_files(void) {
    if (!have_neox || !have_world) SKIP("shared tokenizer files not found");
    size_t len;
    char *json = read_all(neox_path, &len);
    CHECK(json, "cannot read %s", neox_path);
    size_t cuts[] = {1, 100, len / 3, len / 2, len - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char path[64];
        int wrote = write_temp(json, cuts[i], path, sizeof path) != NULL;
        rwkv_tokenizer *t;
        rwkv_error err;
        rwkv_status st = wrote ? rwkv_tokenizer_load(path, &t, &err) : RWKV_ERR_IO;
        if (wrote) unlink(path);
        if (st == RWKV_OK) rwkv_tokenizer_free(t);
        if (st != RWKV_ERR_FORMAT || !strstr(err.message, "line")) {
            free(json);
            CHECK(0, "cut at %zu: status %s: %s", cuts[i], rwkv_status_name(st), wrote ? err.message : "");
        }
    }
    free(json);
    char *vocab = read_all(world_path, &len);
    CHECK(vocab, "cannot read %s", world_path);
    char path[64];
    CHECK(write_temp(vocab, len / 2 + 7, path, sizeof path), "temp file");
    rwkv_tokenizer *t;
    rwkv_error err;
    rwkv_status st = rwkv_tokenizer_load(path, &t, &err);
    unlink(path);
    free(vocab);
    if (st == RWKV_OK) rwkv_tokenizer_free(t);
    CHECK(st == RWKV_ERR_FORMAT && strstr(err.message, "line"), "world cut: %s: %s", rwkv_status_name(st), err.message);
}

int main(void) {
    load_shared();
    RUN(test_bytes_basics);
    RUN(test_bytes_round_trip);
    RUN(test_neox_reference_ids);
    RUN(test_neox_mixed);
    RUN(test_neox_round_trip);
    RUN(test_neox_errors);
    RUN(test_bpe_against_naive);
    RUN(test_world_reference_ids);
    RUN(test_world_mixed);
    RUN(test_world_round_trip);
    RUN(test_world_small_vocab);
    RUN(test_stream_split_characters);
    RUN(test_stream_real_tokens);
    RUN(test_bad_files);
    RUN(test_truncated_real_files);
    rwkv_tokenizer_free(neox_tok);
    rwkv_tokenizer_free(world_tok);
    return test_summary();
}
