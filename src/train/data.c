#include "core/atomic_write.h"
#include "train/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/formats.h"
#include "rwkv_tokenizer.h"
#include "rwkv_train.h"

/* ---- token files ---- */

int token_file_detect(const uint8_t *p, size_t size) {
    return size >= 8 && memcmp(p, TOKEN_FILE_MAGIC, 8) == 0;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct tok_writer {
    const uint8_t *text;
    size_t n;
} tok_writer;

static rwkv_status write_byte_tokens(FILE *f, void *ctx, rwkv_error *err) {
    tok_writer *w = ctx;
    uint8_t hdr[TOKEN_FILE_HEADER] = {0};
    memcpy(hdr, TOKEN_FILE_MAGIC, 8);
    put_u32(hdr + 8, 1);
    put_u32(hdr + 12, 2);
    put_u32(hdr + 16, 256);
    put_u64(hdr + 24, (uint64_t)w->n);
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    uint8_t buf[8192];
    for (size_t i = 0; i < w->n;) {
        size_t k = 0;
        for (; k < sizeof buf / 2 && i < w->n; k++, i++) {
            buf[2 * k] = w->text[i];
            buf[2 * k + 1] = 0;
        }
        if (fwrite(buf, 2, k, f) != k) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    }
    return RWKV_OK;
}

rwkv_status tokenize_bytes_file(const char *text_path, const char *token_path, rwkv_error *err) {
    mapped_file mf;
    rwkv_status s = mapped_file_open(text_path, &mf, err);
    if (s != RWKV_OK) return s;
    if (token_file_detect(mf.data, mf.size)) {
        mapped_file_close(&mf);
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: is already a token file, not text", text_path);
    }
    tok_writer w = {mf.data, mf.size};
    s = atomic_write_file(token_path, write_byte_tokens, &w, err);
    if (s != RWKV_OK && err && !strstr(err->message, token_path)) rwkv_error_prefix(err, token_path);
    mapped_file_close(&mf);
    return s;
}

typedef struct id_writer {
    const int *ids;
    size_t n;
    int n_vocab;
} id_writer;

static rwkv_status write_id_tokens(FILE *f, void *ctx, rwkv_error *err) {
    id_writer *w = ctx;
    const uint32_t tb = w->n_vocab <= 65536 ? 2 : 4;
    uint8_t hdr[TOKEN_FILE_HEADER] = {0};
    memcpy(hdr, TOKEN_FILE_MAGIC, 8);
    put_u32(hdr + 8, 1);
    put_u32(hdr + 12, tb);
    put_u32(hdr + 16, (uint32_t)w->n_vocab);
    put_u64(hdr + 24, (uint64_t)w->n);
    if (fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    uint8_t buf[8192];
    for (size_t i = 0; i < w->n;) {
        size_t k = 0;
        for (; k < sizeof buf / tb && i < w->n; k++, i++) {
            if (tb == 2) {
                buf[2 * k] = (uint8_t)w->ids[i];
                buf[2 * k + 1] = (uint8_t)(w->ids[i] >> 8);
            } else {
                put_u32(buf + 4 * k, (uint32_t)w->ids[i]);
            }
        }
        if (fwrite(buf, tb, k, f) != k) return rwkv_fail_errno(err, RWKV_ERR_IO, "write failed");
    }
    return RWKV_OK;
}

rwkv_status token_file_write(const char *path, const int *ids, size_t n, int n_vocab, rwkv_error *err) {
    if (n_vocab < 1 || n_vocab > (1 << 30))
        return rwkv_fail(err, RWKV_ERR_ARG, "%s: vocabulary size %d out of range", path, n_vocab);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return rwkv_fail(err, RWKV_ERR_ARG, "%s: token %d at index %zu is outside [0, %d)", path, ids[i], i,
                             n_vocab);
    id_writer w = {ids, n, n_vocab};
    rwkv_status s = atomic_write_file(path, write_id_tokens, &w, err);
    if (s != RWKV_OK && err && !strstr(err->message, path)) rwkv_error_prefix(err, path);
    return s;
}

static int is_bytes_tokenizer(const char *tokenizer) { return !tokenizer || strcmp(tokenizer, "bytes") == 0; }

rwkv_status tokenize_text_file(const char *text_path, const char *tokenizer, const char *token_path,
                               uint64_t *n_tokens, int *n_vocab, rwkv_error *err) {
    if (is_bytes_tokenizer(tokenizer)) {
        rwkv_status s = tokenize_bytes_file(text_path, token_path, err);
        if (s != RWKV_OK) return s;
        if (n_vocab) *n_vocab = 256;
        if (n_tokens) {
            struct stat st;
            *n_tokens = stat(text_path, &st) == 0 ? (uint64_t)st.st_size : 0;
        }
        return RWKV_OK;
    }
    rwkv_tokenizer *tok;
    rwkv_status s = rwkv_tokenizer_load(tokenizer, &tok, err);
    if (s != RWKV_OK) {
        if (err && !strstr(err->message, tokenizer)) rwkv_error_prefix(err, tokenizer);
        return s;
    }
    mapped_file mf;
    s = mapped_file_open(text_path, &mf, err);
    if (s != RWKV_OK) {
        rwkv_tokenizer_free(tok);
        return s;
    }
    int *ids = NULL;
    size_t n = 0;
    if (token_file_detect(mf.data, mf.size))
        s = rwkv_fail(err, RWKV_ERR_ARG, "%s: is already a token file, not text", text_path);
    else
        s = rwkv_tokenize(tok, (const char *)mf.data, mf.size, &ids, &n, err);
    if (s != RWKV_OK && err && !strstr(err->message, text_path)) rwkv_error_prefix(err, text_path);
    mapped_file_close(&mf);
    const int vocab = rwkv_tokenizer_vocab_size(tok);
    rwkv_tokenizer_free(tok);
    if (s == RWKV_OK) s = token_file_write(token_path, ids, n, vocab, err);
    rwkv_free(ids);
    if (s != RWKV_OK) return s;
    if (n_tokens) *n_tokens = n;
    if (n_vocab) *n_vocab = vocab;
    return RWKV_OK;
}

rwkv_status token_data_open(const char *path, token_data *d, rwkv_error *err) {
    memset(d, 0, sizeof *d);
    rwkv_status s = mapped_file_open(path, &d->file, err);
    if (s != RWKV_OK) return s;
    const uint8_t *p = d->file.data;
    size_t size = d->file.size;
    if (!token_file_detect(p, size) || size < TOKEN_FILE_HEADER) {
        token_data_close(d);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: not a token file (expected the \"RWKVTOK\" header)",
                         path);
    }
    uint32_t version = rd_u32(p + 8), tb = rd_u32(p + 12), vocab = rd_u32(p + 16);
    uint64_t n = rd_u64(p + 24);
    const char *why = NULL;
    if (version != 1) why = "unsupported version (expected 1) (offset 8)";
    else if (tb != 2 && tb != 4) why = "bytes per token must be 2 or 4 (offset 12)";
    else if (vocab < 1 || vocab > (1u << 30) || (tb == 2 && vocab > 65536))
        why = "vocabulary size out of range (offset 16)";
    else if (n > (size - TOKEN_FILE_HEADER) / tb || n * tb != size - TOKEN_FILE_HEADER)
        why = "token count does not match the file size (offset 24)";
    if (why) {
        token_data_close(d);
        return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: %s", path, why);
    }
    d->tokens = p + TOKEN_FILE_HEADER;
    d->token_bytes = (int)tb;
    d->n_vocab = (int)vocab;
    d->n_tokens = n;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t t = tb == 2 ? rd_u16(d->tokens + 2 * i) : rd_u32(d->tokens + 4 * i);
        if (t >= vocab) {
            token_data_close(d);
            return rwkv_fail(err, RWKV_ERR_FORMAT, "%s: token %u at index %llu is not below the vocabulary size %u",
                             path, t, (unsigned long long)i, vocab);
        }
    }
    d->n_train = n;
    return rwkv_ok(err);
}

void token_data_close(token_data *d) {
    mapped_file_close(&d->file);
    memset(d, 0, sizeof *d);
}

rwkv_status token_data_split(token_data *d, double val_fraction, int ctx, const char *path,
                             rwkv_error *err) {
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return rwkv_fail(err, RWKV_ERR_ARG, "validation fraction must be in [0, 1), got %g", val_fraction);
    uint64_t n_val = (uint64_t)((double)d->n_tokens * val_fraction + 0.5);
    d->n_val = n_val;
    d->n_train = d->n_tokens - n_val;
    uint64_t need = (uint64_t)ctx + 1;
    if (d->n_train < need)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "%s: the training part has %llu tokens; a window of ctx+1 = %llu tokens needs more "
                         "data (or a smaller --ctx / --val-fraction)",
                         path, (unsigned long long)d->n_train, (unsigned long long)need);
    if (val_fraction > 0 && n_val < need)
        return rwkv_fail(err, RWKV_ERR_ARG,
                         "%s: the validation part has %llu tokens, fewer than ctx+1 = %llu (raise --val-fraction, "
                         "lower --ctx, or use --val-fraction 0)",
                         path, (unsigned long long)n_val, (unsigned long long)need);
    return rwkv_ok(err);
}

