/* NCCL collectives for data-parallel training (cuda_comm.h). NCCL's header
 * is needed to build them; a CUDA toolkit without it builds the stand-ins
 * at the end of this file, which refuse with one line. */
#if __has_include(<nccl.h>)
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cuda/common.cuh"

extern "C" {
#include "cuda/cuda_comm.h"
}

/* Loaded at the first use (see matmul.cu for why not at program start). */
#define NCCL_STR2(x) #x
#define NCCL_STR(x) NCCL_STR2(x)
static const char NCCL_LIBRARY[] = "libnccl.so." NCCL_STR(NCCL_MAJOR);

static struct nccl_api {
    decltype(&ncclGetUniqueId) GetUniqueId;
    decltype(&ncclCommInitRankConfig) CommInitRankConfig;
    decltype(&ncclCommFinalize) CommFinalize;
    decltype(&ncclCommDestroy) CommDestroy;
    decltype(&ncclCommAbort) CommAbort;
    decltype(&ncclCommGetAsyncError) CommGetAsyncError;
    decltype(&ncclGetErrorString) GetErrorString;
    decltype(&ncclGetLastError) GetLastError;
    decltype(&ncclAllReduce) AllReduce;
    decltype(&ncclAllGather) AllGather;
    decltype(&ncclBroadcast) Broadcast;
} api;

static pthread_once_t nccl_once = PTHREAD_ONCE_INIT;
static char nccl_load_error[320];

static void nccl_load(void) {
    void *lib = dlopen(NCCL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(nccl_load_error, sizeof nccl_load_error,
                 "training on several GPUs needs NCCL, and %s cannot be loaded: %s", NCCL_LIBRARY,
                 why ? why : "not found");
        return;
    }
    struct { const char *name; void **slot; } fns[] = {
        {"ncclGetUniqueId", (void **)&api.GetUniqueId},
        {"ncclCommInitRankConfig", (void **)&api.CommInitRankConfig},
        {"ncclCommFinalize", (void **)&api.CommFinalize},
        {"ncclCommDestroy", (void **)&api.CommDestroy},
        {"ncclCommAbort", (void **)&api.CommAbort},
        {"ncclCommGetAsyncError", (void **)&api.CommGetAsyncError},
        {"ncclGetErrorString", (void **)&api.GetErrorString},
        {"ncclGetLastError", (void **)&api.GetLastError},
        {"ncclAllReduce", (void **)&api.AllReduce},
        {"ncclAllGather", (void **)&api.AllGather},
        {"ncclBroadcast", (void **)&api.Broadcast},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        *fns[i].slot = dlsym(lib, fns[i].name);
        if (!*fns[i].slot) {
            snprintf(nccl_load_error, sizeof nccl_load_error, "%s has no %s (NCCL 2.14 or newer is needed)",
                     NCCL_LIBRARY, fns[i].name);
            return;
        }
    }
}

static rwkv_status nccl_ready(rwkv_error *err) {
    pthread_once(&nccl_once, nccl_load);
    if (nccl_load_error[0]) return rwkv_fail(err, RWKV_ERR_UNSUPPORTED, "%s", nccl_load_error);
    return RWKV_OK;
}

enum { HOST_SCRATCH = 4096 };

