/* apr_abi.h — the binary contract between the apr core and backend plugins: dtypes, ops, structs, entry point. */
#ifndef APR_ABI_H
#define APR_ABI_H

/*
 * OVERVIEW
 *
 * A backend plugin is a shared object that exports exactly one symbol, apr_plugin_entry
 * (APR_PLUGIN_ENTRY_SYMBOL). The core dlopen()s every .so in the plugin directories with
 * RTLD_NOW | RTLD_LOCAL, calls the entry with the newest ABI version it speaks, and gets back a
 * table of function pointers (struct apr_plugin) stamped with the ABI version the plugin
 * implements and the size of the table as the plugin was compiled.
 *
 * Versioning rules (the ABI only grows):
 *   - APR_ABI_VERSION increases when anything is appended: an op, a dtype, a struct field, a table slot.
 *     Nothing is ever removed, renumbered or reordered.
 *   - A newer core accepts an older plugin: it reads only the table slots that fit in the plugin's
 *     struct_size, and an older plugin declines ops it does not know (supports() says why).
 *   - An older core refuses a newer plugin (abi_version > the core's) with a message naming both.
 *   - Every struct that crosses the boundary starts with uint32_t struct_size, filled by whoever
 *     allocates it. A reader never touches a field that lies past struct_size.
 *
 * Errors: every fallible call returns an apr_status and, on failure, writes one human-readable
 * line into the caller's (err, err_size) buffer. Plugins never call exit() or abort(), never
 * print, and never keep pointers to caller memory after a call returns unless stated.
 *
 * Threading rules:
 *   - entry and probe: may be called from any thread, concurrently; they must not have side effects
 *     beyond reading the hardware.
 *   - create/destroy: one call at a time per plugin.
 *   - All other calls take a backend instance and are made by one thread at a time per instance
 *     (the core serialises them). A plugin may run its own worker threads inside compute(); they
 *     must be idle when compute() returns. Instances of one plugin are independent.
 *
 * Tensors: up to 4 dimensions. ne[0] is the innermost (fastest-varying) dimension; nb[i] is the
 * byte distance between consecutive elements (for block dtypes: blocks) along dimension i.
 * A contiguous tensor has nb[0] = type size, nb[i] = nb[i-1] * ne[i-1] (ne[0] / block size for
 * block types). Views (reshape, permute, transpose, slice) only change ne, nb and offset.
 *
 * MEMORY (ABI 4). Every tensor lives in an apr_buffer of the backend that runs the node. A buffer
 * is asked for with a memory kind (the backend's own memory, host-visible, or pinned host memory for
 * staging copies) and a usage (weights, state, compute), so that a device backend can put each where
 * it belongs; a plugin without buffer_alloc_ex gets plain buffer_alloc calls. The core keeps three
 * lifetimes apart:
 *   - weights: placed on a backend once (uploaded, imported where the backend computes from host
 *     memory, or packed) and shared by every plan until the model is closed; a plan never uploads;
 *   - state: buffers a caller owns on a backend (a KV cache, optimizer moments) that graphs read
 *     through views and write in place with APR_OP_SET_ROWS, never copied per run;
 *   - compute: the intermediates arena of a plan.
 * A plugin may keep work for the life of a plan (plan_create / plan_compute / plan_free: a recorded
 * command buffer, a captured CUDA graph), may run asynchronously (the *_async slots, synchronize and
 * events), and may serve several devices (probe_device; apr_backend_config.device).
 *
 * dtype numbers equal the GGML type ids so GGUF tensors map directly. The quantized block types
 * (ABI 2) store ne[0] elements of a row as ne[0] / block_elems blocks whose byte layouts are those
 * of ggml; apr_quant.h defines them, with the reference quantize and dequantize.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define APR_ABI_VERSION 5             /* the ABI this header describes (2 added the quantized block dtypes,
                                       * 3 the weight_pack slot and APR_BUFFER_PACKED, 4 backend-resident
                                       * memory: MEMORY below, 5 the gradient and training ops) */
#define APR_ABI_MIN_VERSION 1         /* the oldest plugin ABI this core still accepts */
#define APR_PLUGIN_ENTRY_SYMBOL "apr_plugin_entry"
#define APR_MAX_DIMS 4
#define APR_MAX_SRC 4                 /* sources in apr_node_desc.src */
#define APR_MAX_SRC_EXT 4             /* (ABI 4) sources 4..7, in apr_node_desc.src_ext */
#define APR_MAX_PARAMS 8

/* ---------------------------------------------------------------- status */

typedef enum apr_status {
    APR_OK = 0,
    APR_ERR_INVALID = 1,     /* bad argument or bad data (shape, id out of range) */
    APR_ERR_UNSUPPORTED = 2, /* the op, dtype or shape is not implemented here */
    APR_ERR_NOMEM = 3,       /* an allocation failed */
    APR_ERR_IO = 4,          /* a file could not be read or written */
    APR_ERR_FORMAT = 5,      /* a file is malformed */
    APR_ERR_DEVICE = 6,      /* the hardware or its driver failed */
    APR_ERR_ABI = 7,         /* a plugin and the core cannot talk to each other */
    APR_ERR_NOT_FOUND = 8,   /* a named thing (backend, tensor, file) does not exist */
    APR_ERR_INTERNAL = 9,    /* a bug: an invariant did not hold */
} apr_status;

