/* The start of a multi-process run: rank 0 hands a small blob (the NCCL
 * unique id of train/dist.h) to every other rank, over TCP or through a file
 * on a file system all ranks share. It needs no GPU and no NCCL, so it is
 * tested on its own.
 *
 * spec is "HOST:PORT" (rank 0 listens on that address, the others connect to
 * it) or "file:PATH" (rank 0 writes PATH atomically, the others read it once
 * it is there; rank 0 removes it again with rendezvous_finish). Every rank
 * states the world size it expects; a rank that disagrees, a rank number
 * given twice, or a peer that is not there within timeout_s end the exchange
 * with RWKV_ERR_IO (or RWKV_ERR_ARG for a malformed spec) and one line
 * saying which. */
#ifndef RWKV_CORE_RENDEZVOUS_H
#define RWKV_CORE_RENDEZVOUS_H

#include <stddef.h>

#include "core/error.h"

enum { RENDEZVOUS_BLOB_MAX = 256 };

/* RWKV_OK when spec has one of the two forms (a port in 1..65535). */
rwkv_status rendezvous_check_spec(const char *spec, rwkv_error *err);

/* Rank 0 sends blob[0..n) (n <= RENDEZVOUS_BLOB_MAX), every other rank
 * receives it into blob (n must be the same on every rank). Returns when
 * every rank has it (rank 0: all world - 1 peers were served) or on error.
 * With world 1 nothing is exchanged. */
rwkv_status rendezvous_exchange(const char *spec, int rank, int world, void *blob, size_t n, double timeout_s,
                                rwkv_error *err);

/* Rank 0, once every peer is known to have read the blob: removes the file
 * of a file: rendezvous (nothing to do for TCP). */
void rendezvous_finish(const char *spec, int rank);

#endif
