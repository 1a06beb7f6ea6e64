/* A small, safe pickle interpreter for the `data.pkl` record of PyTorch .pth
 * files (docs/model.md §4.1 "Pickle layer").
 *
 * It runs only the opcodes state_dict files use, resolves GLOBAL against a
 * fixed allow-list (never imports or calls anything), and has hard caps on
 * stack depth, memo size, object count and string length, so that any input
 * costs memory and time linear in its size. The result is the list of
 * tensors of the top-level dict, described, not loaded: the caller finds
 * each storage record in the zip and checks the layout against it. */
#ifndef RWKV_PICKLE_H
#define RWKV_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"

#define PICKLE_MAX_DIMS 8

typedef struct pickle_tensor {
    char *name;            /* the state_dict key */
    char *storage_key;     /* record name under <root>/data/ */
    dtype type;            /* from the storage class (FloatStorage -> f32, ...) */
    int64_t storage_numel; /* storage length in elements of `type` */
    int64_t offset;        /* storage offset, in elements */
    int ndim;
    int64_t shape[PICKLE_MAX_DIMS];
    int64_t stride[PICKLE_MAX_DIMS]; /* in elements */
} pickle_tensor;

typedef struct pickle_state_dict {
    pickle_tensor *tensors; /* in the dict's insertion order */
    int count;
} pickle_state_dict;

/* Runs the pickle in data[0..size) and collects the tensor values of the
 * top-level dict (plain dict or collections.OrderedDict). Values that are not
 * tensors are ignored; a `_strategy` key (a ChatRWKV-converted file) is
 * refused. Messages end with "(offset N)", N being the opcode's offset in
 * the pickle; they carry no file name. */
rwkv_status pickle_read_state_dict(const uint8_t *data, size_t size, pickle_state_dict *out, rwkv_error *err);
void pickle_state_dict_free(pickle_state_dict *sd);

#endif