/* ---------------------------------------------------------------- dtypes */

typedef enum apr_dtype {
    APR_F32 = 0,   /* IEEE binary32 */
    APR_F16 = 1,   /* IEEE binary16; conversions from f32 round to nearest even */
    /* Block types (ABI 2): 32 or 256 elements per block, layouts in apr_quant.h. */
    APR_Q4_0 = 2,  /* 32 per block, 18 bytes: f16 scale d, 4-bit q; x = d (q - 8) */
    APR_Q4_1 = 3,  /* 32 per block, 20 bytes: f16 d and m, 4-bit q; x = d q + m */
    APR_Q5_0 = 6,  /* 32 per block, 22 bytes: f16 d, 5-bit q; x = d (q - 16) */
    APR_Q5_1 = 7,  /* 32 per block, 24 bytes: f16 d and m, 5-bit q; x = d q + m */
    APR_Q8_0 = 8,  /* 32 per block, 34 bytes: f16 d, int8 q; x = d q */
    APR_Q4_K = 12, /* 256 per block, 144 bytes: 8 sub-blocks of 32 with 6-bit scales and mins */
    APR_Q5_K = 13, /* 256 per block, 176 bytes: as Q4_K with a fifth bit */
    APR_Q6_K = 14, /* 256 per block, 210 bytes: 16 sub-blocks of 16 with int8 scales, 6-bit q */
    APR_Q8_K = 15, /* 256 per block, 292 bytes: f32 d, int8 q, 16 int16 sums (the K-quant activation format) */
    APR_I32 = 26,  /* two's complement int32 (token ids, positions, argmax results) */
    APR_BF16 = 30, /* the upper 16 bits of a binary32; conversions from f32 round to nearest even */
    APR_DTYPE_LIMIT = 40, /* all dtype numbers are below this */
} apr_dtype;

/* ---------------------------------------------------------------- ops
 *
 * Op numbers are stable; new ops are appended. In every definition below, x[i0,i1,i2,i3] means
 * the element at byte offset i0*nb[0] + i1*nb[1] + i2*nb[2] + i3*nb[3]; any source may be a
 * strided view unless it says otherwise, and dst is written only at its own elements (never the
 * bytes between them). "F" stands for a float dtype (f32, f16 or bf16). Unless stated, dst is F32
 * and float sources are F32. Results must not depend on the number of threads beyond rounding.
 */
