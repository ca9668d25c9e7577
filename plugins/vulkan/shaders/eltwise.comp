#version 450
// eltwise.comp — ADD, MUL (b repeats over a), SCALE, SILU, GELU, SWIGLU over f32, any strides.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer A { float a[]; };
layout(std430, binding = 2) readonly buffer B { float b[]; };

#define M_ADD 0u
#define M_MUL 1u
#define M_SCALE 2u
#define M_SILU 3u
#define M_GELU 4u
#define M_SWIGLU 5u

float silu(float x) { return x / (1.0 + exp(-x)); }

void main() {
    uint k = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (k >= count()) return;
    uvec4 i = t_index(T_DST, k);
    float x = a[t_at(T_SRC0, i.x, i.y, i.z, i.w) >> 2];
    uint m = mode();
    float y;
    if (m == M_ADD || m == M_MUL || m == M_SWIGLU) {
        uvec4 j = m == M_SWIGLU ? i : uvec4(i.x % t_ne(T_SRC1, 0u), i.y % t_ne(T_SRC1, 1u), i.z % t_ne(T_SRC1, 2u),
                                            i.w % t_ne(T_SRC1, 3u));
        float v = b[t_at(T_SRC1, j.x, j.y, j.z, j.w) >> 2];
        y = m == M_ADD ? x + v : m == M_MUL ? x * v : silu(x) * v;
    } else if (m == M_SCALE) {
        y = x * fpar(0u);
    } else if (m == M_SILU) {
        y = silu(x);
    } else {
        float t = clamp(0.79788456080286535588 * (x + 0.044715 * x * x * x), -15.0, 15.0);
        y = 0.5 * x * (1.0 + tanh(t));
    }
    d[t_at(T_DST, i.x, i.y, i.z, i.w) >> 2] = y;
}
