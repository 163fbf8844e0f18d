// Workgroup-wide reductions for kernels whose workgroup cooperates on one value.
// The including shader declares `layout(local_size_x_id = 0) in;`,
// `layout(constant_id = 0) const uint WG` and a specialization constant SG_MIN
// (the device's smallest subgroup size). With -DUSE_SUBGROUP the reduction is
// subgroupAdd/Max, plus one shared-memory step when the workgroup may hold several
// subgroups; when WG <= SG_MIN that step (and its barriers) is folded away at
// pipeline creation, which matters on lavapipe: a shader containing barrier() runs
// every workgroup as coroutines (~2-4 us each). Without USE_SUBGROUP, a
// shared-memory tree over WG (a power of two) for devices without subgroup
// arithmetic. Every invocation gets the result, and every invocation of the
// workgroup must call (barriers inside).
#ifdef USE_SUBGROUP
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif

shared float red_sh[WG];

#ifdef USE_SUBGROUP
#define RED_DEFINE(NAME, SGOP, OP)                                              \
    float NAME(float v) {                                                       \
        v = SGOP(v);                                                            \
        if (WG <= SG_MIN || gl_NumSubgroups == 1) return v;                     \
        barrier(); /* readers of a previous call are done with red_sh */        \
        if (subgroupElect()) red_sh[gl_SubgroupID] = v;                         \
        barrier();                                                              \
        v = red_sh[0];                                                          \
        for (uint i = 1; i < gl_NumSubgroups; i++) v = OP(v, red_sh[i]);        \
        return v;                                                               \
    }
#else
#define RED_DEFINE(NAME, SGOP, OP)                                              \
    float NAME(float v) {                                                       \
        uint l = gl_LocalInvocationID.x;                                        \
        barrier();                                                              \
        red_sh[l] = v;                                                          \
        barrier();                                                              \
        for (uint s = WG / 2; s > 0; s >>= 1) {                                 \
            if (l < s) red_sh[l] = OP(red_sh[l], red_sh[l + s]);                \
            barrier();                                                          \
        }                                                                       \
        return red_sh[0];                                                       \
    }
#endif

#define RED_ADD(a, b) ((a) + (b))
RED_DEFINE(wg_sum, subgroupAdd, RED_ADD)
RED_DEFINE(wg_max, subgroupMax, max)
