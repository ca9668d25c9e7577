// common.glsl — what every apr kernel shares: its node's param block (binding 6, VK_PARAM_WORDS
// uint32 per node, laid out as vk_internal.h says) and 16-bit float conversions.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_shader_explicit_arithmetic_types_int16 : require

layout(std430, binding = 6) readonly buffer Params { uint P[]; };
layout(push_constant) uniform Push { uint base; } pc;

#define T_DST 0u
#define T_SRC0 1u
#define T_SRC1 2u
#define T_SRC2 3u
#define T_SRC3 4u
#define T_SRC4 5u
#define P_IPARAMS 54u
#define P_FPARAMS 62u
#define P_MODE 70u   // kernel variant chosen by the host (vk_kernels.c)
#define P_DTYPE 71u  // per tensor dtype codes packed 4 bits each, tensor t at bits 4t
#define P_COUNT 72u  // elements (or rows) the launch covers
#define P_IDS 73u    // get_rows / set_rows: the tensor holding the ids (checked by ids_check.comp)
#define P_NODE 74u   // the node's index in its subgraph + 1, reported in the status buffer
#define P_EXTRA 80u  // words a kernel's host side adds after the block (rope's frequencies)

uint t_off(uint t) { return P[pc.base + 9u * t]; }
uint t_ne(uint t, uint d) { return P[pc.base + 9u * t + 1u + d]; }
uint t_nb(uint t, uint d) { return P[pc.base + 9u * t + 5u + d]; }
int ipar(uint i) { return int(P[pc.base + P_IPARAMS + i]); }
float fpar(uint i) { return uintBitsToFloat(P[pc.base + P_FPARAMS + i]); }
uint mode() { return P[pc.base + P_MODE]; }
uint t_dtype(uint t) { return (P[pc.base + P_DTYPE] >> (4u * t)) & 15u; }
uint count() { return P[pc.base + P_COUNT]; }

// Byte address of element (i0, i1, i2, i3) of tensor t.
uint t_at(uint t, uint i0, uint i1, uint i2, uint i3) {
    return t_off(t) + i0 * t_nb(t, 0u) + i1 * t_nb(t, 1u) + i2 * t_nb(t, 2u) + i3 * t_nb(t, 3u);
}

// Splits linear index k over t's shape, dim 0 fastest.
uvec4 t_index(uint t, uint k) {
    uint i0 = k % t_ne(t, 0u); k /= t_ne(t, 0u);
    uint i1 = k % t_ne(t, 1u); k /= t_ne(t, 1u);
    uint i2 = k % t_ne(t, 2u);
    return uvec4(i0, i1, i2, k / t_ne(t, 2u));
}

// dtype codes (vk_kernels.c): 0 f32, 1 f16, 2 bf16, 3 i32.
#define DT_F32 0u
#define DT_F16 1u
#define DT_BF16 2u
#define DT_I32 3u

// Exact, subnormals included (unpackHalf2x16 may flush them).
float f16_bits_to_f32(uint h) {
    uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 0x3ffu;
    if (e == 31u) return uintBitsToFloat(sign | 0x7f800000u | (m << 13));
    if (e == 0u) {
        if (m == 0u) return uintBitsToFloat(sign);
        int lead = findMSB(m);                       // m = 2^lead * 1.f
        return uintBitsToFloat(sign | (uint(lead + 103) << 23) | ((m << (23 - lead)) & 0x7fffffu));
    }
    return uintBitsToFloat(sign | ((e + 112u) << 23) | (m << 13));
}
float bf16_bits_to_f32(uint h) { return uintBitsToFloat(h << 16); }

// Round to nearest even, as apr's CPU conversions (NaN stays NaN, quiet; overflow to inf).
uint f32_to_f16_bits(float f) {
    uint x = floatBitsToUint(f);
    uint sign = (x >> 16) & 0x8000u;
    uint a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u | ((a >> 13) & 0x3ffu);
    if (a >= 0x477ff000u) return sign | 0x7c00u;                 // rounds to >= 65520: inf
    if (a < 0x38800000u) {                                         // below the smallest normal f16
        if (a < 0x33000000u) return sign;                          // under half the smallest subnormal
        uint m = (a & 0x7fffffu) | 0x800000u;
        uint shift = 126u - (a >> 23) ;                            // 14 + (113 - e)
        uint q = m >> (shift);
        uint rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (q & 1u) != 0u)) q++;
        return sign | q;
    }
    uint r = a - 0x38000000u;                                      // rebias 127 -> 15
    uint q = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u) != 0u)) q++;
    return sign | q;
}

uint f32_to_bf16_bits(float f) {
    uint x = floatBitsToUint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;  // quiet NaN
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

// A float element of dtype dt at byte address `at`, through a binding's 32-bit (f) and 16-bit (h)
// views: f32, f16 or bf16.
#define LOAD_F(f, h, dt, at) \
    ((dt) == DT_F32 ? (f)[(at) >> 2] : (dt) == DT_F16 ? f16_bits_to_f32(uint((h)[(at) >> 1])) : bf16_bits_to_f32(uint((h)[(at) >> 1])))
// Stores v as dtype dt (rounded to nearest even) through a binding's 32-bit and 16-bit views.
#define STORE_F(f, h, dt, at, v)                                               \
    if ((dt) == DT_F32) (f)[(at) >> 2] = (v);                                  \
    else if ((dt) == DT_F16) (h)[(at) >> 1] = uint16_t(f32_to_f16_bits(v));    \
    else (h)[(at) >> 1] = uint16_t(f32_to_bf16_bits(v))

// 2-D launches past 65535 groups: the linear invocation index for local size 256.
uint linear_id() { return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u; }

// Binding 7: the status of one compute; word 0 is the first failing node + 1 (0: none).
layout(std430, binding = 7) buffer Status { uint status[]; };
