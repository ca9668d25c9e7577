#version 450
// set_rows.comp — SET_ROWS: rows (f32 or the table's dtype) into rows ids[n] of an f32, f16 or bf16
// table, in place. One workgroup per source row n; of repeated ids only the last row writes, so
// every table row comes whole from one source row. ids_check.comp has run first, and a bad id
// leaves every row as it was.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rows.glsl"
layout(std430, binding = 0) buffer TF { float tf[]; };
layout(std430, binding = 0) buffer TH { uint16_t th[]; };
layout(std430, binding = 0) buffer TI { uint ti[]; };
layout(std430, binding = 2) readonly buffer RF { float rf[]; };
layout(std430, binding = 2) readonly buffer RH { uint16_t rh[]; };
layout(std430, binding = 2) readonly buffer RI { uint ri[]; };
layout(std430, binding = 3) readonly buffer Ids { int ids[]; };
shared uint later;

void main() {
    uint n = row_id(), l = gl_LocalInvocationID.x;
    if (n >= count() || status[0] != 0u) return;
    uint N = t_ne(T_SRC2, 0u);
    int id = ids[t_at(T_SRC2, n, 0u, 0u, 0u) >> 2];
    if (l == 0u) later = 0u;
    barrier();
    for (uint j = n + 1u + l; j < N; j += 256u)
        if (ids[t_at(T_SRC2, j, 0u, 0u, 0u) >> 2] == id) later = 1u;
    barrier();
    if (later != 0u) return;
    uint D = t_ne(T_SRC0, 0u), rd = t_dtype(T_SRC1), td = t_dtype(T_DST);
    for (uint e = l; e < D; e += 256u) {
        uint from = t_at(T_SRC1, e, n, 0u, 0u), to = t_at(T_DST, e, uint(id), 0u, 0u);
        if (rd == td && td == DT_F32) ti[to >> 2] = ri[from >> 2];
        else if (rd == td) th[to >> 1] = rh[from >> 1];
        else {
            float v = uintBitsToFloat(ri[from >> 2]);
            STORE_F(tf, th, td, to, v);
        }
    }
}
