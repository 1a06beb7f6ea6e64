/* Pickle VM for PyTorch state dicts (docs/model.md §4.1).
 *
 * Objects live in one array and are referred to by index; the stack, the
 * memo and containers hold indices, so BINGET shares an object instead of
 * copying it and no input can make the VM copy a structure twice. Every
 * opcode creates at most one object, and containers only ever receive items
 * that were on the stack, so memory is linear in the pickle's length; the
 * caps below bound it further. There are no jumps: each opcode advances the
 * program counter, so the VM always terminates. */
#include "formats/pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mapped_file.h"

#define PK_MAX_PICKLE ((size_t)1 << 30)  /* real ones: ~100 bytes per tensor */
#define PK_MAX_OBJECTS (1 << 21)
#define PK_MAX_ITEMS (1 << 24)           /* items over all containers */
#define PK_MAX_STACK (1 << 16)           /* SETITEMS batches hold 2000 entries */
#define PK_MAX_MARKS (1 << 12)
#define PK_MAX_MEMO (1u << 20)           /* highest memo index accepted */
#define PK_MAX_STRING ((uint64_t)1 << 24)
#define PK_MAX_NAME 4096                 /* tensor and storage keys we copy */
#define PK_MAX_GLOBAL_LINE 256
#define PK_MAX_TENSORS (1 << 18)         /* the largest RWKV models have ~3000 */

typedef enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_BIGINT, /* LONG1 wider than 64 bits: kept only to be refused where used */
    PK_FLOAT,
    PK_STR,    /* str or bytes: a slice of the pickle */
    PK_TUPLE,
    PK_LIST,
    PK_DICT,   /* items: key, value, key, value, ... */
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR,
} pk_kind;

typedef enum pk_global {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_STORAGE,
} pk_global;

typedef struct pk_obj {
    uint8_t kind;
    uint8_t global;  /* PK_GLOBAL: pk_global */
    uint8_t type;    /* PK_GLOBAL G_STORAGE and PK_STORAGE: dtype */
    int32_t n, cap;  /* containers */
    int32_t *items;  /* containers */
    int64_t i;       /* PK_INT/PK_BOOL value, PK_STORAGE numel, PK_TENSOR desc index */
    size_t off, len; /* PK_STR bytes; PK_STORAGE key */
} pk_obj;

typedef struct pk_vm {
    const uint8_t *p;
    size_t size, pc, op_at;
    pk_obj *objs;
    int32_t nobj, cap_obj;
    int64_t total_items;
    int32_t *stack;
    int32_t sp, cap_stack;
    int32_t *marks;
    int32_t nmarks, cap_marks;
    int32_t *memo; /* -1: unset */
    uint32_t memo_len, cap_memo;
    pickle_tensor *descs; /* one per _rebuild_tensor_v2 call; names filled at the end */
    int32_t ndesc, cap_desc;
    rwkv_error *err;
} pk_vm;

/* ---- errors ----------------------------------------------------------- */

static rwkv_status vm_fail(pk_vm *vm, rwkv_status code, const char *fmt, ...) RWKV_PRINTF(3, 4);
static rwkv_status vm_fail(pk_vm *vm, rwkv_status code, const char *fmt, ...) {
    char msg[RWKV_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rwkv_fail(vm->err, code, "%s (offset %zu)", msg, vm->op_at);
}

/* Bytes for a message: printable ASCII only, at most 100 of them. */
static const char *printable(const uint8_t *s, size_t len, char *buf, size_t size) {
    size_t n = len < size - 1 ? len : size - 1;
    if (n > 100) n = 100;
    for (size_t i = 0; i < n; i++) buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
    buf[n] = '\0';
    return buf;
}

/* ---- storage for objects, stack, marks, memo --------------------------- */

/* Grows *buf to hold at least `need` elements, doubling; 0 when `need`
 * exceeds `limit` or memory runs out. */
static int grow(void **buf, int32_t *cap, int64_t need, size_t elem, int64_t limit) {
    if (need <= *cap) return 1;
    if (need > limit) return 0;
    int64_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > limit) c = limit;
    void *nb = realloc(*buf, (size_t)c * elem);
    if (!nb) return 0;
    *buf = nb;
    *cap = (int32_t)c;
    return 1;
}