struct cuda_comm {
    ncclComm_t comm;
    cudaStream_t stream;
    cudaEvent_t event;
    int rank, world;
    double timeout_s;
    void *host, *dev; /* HOST_SCRATCH bytes each: pinned host, device */
    rwkv_status broken;
    rwkv_error broken_err;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Polls briefly with yields (a step's collectives take micro- to
 * milliseconds), then with short sleeps. */
static void pause_poll(double waited) {
    if (waited < 2e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

/* Aborts the communicator and keeps the error for every later call. */
static rwkv_status fail_comm(cuda_comm *c, rwkv_error *err, const char *msg) {
    if (c->broken == RWKV_OK) {
        c->broken = rwkv_fail(&c->broken_err, RWKV_ERR_IO, "rank %d of %d: %s", c->rank, c->world, msg);
        if (c->comm) api.CommAbort(c->comm);
        c->comm = NULL;
    }
    if (err) *err = c->broken_err;
    return c->broken;
}

static rwkv_status fail_timeout(cuda_comm *c, rwkv_error *err, const char *what) {
    char msg[200];
    snprintf(msg, sizeof msg, "NCCL %s did not finish within %.0f s (a peer rank has probably died or stopped)", what,
             c->timeout_s);
    return fail_comm(c, err, msg);
}

static const char *nccl_message(cuda_comm *c, ncclResult_t r) {
    const char *last = c->comm ? api.GetLastError(c->comm) : NULL;
    return last && *last ? last : api.GetErrorString(r);
}

static rwkv_status fail_nccl(cuda_comm *c, rwkv_error *err, const char *what, ncclResult_t r) {
    char msg[sizeof c->broken_err.message - 32];
    snprintf(msg, sizeof msg, "NCCL %s failed: %s", what, nccl_message(c, r));
    return fail_comm(c, err, msg);
}

/* After an NCCL call: waits while the non-blocking communicator is still
 * busy with it, then turns a failure into the kept error. */
static rwkv_status settle(cuda_comm *c, ncclResult_t r, const char *what, rwkv_error *err) {
    const double t0 = now_s();
    while (r == ncclInProgress) {
        if (now_s() - t0 > c->timeout_s) return fail_timeout(c, err, what);
        pause_poll(now_s() - t0);
        if (api.CommGetAsyncError(c->comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r != ncclSuccess) return fail_nccl(c, err, what, r);
    return RWKV_OK;
}

rwkv_status cuda_comm_unique_id(unsigned char id[CUDA_COMM_ID_BYTES], rwkv_error *err) {
    rwkv_status s = nccl_ready(err);
    if (s != RWKV_OK) return s;
    ncclUniqueId uid;
    ncclResult_t r = api.GetUniqueId(&uid);
    if (r != ncclSuccess) return rwkv_fail(err, RWKV_ERR_IO, "NCCL unique id: %s", api.GetErrorString(r));
    memcpy(id, uid.internal, CUDA_COMM_ID_BYTES);
    return RWKV_OK;
}

rwkv_status cuda_comm_new(const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int world, double timeout_s,
                          cuda_comm **out, rwkv_error *err) {
    *out = NULL;
    rwkv_status s = nccl_ready(err);
    if (s != RWKV_OK) return s;
    cuda_comm *c = (cuda_comm *)calloc(1, sizeof *c);
    if (!c) return rwkv_fail(err, RWKV_ERR_NOMEM, "out of memory");
    c->rank = rank, c->world = world, c->timeout_s = timeout_s;
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&c->event, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaMallocHost(&c->host, HOST_SCRATCH);
    if (e == cudaSuccess) e = cudaMalloc(&c->dev, HOST_SCRATCH);
    if (e != cudaSuccess) {
        cudaGetLastError();
        cuda_comm_free(c);
        return rwkv_fail(err, RWKV_ERR_IO, "NCCL stream and buffers: %s", cudaGetErrorString(e));
    }
    ncclUniqueId uid;
    memcpy(uid.internal, id, CUDA_COMM_ID_BYTES);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    s = settle(c, api.CommInitRankConfig(&c->comm, world, uid, rank, &config), "initialisation", err);
    if (s != RWKV_OK) {
        cuda_comm_free(c);
        return s;
    }
    *out = c;
    return RWKV_OK;
}

void cuda_comm_free(cuda_comm *c) {
    if (!c) return;
    if (c->comm) {
        /* a communicator that still has work (a failed run) is aborted, not destroyed */
        rwkv_error ignored;
        if (cudaStreamQuery(c->stream) == cudaSuccess &&
            settle(c, api.CommFinalize(c->comm), "shutdown", &ignored) == RWKV_OK)
            api.CommDestroy(c->comm);
        else if (c->comm)
            api.CommAbort(c->comm);
    }
    if (c->stream) cudaStreamDestroy(c->stream);
    if (c->event) cudaEventDestroy(c->event);
    if (c->host) cudaFreeHost(c->host);
    if (c->dev) cudaFree(c->dev);
    cudaGetLastError();
    free(c);
}

cuda_stream cuda_comm_stream(cuda_comm *c) { return c->stream; }

static rwkv_status usable(cuda_comm *c, rwkv_error *err) {
    if (c->broken != RWKV_OK && err) *err = c->broken_err;
    return c->broken;
}

static ncclDataType_t nccl_type(cuda_comm_type t) {
    switch (t) {
    case CUDA_COMM_BF16: return ncclBfloat16;
    case CUDA_COMM_F64: return ncclFloat64;
    case CUDA_COMM_BYTES: return ncclUint8;
    default: return ncclFloat32;
    }
}

static ncclRedOp_t nccl_op(cuda_comm_op op) { return op == CUDA_COMM_AVG ? ncclAvg : op == CUDA_COMM_MAX ? ncclMax : ncclSum; }

rwkv_status cuda_comm_follow(cuda_comm *c, cuda_stream s, rwkv_error *err) {
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK) return st;
    if (cudaEventRecord(c->event, s) != cudaSuccess || cudaStreamWaitEvent(c->stream, c->event, 0) != cudaSuccess)
        return cuda_check("ordering the NCCL stream", err);
    return RWKV_OK;
}

rwkv_status cuda_comm_all_reduce(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 cuda_comm_op op, rwkv_error *err) {
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK || count == 0) return st;
    return settle(c, api.AllReduce(send, recv, count, nccl_type(t), nccl_op(op), c->comm, c->stream), "all-reduce",
                  err);
}

rwkv_status cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 rwkv_error *err) {
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK || count == 0) return st;
    return settle(c, api.AllGather(send, recv, count, nccl_type(t), c->comm, c->stream), "all-gather", err);
}

rwkv_status cuda_comm_broadcast(cuda_comm *c, void *buf, size_t count, cuda_comm_type t, rwkv_error *err) {
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK || count == 0) return st;
    return settle(c, api.Broadcast(buf, buf, count, nccl_type(t), 0, c->comm, c->stream), "broadcast", err);
}

