#version 450
// get_rows.comp — GET_ROWS from an f32, f16, bf16 or block-format table into f32 rows; ids_check.comp has checked the ids.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
layout(local_size_x = 256) in;
layout(std430, binding = 0) writeonly buffer D { float d[]; };
layout(std430, binding = 1) readonly buffer TF { float tf[]; };
#include "dequant.glsl"
layout(std430, binding = 2) readonly buffer Ids { int ids[]; };

void main() {
    uint k = linear_id();
    if (k >= count()) return;
    uvec4 i = t_index(T_DST, k);
    if (status[0] != 0u) return;  // ids_check found a bad id
    int id = ids[t_at(T_SRC1, i.y, 0u, 0u, 0u) >> 2];
    uint dt = t_dtype(T_SRC0);
    d[t_at(T_DST, i.x, i.y, 0u, 0u) >> 2] = dt >= 4u ? dq_row(dt, t_at(T_SRC0, 0u, uint(id), 0u, 0u), i.x)
                                                     : LOAD_F(tf, qb, dt, t_at(T_SRC0, i.x, uint(id), 0u, 0u));
}
