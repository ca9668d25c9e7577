// rows.glsl — kernels that give one workgroup of 256 threads to each row along dim 0 of dst.
layout(local_size_x = 256) in;
shared float red[256];

// The row this workgroup works on (groups may be laid out in 2-D past 65535).
uint row_id() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }

// Sum (or max, with is_max) of v over the workgroup; every thread gets the result.
float wg_reduce(float v, bool is_max) {
    uint l = gl_LocalInvocationID.x;
    red[l] = v;
    barrier();
    for (uint s = 128u; s > 0u; s >>= 1) {
        if (l < s) red[l] = is_max ? max(red[l], red[l + s]) : red[l] + red[l + s];
        barrier();
    }
    float r = red[0];
    barrier();
    return r;
}
