#!/usr/bin/env python3
"""GPT-Neo's forward pass in float64, pure Python, from docs/spec/gpt-neo.md alone.

Written independently of phivk's C code (model/, tests/model_ref/): it reads the
Hugging Face folder itself (config.json, model.safetensors or its shards) and
computes every position's logits for a single unpadded sequence at positions
0..T-1, the way transformers' eager GPTNeoForCausalLM does, but in float64 (so the
only rounding in its result is the source dtype's, which is in the weights).

usage: gptneo_ref.py FOLDER IDS OUT [--all-global]
  IDS   token ids, comma separated
  OUT   written with T lines of V logits each (%.17g, space separated)
  --all-global  treat every layer as global (to show where the local mask matters)
"""
import json
import math
import operator
import os
import struct
import sys


def read_safetensors(path, want):
    """{name: (shape, flat list of floats)} for the names in want found in path."""
    out = {}
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, meta in header.items():
            if name == '__metadata__' or name not in want:
                continue
            begin, end = meta['data_offsets']
            f.seek(base + begin)
            raw = f.read(end - begin)
            count = 1
            for d in meta['shape']:
                count *= d
            dt = meta['dtype']
            if dt == 'F32':
                vals = list(struct.unpack('<%df' % count, raw))
            elif dt == 'F16':
                vals = list(struct.unpack('<%de' % count, raw))
            elif dt == 'BF16':
                halves = struct.unpack('<%dH' % count, raw)
                vals = list(struct.unpack('<%df' % count, struct.pack('<%dI' % count, *[h << 16 for h in halves])))
            else:
                sys.exit('gptneo_ref: %s has dtype %s' % (name, dt))
            out[name] = (meta['shape'], vals)
    return out


def load_weights(folder, want):
    index = os.path.join(folder, 'model.safetensors.index.json')
    files = sorted(set(json.load(open(index))['weight_map'].values())) if os.path.exists(index) else ['model.safetensors']
    w = {}
    for name in files:
        w.update(read_safetensors(os.path.join(folder, name), want))
    return w


def rows(shape_vals):
    """A [out, in] matrix as a list of rows."""
    shape, v = shape_vals
    r, c = shape
    return [v[i * c:(i + 1) * c] for i in range(r)]


def linear(W, b, x):
    """x . W^T + b (nn.Linear)."""
    y = [sum(map(operator.mul, row, x)) for row in W]
    return [a + c for a, c in zip(y, b)] if b is not None else y


def layer_norm(x, w, b, eps):
    n = len(x)
    mean = sum(x) / n
    var = sum((v - mean) ** 2 for v in x) / n   # biased
    s = 1.0 / math.sqrt(var + eps)
    return [(v - mean) * s * wi + bi for v, wi, bi in zip(x, w, b)]


def gelu_new(x):
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def expand_attention_types(cfg, n_layers):
    out = []
    for pattern, n in cfg['attention_types']:
        for _ in range(n):
            out.extend(pattern)
    if len(out) != n_layers:
        sys.exit('gptneo_ref: attention_types gives %d layers, num_layers is %d' % (len(out), n_layers))
    return out


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    folder, ids, out_path = sys.argv[1], [int(t) for t in sys.argv[2].split(',')], sys.argv[3]
    all_global = len(sys.argv) == 5 and sys.argv[4] == '--all-global'
    cfg = json.load(open(os.path.join(folder, 'config.json')))
    D = cfg['hidden_size']
    L = cfg.get('num_layers', cfg.get('num_hidden_layers'))
    H = cfg.get('num_heads', cfg.get('num_attention_heads'))
    hd = D // H
    W = cfg.get('window_size', 256)
    eps = cfg.get('layer_norm_epsilon', 1e-5)
    kinds = expand_attention_types(cfg, L)
    if all_global:
        kinds = ['global'] * L

    names = ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.ln_f.weight', 'transformer.ln_f.bias',
             'lm_head.weight']
    per = ['ln_1.weight', 'ln_1.bias', 'attn.attention.q_proj.weight', 'attn.attention.k_proj.weight',
           'attn.attention.v_proj.weight', 'attn.attention.out_proj.weight', 'attn.attention.out_proj.bias',
           'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias']
    names += ['transformer.h.%d.%s' % (i, p) for i in range(L) for p in per]
    w = load_weights(folder, set(names))
    wte = rows(w['transformer.wte.weight'])
    wpe = rows(w['transformer.wpe.weight'])
    lm_head = rows(w['lm_head.weight']) if 'lm_head.weight' in w else wte   # tied when absent

    T = len(ids)
    h = [[a + b for a, b in zip(wte[t], wpe[p])] for p, t in enumerate(ids)]   # no scaling
    for i in range(L):
        g = lambda p: w['transformer.h.%d.%s' % (i, p)][1]
        m = lambda p: rows(w['transformer.h.%d.%s' % (i, p)])
        Wq, Wk, Wv, Wo = m('attn.attention.q_proj.weight'), m('attn.attention.k_proj.weight'), \
            m('attn.attention.v_proj.weight'), m('attn.attention.out_proj.weight')
        x = [layer_norm(v, g('ln_1.weight'), g('ln_1.bias'), eps) for v in h]
        q = [linear(Wq, None, v) for v in x]   # no q/k/v biases
        k = [linear(Wk, None, v) for v in x]
        v = [linear(Wv, None, u) for u in x]
        o = []
        for a in range(T):
            merged = []
            for j in range(H):
                sl = slice(j * hd, (j + 1) * hd)
                qa = q[a][sl]
                # visible: k <= q (global); 0 <= q - k < W (local)
                keys = [b for b in range(a + 1) if kinds[i] == 'global' or a - b < W]
                s = [sum(map(operator.mul, qa, k[b][sl])) for b in keys]   # NO 1/sqrt(hd)
                mx = max(s)
                e = [math.exp(z - mx) for z in s]
                tot = sum(e)
                merged += [sum(e[n] * v[b][sl][d] for n, b in enumerate(keys)) / tot for d in range(hd)]
            o.append(merged)
        h = [[a + b for a, b in zip(hv, linear(Wo, g('attn.attention.out_proj.bias'), ov))] for hv, ov in zip(h, o)]
        x = [layer_norm(u, g('ln_2.weight'), g('ln_2.bias'), eps) for u in h]
        Wfc, Wpr = m('mlp.c_fc.weight'), m('mlp.c_proj.weight')
        ff = [linear(Wpr, g('mlp.c_proj.bias'), [gelu_new(z) for z in linear(Wfc, g('mlp.c_fc.bias'), u)]) for u in x]
        h = [[a + b for a, b in zip(hv, fv)] for hv, fv in zip(h, ff)]
    lnw, lnb = w['transformer.ln_f.weight'][1], w['transformer.ln_f.bias'][1]
    with open(out_path, 'w') as f:
        for hv in h:
            f.write(' '.join('%.17g' % z for z in linear(lm_head, None, layer_norm(hv, lnw, lnb, eps))) + '\n')


if __name__ == '__main__':
    main()