typedef enum apr_op {
    APR_OP_NONE = 0,
    /* GET_ROWS  src0 table [D, R, 1, 1] F or a block type (ABI 2; D a multiple of its block);
     *           src1 ids [N, 1, 1, 1] I32; dst [D, N] F32.
     *           dst[:, n] = table[:, ids[n]] (a block row dequantized as apr_quant.h defines).
     *           An id outside [0, R) is APR_ERR_INVALID. */
    APR_OP_GET_ROWS = 1,
    /* MATMUL    src0 weight W [K, N, Bw2, Bw3] F; src1 activations X [K, M, B2, B3] F32;
     *           dst [N, M, B2, B3] F32 with B2 % Bw2 == 0 and B3 % Bw3 == 0.
     *           dst[n,m,b2,b3] = sum_k W[k,n,b2/(B2/Bw2),b3/(B3/Bw3)] * X[k,m,b2,b3].
     *           Each row of W is a weight row (a GGUF/PyTorch "out x in" matrix). Accumulation order
     *           is free; the reference accumulates in double.
     *           W may be a block type other than Q8_K (ABI 2) with K a multiple of its block and
     *           nb[0] = block bytes: W means its dequantized values. Such a backend may round each
     *           row of X to 8-bit blocks first (Q8_0-style per 32, Q8_K-style per 256), as ggml does;
     *           the conformance suite bounds the error that adds. */
    APR_OP_MATMUL = 2,
    /* ADD, MUL  src0 a [A0..A3]; src1 b [B0..B3] with Ai % Bi == 0 (b repeats); dst [A0..A3].
     *           dst = a + b / a * b elementwise, b indexed modulo its shape. */
    APR_OP_ADD = 3,
    APR_OP_MUL = 4,
    /* SCALE     src0 a; dst same shape. dst = a * fparams[0]. */
    APR_OP_SCALE = 5,
    /* RMS_NORM  src0 x [D, ...]; dst same shape. Along dim 0:
     *           dst = x / sqrt(mean(x^2) + eps), eps = fparams[0] (> 0). No weight: multiply after. */
    APR_OP_RMS_NORM = 6,
    /* ROPE      src0 x [D, H, T, 1]; src1 positions [T] I32; src2 optional freq factors [n_rot/2] F32.
     *           iparams[0] = n_rot (even, <= D): dims >= n_rot are copied unchanged.
     *           iparams[1] = layout: 0 = adjacent pairs (x[2i], x[2i+1]) as in GGUF llama;
     *                                1 = split half (x[i], x[i + n_rot/2]) as in GPT-NeoX / Hugging Face.
     *           fparams[0] = frequency base (e.g. 10000), fparams[1] = position scale (1 = none;
     *           linear scaling uses 1/factor).
     *           For pair i in [0, n_rot/2): theta = pos[t] * scale * base^(-2i/n_rot) / ff[i]
     *           (ff[i] = 1 without src2), (a, b) -> (a cos theta - b sin theta, a sin theta + b cos theta). */
    APR_OP_ROPE = 7,
    /* SOFTMAX   src0 x [N, R, B2, B3]; src1 optional additive mask [N, R] F32 (broadcast over B2, B3).
     *           fparams[0] = scale; iparams[0] = causal (0/1). Along dim 0 of each row r:
     *           z = x * scale + mask; with causal, z[j] = -inf for j > r + (N - R);
     *           dst = exp(z - max z) / sum. A row whose every z is -inf gives all zeros. */
    APR_OP_SOFTMAX = 8,
    /* SILU      dst = x / (1 + exp(-x)).
     * GELU      dst = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (the tanh form GGUF models use). */
    APR_OP_SILU = 9,
    APR_OP_GELU = 10,
    /* SWIGLU    src0 gate a, src1 up b (same shape); dst = silu(a) * b. */
    APR_OP_SWIGLU = 11,
    /* ATTENTION src0 q [D, T, H, 1] F32; src1 k [D, S, Hkv, 1] F; src2 v [Dv, S, Hkv, 1] F (k and v
     *           the same dtype); src3 optional additive mask [S, T] F32. H % Hkv == 0: query head h
     *           reads kv head h / (H / Hkv) (grouped-query attention). fparams[0] = scale,
     *           iparams[0] = causal (0/1): query t sees keys s <= t + (S - T).
     *           dst [Dv, H, T] F32 (heads of one token adjacent, so it reshapes to [Dv*H, T]):
     *           dst[:, h, t] = sum_s p[s] v[:, s, hk] with p = softmax_s(scale * q[:,t,h].k[:,s,hk] + mask[s,t]).
     *           The score matrix is never materialised (online softmax). A key whose mask is -inf
     *           is not read (its score is -inf whatever k and v hold: unfilled cache slots). A
     *           query that sees no key gives zeros. */
    APR_OP_ATTENTION = 12,
    /* CPY       src0 [ne] any dtype; dst [ne] (same shape) of any dtype: element-wise conversion
     *           (f32/f16/bf16 among themselves, i32 to i32 only). Makes strided views contiguous. */
    APR_OP_CPY = 13,
    /* CONCAT    src0 a, src1 b of one dtype, equal in every dim but iparams[0] = dim; dst joins them
     *           along dim (a first), same dtype. */
    APR_OP_CONCAT = 14,
    /* ARGMAX    src0 x [N, R, B2, B3] F32; dst [R, B2, B3] I32: index of the largest element of each
     *           row; ties give the lowest index; NaN elements are ignored (an all-NaN row gives 0). */
    APR_OP_ARGMAX = 15,
    APR_OP_COUNT_V1 = 16, /* ops known to ABI version 1 are below this */
    /* SET_ROWS  (ABI 4) src0 table [D, R, 1, 1] F; src1 rows [D, N, 1, 1] F32 or src0's dtype; src2 ids
     *           [N, 1, 1, 1] I32 with 1 <= N <= R. Writes in place: dst is src0 itself (the same buffer,
     *           offset, shape and strides; in supports() the same placeholder), and for every n,
     *           table[:, ids[n]] = rows[:, n], converted to the table's dtype as CPY converts (a row of
     *           the table's own dtype is copied byte for byte); every other row keeps its bytes. An id
     *           outside [0, R) is APR_ERR_INVALID and then no row is written. When ids repeat, one of
     *           those rows lands there whole (which one is unspecified). The table is any strided view
     *           whose elements do not overlap (else APR_ERR_INVALID); rows is a strided view; rows and
     *           ids do not overlap the table. (A KV cache is written where it lives this way.) */
    APR_OP_SET_ROWS = 16,
    /* ADAMW     (ABI 4) one AdamW step (decoupled weight decay) written in place into three sources:
     *           src0 parameters w, src1 gradient g, src2 first moment m, src3 second moment v, all F32
     *           of one shape [ne] (strided views whose elements do not overlap); src4 hp [8, 1, 1, 1]
     *           F32 = {lr, beta1, beta2, eps, weight_decay, c1, c2, gscale}, read when the node runs (so
     *           one kept plan serves every step), where c1 = 1 / (1 - beta1^t) and c2 = 1 / (1 - beta2^t)
     *           are step t's bias corrections and gscale multiplies g (clipping, loss scaling). Per
     *           element, in f32:
     *               g' = g * gscale
     *               m  = beta1 * m + (1 - beta1) * g'
     *               v  = beta2 * v + (1 - beta2) * g' * g'
     *               w  = w - lr * (weight_decay * w + (m * c1) / (sqrt(v * c2) + eps))
     *           with the new m and v. dst is src0 itself (as for SET_ROWS); src2 and src3 are written in
     *           place too; src1 and src4 overlap none of the three. src4 is src_ext[0]: the first op of
     *           more than four sources. */
    APR_OP_ADAMW = 17,
    APR_OP_COUNT_V4 = 18, /* ops known to ABI version 4 are below this */
    /* ---- ABI 5: gradients and training. The *_GRAD ops are derivatives of the forward ops above: dY
     * is the gradient of a scalar loss with respect to the forward op's dst, and the result is the
     * gradient with respect to one of its sources (the chain rule, one op at a time). Sources are
     * F32 and dst is F32 unless stated; accumulation order is free (the reference accumulates in
     * double), and the conformance suite checks each against central finite differences of its
     * forward op as well as against the reference.
     *
     * MATMUL_GRAD_X src0 W [K, N, Bw2, Bw3] as MATMUL's weight (every dtype MATMUL takes, block types
     *           with their rows whole, so a frozen quantized weight passes gradients on); src1 dY
     *           [N, M, B2, B3] with B2 % Bw2 == 0 and B3 % Bw3 == 0; dst dX [K, M, B2, B3]:
     *           dX[k,m,b2,b3] = sum_n W[k,n,b2/(B2/Bw2),b3/(B3/Bw3)] * dY[n,m,b2,b3] (W means its
     *           dequantized values; dY is not rounded). */
    APR_OP_MATMUL_GRAD_X = 18,
    /* MATMUL_GRAD_W src0 X [K, M, B2, B3]; src1 dY [N, M, B2, B3]; dst dW [K, N, Bw2, Bw3] with
     *           B2 % Bw2 == 0 and B3 % Bw3 == 0 (dst's shape says Bw2, Bw3):
     *           dW[k,n,w2,w3] = sum over m and over every (b2, b3) with b2/(B2/Bw2) = w2 and
     *           b3/(B3/Bw3) = w3 of X[k,m,b2,b3] * dY[n,m,b2,b3]. */
    APR_OP_MATMUL_GRAD_W = 19,
    /* GET_ROWS_GRAD src0 dY [D, N, 1, 1]; src1 ids [N, 1, 1, 1] I32; dst [D, R, 1, 1]:
     *           dst[:, r] = sum of dY[:, n] over every n with ids[n] == r (a scatter-add; a row no id
     *           names is zero). An id outside [0, R) is APR_ERR_INVALID (dst is then unspecified). */
    APR_OP_GET_ROWS_GRAD = 20,
    /* SUM_REPEATS src0 a [A0..A3]; dst [B0..B3] with Ai % Bi == 0: dst[j] = the sum of a[i] over every
     *           i with i_d % B_d == j_d in each dim d. The gradient of a source that ADD or MUL repeat
     *           (b indexed modulo its shape); a dst of one element is the sum of all of a. */
    APR_OP_SUM_REPEATS = 21,
    /* RMS_NORM_GRAD src0 x [D, ...]; src1 dY (x's shape); fparams[0] = eps (> 0). Along dim 0, with
     *           r = 1 / sqrt(mean(x^2) + eps) and y = x * r: dst dX = r * (dY - y * mean(dY * y)). */
    APR_OP_RMS_NORM_GRAD = 22,
    /* ROPE_GRAD src0 dY [D, H, T, 1]; src1 positions; src2 optional freq factors; iparams and fparams
     *           as ROPE's. The transposed rotation: each pair (a, b) of dY becomes
     *           (a cos theta + b sin theta, -a sin theta + b cos theta), theta as ROPE defines it;
     *           dims >= n_rot are copied unchanged. */
    APR_OP_ROPE_GRAD = 23,
    /* SOFTMAX_GRAD src0 y = SOFTMAX's dst [N, R, B2, B3]; src1 dY (y's shape); fparams[0] = the forward's
     *           scale. Along dim 0: dst = scale * y * (dY - sum_j y[j] * dY[j]) (the gradient with
     *           respect to SOFTMAX's x; its mask gets none). */
    APR_OP_SOFTMAX_GRAD = 24,
    /* SILU_GRAD src0 x; src1 dY (x's shape); dst = dY * s * (1 + x * (1 - s)), s = 1 / (1 + exp(-x)).
     * GELU_GRAD src0 x; src1 dY; dst = dY * gelu'(x) of GELU's tanh form:
     *           u = c (x + 0.044715 x^3), c = sqrt(2/pi), t = tanh(u):
     *           gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2). */
    APR_OP_SILU_GRAD = 25,
    APR_OP_GELU_GRAD = 26,
    /* ATTENTION_GRAD src0 q, src1 k, src2 v, src3 optional mask, fparams[0] scale and iparams[0] causal
     *           exactly as ATTENTION's (k and v of one float dtype); src4 dO [Dv, H, T, 1] (the shape of
     *           ATTENTION's dst; src_ext[0]). dst is one F32 vector [D*T*H + D*S*Hkv + Dv*S*Hkv, 1, 1, 1]
     *           holding, contiguous and in this order, dQ [D, T, H] (q's shape), dK [D, S, Hkv] and
     *           dV [Dv, S, Hkv]. With p[s] = the forward's softmax over the keys query (t, h) sees and
     *           hk = h / (H / Hkv), for each query (t, h):
     *               dp[s] = dO[:,h,t] . v[:,s,hk]      ds[s] = p[s] * (dp[s] - sum_s' p[s'] * dp[s'])
     *               dQ[:,t,h]  = scale * sum_s ds[s] * k[:,s,hk]
     *               dK[:,s,hk] += scale * ds[s] * q[:,t,h]        dV[:,s,hk] += p[s] * dO[:,h,t]
     *           A key whose mask is -inf (or that causality hides) is not read and gets nothing from
     *           that query; a query that sees no key gives dQ = 0. The score matrix need not be
     *           materialised (flash-attention style: recompute p per block of keys). */
    APR_OP_ATTENTION_GRAD = 27,
    /* CROSS_ENTROPY src0 logits [V, T, 1, 1]; src1 targets [T, 1, 1, 1] I32; dst [1, 1, 1, 1]:
     *           the sum over every t with targets[t] >= 0 of logsumexp_v(logits[v,t]) - logits[targets[t],t]
     *           (targets[t] = -1: no loss at t; any other value outside [0, V) is APR_ERR_INVALID). The
     *           caller divides by the count it wants (tokens of the batch). */
    APR_OP_CROSS_ENTROPY = 28,
    /* CROSS_ENTROPY_GRAD src0 logits; src1 targets, as CROSS_ENTROPY's; src2 g [1, 1, 1, 1]: the gradient of
     *           the loss with respect to CROSS_ENTROPY's dst, read when the node runs (1/N for a mean).
     *           dst [V, T, 1, 1]: for every t with targets[t] >= 0,
     *           dst[v,t] = g * (softmax_v(logits[:,t])[v] - (v == targets[t] ? 1 : 0)); columns with
     *           targets[t] = -1 are zero. */
    APR_OP_CROSS_ENTROPY_GRAD = 29,
    /* SGD       one step of stochastic gradient descent with momentum, written in place as ADAMW is:
     *           src0 parameters w, src1 gradient g, src2 momentum buffer b, all F32 of one shape; src3 hp
     *           [4, 1, 1, 1] F32 = {lr, momentum, weight_decay, gscale}, read when the node runs. Per
     *           element, in f32 and in order:  g' = g * gscale + weight_decay * w;  b = momentum * b + g';
     *           w = w - lr * b. dst is src0 itself; src2 is written too; src1 and src3 overlap neither. */
    APR_OP_SGD = 30,
    /* ACC       src0 a (written in place: dst is src0 itself, as for SET_ROWS), src1 b of a's shape:
     *           a = a + b per element (gradients summed over micro-batches where they live). */
    APR_OP_ACC = 31,
    APR_OP_COUNT_V5 = 32, /* ops known to ABI version 5 are below this */
} apr_op;

