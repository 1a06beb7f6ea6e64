/* Zip reader for PyTorch .pth files (docs/model.md §4.1).
 *
 * Layout we rely on (PKWARE APPNOTE): the end-of-central-directory record
 * (EOCD, "PK\5\6") sits at the end of the file followed only by its comment;
 * when any of its fields overflow, a ZIP64 locator ("PK\6\7") right before it
 * points to a ZIP64 EOCD record ("PK\6\6") holding the 64-bit values. The
 * central directory lists every member with sizes and the offset of its
 * local header. torch sets flag bit 3 (sizes in a trailing data descriptor),
 * so the local header's sizes are zero: sizes come from the central
 * directory only, and the local header is used just for its name/extra
 * lengths, which fix where the data starts. */
#include "formats/zip.h"

#include <stdlib.h>
#include <string.h>

#include "core/mapped_file.h"

enum {
    SIG_LOCAL = 0x04034b50,
    SIG_CENTRAL = 0x02014b50,
    SIG_EOCD = 0x06054b50,
    SIG_EOCD64 = 0x06064b50,
    SIG_LOCATOR64 = 0x07064b50,
    LOCAL_SIZE = 30,
    CENTRAL_SIZE = 46,
    EOCD_SIZE = 22,
    EOCD64_SIZE = 56,
    LOCATOR64_SIZE = 20,
    MAX_COMMENT = 0xffff,
    EXTRA_ZIP64 = 0x0001,
};

#define U32_SAT 0xffffffffu

/* Copies a member name for an error message: at most 120 bytes, anything
 * that is not printable ASCII replaced by '?', so a message stays one line. */
static const char *printable_name(const char *name, size_t len, char *buf, size_t size) {
    size_t n = len < size - 1 ? len : size - 1;
    if (n > 120) n = 120;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[n] = '\0';
    return buf;
}

/* The EOCD is the last "PK\5\6" whose comment ends exactly at the end of the
 * file; the comment is at most 64 KiB, which bounds the backward search. */
static int find_eocd(const uint8_t *p, uint64_t size, uint64_t *pos) {
    if (size < EOCD_SIZE) return 0;
    uint64_t last = size - EOCD_SIZE;
    uint64_t first = last > MAX_COMMENT ? last - MAX_COMMENT : 0;
    for (uint64_t i = last + 1; i-- > first;) {
        if (rd_u32(p + i) == SIG_EOCD && i + EOCD_SIZE + rd_u16(p + i + 20) == size) {
            *pos = i;
            return 1;
        }
    }
    return 0;
}

typedef struct cd_info {
    uint64_t count, cd_size, cd_offset;
    uint64_t limit; /* the central directory must end at or before this offset */
} cd_info;

static rwkv_status read_eocd64(const uint8_t *p, uint64_t eocd, cd_info *cd, rwkv_error *err) {
    const uint8_t *loc = p + eocd - LOCATOR64_SIZE;
    uint64_t rec = rd_u64(loc + 8);
    if (rd_u32(loc + 4) != 0 || rd_u32(loc + 16) > 1)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "multi-disk (split) zip archives are not supported (offset %llu)",
                         (unsigned long long)(eocd - LOCATOR64_SIZE));
    uint64_t limit = eocd - LOCATOR64_SIZE;
    if (!in_bounds(rec, EOCD64_SIZE, limit) || rd_u32(p + rec) != SIG_EOCD64)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "ZIP64 locator points to offset %llu, where there is no ZIP64 "
                         "end-of-central-directory record (offset %llu)",
                         (unsigned long long)rec, (unsigned long long)(eocd - LOCATOR64_SIZE));
    const uint8_t *r = p + rec;
    uint64_t rest = rd_u64(r + 4); /* size of the record after its first 12 bytes */
    if (rest < EOCD64_SIZE - 12 || !in_bounds(rec + 12, rest, limit))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "ZIP64 end-of-central-directory record has a bad size %llu "
                         "(offset %llu)", (unsigned long long)rest, (unsigned long long)rec);
    if (rd_u32(r + 16) != 0 || rd_u32(r + 20) != 0 || rd_u64(r + 24) != rd_u64(r + 32))
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "multi-disk (split) zip archives are not supported (offset %llu)",
                         (unsigned long long)rec);
    cd->count = rd_u64(r + 32);
    cd->cd_size = rd_u64(r + 40);
    cd->cd_offset = rd_u64(r + 48);
    cd->limit = rec;
    return RWKV_OK;
}

