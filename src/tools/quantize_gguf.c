/* RWKV-6/7 -> GGUF as llama.cpp's converter writes it (tools/quantize.h):
 * the official tensors renamed and transformed by the tables of
 * formats/gguf_rwkv.h (read in the writing direction), the metadata keys
 * llama.cpp's loader reads, and the World vocabulary as tokenizer.ggml.*. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf_rwkv.h"
#include "formats/gguf_write.h"
#include "rwkv_tokenizer.h"
#include "tools/quantize.h"

typedef struct out_set {
    tensor *t;
    int n, cap;
    const tensor_set *src;
    const char *arch;
    dtype mat, head;
    int mix, n_layer; /* mix: llama.cpp's "_M" mix (more_bits) */
    int64_t head_size;
} out_set;

static void out_free(out_set *o) {
    for (int i = 0; i < o->n; i++) free(o->t[i].name), free((void *)o->t[i].data);
    free(o->t);
}

static rwkv_status out_add(out_set *o, const tensor *in, const char *name, dtype to, rwkv_error *err) {
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 256;
        tensor *t = realloc(o->t, sizeof *t * (size_t)cap);
        if (!t) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
        o->t = t, o->cap = cap;
    }
    rwkv_status s = quantize_tensor(in, name, to, &o->t[o->n], err);
    if (s == RWKV_OK) o->n++;
    return s;
}

/* An f32 tensor of the given shape over buf (a view for quantize_tensor). */
static tensor f32_view(int ndim, const int64_t *shape, const float *buf) {
    tensor t = {.type = DT_F32, .ndim = ndim, .data = buf};
    memcpy(t.shape, shape, sizeof(int64_t) * (size_t)ndim);
    t.nbytes = (size_t)shape_numel(ndim, shape) * sizeof(float);
    return t;
}

/* The official tensor's values as f32 (dequantised), malloc'd. */
static float *values(const tensor *t) {
    float *v = malloc(sizeof(float) * (size_t)tensor_numel(t));
    if (v) dtype_to_f32(t->type, t->data, v, (size_t)tensor_numel(t));
    return v;
}

/* time_mix_lerp_fused: the mixes stacked as [n, 1, 1, C]. */
static rwkv_status add_mixes(out_set *o, int l, const gguf_rwkv_name *e, const char *gname, rwkv_error *err) {
    int n;
    const char *const *parts = gguf_rwkv_mix_parts(o->arch, &n);
    char name[160];
    const tensor *first = NULL;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "blocks.%d.%s%s", l, e->official, parts[i]);
        const tensor *t = tensor_set_find(o->src, name);
        if (!t || (first && tensor_numel(t) != tensor_numel(first)))
            return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' is missing or misshapen", name);
        if (!first) first = t;
    }
    const int64_t C = tensor_numel(first), shape[4] = {n, 1, 1, C};
    float *buf = malloc(sizeof(float) * (size_t)(n * C));
    if (!buf) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "blocks.%d.%s%s", l, e->official, parts[i]);
        const tensor *t = tensor_set_find(o->src, name);
        dtype_to_f32(t->type, t->data, buf + (size_t)i * C, (size_t)C);
    }
    tensor v = f32_view(4, shape, buf);
    rwkv_status s = out_add(o, &v, gname, DT_F32, err);
    free(buf);
    return s;
}

/* llama.cpp's "_M" mixes give the layers where quantization hurts most
 * (the first and last eighth, and every third layer between them) 6-bit
 * value projections: its attn_v and ffn_down, RWKV's att.value and
 * ffn.value (the FFN's down projection). */
static int more_bits(const out_set *o, const char *name) {
    int layer;
    const size_t n = strlen(name), tail = strlen(".value.weight");
    if (!o->mix || n < tail || strcmp(name + n - tail, ".value.weight") != 0 || sscanf(name, "blocks.%d.", &layer) != 1)
        return 0;
    if (strstr(name, ".att.value.") == NULL && strstr(name, ".ffn.value.") == NULL) return 0;
    const int eighth = o->n_layer / 8;
    return layer < eighth || layer >= 7 * o->n_layer / 8 || (layer - eighth) % 3 == 2;
}

/* The type a transposed LoRA factor (official name, rows of `cols`) is
 * written in. llama.cpp's converter writes RWKV-7's in-context rate,
 * value-residual and gate factors in the file's type (f16, bf16, q8_0) and
 * the decay's (w1/w2) in f32, and llama-quantize leaves all of them as its
 * source file has them (f16): so f16 beside the k-quants and the 4/5-bit
 * formats. RWKV-6's factors stay f32. */