/* (ABI 5) The elements of SGD's hyperparameter source, in order. */
typedef enum apr_sgd_hp {
    APR_SGD_LR = 0,
    APR_SGD_MOMENTUM = 1,
    APR_SGD_WEIGHT_DECAY = 2,
    APR_SGD_GSCALE = 3,
    APR_SGD_HP_COUNT = 4,
} apr_sgd_hp;

/* (ABI 4) The elements of ADAMW's hyperparameter source, in order. */
typedef enum apr_adamw_hp {
    APR_ADAMW_LR = 0,
    APR_ADAMW_BETA1 = 1,
    APR_ADAMW_BETA2 = 2,
    APR_ADAMW_EPS = 3,
    APR_ADAMW_WEIGHT_DECAY = 4,
    APR_ADAMW_C1 = 5,     /* 1 / (1 - beta1^t) */
    APR_ADAMW_C2 = 6,     /* 1 / (1 - beta2^t) */
    APR_ADAMW_GSCALE = 7, /* multiplies the gradient */
    APR_ADAMW_HP_COUNT = 8,
} apr_adamw_hp;

/* ---------------------------------------------------------------- structs */

/* The machine as the core sees it (hwloc topology), handed to probe and create. */
typedef struct apr_host_info {
    uint32_t struct_size;        /* sizeof(apr_host_info) as the core was built */
    uint32_t core_abi_version;   /* APR_ABI_VERSION of the core */
    int32_t n_physical_cores;    /* cores (not hardware threads) the process may use */
    int32_t n_logical_cpus;      /* hardware threads the process may use */
    int32_t n_numa_nodes;        /* NUMA nodes */
    int32_t reserved0;
    int64_t l1d_bytes;           /* L1 data cache of one core, bytes (0 = unknown) */
    int64_t l2_bytes;            /* L2 cache reachable from one core, bytes */
    int64_t l3_bytes;            /* last-level cache, bytes */
    char cpu_model[128];         /* e.g. "AMD EPYC"; NUL-terminated */
    char cpu_features[512];      /* space-separated ISA features the CPU and OS both enable */
} apr_host_info;

