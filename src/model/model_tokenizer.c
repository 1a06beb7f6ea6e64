/* rwkv_tokenizer_from_model (rwkv_tokenizer.h): the vocabulary a model file
 * carries. Only GGUF files carry one (tokenizer.ggml.*); the model layer
 * joins the format that stores it and the tokenizer that uses it. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/gguf_rwkv.h"
#include "rwkv_tokenizer.h"

rwkv_status rwkv_tokenizer_from_model(const char *model_path, rwkv_tokenizer **out, rwkv_error *err) {
    if (!out || !model_path) return rwkv_fail(err, RWKV_ERR_ARG, "rwkv_tokenizer_from_model: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(model_path, &st) == 0 && S_ISDIR(st.st_mode)) /* a transformers folder: no GGUF vocabulary */
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: a model folder carries no GGUF vocabulary; give a tokenizer "
                         "file", model_path);
    mapped_file f;
    rwkv_status s = mapped_file_open(model_path, &f, err);
    if (s != RWKV_OK) return s;
    if (f.size < 4 || memcmp(f.data, "GGUF", 4) != 0) {
        mapped_file_close(&f);
        return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s: the file carries no vocabulary (only GGUF files do); give a "
                         "tokenizer file", model_path);
    }
    char *bytes = NULL;
    uint32_t *offsets = NULL;
    int n_ids = 0;
    s = gguf_world_vocab(model_path, f.data, f.size, &bytes, &offsets, &n_ids, err);
    mapped_file_close(&f);
    if (s == RWKV_OK) {
        s = rwkv_tokenizer_new_world(bytes, offsets, n_ids, out, err);
        if (s != RWKV_OK && err) rwkv_error_prefix(err, model_path);
    }
    free(bytes);
    free(offsets);
    return s;
}