static rwkv_status new_obj(pk_vm *vm, pk_kind kind, int32_t *out) {
    if (!grow((void **)&vm->objs, &vm->cap_obj, (int64_t)vm->nobj + 1, sizeof *vm->objs, PK_MAX_OBJECTS))
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle needs more than %d objects or memory ran out", PK_MAX_OBJECTS);
    pk_obj *o = &vm->objs[vm->nobj];
    memset(o, 0, sizeof *o);
    o->kind = (uint8_t)kind;
    *out = vm->nobj++;
    return RWKV_OK;
}

static rwkv_status obj_add_item(pk_vm *vm, int32_t obj, int32_t item) {
    pk_obj *o = &vm->objs[obj];
    if (vm->total_items >= PK_MAX_ITEMS ||
        !grow((void **)&o->items, &o->cap, (int64_t)o->n + 1, sizeof *o->items, PK_MAX_ITEMS))
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle containers exceed %d items or memory ran out", PK_MAX_ITEMS);
    o->items[o->n++] = item;
    vm->total_items++;
    return RWKV_OK;
}

/* The lowest stack index the current opcode may touch: objects below the
 * innermost MARK belong to an outer frame (pickle's metastack). */
static int32_t stack_floor(const pk_vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

static rwkv_status push(pk_vm *vm, int32_t obj) {
    if (!grow((void **)&vm->stack, &vm->cap_stack, (int64_t)vm->sp + 1, sizeof *vm->stack, PK_MAX_STACK))
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack deeper than %d", PK_MAX_STACK);
    vm->stack[vm->sp++] = obj;
    return RWKV_OK;
}

static rwkv_status pop(pk_vm *vm, int32_t *out) {
    if (vm->sp <= stack_floor(vm)) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack underflow");
    *out = vm->stack[--vm->sp];
    return RWKV_OK;
}

static rwkv_status top(pk_vm *vm, int32_t *out) {
    if (vm->sp <= stack_floor(vm)) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack underflow");
    *out = vm->stack[vm->sp - 1];
    return RWKV_OK;
}

static rwkv_status push_new(pk_vm *vm, pk_kind kind, int32_t *out) {
    int32_t o = 0;
    rwkv_status s = new_obj(vm, kind, &o);
    if (s == RWKV_OK) s = push(vm, o);
    if (out) *out = o;
    return s;
}

static rwkv_status push_int(pk_vm *vm, int64_t v) {
    int32_t o = 0;
    rwkv_status s = push_new(vm, PK_INT, &o);
    if (s == RWKV_OK) vm->objs[o].i = v;
    return s;
}

static rwkv_status push_mark(pk_vm *vm) {
    if (!grow((void **)&vm->marks, &vm->cap_marks, (int64_t)vm->nmarks + 1, sizeof *vm->marks, PK_MAX_MARKS))
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle MARKs nested deeper than %d", PK_MAX_MARKS);
    vm->marks[vm->nmarks++] = vm->sp;
    return RWKV_OK;
}

/* Ends the innermost MARK; the items above it are stack[*start .. sp). */
static rwkv_status pop_mark(pk_vm *vm, int32_t *start) {
    if (!vm->nmarks) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle opcode needs a MARK, but there is none");
    *start = vm->marks[--vm->nmarks];
    return RWKV_OK;
}

static rwkv_status memo_put(pk_vm *vm, uint64_t idx) {
    if (idx >= PK_MAX_MEMO) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle memo index %llu is beyond the limit %u",
                                           (unsigned long long)idx, PK_MAX_MEMO);
    int32_t obj = 0;
    rwkv_status s = top(vm, &obj);
    if (s != RWKV_OK) return s;
    if (idx >= vm->memo_len) {
        if (idx >= vm->cap_memo) {
            uint32_t cap = vm->cap_memo ? vm->cap_memo : 64;
            while (cap <= idx) cap *= 2;
            int32_t *nm = realloc(vm->memo, (size_t)cap * sizeof *nm);
            if (!nm) return vm_fail(vm, RWKV_ERR_NOMEM, "out of memory (pickle memo)");
            vm->memo = nm;
            vm->cap_memo = cap;
        }
        for (uint32_t i = vm->memo_len; i <= idx; i++) vm->memo[i] = -1;
        vm->memo_len = (uint32_t)idx + 1;
    }
    vm->memo[idx] = obj;
    return RWKV_OK;
}