/* What a plugin says about its fit to this machine. */
typedef struct apr_probe_result {
    uint32_t struct_size;   /* set by the core; the plugin writes only fields that fit */
    int32_t score;          /* 0 = unusable here; larger = better fit (reference = 1) */
    char reason[256];       /* one line: why this score (what was found or missing) */
    char features[256];     /* space-separated features the plugin found and will use */
    /* ---- ABI 4 */
    int32_t n_devices;      /* devices the plugin found: 0 = the plugin is one backend and needs no
                             * index (every CPU plugin); N >= 1 = devices 0..N-1, each described by
                             * probe_device and listed as its own backend "name:i" */
    int32_t reserved0;
} apr_probe_result;

/* How the core wants a backend instance set up. */
typedef struct apr_backend_config {
    uint32_t struct_size;         /* sizeof(apr_backend_config) as the core was built */
    int32_t n_threads;            /* worker threads; 0 = the plugin's default (physical cores) */
    const apr_host_info *host;    /* valid for the duration of create() only */
    /* ---- ABI 4 */
    int32_t device;               /* which device of the plugin (0 .. n_devices - 1 of its probe); 0 from
                                   * older cores and for plugins of one device */
    int32_t reserved0;
} apr_backend_config;

/* A buffer owned by the backend that allocated or imported it. The core allocates this struct
 * and the plugin fills it in buffer_alloc/buffer_import; the plugin frees what it allocated in
 * buffer_free. */