static rwkv_status read_directory_info(const uint8_t *p, uint64_t size, cd_info *cd, rwkv_error *err) {
    uint64_t eocd;
    if (!find_eocd(p, size, &eocd))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "no zip end-of-central-directory record in the last %u bytes "
                         "(truncated file?)", (unsigned)(EOCD_SIZE + MAX_COMMENT));
    const uint8_t *e = p + eocd;
    if (eocd >= LOCATOR64_SIZE && rd_u32(p + eocd - LOCATOR64_SIZE) == SIG_LOCATOR64) {
        rwkv_status s = read_eocd64(p, eocd, cd, err);
        if (s != RWKV_OK) return s;
    } else {
        if (rd_u16(e + 4) != 0 || rd_u16(e + 6) != 0 || rd_u16(e + 8) != rd_u16(e + 10))
            return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                             "multi-disk (split) zip archives are not supported (offset %llu)",
                             (unsigned long long)eocd);
        cd->count = rd_u16(e + 10);
        cd->cd_size = rd_u32(e + 12);
        cd->cd_offset = rd_u32(e + 16);
        cd->limit = eocd;
    }
    if (!in_bounds(cd->cd_offset, cd->cd_size, cd->limit))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "zip central directory (%llu bytes at offset %llu) does not fit "
                         "before its end record (offset %llu)", (unsigned long long)cd->cd_size,
                         (unsigned long long)cd->cd_offset, (unsigned long long)cd->limit);
    if (cd->count > cd->cd_size / CENTRAL_SIZE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "zip claims %llu entries, but its central directory has room for "
                         "at most %llu (offset %llu)", (unsigned long long)cd->count,
                         (unsigned long long)(cd->cd_size / CENTRAL_SIZE), (unsigned long long)cd->cd_offset);
    return RWKV_OK;
}

/* Extra field 0x0001 holds, as u64 and in this order, only those of
 * uncompressed size, compressed size and local-header offset whose 32-bit
 * central fields read 0xFFFFFFFF. */
static rwkv_status apply_zip64_extra(const uint8_t *x, size_t xlen, zip_entry *e, int need_u, int need_c,
                                     int need_o, rwkv_error *err) {
    size_t q = 0;
    while (q + 4 <= xlen) {
        size_t id = rd_u16(x + q), len = rd_u16(x + q + 2);
        if (len > xlen - q - 4) break;
        if (id == EXTRA_ZIP64) {
            const uint8_t *v = x + q + 4;
            size_t want = 8 * (size_t)(need_u + need_c + need_o);
            if (len < want)
                return rwkv_fail(err, RWKV_ERR_FORMAT, "ZIP64 extra field of %zu bytes is too short (need %zu) "
                                 "(offset %llu)", len, want, (unsigned long long)e->cd_offset);
            if (need_u) {
                e->size = rd_u64(v);
                v += 8;
            }
            if (need_c) {
                e->csize = rd_u64(v);
                v += 8;
            }
            if (need_o) e->local_offset = rd_u64(v);
            return RWKV_OK;
        }
        q += 4 + len;
    }
    return rwkv_fail(err, RWKV_ERR_FORMAT, "zip entry has 32-bit fields set to 0xFFFFFFFF but no ZIP64 extra "
                     "field (offset %llu)", (unsigned long long)e->cd_offset);
}