static rwkv_status memo_get(pk_vm *vm, uint64_t idx) {
    if (idx >= vm->memo_len || vm->memo[idx] < 0)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle memo entry %llu is read before it is written",
                       (unsigned long long)idx);
    return push(vm, vm->memo[idx]);
}

/* ---- reading operands --------------------------------------------------- */

static rwkv_status need(pk_vm *vm, uint64_t n) {
    if (!in_bounds(vm->pc, n, vm->size))
        return vm_fail(vm, RWKV_ERR_FORMAT, "truncated pickle: opcode 0x%02x needs %llu more bytes",
                       vm->p[vm->op_at], (unsigned long long)n);
    return RWKV_OK;
}

static rwkv_status arg_uint(pk_vm *vm, int nbytes, uint64_t *out) {
    rwkv_status s = need(vm, (uint64_t)nbytes);
    if (s != RWKV_OK) return s;
    const uint8_t *q = vm->p + vm->pc;
    *out = nbytes == 1 ? q[0] : nbytes == 2 ? rd_u16(q) : nbytes == 4 ? rd_u32(q) : rd_u64(q);
    vm->pc += (size_t)nbytes;
    return RWKV_OK;
}

/* A string/bytes operand of `len` bytes that follows the length field. */
static rwkv_status push_str(pk_vm *vm, uint64_t len) {
    if (len > PK_MAX_STRING)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle string of %llu bytes exceeds the limit of %llu",
                       (unsigned long long)len, (unsigned long long)PK_MAX_STRING);
    rwkv_status s = need(vm, len);
    if (s != RWKV_OK) return s;
    int32_t o = 0;
    s = push_new(vm, PK_STR, &o);
    if (s != RWKV_OK) return s;
    vm->objs[o].off = vm->pc;
    vm->objs[o].len = (size_t)len;
    vm->pc += (size_t)len;
    return RWKV_OK;
}

static rwkv_status op_string(pk_vm *vm, int len_bytes, int is_signed) {
    uint64_t len = 0;
    rwkv_status s = arg_uint(vm, len_bytes, &len);
    if (s != RWKV_OK) return s;
    if (is_signed && (len & 0x80000000u)) return vm_fail(vm, RWKV_ERR_FORMAT, "negative pickle string length");
    return push_str(vm, len);
}

/* LONG1: n bytes of little-endian two's complement. */
static rwkv_status op_long1(pk_vm *vm) {
    uint64_t n = 0;
    rwkv_status s = arg_uint(vm, 1, &n);
    if (s == RWKV_OK) s = need(vm, n);
    if (s != RWKV_OK) return s;
    const uint8_t *q = vm->p + vm->pc;
    vm->pc += (size_t)n;
    if (n > 8) return push_new(vm, PK_BIGINT, NULL);
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++) u |= (uint64_t)q[i] << (8 * i);
    if (n > 0 && n < 8 && (q[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return push_int(vm, v);
}

/* ---- GLOBAL: the allow-list ---------------------------------------------- */

static const struct {
    const char *module, *name;
    pk_global kind;
    dtype type;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, DT_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, DT_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, DT_F32},
    {"torch", "FloatStorage", G_STORAGE, DT_F32},
    {"torch", "HalfStorage", G_STORAGE, DT_F16},
    {"torch", "BFloat16Storage", G_STORAGE, DT_BF16},
    {"torch", "DoubleStorage", G_STORAGE, DT_F64},
    {"torch", "LongStorage", G_STORAGE, DT_I64},
    {"torch", "IntStorage", G_STORAGE, DT_I32},
    {"torch", "ShortStorage", G_STORAGE, DT_I16},
    {"torch", "CharStorage", G_STORAGE, DT_I8},
    {"torch", "ByteStorage", G_STORAGE, DT_U8},
    {"torch", "BoolStorage", G_STORAGE, DT_BOOL},
};

/* Keys end up in one-line error messages and C strings: no NUL, no newline. */
static int has_control_char(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f) return 1;
    return 0;
}