#define APR_BUFFER_HOST_VISIBLE 1u /* host_ptr is a CPU address of the whole buffer */
#define APR_BUFFER_IMPORTED 2u     /* memory belongs to the caller; buffer_free only forgets it */
#define APR_BUFFER_PACKED 4u       /* (ABI 3) a weight in the plugin's own layout, made by weight_pack:
                                    * the core never reads, writes or copies it */

/* (ABI 4) Where a buffer_alloc_ex buffer should live. */
typedef enum apr_memory_kind {
    APR_MEM_DEVICE = 0,       /* the memory the backend's kernels read fastest (a GPU's own memory; host
                               * memory on a CPU); host_ptr only if the plugin can map it for free */
    APR_MEM_HOST_VISIBLE = 1, /* memory the host can address: host_ptr set (the kernels may be slower on it) */
    APR_MEM_HOST_STAGING = 2, /* pinned host memory the device copies to and from quickly; host_ptr set;
                               * the core stages copies between two backends through it */
} apr_memory_kind;

/* (ABI 4) What a buffer_alloc_ex buffer holds; a hint for placement and residency. */
typedef enum apr_buffer_usage {
    APR_USAGE_COMPUTE = 0,    /* a plan's intermediates: rewritten every run */
    APR_USAGE_WEIGHTS = 1,    /* read by every plan for the life of a model; written once */
    APR_USAGE_STATE = 2,      /* read and written in place by graphs (KV cache, optimizer moments) */
    APR_USAGE_STAGING = 3,    /* copies between host and device */
} apr_buffer_usage;

typedef struct apr_buffer_request {
    uint32_t struct_size;     /* sizeof(apr_buffer_request) as the core was built */
    uint32_t kind;            /* apr_memory_kind */
    uint32_t usage;           /* apr_buffer_usage */
    uint32_t reserved0;
    uint64_t size;            /* bytes */
} apr_buffer_request;

typedef struct apr_buffer {
    uint32_t struct_size;   /* set by the core */
    uint32_t flags;         /* APR_BUFFER_* */
    uint64_t size;          /* bytes */
    void *host_ptr;         /* CPU address when HOST_VISIBLE, else NULL */
    void *handle;           /* the plugin's own handle (device pointer, VkBuffer, ...) */
} apr_buffer;

/* A tensor as a plugin sees it: a strided view into one of its own buffers. */
typedef struct apr_tensor_desc {
    uint32_t struct_size;           /* sizeof(apr_tensor_desc) as the core was built */
    uint32_t dtype;                 /* apr_dtype */
    int64_t ne[APR_MAX_DIMS];       /* elements per dimension, ne[0] innermost; unused dims are 1 */
    int64_t nb[APR_MAX_DIMS];       /* byte stride per dimension */
    const apr_buffer *buffer;       /* the backend's buffer holding the data */
    uint64_t offset;                /* bytes from the start of buffer to element [0,0,0,0] */
    void *data;                     /* buffer->host_ptr + offset when host visible, else NULL */
} apr_tensor_desc;

/* One op node: dst = op(src[0..n_src-1], params). An absent optional source is all zeros
 * (struct_size 0, buffer NULL); sources at index >= n_src are absent.
 * In supports() the tensors carry shapes, strides and dtypes but no memory yet: buffer points
 * to a placeholder of size 0 and data is NULL, so supports() must not read data. */
