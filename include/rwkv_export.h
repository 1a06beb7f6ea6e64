/*
 * rwkv_export.h — RWKV_API marks every function of the public API.
 *
 * The library is compiled with -fvisibility=hidden and RWKV_BUILD defined, so
 * only what carries RWKV_API is exported by librwkv.so: a program may link
 * rwkv.c next to other C code without its internal names (matmul, layernorm,
 * ...) colliding. A program that includes the headers sees nothing special.
 */
#ifndef RWKV_EXPORT_H
#define RWKV_EXPORT_H

#if defined(RWKV_BUILD) && defined(__GNUC__)
#define RWKV_API __attribute__((visibility("default")))
#else
#define RWKV_API
#endif

#endif /* RWKV_EXPORT_H */