static int bytes_eq(const uint8_t *s, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static rwkv_status push_global(pk_vm *vm, const uint8_t *mod, size_t mlen, const uint8_t *name, size_t nlen) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++) {
        if (!bytes_eq(mod, mlen, allowed_globals[i].module) || !bytes_eq(name, nlen, allowed_globals[i].name))
            continue;
        int32_t o = 0;
        rwkv_status s = push_new(vm, PK_GLOBAL, &o);
        if (s != RWKV_OK) return s;
        vm->objs[o].global = (uint8_t)allowed_globals[i].kind;
        vm->objs[o].type = (uint8_t)allowed_globals[i].type;
        return RWKV_OK;
    }
    char mb[128], nb[128];
    printable(mod, mlen, mb, sizeof mb);
    printable(name, nlen, nb, sizeof nb);
    if (bytes_eq(mod, mlen, "torch._utils") && bytes_eq(name, nlen, "_rebuild_tensor_v3"))
        return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "tensor saved with _rebuild_tensor_v3 (a dtype without a typed "
                       "storage class, e.g. float8 or uint16) is not supported");
    if (bytes_eq(mod, mlen, "torch") && bytes_eq(name, nlen, "UntypedStorage"))
        return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "torch.UntypedStorage (a dtype without a typed storage class) "
                       "is not supported");
    return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "forbidden pickle GLOBAL '%s %s': only collections.OrderedDict, "
                   "torch tensor/parameter rebuilding and torch *Storage classes are allowed", mb, nb);
}

/* One "text\n" operand line of GLOBAL. */
static rwkv_status global_line(pk_vm *vm, const uint8_t **s, size_t *len) {
    size_t avail = vm->size - vm->pc, max = avail < PK_MAX_GLOBAL_LINE ? avail : PK_MAX_GLOBAL_LINE;
    const uint8_t *start = vm->p + vm->pc, *nl = memchr(start, '\n', max);
    if (!nl) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle GLOBAL operand without a newline in %zu bytes", max);
    *s = start;
    *len = (size_t)(nl - start);
    vm->pc += *len + 1;
    return RWKV_OK;
}

static rwkv_status op_global(pk_vm *vm) {
    const uint8_t *mod = NULL, *name = NULL;
    size_t mlen = 0, nlen = 0;
    rwkv_status s = global_line(vm, &mod, &mlen);
    if (s == RWKV_OK) s = global_line(vm, &name, &nlen);
    if (s != RWKV_OK) return s;
    return push_global(vm, mod, mlen, name, nlen);
}

static rwkv_status op_stack_global(pk_vm *vm) {
    int32_t name = 0, mod = 0;
    rwkv_status s = pop(vm, &name);
    if (s == RWKV_OK) s = pop(vm, &mod);
    if (s != RWKV_OK) return s;
    const pk_obj *m = &vm->objs[mod], *n = &vm->objs[name];
    if (m->kind != PK_STR || n->kind != PK_STR)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle STACK_GLOBAL needs two strings");
    return push_global(vm, vm->p + m->off, m->len, vm->p + n->off, n->len);
}

/* ---- containers ---------------------------------------------------------- */

/* Builds a tuple/list/dict from stack[start..sp) and replaces them with it. */
static rwkv_status collect(pk_vm *vm, pk_kind kind, int32_t start) {
    int32_t o = 0;
    rwkv_status s = new_obj(vm, kind, &o);
    for (int32_t i = start; s == RWKV_OK && i < vm->sp; i++) s = obj_add_item(vm, o, vm->stack[i]);
    if (s != RWKV_OK) return s;
    vm->sp = start;
    return push(vm, o);
}

static rwkv_status op_tuple_n(pk_vm *vm, int n) {
    if (vm->sp - stack_floor(vm) < n) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack underflow");
    return collect(vm, PK_TUPLE, vm->sp - n);
}

static rwkv_status op_from_mark(pk_vm *vm, pk_kind kind) {
    int32_t start = 0;
    rwkv_status s = pop_mark(vm, &start);
    if (s != RWKV_OK) return s;
    if (kind == PK_DICT && (vm->sp - start) % 2)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle DICT with an odd number of items");
    return collect(vm, kind, start);
}

/* APPEND(S)/SETITEM(S): items stack[start..sp) go into the object just below
 * them, which stays on the stack. */