static dtype lora_type(const out_set *o, const char *official, int64_t cols) {
    static const char *const file_typed[] = {"att.a1", "att.a2", "att.v1", "att.v2", "att.g1", "att.g2"};
    int typed = 0;
    for (size_t i = 0; i < sizeof file_typed / sizeof file_typed[0]; i++) typed |= strcmp(official, file_typed[i]) == 0;
    if (!typed || strcmp(o->arch, "rwkv7") != 0) return DT_F32;
    if (o->mat == DT_F32 || o->mat == DT_F16 || o->mat == DT_BF16) return o->mat;
    return o->mat == DT_Q8_0 ? quantize_fit(DT_Q8_0, cols) : DT_F16;
}

/* One official tensor under its GGUF name, in the converter's form. */
static rwkv_status add_one(out_set *o, const tensor *t, const gguf_rwkv_name *e, const char *gname, rwkv_error *err) {
    if (e->op == GR_KEEP || e->op == GR_RESCALED) { /* matrices take the asked type; vectors stay f32 */
        dtype to = DT_F32;
        if (strcmp(t->name, "emb.weight") == 0) to = o->mat == DT_F32 ? DT_F32 : DT_F16;
        else if (strcmp(t->name, "head.weight") == 0) to = quantize_fit(o->head, t->shape[t->ndim - 1]);
        else if (t->ndim == 2) to = quantize_fit(more_bits(o, t->name) ? DT_Q6_K : o->mat, t->shape[1]);
        return out_add(o, t, gname, to, err);
    }
    float *v = values(t);
    if (!v) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    tensor view = f32_view(t->ndim, t->shape, v);
    float *tr = NULL;
    if (e->op == GR_TRANSPOSE) { /* the inverse of undo_transpose_last2: swap the last two axes */
        tr = malloc(sizeof(float) * (size_t)tensor_numel(t));
        if (!tr || t->ndim < 2) {
            free(v), free(tr);
            return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' should be a matrix", t->name);
        }
        const int64_t a = t->shape[t->ndim - 2], b = t->shape[t->ndim - 1];
        transpose_last2(v, tr, sizeof(float), tensor_numel(t) / (a * b), a, b);
        view.data = tr;
        view.shape[t->ndim - 2] = b;
        view.shape[t->ndim - 1] = a;
    } else if (e->op == GR_PER_HEAD) { /* [H, N] */
        view.ndim = 2;
        view.shape[1] = o->head_size;
        view.shape[0] = tensor_numel(t) / o->head_size;
    } else { /* GR_VEC3, GR_HEADS: stored flat */
        view.ndim = 1;
        view.shape[0] = tensor_numel(t);
    }
    const dtype to = e->op == GR_TRANSPOSE ? lora_type(o, e->official, view.shape[view.ndim - 1]) : DT_F32;
    rwkv_status s = out_add(o, &view, gname, to, err);
    free(v), free(tr);
    return s;
}

static rwkv_status add_tensors(out_set *o, int n_layer, rwkv_error *err) {
    size_t n;
    const gguf_rwkv_name *names = gguf_rwkv_global_names(&n);
    char name[160], gname[160];
    rwkv_status s = RWKV_OK;
    for (size_t i = 0; s == RWKV_OK && i < n; i++) {
        const tensor *t = tensor_set_find(o->src, names[i].official);
        if (!t) return rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' is missing", names[i].official);
        s = add_one(o, t, &names[i], names[i].gguf, err);
    }
    names = gguf_rwkv_layer_names(o->arch, &n);
    for (int l = 0; l < n_layer && s == RWKV_OK; l++)
        for (size_t i = 0; s == RWKV_OK && i < n; i++) {
            const gguf_rwkv_name *e = &names[i];
            snprintf(gname, sizeof gname, "blk.%d.%s", l, e->gguf);
            snprintf(name, sizeof name, "blocks.%d.%s", l, e->official);
            const tensor *t = tensor_set_find(o->src, name);
            if (e->op == GR_MIXES) s = add_mixes(o, l, e, gname, err);
            else if (t) s = add_one(o, t, e, gname, err);
            else if (l == 0 && strcmp(o->arch, "rwkv7") == 0 && strncmp(e->official, "att.v", 5) == 0 &&
                     e->official[5] >= '0' && e->official[5] <= '2') {
                /* block 0's v0/v1/v2 are unused, but llama.cpp's loader wants them, shaped as a0/a1/a2
                 * (it sizes them with the iclr LoRA rank): copies of those, as its converter writes */
                snprintf(name, sizeof name, "blocks.0.att.a%c", e->official[5]);
                const tensor *a = tensor_set_find(o->src, name);
                s = a ? add_one(o, a, e, gname, err) : rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' is missing", name);
            }
            else
                s = rwkv_fail(err, RWKV_ERR_SHAPE, "tensor '%s' is missing", name);
        }
    return s;
}