rwkv_status cuda_comm_wait(cuda_comm *c, const char *what, rwkv_error *err) {
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK) return st;
    const double t0 = now_s();
    for (;;) {
        cudaError_t e = cudaStreamQuery(c->stream);
        if (e == cudaSuccess) return RWKV_OK;
        if (e != cudaErrorNotReady) {
            cudaGetLastError();
            char msg[200];
            snprintf(msg, sizeof msg, "%s failed on the device: %s", what, cudaGetErrorString(e));
            return fail_comm(c, err, msg);
        }
        ncclResult_t r = ncclSuccess;
        api.CommGetAsyncError(c->comm, &r);
        if (r != ncclSuccess && r != ncclInProgress) return fail_nccl(c, err, what, r);
        if (now_s() - t0 > c->timeout_s) return fail_timeout(c, err, what);
        pause_poll(now_s() - t0);
    }
}

rwkv_status cuda_comm_host_all_reduce(cuda_comm *c, double *v, int n, cuda_comm_op op, rwkv_error *err) {
    const size_t bytes = sizeof(double) * (size_t)n;
    if (bytes > HOST_SCRATCH) return rwkv_fail(err, RWKV_ERR_ARG, "%d host values are too many to reduce", n);
    rwkv_status st = usable(c, err);
    if (st != RWKV_OK) return st;
    memcpy(c->host, v, bytes);
    if (cudaMemcpyAsync(c->dev, c->host, bytes, cudaMemcpyHostToDevice, c->stream) != cudaSuccess)
        return cuda_check("host values to the device", err);
    st = cuda_comm_all_reduce(c, c->dev, c->dev, (size_t)n, CUDA_COMM_F64, op, err);
    if (st == RWKV_OK && cudaMemcpyAsync(c->host, c->dev, bytes, cudaMemcpyDeviceToHost, c->stream) != cudaSuccess)
        st = cuda_check("host values from the device", err);
    if (st == RWKV_OK) st = cuda_comm_wait(c, "all-reduce of host values", err);
    if (st == RWKV_OK) memcpy(v, c->host, bytes);
    return st;
}

