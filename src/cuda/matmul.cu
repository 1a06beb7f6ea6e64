/* Matrix products through cuBLASLt: one handle, one workspace, and a small
 * cache of prepared descriptors and the heuristic's algorithm per GEMM
 * shape (a model has a dozen shapes; asking the heuristic on every call
 * costs tens of microseconds of host time). bf16 operands accumulate in
 * float32; float32 operands use strict fp32 (no TF32), the reference path. */
#include <cublasLt.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda/common.cuh"

extern "C" {
#include "core/error.h"
}

/* cuBLASLt is loaded when the first handle is made, not when the program
 * starts: the library is several hundred megabytes, and mapping and
 * relocating it cost about 0.4 s at every start of a program linked with it,
 * GPU or not (the rwkv command, the Python package). The functions used are
 * reached through this table, filled once from the library the headers were
 * compiled for. */
#define BLAS_STR2(x) #x
#define BLAS_STR(x) BLAS_STR2(x)
static const char BLAS_LIBRARY[] = "libcublasLt.so." BLAS_STR(CUBLAS_VER_MAJOR);

static struct blas_api {
    decltype(&cublasLtCreate) Create;
    decltype(&cublasLtDestroy) Destroy;
    decltype(&cublasLtMatmul) Matmul;
    decltype(&cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
    decltype(&cublasLtMatmulDescCreate) MatmulDescCreate;
    decltype(&cublasLtMatmulDescDestroy) MatmulDescDestroy;
    decltype(&cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
    decltype(&cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
    decltype(&cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
    decltype(&cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute;
    decltype(&cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
    decltype(&cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
    decltype(&cublasLtMatrixLayoutSetAttribute) MatrixLayoutSetAttribute;
} lt;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_load_error[256];

static void blas_load(void) {
    void *lib = dlopen(BLAS_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(blas_load_error, sizeof blas_load_error, "cannot load %s: %s", BLAS_LIBRARY,
                 why ? why : "not found");
        return;
    }
    struct { const char *name; void **slot; } fns[] = {
        {"cublasLtCreate", (void **)&lt.Create},
        {"cublasLtDestroy", (void **)&lt.Destroy},
        {"cublasLtMatmul", (void **)&lt.Matmul},
        {"cublasLtMatmulAlgoGetHeuristic", (void **)&lt.MatmulAlgoGetHeuristic},
        {"cublasLtMatmulDescCreate", (void **)&lt.MatmulDescCreate},
        {"cublasLtMatmulDescDestroy", (void **)&lt.MatmulDescDestroy},
        {"cublasLtMatmulDescSetAttribute", (void **)&lt.MatmulDescSetAttribute},
        {"cublasLtMatmulPreferenceCreate", (void **)&lt.MatmulPreferenceCreate},
        {"cublasLtMatmulPreferenceDestroy", (void **)&lt.MatmulPreferenceDestroy},
        {"cublasLtMatmulPreferenceSetAttribute", (void **)&lt.MatmulPreferenceSetAttribute},
        {"cublasLtMatrixLayoutCreate", (void **)&lt.MatrixLayoutCreate},
        {"cublasLtMatrixLayoutDestroy", (void **)&lt.MatrixLayoutDestroy},
        {"cublasLtMatrixLayoutSetAttribute", (void **)&lt.MatrixLayoutSetAttribute},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        *fns[i].slot = dlsym(lib, fns[i].name);
        if (!*fns[i].slot) {
            snprintf(blas_load_error, sizeof blas_load_error, "%s has no %s", BLAS_LIBRARY, fns[i].name);
            return;
        }
    }
}

/* RWKV_OK once every function of the table is there. The library stays
 * loaded for the life of the process (handles may be made again later). */
static rwkv_status blas_ready(rwkv_error *err) {
    pthread_once(&blas_once, blas_load);
    if (blas_load_error[0]) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s", blas_load_error);
    return RWKV_OK;
}

enum { GEMM_CACHE = 64 };
static const size_t GEMM_WORKSPACE = 32u << 20;

/* What fixes a prepared GEMM: everything but the pointers' values and
 * alpha/beta (the pointers' alignments are part of it: the heuristic may
 * otherwise pick a kernel that needs 256-byte aligned operands). */
typedef struct gemm_key {
    int ab, cd, trans_a, trans_b, m, n, k, lda, ldb, ldc, batch, beta_zero;
    int align_a, align_b, align_c, align_d;
    long long stride_a, stride_b, stride_c;
} gemm_key;

/* The largest power of two up to 256 that divides the address. */
static int alignment(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && a % (uintptr_t)al) al >>= 1;
    return al;
}

typedef struct gemm_plan {
    gemm_key key;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct cuda_blas {
    cublasLtHandle_t lt;
    void *workspace;
    gemm_plan plans[GEMM_CACHE];
    int n_plans;
};

static rwkv_status blas_fail(cublasStatus_t s, const char *what, rwkv_error *err) {
    return rwkv_fail(err, s == CUBLAS_STATUS_ALLOC_FAILED ? RWKV_ERR_NOMEM : RWKV_ERR_IO,
                     "cuBLASLt %s failed: status %d", what, (int)s);
}

rwkv_status cuda_blas_new(cuda_blas **out, rwkv_error *err) {
    *out = NULL;
    rwkv_status ready = blas_ready(err);
    if (ready) return ready;
    cuda_blas *h = (cuda_blas *)calloc(1, sizeof *h);
    if (!h) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory (cuBLASLt handle)");
    cublasStatus_t s = lt.Create(&h->lt);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(h);
        return blas_fail(s, "handle creation", err);
    }
    rwkv_status st = cuda_alloc(&h->workspace, GEMM_WORKSPACE, "cuBLASLt workspace", err);
    if (st) {
        lt.Destroy(h->lt);
        free(h);
        return st;
    }
    *out = h;
    return RWKV_OK;
}

static void plan_free(gemm_plan *p) {
    if (p->a) lt.MatrixLayoutDestroy(p->a);
    if (p->b) lt.MatrixLayoutDestroy(p->b);
    if (p->c) lt.MatrixLayoutDestroy(p->c);
    if (p->desc) lt.MatmulDescDestroy(p->desc);
}

void cuda_blas_free(cuda_blas *h) {
    if (!h) return;
    for (int i = 0; i < h->n_plans; i++) plan_free(&h->plans[i]);
    cuda_free(h->workspace);
    lt.Destroy(h->lt);
    free(h);
}

static cudaDataType_t data_type(int t) { return t == CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static cublasStatus_t layout_new(cublasLtMatrixLayout_t *l, int t, int rows, int cols, int ld,
                                 int batch, long long stride) {
    cublasStatus_t s = lt.MatrixLayoutCreate(l, data_type(t), rows, cols, ld);
    if (s == CUBLAS_STATUS_SUCCESS && batch > 1) {
        s = lt.MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = lt.MatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                 &stride, sizeof stride);
    }
    return s;
}

/* Descriptors, layouts and the heuristic's first algorithm for key. */
static rwkv_status plan_new(cuda_blas *h, const gemm_key *k, gemm_plan *p, rwkv_error *err) {
    memset(p, 0, sizeof *p);
    p->key = *k;
    const cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    cublasStatus_t s = lt.MatmulDescCreate(&p->desc, compute, CUDA_R_32F);
    const cublasOperation_t ta = k->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = k->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lt.MatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lt.MatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = layout_new(&p->a, k->ab, k->trans_a ? k->k : k->m, k->trans_a ? k->m : k->k, k->lda,
                       k->batch, k->stride_a);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = layout_new(&p->b, k->ab, k->trans_b ? k->n : k->k, k->trans_b ? k->k : k->n, k->ldb,
                       k->batch, k->stride_b);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = layout_new(&p->c, k->cd, k->m, k->n, k->ldc, k->batch, k->stride_c);
    cublasLtMatmulPreference_t pref = NULL;
    if (s == CUBLAS_STATUS_SUCCESS) s = lt.MatmulPreferenceCreate(&pref);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lt.MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &GEMM_WORKSPACE, sizeof GEMM_WORKSPACE);
    const uint32_t al[4] = {(uint32_t)k->align_a, (uint32_t)k->align_b, (uint32_t)k->align_c,
                            (uint32_t)k->align_d};
    const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
        s = lt.MatmulPreferenceSetAttribute(pref, al_attr[i], &al[i], sizeof al[i]);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        s = lt.MatmulAlgoGetHeuristic(h->lt, p->desc, p->a, p->b, p->c, p->c, pref, 1, &result,
                                           &found);
    if (pref) lt.MatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && found == 0) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (s != CUBLAS_STATUS_SUCCESS) {
        plan_free(p);
        return rwkv_fail(err, RWKV_ERR_IO,
                         "cuBLASLt has no algorithm for a %s GEMM m %d n %d k %d (status %d)",
                         k->ab == CUDA_BF16 ? "bf16" : "fp32", k->m, k->n, k->k, (int)s);
    }
    p->algo = result.algo;
    return RWKV_OK;
}

rwkv_status cuda_matmul(cuda_blas *h, const cuda_gemm *g, cuda_stream stream, rwkv_error *err) {
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.ab = g->ab, k.cd = g->cd, k.trans_a = g->trans_a, k.trans_b = g->trans_b;
    k.m = g->m, k.n = g->n, k.k = g->k, k.lda = g->lda, k.ldb = g->ldb, k.ldc = g->ldc;
    k.batch = g->batch > 1 ? g->batch : 1;
    k.beta_zero = g->beta == 0.0f;
    k.align_a = alignment(g->A), k.align_b = alignment(g->B);
    k.align_c = alignment(g->C ? g->C : g->D), k.align_d = alignment(g->D);
    if (k.batch > 1) k.stride_a = g->stride_a, k.stride_b = g->stride_b, k.stride_c = g->stride_c;
    gemm_plan *p = NULL, tmp;
    for (int i = 0; i < h->n_plans && !p; i++)
        if (memcmp(&h->plans[i].key, &k, sizeof k) == 0) p = &h->plans[i];
    if (!p) {
        p = h->n_plans < GEMM_CACHE ? &h->plans[h->n_plans] : &tmp;
        rwkv_status st = plan_new(h, &k, p, err);
        if (st) return st;
        if (p != &tmp) h->n_plans++;
    }
    const void *C = g->C ? g->C : g->D;
    cublasStatus_t s = lt.Matmul(h->lt, p->desc, &g->alpha, g->A, p->a, g->B, p->b, &g->beta, C,
                                      p->c, g->D, p->c, &p->algo, h->workspace, GEMM_WORKSPACE,
                                      stream);
    if (p == &tmp) plan_free(&tmp);
    return s == CUBLAS_STATUS_SUCCESS ? RWKV_OK : blas_fail(s, "matmul", err);
}