static rwkv_status add_items(pk_vm *vm, int32_t start, pk_kind want) {
    if (start - 1 < stack_floor(vm)) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack underflow");
    int32_t target = vm->stack[start - 1];
    if (vm->objs[target].kind != want)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle %s applied to something that is not a %s",
                       want == PK_DICT ? "SETITEM(S)" : "APPEND(S)", want == PK_DICT ? "dict" : "list");
    if (want == PK_DICT && (vm->sp - start) % 2)
        return vm_fail(vm, RWKV_ERR_FORMAT, "pickle SETITEMS with an odd number of items");
    rwkv_status s = RWKV_OK;
    for (int32_t i = start; s == RWKV_OK && i < vm->sp; i++) s = obj_add_item(vm, target, vm->stack[i]);
    vm->sp = start;
    return s;
}

static rwkv_status op_add_items_mark(pk_vm *vm, pk_kind want) {
    int32_t start = 0;
    rwkv_status s = pop_mark(vm, &start);
    return s == RWKV_OK ? add_items(vm, start, want) : s;
}

static rwkv_status op_add_items_n(pk_vm *vm, int n, pk_kind want) {
    if (vm->sp - stack_floor(vm) < n + 1) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle stack underflow");
    return add_items(vm, vm->sp - n, want);
}

/* ---- torch objects ------------------------------------------------------- */

static const pk_obj *tuple_item(const pk_vm *vm, const pk_obj *t, int i) { return &vm->objs[t->items[i]]; }

/* BINPERSID of ('storage', <XxxStorage>, key, location, numel). */
static rwkv_status op_persid(pk_vm *vm) {
    int32_t pid = 0;
    rwkv_status s = pop(vm, &pid);
    if (s != RWKV_OK) return s;
    const pk_obj *t = &vm->objs[pid];
    if (t->kind != PK_TUPLE || t->n != 5)
        return vm_fail(vm, RWKV_ERR_FORMAT, "persistent id is not a 5-tuple ('storage', class, key, location, numel)");
    const pk_obj *tag = tuple_item(vm, t, 0), *cls = tuple_item(vm, t, 1), *key = tuple_item(vm, t, 2),
                 *numel = tuple_item(vm, t, 4);
    if (tag->kind != PK_STR || !bytes_eq(vm->p + tag->off, tag->len, "storage"))
        return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "persistent id is not a 'storage' reference");
    if (cls->kind != PK_GLOBAL || cls->global != G_STORAGE)
        return vm_fail(vm, RWKV_ERR_FORMAT, "storage reference without a torch *Storage class");
    if (key->kind != PK_STR || key->len == 0 || key->len > PK_MAX_NAME ||
        has_control_char(vm->p + key->off, key->len))
        return vm_fail(vm, RWKV_ERR_FORMAT,
                       "storage key is not a short, non-empty string without control characters");
    if (numel->kind != PK_INT || numel->i < 0)
        return vm_fail(vm, RWKV_ERR_FORMAT, "storage size is not a non-negative integer");
    int32_t o = 0;
    uint8_t type = cls->type;
    size_t off = key->off, len = key->len;
    int64_t n = numel->i;
    s = push_new(vm, PK_STORAGE, &o);
    if (s != RWKV_OK) return s;
    vm->objs[o].type = type;
    vm->objs[o].off = off;
    vm->objs[o].len = len;
    vm->objs[o].i = n;
    return RWKV_OK;
}

static rwkv_status int_tuple(pk_vm *vm, const pk_obj *t, const char *what, int *ndim, int64_t *out) {
    if (t->kind != PK_TUPLE) return vm_fail(vm, RWKV_ERR_FORMAT, "tensor %s is not a tuple", what);
    if (t->n > PICKLE_MAX_DIMS)
        return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "tensor with %d dimensions (at most %d)", t->n, PICKLE_MAX_DIMS);
    for (int i = 0; i < t->n; i++) {
        const pk_obj *v = tuple_item(vm, t, i);
        if (v->kind != PK_INT || v->i < 0)
            return vm_fail(vm, RWKV_ERR_FORMAT, "tensor %s[%d] is not a non-negative integer", what, i);
        out[i] = v->i;
    }
    *ndim = t->n;
    return RWKV_OK;
}

