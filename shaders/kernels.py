#!/usr/bin/env python3
"""The one list of compiled kernel variants.

A kernel family is one shader source; its variants are -D defines on it, chosen by
the family's dimensions (weight type, K/V cache types, fetch path, reduction,
activation form, ...). From the families below, the weight types the runtime
supports (core/pvk_type.c: the entries marked supported) and the KV cache types
of the public API (include/phivk.h: phivk_kv_type), this script writes:

  list    the variants to compile, one a line: NAME SOURCE -DDEFINE... (meson)
  header  pvk_kernels.h: the dimensions as C enums, pvk_kernel_id (one entry per
          variant) and the lookup tables' declarations
  tables  pvk_kernels.c: the lookup tables, PVK_KERNEL_NONE where a combination
          is not built

usage: kernels.py list|header|tables PVK_TYPE_C PHIVK_H [OUT]"""
import re
import sys


class Dim:
    """A dimension a family's variants are chosen by: a C enum pvk_<name>."""

    def __init__(self, name, values, doc):
        self.name, self.values, self.doc = name, values, doc

    def count(self):
        return 'PVK_%s_COUNT' % self.name.upper()

    def c(self, v):
        return 'PVK_%s_%s' % (self.name.upper(), v.upper())


class TypeDim:
    """A dimension indexed by pvk_type (weight, K or V type)."""

    def __init__(self, types):
        self.values = types

    def count(self):
        return 'PVK_TYPE_COUNT'

    def c(self, t):
        return t['enum']


FETCH = Dim('fetch', ['tex', 'buf'], 'weights or cache read through a uniform texel buffer, or a storage buffer')
REDUCE = Dim('reduce', ['subgroup', 'shared'], 'reductions with subgroup operations, or in shared memory only')
ACTS = Dim('acts', ['f32', 'q8'], 'activations in f32 only, or also int8 blocks (q8_store.glsl): '
           'written by norms and activations, read by matvec')
PREC = Dim('prec', ['f32', 'f16'], "the tiled matmul's tiles and products in f32, or fp16")
NORM = Dim('norm', ['rms', 'layer'], 'RMS or layer normalisation')
ACT = Dim('act', ['silu', 'gelu', 'swiglu', 'copy', 'gegelu'], 'activation function (copy: none, for int8 output)')
STORE = Dim('store', ['plain', 'rope'], 'the KV cache write as is, or rotating K (and q) by RoPE')
# The cooperative-matrix forms the tiled matmul is built in: the extension and the
# (M, N, K) of its fp16 x fp16 -> f32 subgroup shape. Only VK_NV_cooperative_matrix's
# (NVIDIA; 16x8x16 since Turing): Debian 12's glslang and spirv-tools predate
# VK_KHR_cooperative_matrix (matmul.comp says why), so the KHR forms (16x16x16 on AMD
# RDNA3 and NVIDIA, 8x8x16 on Intel Arc) wait for a toolchain that has it.
CM_FORMS = [('nv', 16, 8, 16), ('nv', 16, 16, 16)]
CM = Dim('cm', ['%s_%dx%dx%d' % f for f in CM_FORMS],
         "the tiled matmul on cooperative matrices: extension and M x N x K")
LAYOUT = Dim('layout', ['gguf', 'repack'], "a weight matrix in GGUF's block layout, or repacked at load "
             '(dequant.glsl W_REPACK: quants contiguous in 16-byte words, scales in their own stream)')
DIMS = [FETCH, REDUCE, ACTS, PREC, NORM, ACT, STORE, CM, LAYOUT]
# The block types with a repacked layout (dequant.glsl W_REPACK, pvk_tensor_write).
REPACK_TYPES = ('q4_0', 'q8_0')


class Family:
    """One C lookup table pvk_kernels_<name>, indexed by dims in order."""

    def __init__(self, name, source, dims):
        self.name, self.source, self.dims, self.variants = name, source, dims, []

    def add(self, index, name, defines):
        self.variants.append((index, name, defines))


def weight_define(t):
    return '-DW_' + t['name'].upper()


