#version 450
// adamw.comp — ADAMW: one AdamW step written in place into w (src0 = dst), m (src2) and v (src3).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 1) buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer G { float g[]; };
layout(std430, binding = 3) buffer Mo { float mo[]; };
layout(std430, binding = 4) buffer Vo { float vo[]; };
layout(std430, binding = 5) readonly buffer H { float hp[]; };

float h(uint k) { return hp[t_at(T_SRC4, k, 0u, 0u, 0u) >> 2]; }

void main() {
    uint k = linear_id();
    if (k >= count()) return;
    uvec4 i = t_index(T_SRC0, k);
    uint aw = t_at(T_SRC0, i.x, i.y, i.z, i.w) >> 2, am = t_at(T_SRC2, i.x, i.y, i.z, i.w) >> 2;
    uint av = t_at(T_SRC3, i.x, i.y, i.z, i.w) >> 2;
    float b1 = h(1u), b2 = h(2u);
    precise float gi = g[t_at(T_SRC1, i.x, i.y, i.z, i.w) >> 2] * h(7u);
    precise float mi = b1 * mo[am] + (1.0 - b1) * gi;
    precise float vi = b2 * vo[av] + (1.0 - b2) * gi * gi;
    precise float wi = w[aw];
    precise float step = h(4u) * wi + (mi * h(5u)) / (sqrt(vi * h(6u)) + h(3u));
    mo[am] = mi;
    vo[av] = vi;
    w[aw] = wi - h(0u) * step;
}
