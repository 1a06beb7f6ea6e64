/* PyTorch .pth checkpoints (torch.save, zip serialization; docs/model.md
 * §4.1): a stored zip whose `<root>/data.pkl` pickles the state dict and
 * whose `<root>/data/<key>` records hold the raw little-endian storages.
 * Contiguous tensors are viewed in place in the mapping; strided views
 * (transposes, slices) are copied into buffers the set owns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/formats.h"
#include "formats/pickle.h"
#include "formats/zip.h"

#define PTH_MAX_ROOT 1024

typedef struct pth_reader {
    const char *path;
    tensor_set *set;
    zip_archive za;
    char root[PTH_MAX_ROOT + 1];
    uint64_t copied;     /* bytes copied out of strided views so far */
    uint64_t copy_limit; /* bound on `copied`, from the file size */
    rwkv_error *err;
} pth_reader;

/* Adds "PATH: " (and the member name, when given) in front of an error
 * raised by code that only saw bytes. Returns s, even when err is NULL. */
static rwkv_status with_path(const pth_reader *r, const char *member, rwkv_status s) {
    if (s == RWKV_OK || !r->err) return s;
    char prefix[RWKV_ERROR_MESSAGE_MAX];
    if (member) snprintf(prefix, sizeof prefix, "%s: %.256s", r->path, member);
    else snprintf(prefix, sizeof prefix, "%s", r->path);
    rwkv_error_prefix(r->err, prefix);
    return s;
}

/* <root> is the first path component of the first entry (§4.1 "Records"). */
static rwkv_status find_root(pth_reader *r) {
    if (r->za.count == 0) return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: the zip archive is empty", r->path);
    const zip_entry *e = &r->za.entries[0];
    const char *slash = memchr(e->name, '/', e->name_len);
    size_t n = slash ? (size_t)(slash - e->name) : 0;
    if (!slash || n == 0 || n > PTH_MAX_ROOT || memchr(e->name, '\0', n))
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: first zip member has no '<root>/' prefix; not a PyTorch "
                         "checkpoint (offset %llu)", r->path, (unsigned long long)e->cd_offset);
    memcpy(r->root, e->name, n);
    r->root[n] = '\0';
    return RWKV_OK;
}

/* The bytes of record `<root>/<rel>`; *found = 0 (and OK) when it is absent. */
static rwkv_status find_record(pth_reader *r, const char *rel, const uint8_t **data, uint64_t *size, int *found) {
    size_t len = strlen(r->root) + 1 + strlen(rel) + 1;
    char *name = malloc(len);
    if (!name) return rwkv_fail(r->err, RWKV_ERR_NOMEM, "out of memory");
    snprintf(name, len, "%s/%s", r->root, rel);
    const zip_entry *e = zip_find(&r->za, name);
    rwkv_status s = RWKV_OK;
    *found = e != NULL;
    if (e) s = with_path(r, NULL, zip_entry_data(&r->za, e, data, size, r->err));
    free(name);
    return s;
}

/* byteorder (torch 2.x) must say "little"; absent means little (§4.1). */
static rwkv_status check_byteorder(pth_reader *r) {
    const uint8_t *d = NULL;
    uint64_t n = 0;
    int found = 0;
    rwkv_status s = find_record(r, "byteorder", &d, &n, &found);
    if (s != RWKV_OK || !found) return s;
    while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == '\r' || d[n - 1] == ' ')) n--;
    if (n == 6 && memcmp(d, "little", 6) == 0) return RWKV_OK;
    if (n == 3 && memcmp(d, "big", 3) == 0)
        return rwkv_fail(r->err, RWKV_ERR_UNSUPPORTED, "%s: big-endian checkpoint (%s/byteorder says \"big\") "
                         "is not supported", r->path, r->root);
    return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: %s/byteorder is neither \"little\" nor \"big\"", r->path,
                     r->root);
}

/* The highest element index the view touches, or -1 when the view runs past
 * `limit` elements (all values are non-negative; overflow counts as past). */
static int64_t view_extent(const pickle_tensor *t, int64_t limit) {
    int64_t last = t->offset;
    for (int k = 0; k < t->ndim; k++) {
        int64_t span = t->shape[k] - 1;
        if (span > 0 && t->stride[k] > 0 && span > (limit - last) / t->stride[k]) return -1;
        if (span > 0) last += span * t->stride[k];
    }
    return last < limit ? last : -1;
}

static int is_contiguous(const pickle_tensor *t) {
    int64_t want = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->shape[k] != 1 && t->stride[k] != want) return 0;
        want *= t->shape[k];
    }
    return 1;
}

/* Element (i0, ..) of the view sits at offset + sum(i_k * stride_k). */
static void copy_strided(uint8_t *dst, const uint8_t *src, size_t elem, const pickle_tensor *t, int64_t numel) {
    int64_t idx[PICKLE_MAX_DIMS] = {0}, pos = t->offset;
    for (int64_t n = 0; n < numel; n++) {
        memcpy(dst + (size_t)n * elem, src + (size_t)pos * elem, elem);
        for (int k = t->ndim - 1; k >= 0; k--) {
            if (++idx[k] < t->shape[k]) {
                pos += t->stride[k];
                break;
            }
            pos -= (t->shape[k] - 1) * t->stride[k];
            idx[k] = 0;
        }
    }
}