rwkv_status cuda_comm_host_broadcast(cuda_comm *c, void *buf, size_t bytes, rwkv_error *err) {
    rwkv_status st = usable(c, err);
    for (size_t done = 0; st == RWKV_OK && done < bytes; done += HOST_SCRATCH) {
        const size_t n = bytes - done < (size_t)HOST_SCRATCH ? bytes - done : (size_t)HOST_SCRATCH;
        memcpy(c->host, (char *)buf + done, n);
        if (cudaMemcpyAsync(c->dev, c->host, n, cudaMemcpyHostToDevice, c->stream) != cudaSuccess)
            return cuda_check("host bytes to the device", err);
        st = cuda_comm_broadcast(c, c->dev, n, CUDA_COMM_BYTES, err);
        if (st == RWKV_OK && cudaMemcpyAsync(c->host, c->dev, n, cudaMemcpyDeviceToHost, c->stream) != cudaSuccess)
            st = cuda_check("host bytes from the device", err);
        if (st == RWKV_OK) st = cuda_comm_wait(c, "broadcast of host bytes", err);
        if (st == RWKV_OK) memcpy((char *)buf + done, c->host, n);
    }
    return st;
}

#else /* no nccl.h: every entry point refuses */

#include "cuda/common.cuh"

extern "C" {
#include "cuda/cuda_comm.h"
}

static rwkv_status no_nccl(rwkv_error *err) {
    return rwkv_fail(err, RWKV_ERR_UNSUPPORTED,
                     "training on several GPUs needs NCCL, and this build had no nccl.h (install NCCL and rebuild)");
}

rwkv_status cuda_comm_unique_id(unsigned char id[CUDA_COMM_ID_BYTES], rwkv_error *err) {
    (void)id;
    return no_nccl(err);
}

rwkv_status cuda_comm_new(const unsigned char id[CUDA_COMM_ID_BYTES], int rank, int world, double timeout_s,
                          cuda_comm **out, rwkv_error *err) {
    (void)id, (void)rank, (void)world, (void)timeout_s;
    *out = NULL;
    return no_nccl(err);
}

/* unreachable without a communicator */
void cuda_comm_free(cuda_comm *c) { (void)c; }
cuda_stream cuda_comm_stream(cuda_comm *c) {
    (void)c;
    return nullptr;
}
rwkv_status cuda_comm_follow(cuda_comm *c, cuda_stream s, rwkv_error *err) {
    (void)c, (void)s;
    return no_nccl(err);
}
rwkv_status cuda_comm_all_reduce(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 cuda_comm_op op, rwkv_error *err) {
    (void)c, (void)send, (void)recv, (void)count, (void)t, (void)op;
    return no_nccl(err);
}
rwkv_status cuda_comm_all_gather(cuda_comm *c, const void *send, void *recv, size_t count, cuda_comm_type t,
                                 rwkv_error *err) {
    (void)c, (void)send, (void)recv, (void)count, (void)t;
    return no_nccl(err);
}
rwkv_status cuda_comm_broadcast(cuda_comm *c, void *buf, size_t count, cuda_comm_type t, rwkv_error *err) {
    (void)c, (void)buf, (void)count, (void)t;
    return no_nccl(err);
}
rwkv_status cuda_comm_wait(cuda_comm *c, const char *what, rwkv_error *err) {
    (void)c, (void)what;
    return no_nccl(err);
}
rwkv_status cuda_comm_host_all_reduce(cuda_comm *c, double *v, int n, cuda_comm_op op, rwkv_error *err) {
    (void)c, (void)v, (void)n, (void)op;
    return no_nccl(err);
}
rwkv_status cuda_comm_host_broadcast(cuda_comm *c, void *buf, size_t bytes, rwkv_error *err) {
    (void)c, (void)buf, (void)bytes;
    return no_nccl(err);
}

#endif