static char *copy_str(const uint8_t *s, size_t len) {
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

/* _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static rwkv_status rebuild_tensor(pk_vm *vm, const pk_obj *args) {
    if (args->n != 6 && args->n != 7)
        return vm_fail(vm, RWKV_ERR_FORMAT, "_rebuild_tensor_v2 called with %d arguments (6 or 7 expected)", args->n);
    const pk_obj *st = tuple_item(vm, args, 0), *off = tuple_item(vm, args, 1);
    if (st->kind != PK_STORAGE)
        return vm_fail(vm, RWKV_ERR_FORMAT, "_rebuild_tensor_v2: first argument is not a storage");
    if (off->kind != PK_INT || off->i < 0)
        return vm_fail(vm, RWKV_ERR_FORMAT, "_rebuild_tensor_v2: storage offset is not a non-negative integer");
    pickle_tensor d;
    memset(&d, 0, sizeof d);
    int nstride = 0;
    rwkv_status s = int_tuple(vm, tuple_item(vm, args, 2), "size", &d.ndim, d.shape);
    if (s == RWKV_OK) s = int_tuple(vm, tuple_item(vm, args, 3), "stride", &nstride, d.stride);
    if (s != RWKV_OK) return s;
    if (nstride != d.ndim)
        return vm_fail(vm, RWKV_ERR_FORMAT, "tensor size has %d dimensions but stride has %d", d.ndim, nstride);
    if (vm->ndesc >= PK_MAX_TENSORS ||
        !grow((void **)&vm->descs, &vm->cap_desc, (int64_t)vm->ndesc + 1, sizeof *vm->descs, PK_MAX_TENSORS))
        return vm_fail(vm, RWKV_ERR_FORMAT, "more than %d tensors or memory ran out", PK_MAX_TENSORS);
    d.type = (dtype)st->type;
    d.storage_numel = st->i;
    d.offset = off->i;
    d.storage_key = copy_str(vm->p + st->off, st->len);
    if (!d.storage_key) return vm_fail(vm, RWKV_ERR_NOMEM, "out of memory");
    vm->descs[vm->ndesc] = d;
    int32_t o = 0;
    s = push_new(vm, PK_TENSOR, &o);
    if (s != RWKV_OK) {
        free(d.storage_key);
        return s;
    }
    vm->objs[o].i = vm->ndesc++;
    return RWKV_OK;
}

static rwkv_status op_reduce(pk_vm *vm) {
    int32_t args_i = 0, fn_i = 0;
    rwkv_status s = pop(vm, &args_i);
    if (s == RWKV_OK) s = pop(vm, &fn_i);
    if (s != RWKV_OK) return s;
    const pk_obj *fn = &vm->objs[fn_i], *args = &vm->objs[args_i];
    if (fn->kind != PK_GLOBAL) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle REDUCE of something not callable");
    if (args->kind != PK_TUPLE) return vm_fail(vm, RWKV_ERR_FORMAT, "pickle REDUCE arguments are not a tuple");
    switch ((pk_global)fn->global) {
    case G_ORDERED_DICT:
        if (args->n != 0)
            return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "OrderedDict built from arguments is not supported");
        return push_new(vm, PK_DICT, NULL);
    case G_REBUILD_TENSOR_V2:
        return rebuild_tensor(vm, args);
    case G_REBUILD_PARAMETER: /* (tensor, requires_grad, hooks): the parameter is the tensor */
        if (args->n < 1 || tuple_item(vm, args, 0)->kind != PK_TENSOR)
            return vm_fail(vm, RWKV_ERR_FORMAT, "_rebuild_parameter without a tensor argument");
        return push(vm, args->items[0]);
    case G_STORAGE:
        break;
    }
    return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "pickle calls a torch storage class directly");
}

static rwkv_status op_build(pk_vm *vm) { /* state (e.g. a state_dict's _metadata) is ignored */
    int32_t state = 0, obj = 0;
    rwkv_status s = pop(vm, &state);
    return s == RWKV_OK ? top(vm, &obj) : s;
}

/* ---- the interpreter ------------------------------------------------------ */

static rwkv_status op_pop_mark(pk_vm *vm) { /* POP_MARK: drop everything above the MARK */
    int32_t start = 0;
    rwkv_status s = pop_mark(vm, &start);
    if (s == RWKV_OK) vm->sp = start;
    return s;
}