def families(wtypes, kvtypes):
    """Every family with its variants: (index in its table, module name, glslc defines)."""
    fams = []

    def fam(name, source, dims):
        fams.append(Family(name, source, dims))
        return fams[-1]

    sg = lambda red: ['-DUSE_SUBGROUP'] if red == 'subgroup' else []
    sh = lambda red: '' if red == 'subgroup' else '_sh'

    f = fam('norm', 'norm.comp', [NORM, REDUCE, ACTS])
    for form in NORM.values:
        for red in REDUCE.values:
            for acts in ACTS.values:
                if acts == 'q8' and red == 'shared':
                    continue   # int8 output only where the int8 matvec runs: with subgroup ops
                f.add((form, red, acts), form + 'norm' + ('_q8' if acts == 'q8' else sh(red)),
                      (['-DLAYERNORM'] if form == 'layer' else []) + sg(red) + (['-DQ8'] if acts == 'q8' else []))
    f = fam('softmax', 'softmax.comp', [REDUCE])
    for red in REDUCE.values:
        f.add((red,), 'softmax' + sh(red), sg(red))
    f = fam('act', 'act.comp', [ACT, ACTS])
    # copy exists only to write int8; silu has no int8 form (no model feeds it to a matvec)
    for acts, acts_forms in (('f32', ['silu', 'gelu', 'swiglu', 'gegelu']), ('q8', ['gelu', 'swiglu', 'copy', 'gegelu'])):
        for act in acts_forms:
            f.add((act, acts), act + ('_q8' if acts == 'q8' else ''),
                  ['-D' + act.upper()] + (['-DQ8'] if acts == 'q8' else []))
    for op in ('add', 'mul'):   # one kernel each: the op layer names its id
        fam(op, 'eltwise.comp', []).add((), op, ['-DOP_' + op.upper()])

    W = TypeDim(wtypes)
    tex = lambda fetch, define: [define] if fetch == 'tex' else []
    mv = fam('matvec', 'matvec.comp', [W, LAYOUT, FETCH, REDUCE, ACTS])
    mm = fam('matmul', 'matmul.comp', [W, LAYOUT, FETCH, PREC])
    # cooperative matrices read GGUF's layout: a repacked type takes the other tiles
    mmc = fam('matmul_cm', 'matmul.comp', [W, FETCH, CM])
    # the integer-dot matvec whose prologue makes its int8 input: the activation (down
    # projections), or a copy (the out projection reading attention's f32 output)
    mva = fam('matvec_act', 'matvec.comp', [W, LAYOUT, FETCH, ACT])
    # ... or the norm before the projection (the projections that read a norm's output)
    mvn = fam('matvec_norm', 'matvec.comp', [W, LAYOUT, FETCH, NORM])
    # several columns, lanes owning rows and x read through the sampler (CPU devices)
    mvl = fam('matvec_lanes', 'matvec.comp', [W, LAYOUT, FETCH])
    for t in wtypes:
        for lay in LAYOUT.values:
            if lay == 'repack' and t['name'] not in REPACK_TYPES:
                continue
            tn = t['name'] + ('r' if lay == 'repack' else '')
            for fetch in FETCH.values:
                wdef = [weight_define(t)] + tex(fetch, '-DW_TEXEL') + (['-DW_REPACK'] if lay == 'repack' else [])
                base = 'matvec_%s_%s' % (tn, fetch)
                for red in REDUCE.values:
                    mv.add((t, lay, fetch, red, 'f32'), base + sh(red), wdef + sg(red))
                mvl.add((t, lay, fetch), base + '_lanes', wdef + ['-DLANE_ROWS'])
                if t['block_elems'] > 1:   # integer dot products on the quants of block types
                    mv.add((t, lay, fetch, 'subgroup', 'q8'), base + '_q8', wdef + ['-DUSE_SUBGROUP', '-DINT_DOT'])
                    for act in ('gelu', 'swiglu', 'copy'):
                        mva.add((t, lay, fetch, act), base + '_' + act,
                                wdef + ['-DUSE_SUBGROUP', '-DINT_DOT', '-DPRO_ACT', '-D' + act.upper()])
                    for form in NORM.values:
                        mvn.add((t, lay, fetch, form), base + '_' + form + 'norm',
                                wdef + ['-DUSE_SUBGROUP', '-DINT_DOT', '-DPRO_NORM'] +
                                (['-DLAYERNORM'] if form == 'layer' else []))
                for prec in PREC.values:
                    mm.add((t, lay, fetch, prec), 'matmul_%s_%s%s' % (tn, fetch, '_f16' if prec == 'f16' else ''),
                           wdef + (['-DF16'] if prec == 'f16' else []))
                if lay == 'gguf':
                    for form, (api, m, n, k) in zip(CM.values, CM_FORMS):
                        mmc.add((t, fetch, form), 'matmul_%s_%s_cm_%s' % (t['name'], fetch, form),
                                wdef + ['-DF16', '-DCOOPMAT', '-DCM_M=%d' % m, '-DCM_N=%d' % n, '-DCM_K=%d' % k])
    f = fam('get_rows', 'get_rows.comp', [W, FETCH])
    for t in wtypes:
        for fetch in FETCH.values:
            f.add((t, fetch), 'get_rows_%s_%s' % (t['name'], fetch), [weight_define(t)] + tex(fetch, '-DW_TEXEL'))
    f = fam('add_rows', 'get_rows.comp', [W, FETCH])   # learned positions (GPT-Neo)
    for t in wtypes:
        for fetch in FETCH.values:
            f.add((t, fetch), 'add_rows_%s_%s' % (t['name'], fetch),
                  [weight_define(t), '-DADD_ROWS'] + tex(fetch, '-DW_TEXEL'))

    fam('attn_reduce', 'attn_reduce.comp', []).add((), 'attn_reduce', [])
    f = fam('read_bw', 'read_bw.comp', [FETCH])   # pvk_bench.c's read roofline
    for fetch in FETCH.values:
        f.add((fetch,), 'read_bw_' + fetch, tex(fetch, '-DREAD_TEXEL'))
    K, V = TypeDim(kvtypes), TypeDim(kvtypes)
    st = fam('kv_store', 'kv_store.comp', [STORE, K, V])
    at = fam('attn', 'attn.comp', [K, V, FETCH, REDUCE])
    for kt in kvtypes:
        for vt in kvtypes:
            kvdef = ['-DK_' + kt['name'].upper(), '-DV_' + vt['name'].upper()]
            pair = kt['name'] + '_' + vt['name']
            for store in STORE.values:
                st.add((store, kt, vt), 'kv_store_' + ('rope_' if store == 'rope' else '') + pair,
                       kvdef + (['-DROPE'] if store == 'rope' else []))
            for fetch in FETCH.values:
                for red in REDUCE.values:
                    at.add((kt, vt, fetch, red), 'attn_%s_%s%s' % (pair, fetch, '' if red == 'subgroup' else '_nosg'),
                           kvdef + sg(red) + tex(fetch, '-DKV_TEXEL'))
    return fams