/* ---- metadata ----------------------------------------------------------- */

#define MAX_KV 32
typedef struct kv_list {
    gguf_out_kv kv[MAX_KV];
    char keys[MAX_KV][80];
    int n;
} kv_list;

static gguf_out_kv *kv_add(kv_list *k, const char *arch, const char *key, gguf_type type) {
    gguf_out_kv *e = &k->kv[k->n];
    memset(e, 0, sizeof *e);
    if (arch) snprintf(k->keys[k->n], sizeof k->keys[k->n], "%s.%s", arch, key);
    else snprintf(k->keys[k->n], sizeof k->keys[k->n], "%s", key);
    e->key = k->keys[k->n++];
    e->type = type;
    return e;
}

static void kv_u32(kv_list *k, const char *arch, const char *key, uint64_t v) { kv_add(k, arch, key, GGUF_U32)->u = v; }

static void kv_str(kv_list *k, const char *key, const char *v) {
    gguf_out_kv *e = kv_add(k, NULL, key, GGUF_STRING);
    e->str = v;
    e->len = strlen(v);
}

/* llama.cpp's llama_ftype of a file whose matrices are mostly `mat`. */
static int file_type(dtype mat, int mix) {
    if (mix) return 15; /* Q4_K_M */
    switch (mat) {
    case DT_F32: return 0;
    case DT_F16: return 1;
    case DT_Q4_0: return 2;
    case DT_Q4_1: return 3;
    case DT_Q8_0: return 7;
    case DT_Q5_0: return 8;
    case DT_Q5_1: return 9;
    case DT_Q4_K: return 14; /* Q4_K_S: every matrix Q4_K */
    case DT_Q5_K: return 16; /* Q5_K_S */
    case DT_Q6_K: return 18;
    default: return 32;      /* BF16 */
    }
}

/* Columns of a [C, r] tensor, the LoRA rank r. */
static int64_t cols_of(const tensor_set *set, const char *name) {
    const tensor *t = tensor_set_find(set, name);
    return t && t->ndim >= 2 ? t->shape[t->ndim - 1] : 0;
}

static void hparams(kv_list *k, const rwkv_model *m, const char *arch, dtype mat, int mix) {
    const rwkv_model_info *i = &m->info;
    kv_str(k, "general.architecture", arch);
    kv_str(k, "general.type", "model");
    kv_u32(k, arch, "context_length", 1048576); /* RWKV has no context limit; the converter writes 2^20 */
    kv_u32(k, arch, "embedding_length", (uint64_t)i->n_embd);
    kv_u32(k, arch, "block_count", (uint64_t)i->n_layer);
    kv_add(k, arch, "attention.layer_norm_epsilon", GGUF_F32)->f = 1e-5;
    kv_u32(k, arch, "wkv.head_size", (uint64_t)i->head_size);
    if (strcmp(arch, "rwkv7") == 0) {
        kv_u32(k, arch, "attention.decay_lora_rank", (uint64_t)i->d_decay_lora);
        kv_u32(k, arch, "attention.iclr_lora_rank", (uint64_t)i->d_aaa_lora);
        kv_u32(k, arch, "attention.value_residual_mix_lora_rank", (uint64_t)i->d_mv_lora);
        kv_u32(k, arch, "attention.gate_lora_rank", (uint64_t)i->d_gate_lora);
    } else {
        kv_u32(k, arch, "rescale_every_n_layers", 0); /* the weights are written unscaled */
        kv_u32(k, arch, "time_mix_extra_dim", (uint64_t)(cols_of(&m->weights, "blocks.0.att.time_maa_w1") / 5));
        kv_u32(k, arch, "time_decay_extra_dim", (uint64_t)cols_of(&m->weights, "blocks.0.att.time_decay_w1"));
    }
    kv_u32(k, arch, "feed_forward_length", (uint64_t)i->n_ffn);
    kv_u32(k, NULL, "general.file_type", (uint64_t)file_type(mat, mix));
    kv_u32(k, arch, "attention.head_count", 0); /* required by llama.cpp's loader, unused */
    kv_u32(k, NULL, "general.quantization_version", 2);
}

/* ---- vocabulary ----------------------------------------------------------- */

typedef struct vocab {
    char *text;                /* every token's escaped text, one after the other */
    const char **strs;
    size_t *lens;
    int32_t *types;
    int n;
} vocab;

static void vocab_free(vocab *v) {
    free(v->text), free(v->strs), free(v->lens), free(v->types);
}