static rwkv_status op_binfloat(pk_vm *vm) { /* the value (8 bytes, big-endian) is never needed */
    rwkv_status s = need(vm, 8);
    if (s != RWKV_OK) return s;
    vm->pc += 8;
    return push_new(vm, PK_FLOAT, NULL);
}

static rwkv_status step(pk_vm *vm, int *stop) {
    uint64_t a = 0;
    int32_t tmp = 0;
    rwkv_status s;
    vm->op_at = vm->pc;
    uint8_t op = vm->p[vm->pc++];
    switch (op) {
    case 0x80: /* PROTO */
        s = arg_uint(vm, 1, &a);
        if (s == RWKV_OK && a > 5)
            return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "pickle protocol %llu", (unsigned long long)a);
        return s;
    case 0x95: return arg_uint(vm, 8, &a); /* FRAME: a length hint only */
    case '.': *stop = 1; return RWKV_OK;   /* STOP */
    case '(': return push_mark(vm);
    case '0': return pop(vm, &tmp);         /* POP */
    case '1': return op_pop_mark(vm);
    case 'N': return push_new(vm, PK_NONE, NULL);
    case 0x88:
    case 0x89:
        s = push_new(vm, PK_BOOL, &tmp);
        if (s == RWKV_OK) vm->objs[tmp].i = op == 0x88;
        return s;
    case 'K': s = arg_uint(vm, 1, &a); return s == RWKV_OK ? push_int(vm, (int64_t)a) : s;  /* BININT1 */
    case 'M': s = arg_uint(vm, 2, &a); return s == RWKV_OK ? push_int(vm, (int64_t)a) : s;  /* BININT2 */
    case 'J': /* BININT: signed 32-bit */
        s = arg_uint(vm, 4, &a);
        return s == RWKV_OK ? push_int(vm, (int64_t)a - ((a & 0x80000000u) ? ((int64_t)1 << 32) : 0)) : s;
    case 0x8a: return op_long1(vm);
    case 'G': return op_binfloat(vm);
    case 'X': return op_string(vm, 4, 0);    /* BINUNICODE */
    case 0x8c: return op_string(vm, 1, 0);   /* SHORT_BINUNICODE */
    case 0x8d: return op_string(vm, 8, 0);   /* BINUNICODE8 */
    case 'U': return op_string(vm, 1, 0);    /* SHORT_BINSTRING */
    case 'T': return op_string(vm, 4, 1);    /* BINSTRING (signed length) */
    case 'C': return op_string(vm, 1, 0);    /* SHORT_BINBYTES */
    case 'B': return op_string(vm, 4, 0);    /* BINBYTES */
    case ')': return push_new(vm, PK_TUPLE, NULL);
    case ']': return push_new(vm, PK_LIST, NULL);
    case '}': return push_new(vm, PK_DICT, NULL);
    case 't': return op_from_mark(vm, PK_TUPLE);
    case 'l': return op_from_mark(vm, PK_LIST);
    case 'd': return op_from_mark(vm, PK_DICT);
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case 'a': return op_add_items_n(vm, 1, PK_LIST);  /* APPEND */
    case 'e': return op_add_items_mark(vm, PK_LIST);  /* APPENDS */
    case 's': return op_add_items_n(vm, 2, PK_DICT);  /* SETITEM */
    case 'u': return op_add_items_mark(vm, PK_DICT);  /* SETITEMS */
    case 'b': return op_build(vm);
    case 'c': return op_global(vm);
    case 0x93: return op_stack_global(vm);
    case 'q': s = arg_uint(vm, 1, &a); return s == RWKV_OK ? memo_put(vm, a) : s; /* BINPUT */
    case 'r': s = arg_uint(vm, 4, &a); return s == RWKV_OK ? memo_put(vm, a) : s; /* LONG_BINPUT */
    case 0x94: return memo_put(vm, vm->memo_len);                                 /* MEMOIZE */
    case 'h': s = arg_uint(vm, 1, &a); return s == RWKV_OK ? memo_get(vm, a) : s; /* BINGET */
    case 'j': s = arg_uint(vm, 4, &a); return s == RWKV_OK ? memo_get(vm, a) : s; /* LONG_BINGET */
    case 'Q': return op_persid(vm);
    case 'R': return op_reduce(vm);
    default: break;
    }
    return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x", op);
}

