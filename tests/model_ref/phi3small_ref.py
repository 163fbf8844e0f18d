#!/usr/bin/env python3
"""Phi-3-small in float64, written from docs/spec/phi3-small.md alone (pure Python, no
numpy, nothing of phivk's C code), and phivk's logits compared with it.

usage: phi3small_ref.py FIXTURE RANK_FILE

FIXTURE (tests/model_gpu/phi3small_fixture.c) writes a synthetic Phi-3-small Hugging
Face folder into a temporary directory, converts it with phivk and writes the logits
of every position from the GPU (gpu.f32) and from phivk's CPU reference (ref.f32).
This script reads the folder as the model's remote code would (config.json and the
safetensors file in the checkpoint's own layouts: QKV grouped per KV head, up_proj
rows interleaved) and runs the forward pass of the spec in float64:

  x = E[t] * mup_embedding_multiplier                                  (spec 4)
  per layer: LayerNorm with bias (5), fused QKV split per KV group (6), NEOX RoPE
  over the whole head (7), attention with scale mup_attn_multiplier / d (9), dense
  iff (l + 1) % n == 0 (10), else the block-sparse predicate (11), GQA (12), dense
  projection, LayerNorm, GEGELU of the interleaved halves with its limit (14)
  logits = LayerNorm_final(x) . E^T / mup_width_multiplier             (15)

Bounds (stated with the comparisons below):
  - GPU: K and V are cached in f16 (relative rounding 2^-11), everything else fp32;
    through the layers that stays within 3e-3 of the logits' range (the bound the
    GPU-vs-CPU-reference tests use, tests/model_gpu/test_forward.c logit_bound).
  - CPU reference: fp32 values with double sums, an fp32 cache; each logit sees a few
    dozen fp32 roundings (2^-24 each) amplified by the LayerNorms: 1e-4 of the range.
The block-sparse mask is checked where it matters: the same weights run with every
layer dense give logits that differ (beyond 10x the GPU bound) at the positions whose
queries lose keys, and there the GPU agrees with the sparse model, not the dense one.
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile


def read_safetensors(path):
    """{name: (shape, flat float tuple)} of an F32 safetensors file."""
    with open(path, 'rb') as f:
        data = f.read()
    n = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == '__metadata__':
            continue
        if t['dtype'] != 'F32':
            sys.exit('phi3small_ref: %s is %s, this reference reads F32' % (name, t['dtype']))
        a, b = t['data_offsets']
        out[name] = (t['shape'], struct.unpack_from('<%df' % ((b - a) // 4), data, 8 + n + a))
    return out


def rows_of(t):
    shape, v = t
    cols = shape[1]
    return [v[r * cols:(r + 1) * cols] for r in range(shape[0])]


def linear(w_rows, b, x):
    return [sum(wi * xi for wi, xi in zip(row, x)) + bi for row, bi in zip(w_rows, b)]


def layer_norm(x, w, b, eps):
    n = len(x)
    mean = math.fsum(x) / n
    var = math.fsum((v - mean) ** 2 for v in x) / n      # population variance (spec 5)
    inv = 1.0 / math.sqrt(var + eps)
    return [(v - mean) * inv * wi + bi for v, wi, bi in zip(x, w, b)]


def rope(x, pos, base):
    """NEOX rotate-half over the whole head (spec 7)."""
    d = len(x)
    half = d // 2
    out = [0.0] * d
    for i in range(half):
        ang = pos * (1.0 / base ** (2.0 * i / d))
        c, s = math.cos(ang), math.sin(ang)
        out[i] = x[i] * c - x[i + half] * s
        out[i + half] = x[i + half] * c + x[i] * s
    return out


def sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0


class Model:
    def __init__(self, folder):
        cfg = json.load(open(os.path.join(folder, 'config.json')))
        w = read_safetensors(os.path.join(folder, 'model.safetensors'))
        self.cfg = cfg
        self.E = cfg['hidden_size']
        self.nq = cfg['num_attention_heads']
        self.nkv = cfg['num_key_value_heads']
        self.d = self.E // self.nq
        self.m = self.nq // self.nkv
        self.L = cfg['num_hidden_layers']
        self.eps = cfg['layer_norm_epsilon']
        self.base = cfg['rope_embedding_base']
        self.pscale = cfg.get('rope_position_scale', 1.0)
        self.scale = (cfg['mup_attn_multiplier'] / self.d if cfg['mup_use_scaling'] else 1.0 / math.sqrt(self.d))
        self.emb_mult = cfg['mup_embedding_multiplier']
        self.width = cfg['mup_width_multiplier']
        self.limit = cfg.get('gegelu_limit')
        self.n_dense = cfg.get('dense_attention_every_n_layers')
        self.B = cfg['blocksparse_block_size']
        self.LB = cfg['blocksparse_num_local_blocks']
        self.VS = cfg['blocksparse_vert_stride']
        homo = cfg.get('blocksparse_homo_head_pattern', False)
        self.step = 0 if homo else max(1, self.VS // self.nq)   # head sliding step (spec 11)
        assert cfg.get('rope_scaling') is None, 'this reference covers the 8K model (no LongRoPE)'
        shape, emb = w['model.embed_tokens.weight']
        self.emb_shape, self.emb = shape, emb
        self.layers = []
        for l in range(self.L):
            p = 'model.layers.%d.' % l
            g = lambda k: w[p + k][1]
            self.layers.append({
                'ln1': (g('input_layernorm.weight'), g('input_layernorm.bias')),
                'qkv': (rows_of(w[p + 'self_attn.query_key_value.weight']), g('self_attn.query_key_value.bias')),
                'o': (rows_of(w[p + 'self_attn.dense.weight']), g('self_attn.dense.bias')),
                'ln2': (g('post_attention_layernorm.weight'), g('post_attention_layernorm.bias')),
                'up': (rows_of(w[p + 'mlp.up_proj.weight']), g('mlp.up_proj.bias')),
                'down': (rows_of(w[p + 'mlp.down_proj.weight']), g('mlp.down_proj.bias')),
            })
        self.lnf = (w['model.final_layernorm.weight'][1], w['model.final_layernorm.bias'][1])

    def emb_row(self, t):
        return self.emb[t * self.E:(t + 1) * self.E]

    def dense(self, l, all_dense):
        return all_dense or (bool(self.n_dense) and (l + 1) % self.n_dense == 0)

    def allowed(self, l, h, i, j, all_dense):
        """Spec 10-11: may query head h at position i see the key at j?"""
        if j > i:
            return False
        if self.dense(l, all_dense):
            return True
        qb, kb = i // self.B, j // self.B
        return qb - kb < self.LB or (kb + h * self.step + 1) % self.VS == 0

    def forward(self, ids, vocab, all_dense=False):
        """Logits over the ids in vocab at every position."""
        d, m = self.d, self.m
        K = [[] for _ in range(self.L)]
        V = [[] for _ in range(self.L)]
        finals = []
        for pos, t in enumerate(ids):
            x = [v * self.emb_mult for v in self.emb_row(t)]
            for l, ly in enumerate(self.layers):
                h = layer_norm(x, *ly['ln1'], self.eps)
                qkv = linear(ly['qkv'][0], ly['qkv'][1], h)
                q = [None] * self.nq
                ks, vs = [], []
                for g in range(self.nkv):          # spec 6: [n_kv, m + 2, d]
                    at = g * (m + 2) * d
                    for j in range(m):
                        q[g * m + j] = rope(qkv[at + j * d:at + (j + 1) * d], pos * self.pscale, self.base)
                    ks.append(rope(qkv[at + m * d:at + (m + 1) * d], pos * self.pscale, self.base))
                    vs.append(qkv[at + (m + 1) * d:at + (m + 2) * d])
                K[l].append(ks)
                V[l].append(vs)
                att = []
                for hh in range(self.nq):
                    g = hh // m
                    keys = [j for j in range(pos + 1) if self.allowed(l, hh, pos, j, all_dense)]
                    sc = [self.scale * sum(a * b for a, b in zip(q[hh], K[l][j][g])) for j in keys]
                    mx = max(sc)
                    e = [math.exp(s - mx) for s in sc]
                    tot = math.fsum(e)
                    for c in range(d):
                        att.append(math.fsum(ei * V[l][j][g][c] for ei, j in zip(e, keys)) / tot)
                o = linear(ly['o'][0], ly['o'][1], att)
                x = [a + b for a, b in zip(x, o)]
                h = layer_norm(x, *ly['ln2'], self.eps)
                u = linear(ly['up'][0], ly['up'][1], h)
                act = []
                for k in range(len(u) // 2):       # spec 14: even = gelu, odd = linear
                    a, c = u[2 * k], u[2 * k + 1]
                    if self.limit:
                        a = min(a, self.limit)
                        c = max(-self.limit, min(c, self.limit))
                    act.append(a * sigmoid(1.702 * a) * (c + 1.0))
                y = linear(ly['down'][0], ly['down'][1], act)
                x = [a + b for a, b in zip(x, y)]
            finals.append(layer_norm(x, *self.lnf, self.eps))
        return [[sum(a * b for a, b in zip(f, self.emb_row(v))) / self.width for v in vocab] for f in finals]


def read_f32(path, n_vocab, vocab):
    data = open(path, 'rb').read()
    n_pos = len(data) // (4 * n_vocab)
    out = []
    for p in range(n_pos):
        row = struct.unpack_from('<%df' % n_vocab, data, 4 * p * n_vocab)
        out.append([row[v] for v in vocab])
    return out


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    fixture, ranks = sys.argv[1], sys.argv[2]
    failures = []

    def check(ok, what):
        print(('ok    ' if ok else 'FAIL  ') + what)
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix='phivk-p3s-') as tmp:
        subprocess.run([fixture, tmp, ranks], check=True)
        model = Model(os.path.join(tmp, 'hf'))
        ids = [int(s) for s in open(os.path.join(tmp, 'ids.txt')).read().split()]
        n_vocab = model.emb_shape[0]
        # every 31st ordinary token and the five real special tokens (spec 18)
        vocab = list(range(0, 100256, 31)) + [100257, 100261, 100262, 100263, 100266]
        want = model.forward(ids, vocab)
        dense = model.forward(ids, vocab, all_dense=True)
        gpu = read_f32(os.path.join(tmp, 'gpu.f32'), n_vocab, vocab)
        ref = read_f32(os.path.join(tmp, 'ref.f32'), n_vocab, vocab)
        # spec 15: the 91 dummy ids of [100256, 100351] are masked (any value <= -1e30)
        dummies = [v for v in range(100256, 100352) if v not in (100257, 100261, 100262, 100263, 100266)]
        masked = [read_f32(os.path.join(tmp, f), n_vocab, dummies) for f in ('gpu.f32', 'ref.f32')]
    check(len(gpu) == len(ids) and len(ref) == len(ids), '%d positions of logits from the GPU and the CPU reference' % len(ids))
    amax = max(abs(v) for row in want for v in row)
    gpu_bound, ref_bound = 3e-3 * max(1.0, amax), 1e-4 * max(1.0, amax)
    gd = max(max_diff(a, b) for a, b in zip(gpu, want))
    rd = max(max_diff(a, b) for a, b in zip(ref, want))
    print('      %d positions x %d ids; max |logit| %.4g' % (len(ids), len(vocab), amax))
    check(gd <= gpu_bound, 'GPU vs float64: max |diff| %.3g <= %.3g (f16 K/V cache bound)' % (gd, gpu_bound))
    check(rd <= ref_bound, 'CPU reference vs float64: max |diff| %.3g <= %.3g (fp32 rounding bound)' % (rd, ref_bound))
    check(len(dummies) == 91 and all(v <= -1e30 for m in masked for row in m for v in row),
          'the %d dummy ids are masked at every position, on the GPU and in the CPU reference' % len(dummies))

    # The mask: where sparse and dense differ clearly, the GPU follows the sparse model.
    local = model.LB * model.B      # queries before this see every key (all blocks local)
    same = all(max_diff(want[p], dense[p]) <= 1e-12 * max(1.0, amax) for p in range(min(local, len(ids))))
    check(same, 'positions 0..%d: every key is local, sparse == dense in float64' % (local - 1))
    bites = [p for p in range(len(ids)) if max_diff(want[p], dense[p]) > 10 * gpu_bound]
    follows = [p for p in bites if max_diff(gpu[p], want[p]) <= gpu_bound < max_diff(gpu[p], dense[p])]
    print('      the mask changes the logits beyond 10x the GPU bound at %d positions (first %s)' %
          (len(bites), bites[:1]))
    check(len(bites) >= len(ids) // 2, 'the mask bites at %d of %d positions' % (len(bites), len(ids)))
    check(follows == bites, 'at those positions the GPU matches the block-sparse model, not the dense one (%d of %d)' %
          (len(follows), len(bites)))
    if failures:
        sys.exit('%d checks failed' % len(failures))


if __name__ == '__main__':
    main()