void data_window(const token_data *d, uint64_t start, int T, int *inputs, int *targets) {
    for (int t = 0; t < T; t++) {
        inputs[t] = token_at(d, start + (uint64_t)t);
        targets[t] = token_at(d, start + (uint64_t)t + 1);
    }
}

void data_random_batch(const token_data *d, train_rng *rng, int B, int T, int *inputs, int *targets) {
    uint64_t n_starts = d->n_train - (uint64_t)T; /* starts 0 .. n_train-T-1 */
    for (int b = 0; b < B; b++) {
        uint64_t s = rng_below(rng, n_starts);
        data_window(d, s, T, inputs + (size_t)b * T, targets + (size_t)b * T);
    }
}

int64_t data_val_windows(const token_data *d, int T, int64_t want, uint64_t **starts) {
    *starts = NULL;
    if (d->n_val < (uint64_t)T + 1) return 0;
    int64_t all = (int64_t)((d->n_val - 1) / (uint64_t)T);
    int64_t k = (want <= 0 || want > all) ? all : want;
    uint64_t *s = malloc((size_t)k * sizeof *s);
    if (!s) return -1;
    for (int64_t i = 0; i < k; i++) {
        int64_t w = i * (all / k) + (i * (all % k)) / k; /* = floor(i * all / k): evenly spread */
        s[i] = d->n_train + (uint64_t)w * (uint64_t)T;
    }
    *starts = s;
    return k;
}

/* ---- the public tokenize calls (include/rwkv_train.h) ---- */

rwkv_status rwkv_tokenize_file(const char *text_path, const char *token_path, rwkv_error *err) {
    return rwkv_tokenize_file_with(text_path, NULL, token_path, NULL, NULL, err);
}

rwkv_status rwkv_tokenize_file_with(const char *text_path, const char *tokenizer, const char *token_path,
                                    uint64_t *n_tokens, int *n_vocab, rwkv_error *err) {
    if (!text_path || !token_path) return rwkv_fail(err, RWKV_ERR_ARG, "tokenize: a path is NULL");
    const char *inputs[] = {text_path, tokenizer};
    rwkv_status s = rwkv_check_output(token_path, inputs, 2, err);
    if (s != RWKV_OK) return s;
    return tokenize_text_file(text_path, tokenizer, token_path, n_tokens, n_vocab, err);
}