typedef struct apr_node_desc {
    uint32_t struct_size;                /* sizeof(apr_node_desc) as the core was built */
    uint32_t op;                         /* apr_op */
    uint32_t n_src;                      /* sources present, including optional ones left NULL */
    uint32_t reserved0;
    int32_t iparams[APR_MAX_PARAMS];     /* integer parameters, meaning per op */
    float fparams[APR_MAX_PARAMS];       /* float parameters, meaning per op */
    apr_tensor_desc dst;
    apr_tensor_desc src[APR_MAX_SRC];
    const char *name;                    /* for messages; may be NULL */
    /* ---- ABI 4 */
    apr_tensor_desc src_ext[APR_MAX_SRC_EXT]; /* sources 4..7: source i >= APR_MAX_SRC is src_ext[i - 4];
                                               * n_src counts them too (at most APR_MAX_SRC + APR_MAX_SRC_EXT).
                                               * A node of more than 4 sources only goes to a plugin of
                                               * ABI >= 4 whose node_stride covers this field. */
} apr_node_desc;

/* The size of apr_node_desc (and the node_stride) from cores before ABI 4, which have no src_ext: a
 * plugin that still serves them accepts nodes of at least this size and reads src_ext only when
 * struct_size covers it. */
#define APR_NODE_DESC_SIZE_V3 offsetof(apr_node_desc, src_ext)

/* A subgraph handed to one backend: nodes in an order that respects every dependency. The
 * plugin may record, fuse or reorder as long as the results are the same. */
typedef struct apr_subgraph {
    uint32_t struct_size;           /* sizeof(apr_subgraph) as the core was built */
    uint32_t node_stride;           /* bytes between consecutive nodes (the core's sizeof(apr_node_desc)) */
    uint32_t n_nodes;
    uint32_t flags;                 /* APR_SUBGRAPH_* (0 from cores that predate them) */
    const apr_node_desc *nodes;     /* node i is at (const char *)nodes + i * node_stride */
} apr_subgraph;

/* The core ran exactly these nodes (same descs, same buffers) on this backend instance before and
 * compute returned APR_OK: checks of the nodes themselves may be skipped (a plan reruns its nodes per
 * token). ABI 4 plugins get the same from plan_create. */
#define APR_SUBGRAPH_CHECKED 1u

/* (ABI 4) Capabilities a plugin states in apr_plugin.caps. */
#define APR_CAP_HOST_MEMORY 1u     /* the kernels compute from host memory: an import of host memory is as fast
                                    * as the plugin's own buffers (CPU plugins). Without it the core uploads
                                    * weights rather than importing them, whatever buffer_import offers. */

/* The function table a plugin returns. Optional slots may be NULL (the core says what it does
 * then). Slots are only ever appended. */
