/* State files: the recurrent state of one model saved to disk and restored
 * (docs/generation.md "State files").
 *
 * Layout, all integers little-endian, 96-byte header then the floats:
 *   0  8  magic "RWKVSTAT"
 *   8  4  u32 format version (1)
 *  12  4  u32 header size in bytes (96)
 *  16 16  RWKV version string ("4", "5.2", ...), NUL-padded
 *  32  4  u32 n_vocab       36  4  u32 n_embd      40  4  u32 n_layer
 *  44  4  u32 n_ffn         48  4  u32 dim_att     52  4  u32 head_size
 *  56  8  u64 state_floats
 *  64  8  u64 fingerprint of the model's weights (rwkv_model_fingerprint)
 *  72  8  u64 FNV-1a 64 of the float bytes that follow
 *  80 16  reserved, zero
 *  96  .  state_floats float32 values, little-endian
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/atomic_write.h"
#include "core/fs.h"
#include "formats/formats.h"
#include "model/model.h"

#define STATE_MAGIC "RWKVSTAT"
#define STATE_VERSION 1u
#define STATE_HEADER 96u

/* ---- hashing ----------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    return fnv1a(h, b, 8);
}

/* A strong 64-bit finaliser (splitmix64's), so that summing per-tensor
 * hashes does not let structured differences cancel. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define FP_EDGE 4096u   /* bytes hashed at each end of a tensor */
#define FP_BLOCK 1024u  /* bytes per strided block */
#define FP_BLOCKS 16u   /* strided blocks per tensor */

/* One tensor: name, dtype, shape and byte count fully; the bytes fully when
 * small, else the first and last 4 KiB and 16 evenly spaced 1 KiB blocks. */
static uint64_t tensor_hash(const tensor *t) {
    uint64_t h = FNV_OFFSET;
    h = fnv1a(h, t->name, strlen(t->name) + 1);
    h = fnv_u64(h, (uint64_t)t->type);
    h = fnv_u64(h, (uint64_t)t->ndim);
    for (int d = 0; d < t->ndim; d++) h = fnv_u64(h, (uint64_t)t->shape[d]);
    h = fnv_u64(h, (uint64_t)t->nbytes);
    const unsigned char *b = t->data;
    size_t n = t->nbytes;
    if (!b || n == 0) return mix64(h);
    if (n <= 2 * FP_EDGE + FP_BLOCKS * FP_BLOCK) return mix64(fnv1a(h, b, n));
    h = fnv1a(h, b, FP_EDGE);
    size_t span = n - 2 * FP_EDGE - FP_BLOCK; /* block starts lie in [FP_EDGE, FP_EDGE + span] */
    for (size_t i = 0; i < FP_BLOCKS; i++) {
        size_t off = FP_EDGE + (size_t)((double)span * (double)(i + 1) / (double)(FP_BLOCKS + 1));
        h = fnv1a(h, b + off, FP_BLOCK);
    }
    h = fnv1a(h, b + n - FP_EDGE, FP_EDGE);
    return mix64(h);
}

uint64_t rwkv_model_fingerprint(const rwkv_model *m) {
    if (!m) return 0;
    /* order-independent over tensors, so that two files listing the same
     * tensors in another order (e.g. .pth and safetensors) agree */
    uint64_t sum = 0;
    for (int i = 0; i < m->weights.count; i++) sum += tensor_hash(&m->weights.tensors[i]);
    uint64_t h = FNV_OFFSET;
    h = fnv_u64(h, (uint64_t)m->weights.count);
    h = fnv_u64(h, sum);
    return mix64(h);
}

/* ---- header ------------------------------------------------------------ */

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t u32_of(int v) { return v < 0 ? 0u : (uint32_t)v; }

static void encode_floats(const float *src, size_t n, unsigned char *dst) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &src[i], 4);
        put_u32(dst + 4 * i, u);
    }
}

