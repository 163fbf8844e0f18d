#version 450
// Embedding lookup: out[i] = dequant(table row ids[i]) * scale (Phi-3-small's muP
// embedding multiplier; 1 elsewhere), one workgroup per output row
// (rows beyond the x limit fold into y). With -DADD_ROWS (learned positions):
// out[i] += dequant(table row pos0 + i), ids unread; with spec constant 1 POS_BUF
// (a decode recorded once and replayed) pos0 is ids[0], written per token. The table type is the dequant.glsl define
// (-DW_F32, -DW_F16, -DW_BF16 or a block type, whose rows are whole blocks).
// Buffers: 0 table rows [row0, row0 + nrows) of the whole table, 1 ids (u32 [n]),
// 2 out (f32 [n][cols]).
// A table larger than one binding is looked up in several dispatches, one per chunk
// of rows; each writes only the outputs whose id falls in its chunk. An id outside
// the table gives a zero row (written by the chunk-0 dispatch), never a stray read.
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const bool POS_BUF = false;

#define W_BINDING 0
#include "dequant.glsl"

layout(std430, binding = 1) readonly buffer Ids { uint ids[]; };
#ifdef ADD_ROWS
layout(std430, binding = 2) buffer O { float o[]; };
#define PUT(j, v) o[j] += (v)
#else
layout(std430, binding = 2) writeonly buffer O { float o[]; };
#define PUT(j, v) o[j] = (v) * p.scale
#endif

layout(push_constant) uniform P {
    uint n, cols;
    uint row0, nrows;     // the bound chunk of the table
    uint table_rows;
    uint pos0;            // ADD_ROWS: the row of output 0
    float scale;          // get_rows: multiplies every value
} p;

void main() {
    uint i = gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x;
    if (i >= p.n) return;   // uniform per workgroup
#ifdef ADD_ROWS
    uint id = (POS_BUF ? ids[0] : p.pos0) + i, l = gl_LocalInvocationID.x, ob = i * p.cols;
    if (id >= p.table_rows) return;   // the op refuses such rows: nothing to add
#else
    uint id = ids[i], l = gl_LocalInvocationID.x, ob = i * p.cols;
#endif
    if (id >= p.table_rows) {
        if (p.row0 == 0u)
            for (uint j = l; j < p.cols; j += WG) o[ob + j] = 0.0;
        return;
    }
    if (id < p.row0 || id - p.row0 >= p.nrows) return;
    uint e0 = (id - p.row0) * p.cols;
    if (p.cols % W_VEC == 0u) {
        for (uint j = l * W_VEC; j < p.cols; j += WG * W_VEC) {
            vec4 lo, hi;
            w_load8(e0 + j, lo, hi);
            for (uint k = 0u; k < 4u; k++) {
                PUT(ob + j + k, lo[k]);
                PUT(ob + j + 4u + k, hi[k]);
            }
        }
    }
#ifdef W_SCALAR
    else {
        for (uint j = l; j < p.cols; j += WG) PUT(ob + j, w_load1(e0 + j));
    }
#endif
}