def read_types(type_c, phivk_h):
    """The supported weight types (pvk_type.c's table) and the KV cache types
    (phivk_kv_type, in its order), each {'enum', 'name', 'block_elems'}."""
    types = {}
    for enum, name, block, ok in re.findall(r'\[(PVK_\w+)\]\s*=\s*\{"(\w+)",\s*(\d+),\s*\d+,\s*(true|false)\}',
                                            open(type_c).read()):
        types[enum] = {'enum': enum, 'name': name.lower(), 'block_elems': int(block), 'supported': ok == 'true'}
    wtypes = [t for t in types.values() if t['supported']]
    kvtypes = []
    for suffix, value in re.findall(r'PHIVK_KV_(\w+)\s*=\s*(\d+)', open(phivk_h).read()):
        t = types.get('PVK_' + suffix)
        if not t or not t['supported'] or int(value) != len(kvtypes):
            sys.exit('kernels.py: PHIVK_KV_%s has no supported PVK_%s, or the enum is not numbered 0, 1, ...'
                     % (suffix, suffix))
        kvtypes.append(t)
    if not wtypes or not kvtypes:
        sys.exit('kernels.py: found no weight types in %s or no KV types in %s' % (type_c, phivk_h))
    return wtypes, kvtypes


def enum_name(variant):
    return 'PVK_KERNEL_' + variant.upper()