typedef struct apr_plugin {
    uint32_t struct_size;           /* sizeof(apr_plugin) as the plugin was built */
    uint32_t abi_version;           /* the ABI the plugin implements (<= the version offered) */
    const char *name;               /* backend name, e.g. "cpu-avx2"; static storage */
    const char *description;        /* one line; static storage */
    uint64_t buffer_alignment;      /* bytes; tensor offsets the core plans are multiples of it */

    /* Says how well the plugin fits this machine. Must not execute an instruction before
     * checking the CPU and OS support it. Score 0 with a reason when unusable. */
    apr_status (*probe)(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size);
    /* Creates a backend instance (thread pool, device context). */
    apr_status (*create)(const apr_backend_config *cfg, void **backend, char *err, size_t err_size);
    void (*destroy)(void *backend);
    /* APR_OK when compute() can run this node as given (dtypes, shapes, strides); otherwise
     * APR_ERR_UNSUPPORTED and a reason such as "matmul: weight dtype bf16 not supported". */
    apr_status (*supports)(void *backend, const apr_node_desc *node, char *why, size_t why_size);
    apr_status (*buffer_alloc)(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size);
    /* Optional (NULL = cannot import): wraps caller memory, e.g. mmap'd weights, without copying.
     * The memory must outlive the buffer. */
    apr_status (*buffer_import)(void *backend, void *host_ptr, uint64_t size, apr_buffer *out,
                                char *err, size_t err_size);
    void (*buffer_free)(void *backend, apr_buffer *buf);
    apr_status (*buffer_write)(void *backend, apr_buffer *buf, uint64_t offset, const void *src,
                               uint64_t size, char *err, size_t err_size);
    apr_status (*buffer_read)(void *backend, const apr_buffer *buf, uint64_t offset, void *dst,
                              uint64_t size, char *err, size_t err_size);
    /* Runs every node of the subgraph, synchronously. */
    apr_status (*compute)(void *backend, const apr_subgraph *graph, char *err, size_t err_size);

    /* ---- ABI 3 */
    /* Optional (NULL = weights are always read in their own layout). Copies the weight w (a
     * MATMUL src[0]: data host-readable, ne[2] = ne[3] = 1, contiguous) into a new buffer in a
     * layout of the plugin's own that its MATMUL kernels read faster (rows interleaved, say),
     * and fills out, flags including APR_BUFFER_PACKED. APR_ERR_UNSUPPORTED with a reason when
     * the plugin has no such layout for this dtype or shape; any other failure is an error. The
     * core frees out with buffer_free. Afterwards a MATMUL node of this backend may carry the
     * packed buffer as its src[0]: offset 0, data = out->host_ptr, and the dtype, ne and nb that
     * w had. supports() never sees packed buffers: a packed MATMUL must run wherever the same
     * node with the weight in its own layout would. */
    apr_status (*weight_pack)(void *backend, const apr_tensor_desc *w, apr_buffer *out, char *err, size_t err_size);

    /* ---- ABI 4: backend-resident memory, plugin plans, asynchronous work, devices. Every slot
     * below is optional (NULL = the core does what the comment says). */
    uint32_t caps;                  /* APR_CAP_* */
    uint32_t reserved0;
    /* Describes device `device` (0 .. n_devices - 1 from probe) as probe describes the plugin: score 0
     * with a reason when that device is unusable. NULL: the plugin has one device. */
    apr_status (*probe_device)(const apr_host_info *host, uint32_t device, apr_probe_result *out, char *err,
                               size_t err_size);
    /* Allocates a buffer of req->kind for req->usage. NULL: buffer_alloc (of whatever memory the plugin
     * has). APR_ERR_UNSUPPORTED when the plugin has no memory of that kind (the core then asks for
     * APR_MEM_DEVICE and copies through its own host memory). The contents of a new buffer are zero. */
    apr_status (*buffer_alloc_ex)(void *backend, const apr_buffer_request *req, apr_buffer *out, char *err,
                                  size_t err_size);
    /* A plugin-side plan of one subgraph: plan_create may check, fuse, record or capture the nodes
     * once; plan_compute then runs them as compute(graph) would. The node array, every desc and
     * every buffer it names stay valid and unchanged until plan_free; the bytes in the buffers (inputs,
     * state) change between runs. NULL: the core calls compute every run (with APR_SUBGRAPH_CHECKED
     * after the first success). plan_create may decline with APR_ERR_UNSUPPORTED: compute then. */
    apr_status (*plan_create)(void *backend, const apr_subgraph *graph, void **plan, char *err, size_t err_size);
    apr_status (*plan_compute)(void *backend, void *plan, char *err, size_t err_size);
    void (*plan_free)(void *backend, void *plan);
    /* Asynchronous work. A plugin with synchronize has one queue per instance: compute, plan_compute
     * and the *_async calls may return before their work is done, and run in the order they were made.
     * buffer_write and buffer_read (and the core's reading of host-visible memory, which it does only
     * after synchronize) see every earlier call finished. Host memory handed to an *_async call must
     * stay valid and unchanged until synchronize returns (or an event recorded after the call has
     * completed). NULL synchronize: every call is finished when it returns; the *_async slots are then
     * ignored. */
    apr_status (*synchronize)(void *backend, char *err, size_t err_size);
    apr_status (*buffer_write_async)(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size,
                                     char *err, size_t err_size);
    apr_status (*buffer_read_async)(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size,
                                    char *err, size_t err_size);
    /* Copies size bytes into dst (a buffer of this instance) from src: a buffer of this instance, a
     * buffer of another instance of the same plugin (a peer device; the core first records an event
     * on the source instance and makes this one wait for it), or a host-visible buffer of another
     * backend: the direct paths between two backends, with no host copy in between.
     * APR_ERR_UNSUPPORTED when it cannot read src: the core stages the copy. NULL: the core stages
     * every copy through host memory it allocated when the plan was made. */
    apr_status (*buffer_copy)(void *backend, const apr_buffer *src, uint64_t src_offset, apr_buffer *dst,
                              uint64_t dst_offset, uint64_t size, char *err, size_t err_size);
    /* Events: record marks the point the instance's queue has reached; wait makes the instance's later
     * work wait for an event recorded on any instance of the same plugin; event_synchronize blocks the
     * host until it has passed. All NULL, or all set. */
    apr_status (*event_create)(void *backend, void **event, char *err, size_t err_size);
    apr_status (*event_record)(void *backend, void *event, char *err, size_t err_size);
    apr_status (*event_wait)(void *backend, void *event, char *err, size_t err_size);
    apr_status (*event_synchronize)(void *backend, void *event, char *err, size_t err_size);
    void (*event_free)(void *backend, void *event);
} apr_plugin;

/* The one exported symbol. core_abi_version is the newest ABI the core speaks; the plugin sets
 * *out to its table (static storage, valid until dlclose) or returns APR_ERR_ABI with a message
 * when it cannot serve a core that old. */
typedef apr_status (*apr_plugin_entry_fn)(uint32_t core_abi_version, const apr_plugin **out,
                                          char *err, size_t err_size);

#ifdef __cplusplus
}
#endif
#endif /* APR_ABI_H */