/* tokens[0] "<s>" (control), the World tokens escaped as the converter
 * does (normal), then "[PAD<i>]" (unused) up to the model's n_vocab. */
static rwkv_status build_vocab(const rwkv_tokenizer *tok, int n_vocab, vocab *v, rwkv_error *err) {
    enum { NORMAL = 1, CONTROL = 3, UNUSED = 5 };
    const int n_tok = rwkv_tokenizer_vocab_size(tok);
    /* "bytes" (small test models): id i is byte i, but id 0 becomes <s> like the World's */
    const int byte_level = strcmp(rwkv_tokenizer_kind(tok), "bytes") == 0;
    if ((!byte_level && strcmp(rwkv_tokenizer_kind(tok), "world") != 0) || n_tok > n_vocab)
        return rwkv_fail(err, RWKV_ERR_ARG, "the vocabulary must be a World (or byte-level) vocabulary of at most %d "
                         "ids (got %s, %d)", n_vocab, rwkv_tokenizer_kind(tok), n_tok);
    size_t bytes = 16;
    for (int id = 0; id < n_tok; id++) {
        size_t len = 0;
        rwkv_tokenizer_token(tok, id, &len);
        bytes += 4 * len + 1;
    }
    bytes += (size_t)(n_vocab - n_tok) * 16;
    v->n = n_vocab;
    v->text = malloc(bytes);
    v->strs = malloc(sizeof *v->strs * (size_t)n_vocab);
    v->lens = malloc(sizeof *v->lens * (size_t)n_vocab);
    v->types = malloc(sizeof *v->types * (size_t)n_vocab);
    if (!v->text || !v->strs || !v->lens || !v->types) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    char *p = v->text;
    for (int id = 0; id < n_vocab; id++) {
        size_t len = 0;
        const char *t = id < n_tok ? rwkv_tokenizer_token(tok, id, &len) : NULL;
        v->strs[id] = p;
        if (id == 0) v->lens[id] = (size_t)sprintf(p, "<s>"), v->types[id] = CONTROL;
        else if (t) v->lens[id] = gguf_escape_token((const unsigned char *)t, len, p), v->types[id] = NORMAL;
        else v->lens[id] = (size_t)sprintf(p, "[PAD%d]", id), v->types[id] = UNUSED;
        p += v->lens[id] + 1;
    }
    return RWKV_OK;
}

static void vocab_kvs(kv_list *k, const vocab *v) {
    kv_str(k, "tokenizer.ggml.model", "rwkv");
    gguf_out_kv *e = kv_add(k, NULL, "tokenizer.ggml.tokens", GGUF_ARRAY);
    e->elem = GGUF_STRING, e->count = (uint64_t)v->n, e->strs = v->strs, e->lens = v->lens;
    e = kv_add(k, NULL, "tokenizer.ggml.token_type", GGUF_ARRAY);
    e->elem = GGUF_I32, e->count = (uint64_t)v->n, e->i32s = v->types;
    kv_u32(k, NULL, "tokenizer.ggml.bos_token_id", 0);
    kv_u32(k, NULL, "tokenizer.ggml.eos_token_id", 0);
    kv_u32(k, NULL, "tokenizer.ggml.eot_token_id", 261); /* "\n\n", the converter's end of a chat turn */
}

rwkv_status quantize_gguf(const rwkv_model *m, const char *in_path, const char *out_path, dtype mat, dtype head,
                          int mix, const char *tokenizer, rwkv_error *err) {
    const char *arch = m->info.version[0] == '7' ? "rwkv7" : "rwkv6";
    rwkv_tokenizer *tok = NULL;
    rwkv_status s = tokenizer ? rwkv_tokenizer_load(tokenizer, &tok, err) : rwkv_tokenizer_from_model(in_path, &tok, err);
    if (s != RWKV_OK) return s;
    out_set o = {.src = &m->weights, .arch = arch, .mat = mat, .head = head, .mix = mix,
                 .n_layer = m->info.n_layer, .head_size = m->info.head_size};
    vocab v = {0};
    kv_list *k = calloc(1, sizeof *k);
    s = k ? build_vocab(tok, m->info.n_vocab, &v, err) : rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    if (s == RWKV_OK) s = add_tensors(&o, m->info.n_layer, err);
    if (s == RWKV_OK) {
        hparams(k, m, arch, mat, mix);
        vocab_kvs(k, &v);
        s = gguf_write(out_path, k->kv, k->n, o.t, o.n, err);
    }
    free(k);
    vocab_free(&v);
    out_free(&o);
    rwkv_tokenizer_free(tok);
    return s;
}
