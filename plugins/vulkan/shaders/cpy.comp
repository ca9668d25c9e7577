#version 450
// cpy.comp — CPY between f32, f16 and bf16 (round to nearest even), and i32 to i32, any strides.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer DF { float df[]; };
layout(std430, binding = 0) writeonly buffer DH { uint16_t dh[]; };
layout(std430, binding = 0) writeonly buffer DI { uint di[]; };
layout(std430, binding = 1) readonly buffer SF { float sf[]; };
layout(std430, binding = 1) readonly buffer SH { uint16_t sh[]; };
layout(std430, binding = 1) readonly buffer SI { uint si[]; };

void main() {
    uint k = linear_id();
    if (k >= count()) return;
    uvec4 i = t_index(T_DST, k);
    uint from = t_at(T_SRC0, i.x, i.y, i.z, i.w), to = t_at(T_DST, i.x, i.y, i.z, i.w);
    uint sd = t_dtype(T_SRC0), dd = t_dtype(T_DST);
    if (sd == dd && (sd == DT_F32 || sd == DT_I32)) { di[to >> 2] = si[from >> 2]; return; }
    if (sd == dd) { dh[to >> 1] = sh[from >> 1]; return; }  // 16-bit to the same: the bits as they are
    float v = sd == DT_F32 ? uintBitsToFloat(si[from >> 2]) : LOAD_F(sf, sh, sd, from);
    STORE_F(df, dh, dd, to, v);
}