static void decode_floats(const unsigned char *src, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

static void make_header(const rwkv_model *m, size_t n_floats, uint64_t data_hash, unsigned char h[STATE_HEADER]) {
    const rwkv_model_info *i = &m->info;
    memset(h, 0, STATE_HEADER);
    memcpy(h, STATE_MAGIC, 8);
    put_u32(h + 8, STATE_VERSION);
    put_u32(h + 12, STATE_HEADER);
    if (i->version) {
        size_t n = strlen(i->version);
        memcpy(h + 16, i->version, n < 15 ? n : 15);
    }
    put_u32(h + 32, u32_of(i->n_vocab));
    put_u32(h + 36, u32_of(i->n_embd));
    put_u32(h + 40, u32_of(i->n_layer));
    put_u32(h + 44, u32_of(i->n_ffn));
    put_u32(h + 48, u32_of(i->dim_att));
    put_u32(h + 52, u32_of(i->head_size));
    put_u64(h + 56, (uint64_t)n_floats);
    put_u64(h + 64, rwkv_model_fingerprint(m));
    put_u64(h + 72, data_hash);
}

/* ---- save -------------------------------------------------------------- */

typedef struct save_ctx {
    const unsigned char *bytes;
    size_t n;
    const char *path;
} save_ctx;

static rwkv_status write_all(FILE *f, void *ctx, rwkv_error *err) {
    save_ctx *c = ctx;
    if (fwrite(c->bytes, 1, c->n, f) != c->n)
        return rwkv_fail(err, RWKV_ERR_IO, "%s: write failed: %s", c->path, strerror(errno));
    return RWKV_OK;
}

/* A state that is a KV cache (the GPT baseline) has no file form: its size
 * grows with the sequence and it is cheap to rebuild from the tokens. */
static rwkv_status refuse_kv_cache(const char *fn, rwkv_error *err) {
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: state files hold RWKV states; this is a GPT's KV cache", fn);
}

rwkv_status rwkv_state_save(const rwkv_state *state, const char *path, rwkv_error *err) {
    if (!state || !path || !*path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_save: state and path are required");
    if (!state->n) return refuse_kv_cache("rwkv_state_save", err);
    size_t n = state->n;
    if (n > (SIZE_MAX - STATE_HEADER) / 4) return rwkv_fail(err, RWKV_ERR_NOMEM, "state too large");
    unsigned char *buf = malloc(STATE_HEADER + 4 * n);
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    const float *data = rwkv_state_data((rwkv_state *)state); /* a GPU state is downloaded */
    if (!data) {
        free(buf);
        return rwkv_fail(err, RWKV_ERR_IO, "rwkv_state_save: the state could not be read from the device");
    }
    encode_floats(data, n, buf + STATE_HEADER);
    make_header(state->model, n, fnv1a(FNV_OFFSET, buf + STATE_HEADER, 4 * n), buf);
    save_ctx c = {buf, STATE_HEADER + 4 * n, path};
    rwkv_status s = atomic_write_file(path, write_all, &c, err);
    free(buf);
    return s == RWKV_OK ? rwkv_ok(err) : s;
}

/* ---- load -------------------------------------------------------------- */

static rwkv_status read_whole(const char *path, size_t max, unsigned char **out, size_t *len, rwkv_error *err) {
    FILE *f;
    rwkv_status s = fopen_regular_file(path, &f, err);
    if (s != RWKV_OK) return s;
    /* read at most max + 1 bytes: enough to tell "too long" */
    unsigned char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    }
    size_t got = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        free(buf);
        return rwkv_fail(err, RWKV_ERR_IO, "%s: read failed: %s", path, strerror(e));
    }
    *out = buf;
    *len = got;
    return RWKV_OK;
}

