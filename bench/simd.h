/* simd.h — the ceiling kernels (streaming sum, independent FMA chains) in the widest ISA the CPU has. */
#ifndef BENCH_SIMD_H
#define BENCH_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* The ISA the kernels below use on this CPU: "avx512f", "avx2+fma" or "sse2". Decided once,
 * from __builtin_cpu_supports, before any wide instruction runs. */
const char *simd_isa(void);

/* Sum of n floats at p (64-byte aligned, n a multiple of 64), read once front to back. */
float simd_sum_f32(const float *p, size_t n);

/* Runs iters rounds of independent FMA chains held in registers; returns a value that depends on
 * every chain (so the work cannot be dropped) and sets *flops to the f32 flops done. */
float simd_fma_chains(uint64_t iters, double *flops);

#endif