static rwkv_status add_tensor(pth_reader *r, const pickle_tensor *t) {
    const char *path = r->path, *name = t->name;
    if (t->ndim > TENSOR_MAX_DIMS)
        return rwkv_fail(r->err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dimensions (at most %d supported)",
                         path, name, t->ndim, TENSOR_MAX_DIMS);
    char rel[4200];
    snprintf(rel, sizeof rel, "data/%s", t->storage_key);
    const uint8_t *rec = NULL;
    uint64_t rec_size = 0;
    int found = 0;
    rwkv_status s = find_record(r, rel, &rec, &rec_size, &found);
    if (s != RWKV_OK) return s;
    if (!found)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: tensor '%s': storage record '%s/%s' is missing", path, name,
                         r->root, rel);
    size_t elem = dtype_block_bytes(t->type);
    uint64_t numel_s = (uint64_t)t->storage_numel;
    if (numel_s > UINT64_MAX / elem || rec_size != numel_s * elem)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: tensor '%s': storage record '%s/%s' has %llu bytes, but "
                         "its %llu %s elements need %llu", path, name, r->root, rel, (unsigned long long)rec_size,
                         (unsigned long long)numel_s, dtype_name(t->type), (unsigned long long)(numel_s * elem));
    int64_t numel = shape_numel(t->ndim, t->shape);
    if (numel < 0) return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: tensor '%s': shape overflows", path, name);
    if (numel == 0 ? t->offset > t->storage_numel : view_extent(t, t->storage_numel) < 0)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: tensor '%s': offset %lld with its sizes and strides reaches "
                         "past the end of its storage (%lld elements)", path, name, (long long)t->offset,
                         (long long)t->storage_numel);
    size_t nbytes = (size_t)numel * elem; /* numel <= storage numel: fits, the record is in memory */
    const void *data = rec + (size_t)t->offset * elem;
    if (numel > 0 && !is_contiguous(t)) {
        /* A non-overlapping view never has more elements than its storage;
         * more means broadcast (stride 0), which state dicts never hold and
         * which could make a tiny file ask for a huge copy. */
        if (numel > t->storage_numel)
            return rwkv_fail(r->err, RWKV_ERR_UNSUPPORTED, "%s: tensor '%s' is a broadcast view (%lld elements over "
                             "a storage of %lld)", path, name, (long long)numel, (long long)t->storage_numel);
        if (nbytes > r->copy_limit - r->copied)
            return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: tensor '%s': strided views would copy more than %llu "
                             "bytes in all", path, name, (unsigned long long)r->copy_limit);
        uint8_t *buf = tensor_set_alloc(r->set, nbytes);
        if (!buf)
            return rwkv_fail(r->err, RWKV_ERR_NOMEM, "%s: out of memory copying tensor '%s' (%zu bytes)", path,
                             name, nbytes);
        copy_strided(buf, rec, elem, t, numel);
        r->copied += nbytes;
        data = buf;
    }
    s = tensor_set_add(r->set, name, t->type, t->ndim, t->shape, data, nbytes, r->err);
    return with_path(r, NULL, s);
}

static rwkv_status read_state_dict(pth_reader *r) {
    const uint8_t *pkl = NULL;
    uint64_t pkl_size = 0;
    int found = 0;
    rwkv_status s = find_record(r, "data.pkl", &pkl, &pkl_size, &found);
    if (s != RWKV_OK) return s;
    if (!found)
        return rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: no '%s/data.pkl' record; not a PyTorch checkpoint", r->path,
                         r->root);
    pickle_state_dict sd;
    char member[PTH_MAX_ROOT + 16];
    snprintf(member, sizeof member, "%s/data.pkl", r->root);
    s = with_path(r, member, pickle_read_state_dict(pkl, (size_t)pkl_size, &sd, r->err));
    if (s != RWKV_OK) return s;
    if (sd.count == 0)
        s = rwkv_fail(r->err, RWKV_ERR_FORMAT, "%s: %s holds no tensors at the top level (only plain state dicts "
                      "are supported)", r->path, member);
    for (int i = 0; s == RWKV_OK && i < sd.count; i++) s = add_tensor(r, &sd.tensors[i]);
    pickle_state_dict_free(&sd);
    return s;
}

rwkv_status pth_read(const char *path, tensor_set *set, rwkv_error *err) {
    pth_reader r;
    memset(&r, 0, sizeof r);
    r.path = path;
    r.set = set;
    r.err = err;
    r.copy_limit = 4 * (uint64_t)set->file.size + ((uint64_t)64 << 20);
    rwkv_status s = with_path(&r, NULL, zip_open(set->file.data, set->file.size, &r.za, err));
    if (s != RWKV_OK) return s;
    s = find_root(&r);
    if (s == RWKV_OK) s = check_byteorder(&r);
    if (s == RWKV_OK) s = read_state_dict(&r);
    zip_close(&r.za);
    if (s != RWKV_OK) return s;
    set->format = "pth";
    return rwkv_ok(err);
}