static rwkv_status read_central_entry(const uint8_t *p, uint64_t pos, uint64_t cd_end, zip_entry *e,
                                      uint64_t *next, rwkv_error *err) {
    if (!in_bounds(pos, CENTRAL_SIZE, cd_end) || rd_u32(p + pos) != SIG_CENTRAL)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "bad zip central directory entry (offset %llu)",
                         (unsigned long long)pos);
    const uint8_t *c = p + pos;
    size_t n = rd_u16(c + 28), xl = rd_u16(c + 30), cl = rd_u16(c + 32);
    if (!in_bounds(pos + CENTRAL_SIZE, (uint64_t)n + xl + cl, cd_end))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "zip central directory entry runs past the directory (offset %llu)",
                         (unsigned long long)pos);
    memset(e, 0, sizeof *e);
    e->flags = rd_u16(c + 8);
    e->method = rd_u16(c + 10);
    e->csize = rd_u32(c + 20);
    e->size = rd_u32(c + 24);
    e->local_offset = rd_u32(c + 42);
    e->name = (const char *)c + CENTRAL_SIZE;
    e->name_len = n;
    e->cd_offset = pos;
    int need_u = e->size == U32_SAT, need_c = e->csize == U32_SAT, need_o = e->local_offset == U32_SAT;
    if (need_u || need_c || need_o) {
        rwkv_status s = apply_zip64_extra(c + CENTRAL_SIZE + n, xl, e, need_u, need_c, need_o, err);
        if (s != RWKV_OK) return s;
    }
    *next = pos + CENTRAL_SIZE + n + xl + cl;
    return RWKV_OK;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int entry_ptr_cmp(const void *a, const void *b) {
    const zip_entry *x = *(const zip_entry *const *)a, *y = *(const zip_entry *const *)b;
    return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Sorted index for zip_find; duplicate names are refused so that a lookup
 * can never silently pick one of two members. */
static rwkv_status build_index(zip_archive *za, rwkv_error *err) {
    za->sorted = malloc((za->count ? za->count : 1) * sizeof *za->sorted);
    if (!za->sorted) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (zip index)");
    for (size_t i = 0; i < za->count; i++) za->sorted[i] = &za->entries[i];
    qsort(za->sorted, za->count, sizeof *za->sorted, entry_ptr_cmp);
    for (size_t i = 1; i < za->count; i++)
        if (entry_ptr_cmp(&za->sorted[i - 1], &za->sorted[i]) == 0) {
            char nb[128];
            const zip_entry *e = za->sorted[i];
            return rwkv_fail(err, RWKV_ERR_FORMAT, "zip member '%s' appears twice (offset %llu)",
                             printable_name(e->name, e->name_len, nb, sizeof nb),
                             (unsigned long long)e->cd_offset);
        }
    return RWKV_OK;
}

rwkv_status zip_open(const uint8_t *data, size_t size, zip_archive *za, rwkv_error *err) {
    memset(za, 0, sizeof *za);
    za->data = data;
    za->size = size;
    cd_info cd = {0, 0, 0, 0};
    rwkv_status s = read_directory_info(data, size, &cd, err);
    if (s != RWKV_OK) return s;
    za->entries = calloc(cd.count ? (size_t)cd.count : 1, sizeof *za->entries);
    if (!za->entries) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (%llu zip entries)",
                                       (unsigned long long)cd.count);
    uint64_t pos = cd.cd_offset, end = cd.cd_offset + cd.cd_size;
    for (uint64_t i = 0; i < cd.count; i++) {
        s = read_central_entry(data, pos, end, &za->entries[i], &pos, err);
        if (s != RWKV_OK) {
            zip_close(za);
            return s;
        }
        za->count++;
    }
    s = build_index(za, err);
    if (s != RWKV_OK) {
        zip_close(za);
        return s;
    }
    return rwkv_ok(err);
}

void zip_close(zip_archive *za) {
    free(za->entries);
    free(za->sorted);
    memset(za, 0, sizeof *za);
}

const zip_entry *zip_find(const zip_archive *za, const char *name) {
    size_t lo = 0, hi = za->count, n = strlen(name);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const zip_entry *e = za->sorted[mid];
        int c = name_cmp(e->name, e->name_len, name, n);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

rwkv_status zip_entry_data(const zip_archive *za, const zip_entry *e, const uint8_t **out, uint64_t *out_size,
                           rwkv_error *err) {
    char nb[128];
    const char *name = printable_name(e->name, e->name_len, nb, sizeof nb);
    if (e->flags & 1)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "zip member '%s' is encrypted (offset %llu)", name,
                         (unsigned long long)e->cd_offset);
    if (e->method != 0)
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "zip member '%s' is compressed (method %u); only stored "
                         "(uncompressed) members are supported, as torch.save writes them (offset %llu)",
                         name, (unsigned)e->method, (unsigned long long)e->cd_offset);
    if (e->csize != e->size)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "stored zip member '%s' has compressed size %llu != size %llu "
                         "(offset %llu)", name, (unsigned long long)e->csize, (unsigned long long)e->size,
                         (unsigned long long)e->cd_offset);
    uint64_t lo = e->local_offset;
    if (!in_bounds(lo, LOCAL_SIZE, za->size) || rd_u32(za->data + lo) != SIG_LOCAL)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "no local header for zip member '%s' at offset %llu", name,
                         (unsigned long long)lo);
    const uint8_t *l = za->data + lo;
    uint64_t n = rd_u16(l + 26), xl = rd_u16(l + 28);
    if (!in_bounds(lo + LOCAL_SIZE, n + xl, za->size))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "local header of zip member '%s' runs past the end of the file "
                         "(offset %llu)", name, (unsigned long long)lo);
    if (rd_u16(l + 8) != e->method || n != e->name_len || memcmp(l + LOCAL_SIZE, e->name, e->name_len) != 0)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "local header of zip member '%s' does not match its central "
                         "directory entry (offset %llu)", name, (unsigned long long)lo);
    uint64_t start = lo + LOCAL_SIZE + n + xl;
    if (!in_bounds(start, e->size, za->size))
        return rwkv_fail(err, RWKV_ERR_FORMAT, "zip member '%s' (%llu bytes at offset %llu) runs past the end "
                         "of the file (%llu bytes)", name, (unsigned long long)e->size,
                         (unsigned long long)start, (unsigned long long)za->size);
    *out = za->data + start;
    *out_size = e->size;
    return RWKV_OK;
}
