/* Builders for PyTorch .pth files in tests: byte buffers, a zip writer
 * (stored members, as torch.save writes them, optionally ZIP64) and the
 * pickle opcodes of a state dict of tensors. Shared by the tests of the
 * .pth reader and of the transformers layout (pytorch_model.bin). */
#ifndef RWKV_TESTS_PTH_BUILD_H
#define RWKV_TESTS_PTH_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/pickle.h"

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static inline void b_put(bytes *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
}
static inline void b_u8(bytes *b, unsigned v) {
    uint8_t x = (uint8_t)v;
    b_put(b, &x, 1);
}
static inline void b_u16(bytes *b, unsigned v) {
    b_u8(b, v & 0xff);
    b_u8(b, (v >> 8) & 0xff);
}
static inline void b_u32(bytes *b, uint32_t v) {
    b_u16(b, v & 0xffff);
    b_u16(b, v >> 16);
}
static inline void b_u64(bytes *b, uint64_t v) {
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}
static inline void b_str(bytes *b, const char *s) { b_put(b, s, strlen(s)); }
static inline void b_free(bytes *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

typedef struct member {
    const char *name;
    const void *data;
    size_t len;
    int method;
} member;

/* zip64 = 0: classic; 1: every entry ZIP64 plus ZIP64 end records;
 * 2: ZIP64 end records, entry i overflows only the fields picked by i % 4
 * (none / offset / sizes / all), to check "only the overflowing values". */
static inline void zip_build(bytes *z, const member *m, int n, int zip64) {
    uint64_t *offs = calloc((size_t)n, sizeof *offs);
    for (int i = 0; i < n; i++) {
        size_t nl = strlen(m[i].name);
        offs[i] = z->n;
        /* torch pads the local extra field ("FB") so data starts at a multiple of 64 */
        size_t pad = (64 - (z->n + 30 + nl + 4) % 64) % 64;
        b_u32(z, 0x04034b50);
        b_u16(z, 20);
        b_u16(z, 0x0808);
        b_u16(z, (unsigned)m[i].method);
        b_u32(z, 0);
        b_u32(z, 0); /* crc */
        b_u32(z, 0); /* sizes: in the data descriptor */
        b_u32(z, 0);
        b_u16(z, (unsigned)nl);
        b_u16(z, (unsigned)(pad + 4));
        b_str(z, m[i].name);
        b_u16(z, 0x4246);
        b_u16(z, (unsigned)pad);
        for (size_t k = 0; k < pad; k++) b_u8(z, 'Z');
        b_put(z, m[i].data, m[i].len);
        b_u32(z, 0x08074b50);
        b_u32(z, 0);
        if (zip64) {
            b_u64(z, m[i].len);
            b_u64(z, m[i].len);
        } else {
            b_u32(z, (uint32_t)m[i].len);
            b_u32(z, (uint32_t)m[i].len);
        }
    }
    uint64_t cd = z->n;
    for (int i = 0; i < n; i++) {
        int sizes = zip64 == 1 || (zip64 == 2 && i % 4 >= 2);
        int off = zip64 == 1 || (zip64 == 2 && (i % 4 == 1 || i % 4 == 3));
        size_t nl = strlen(m[i].name), xl = (sizes ? 16 : 0) + (off ? 8 : 0);
        b_u32(z, 0x02014b50);
        b_u16(z, 0x031e);
        b_u16(z, zip64 ? 45 : 20);
        b_u16(z, 0x0808);
        b_u16(z, (unsigned)m[i].method);
        b_u32(z, 0);
        b_u32(z, 0);
        b_u32(z, sizes ? 0xffffffffu : (uint32_t)m[i].len);
        b_u32(z, sizes ? 0xffffffffu : (uint32_t)m[i].len);
        b_u16(z, (unsigned)nl);
        b_u16(z, (unsigned)(xl ? xl + 4 : 0));
        b_u16(z, 0);
        b_u16(z, 0);
        b_u16(z, 0);
        b_u32(z, 0);
        b_u32(z, off ? 0xffffffffu : (uint32_t)offs[i]);
        b_str(z, m[i].name);
        if (xl) {
            b_u16(z, 0x0001);
            b_u16(z, (unsigned)xl);
            if (sizes) {
                b_u64(z, m[i].len); /* uncompressed, then compressed */
                b_u64(z, m[i].len);
            }
            if (off) b_u64(z, offs[i]);
        }
    }
    uint64_t cd_size = z->n - cd;
    if (zip64) {
        uint64_t rec = z->n;
        b_u32(z, 0x06064b50);
        b_u64(z, 44);
        b_u16(z, 45);
        b_u16(z, 45);
        b_u32(z, 0);
        b_u32(z, 0);
        b_u64(z, (uint64_t)n);
        b_u64(z, (uint64_t)n);
        b_u64(z, cd_size);
        b_u64(z, cd);
        b_u32(z, 0x07064b50);
        b_u32(z, 0);
        b_u64(z, rec);
        b_u32(z, 1);
    }
    b_u32(z, 0x06054b50);
    b_u16(z, 0);
    b_u16(z, 0);
    b_u16(z, zip64 ? 0xffff : (unsigned)n);
    b_u16(z, zip64 ? 0xffff : (unsigned)n);
    b_u32(z, zip64 ? 0xffffffffu : (uint32_t)cd_size);
    b_u32(z, zip64 ? 0xffffffffu : (uint32_t)cd);
    b_u16(z, 0);
    free(offs);
}

/* Pickle opcodes. */
static inline void p_global(bytes *b, const char *mod, const char *name) {
    b_u8(b, 'c');
    b_str(b, mod);
    b_u8(b, '\n');
    b_str(b, name);
    b_u8(b, '\n');
}
static inline void p_str(bytes *b, const char *s) {
    b_u8(b, 'X');
    b_u32(b, (uint32_t)strlen(s));
    b_str(b, s);
}
static inline void p_int(bytes *b, uint32_t v) {
    if (v < 256) {
        b_u8(b, 'K');
        b_u8(b, v);
    } else if (v < 65536) {
        b_u8(b, 'M');
        b_u16(b, v);
    } else {
        b_u8(b, 'J');
        b_u32(b, v);
    }
}
static inline void p_put(bytes *b, uint32_t idx) { /* BINPUT below 256, else LONG_BINPUT */
    if (idx < 256) {
        b_u8(b, 'q');
        b_u8(b, idx);
    } else {
        b_u8(b, 'r');
        b_u32(b, idx);
    }
}
static inline void p_get(bytes *b, uint32_t idx) {
    if (idx < 256) {
        b_u8(b, 'h');
        b_u8(b, idx);
    } else {
        b_u8(b, 'j');
        b_u32(b, idx);
    }
}
static inline void p_int_tuple(bytes *b, int n, const int64_t *v) {
    if (n == 0) {
        b_u8(b, ')');
        return;
    }
    b_u8(b, '(');
    for (int i = 0; i < n; i++) p_int(b, (uint32_t)v[i]);
    b_u8(b, 't');
}

/* Memo slots of the synthetic pickles: the globals are stored at indices
 * >= 256 so that they need LONG_BINPUT / LONG_BINGET. */
enum { MEMO_REBUILD = 300, MEMO_ODICT = 70000 };

typedef struct tdesc {
    const char *storage_class, *key;
    uint32_t numel, offset;
    int ndim;
    int64_t shape[PICKLE_MAX_DIMS], stride[PICKLE_MAX_DIMS];
} tdesc;

/* torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) */
static inline void p_tensor(bytes *b, const tdesc *t, int first) {
    if (first) {
        p_global(b, "torch._utils", "_rebuild_tensor_v2");
        p_put(b, MEMO_REBUILD);
    } else {
        p_get(b, MEMO_REBUILD);
    }
    b_u8(b, '(');
    b_u8(b, '(');
    p_str(b, "storage");
    p_global(b, "torch", t->storage_class);
    p_str(b, t->key);
    p_str(b, "cuda:0");
    p_int(b, t->numel);
    b_u8(b, 't');
    b_u8(b, 'Q');
    p_int(b, t->offset);
    p_int_tuple(b, t->ndim, t->shape);
    p_int_tuple(b, t->ndim, t->stride);
    b_u8(b, 0x89);
    p_get(b, MEMO_ODICT);
    b_u8(b, ')');
    b_u8(b, 'R');
    b_u8(b, 't');
    b_u8(b, 'R');
}

static inline void p_begin_odict(bytes *b) {
    b_u8(b, 0x80);
    b_u8(b, 2);
    p_global(b, "collections", "OrderedDict");
    p_put(b, MEMO_ODICT);
    b_u8(b, ')');
    b_u8(b, 'R');
}

#endif