def table_decl(f):
    return 'const pvk_kernel_id pvk_kernels_%s%s' % (f.name, ''.join('[%s]' % d.count() for d in f.dims))


def header(fams, kvtypes):
    out = ['/* Generated by shaders/kernels.py: do not edit. The compiled kernel variants',
           ' * and the tables the op layer picks them from. */',
           '#ifndef PVK_KERNELS_H', '#define PVK_KERNELS_H', '', '#include "pvk_type.h"', '']
    for d in DIMS:
        out.append('/* %s */' % d.doc)
        out.append('typedef enum pvk_%s { %s, %s } pvk_%s;' % (d.name, ', '.join(d.c(v) for v in d.values),
                                                              d.count(), d.name))
    out += ['', '/* One id per compiled SPIR-V module; PVK_KERNEL_NONE: a combination not built. */',
            'typedef enum pvk_kernel_id {', '    PVK_KERNEL_NONE,']
    for f in fams:
        out += ['    %s,' % enum_name(name) for _, name, _ in f.variants]
    out += ['    PVK_KERNEL_COUNT', '} pvk_kernel_id;', '']
    out.append('/* The variant of each family at its dimensions, pvk_type-indexed for types. */')
    for f in fams:
        if f.dims:
            out.append('extern %s;' % table_decl(f))
    out += ['', '/* Each pvk_cm form: VK_NV_cooperative_matrix (else KHR) and its M x N x K. */',
            'typedef struct pvk_cm_form { int nv; unsigned m, n, k; } pvk_cm_form;',
            'extern const pvk_cm_form pvk_cm_forms[%s];' % CM.count()]
    out += ['', '/* The KV cache types the kernels read, in the order of phivk_kv_type. */',
            '#define PVK_KV_TYPE_COUNT %d' % len(kvtypes), 'extern const pvk_type pvk_kv_types[PVK_KV_TYPE_COUNT];',
            '', '#endif']
    return out


def tables(fams, kvtypes):
    out = ['/* Generated by shaders/kernels.py: do not edit. */', '#include "pvk_kernels.h"', '']
    for f in fams:
        if not f.dims:
            continue
        out.append('%s = {' % table_decl(f))
        for index, name, _ in f.variants:
            out.append('    %s = %s,' % (''.join('[%s]' % d.c(v) for d, v in zip(f.dims, index)), enum_name(name)))
        out += ['};', '']
    out.append('const pvk_cm_form pvk_cm_forms[%s] = {%s};' % (
        CM.count(), ', '.join('{%d, %d, %d, %d}' % (api == 'nv', m, n, k) for api, m, n, k in CM_FORMS)))
    out.append('const pvk_type pvk_kv_types[PVK_KV_TYPE_COUNT] = {%s};' % ', '.join(t['enum'] for t in kvtypes))
    return out


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ('list', 'header', 'tables'):
        sys.exit(__doc__)
    wtypes, kvtypes = read_types(sys.argv[2], sys.argv[3])
    fams = families(wtypes, kvtypes)
    names = [name for f in fams for _, name, _ in f.variants]
    if len(set(names)) != len(names):
        sys.exit('kernels.py: two variants share a name')
    if sys.argv[1] == 'list':
        lines = [' '.join([name, f.source] + defines) for f in fams for _, name, defines in f.variants]
    else:
        lines = header(fams, kvtypes) if sys.argv[1] == 'header' else tables(fams, kvtypes)
    text = '\n'.join(lines) + '\n'
    if len(sys.argv) == 5:
        open(sys.argv[4], 'w').write(text)
    else:
        sys.stdout.write(text)


if __name__ == '__main__':
    main()