/* The top-level dict's tensor values, in insertion order. */
static rwkv_status collect_state_dict(pk_vm *vm, int32_t root, pickle_state_dict *out) {
    const pk_obj *d = &vm->objs[root];
    if (d->kind != PK_DICT)
        return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "the pickled object is not a dict of tensors (a state_dict)");
    int64_t n_tensors = 0; /* BINGET can repeat one tensor cheaply: count before allocating */
    for (int32_t i = 1; i < d->n; i += 2) n_tensors += vm->objs[d->items[i]].kind == PK_TENSOR;
    if (n_tensors > PK_MAX_TENSORS)
        return vm_fail(vm, RWKV_ERR_FORMAT, "state_dict with %lld tensors (at most %d)", (long long)n_tensors,
                       PK_MAX_TENSORS);
    out->tensors = calloc((size_t)n_tensors + 1, sizeof *out->tensors);
    if (!out->tensors) return vm_fail(vm, RWKV_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i + 1 < d->n; i += 2) {
        const pk_obj *k = &vm->objs[d->items[i]], *v = &vm->objs[d->items[i + 1]];
        if (k->kind != PK_STR) return vm_fail(vm, RWKV_ERR_FORMAT, "state_dict key %d is not a string", i / 2);
        const uint8_t *ks = vm->p + k->off;
        if (bytes_eq(ks, k->len, "_strategy"))
            return vm_fail(vm, RWKV_ERR_UNSUPPORTED, "this is a ChatRWKV-converted file ('_strategy' key: "
                           "transposed, rescaled tensors); load the original checkpoint instead");
        if (v->kind != PK_TENSOR) continue;
        char kb[128];
        if (k->len == 0 || k->len > PK_MAX_NAME || has_control_char(ks, k->len))
            return vm_fail(vm, RWKV_ERR_FORMAT, "state_dict key '%s' is empty, too long or holds a control character",
                           printable(ks, k->len, kb, sizeof kb));
        pickle_tensor *t = &out->tensors[out->count];
        *t = vm->descs[v->i];
        t->name = copy_str(ks, k->len);
        t->storage_key = strdup(vm->descs[v->i].storage_key);
        if (!t->name || !t->storage_key) {
            free(t->name);
            free(t->storage_key);
            return vm_fail(vm, RWKV_ERR_NOMEM, "out of memory");
        }
        out->count++;
    }
    return RWKV_OK;
}

static void vm_free(pk_vm *vm) {
    for (int32_t i = 0; i < vm->nobj; i++) free(vm->objs[i].items);
    free(vm->objs);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    for (int32_t i = 0; i < vm->ndesc; i++) free(vm->descs[i].storage_key);
    free(vm->descs);
}

rwkv_status pickle_read_state_dict(const uint8_t *data, size_t size, pickle_state_dict *out, rwkv_error *err) {
    memset(out, 0, sizeof *out);
    if (size > PK_MAX_PICKLE)
        return rwkv_fail(err, RWKV_ERR_FORMAT, "pickle of %zu bytes is larger than the limit of %zu (offset 0)",
                         size, PK_MAX_PICKLE);
    pk_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.p = data;
    vm.size = size;
    vm.err = err;
    rwkv_status s = RWKV_OK;
    int stop = 0;
    while (s == RWKV_OK && !stop) {
        if (vm.pc >= size) {
            vm.op_at = size;
            s = vm_fail(&vm, RWKV_ERR_FORMAT, "pickle ends without STOP");
            break;
        }
        s = step(&vm, &stop);
    }
    int32_t root = -1;
    if (s == RWKV_OK) {
        if (vm.nmarks) s = vm_fail(&vm, RWKV_ERR_FORMAT, "pickle STOP inside an unclosed MARK");
        else s = pop(&vm, &root);
    }
    if (s == RWKV_OK) s = collect_state_dict(&vm, root, out);
    vm_free(&vm);
    if (s != RWKV_OK) {
        pickle_state_dict_free(out);
        return s;
    }
    return rwkv_ok(err);
}

void pickle_state_dict_free(pickle_state_dict *sd) {
    for (int i = 0; i < sd->count; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}