rwkv_status rwkv_state_load(rwkv_state *state, const char *path, rwkv_error *err) {
    if (!state || !path || !*path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_state_load: state and path are required");
    if (!state->n) return refuse_kv_cache("rwkv_state_load", err);
    const rwkv_model *m = state->model;
    const rwkv_model_info *mi = &m->info;
    size_t n = state->n;
    if (n > (SIZE_MAX - STATE_HEADER - 1) / 4) return rwkv_fail(err, RWKV_ERR_NOMEM, "state too large");
    size_t want = STATE_HEADER + 4 * n;
    unsigned char *buf = NULL;
    size_t len = 0;
    rwkv_status s = read_whole(path, want, &buf, &len, err);
    if (s != RWKV_OK) return s;
#define FAIL(code, ...)                                                                                \
    do {                                                                                               \
        free(buf);                                                                                     \
        return rwkv_fail(err, code, __VA_ARGS__);                                                      \
    } while (0)
    if (len < 16 || memcmp(buf, STATE_MAGIC, 8) != 0) {
        if (len >= 8 && memcmp(buf, STATE_MAGIC, 8) == 0)
            FAIL(RWKV_ERR_FORMAT, "%s: truncated state file (%zu bytes, the header alone is %u)", path, len,
                 STATE_HEADER);
        FAIL(RWKV_ERR_FORMAT, "%s: not an rwkv.c state file (bad magic)", path);
    }
    uint32_t version = get_u32(buf + 8), hsize = get_u32(buf + 12);
    if (version != STATE_VERSION)
        FAIL(RWKV_ERR_UNSUPPORTED, "%s: state file format version %u is not supported (expected %u)", path, version,
             STATE_VERSION);
    if (hsize != STATE_HEADER)
        FAIL(RWKV_ERR_FORMAT, "%s: bad header size %u (expected %u)", path, hsize, STATE_HEADER);
    if (len < STATE_HEADER)
        FAIL(RWKV_ERR_FORMAT, "%s: truncated state file (%zu bytes, the header alone is %u)", path, len,
             STATE_HEADER);
    char fver[17] = {0};
    memcpy(fver, buf + 16, 16);
    for (int i = 0; i < 16; i++)
        if (fver[i] && (fver[i] < 0x20 || fver[i] > 0x7e)) fver[i] = '?';
    uint32_t V = get_u32(buf + 32), C = get_u32(buf + 36), L = get_u32(buf + 40);
    uint32_t F = get_u32(buf + 44), A = get_u32(buf + 48), N = get_u32(buf + 52);
    uint64_t nf = get_u64(buf + 56), fp = get_u64(buf + 64), dh = get_u64(buf + 72);
    const char *mver = mi->version ? mi->version : "";
    if (strcmp(fver, mver) != 0)
        FAIL(RWKV_ERR_SHAPE, "%s: the state is of an RWKV-%s model, this model is RWKV-%s", path, fver, mver);
    if (V != u32_of(mi->n_vocab) || C != u32_of(mi->n_embd) || L != u32_of(mi->n_layer) ||
        F != u32_of(mi->n_ffn) || A != u32_of(mi->dim_att) || N != u32_of(mi->head_size) || nf != (uint64_t)n)
        FAIL(RWKV_ERR_SHAPE,
             "%s: the state is of a model with V=%u C=%u L=%u F=%u A=%u head size %u (%llu floats), this model "
             "has V=%d C=%d L=%d F=%d A=%d head size %d (%zu floats)",
             path, V, C, L, F, A, N, (unsigned long long)nf, mi->n_vocab, mi->n_embd, mi->n_layer, mi->n_ffn,
             mi->dim_att, mi->head_size, n);
    uint64_t mfp = rwkv_model_fingerprint(m);
    if (fp != mfp)
        FAIL(RWKV_ERR_ARG,
             "%s: the state was saved with other weights (fingerprint %016llx, this model's is %016llx)", path,
             (unsigned long long)fp, (unsigned long long)mfp);
    if (len < want)
        FAIL(RWKV_ERR_FORMAT, "%s: truncated state file (%zu bytes, expected %zu)", path, len, want);
    if (len > want) FAIL(RWKV_ERR_FORMAT, "%s: trailing bytes after the state (expected %zu bytes)", path, want);
    if (fnv1a(FNV_OFFSET, buf + STATE_HEADER, 4 * n) != dh)
        FAIL(RWKV_ERR_FORMAT, "%s: checksum mismatch: the state data is corrupted", path);
    float *tmp = malloc(n ? n * sizeof *tmp : 1);
    if (!tmp) FAIL(RWKV_ERR_NOMEM, "out of memory");
    decode_floats(buf + STATE_HEADER, n, tmp);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(tmp[i])) {
            free(tmp);
            FAIL(RWKV_ERR_NUMERIC, "%s: non-finite value at float %zu of the state", path, i);
        }
#undef FAIL
    float *data = rwkv_state_data(state); /* on a GPU: uploaded at the next evaluation */
    if (data) memcpy(data, tmp, n * sizeof *tmp);
    state->pos = 0;
    free(tmp);
    free(buf);
    return rwkv_ok(err);
}
