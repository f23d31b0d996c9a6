// Gated MLP activations, forward and backward, elementwise over [T, I] (after activations.wgsl):
//   SwiGLU (Llama)   h = silu(g) ⊙ u,   silu(g) = g · σ(g)       g = gate_proj(x), u = up_proj(x)
//   GeGLU (Gemma 2)  h = gelu_tanh(g) ⊙ u                        (GEGLU with TANH)
//   backward         dg = dh ⊙ u ⊙ act'(g),   du = dh ⊙ act(g)
//   silu'(g) = σ(g) · (1 + g · (1 − σ(g)))

override GEGLU: bool = false;

override WG: u32 = 256;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> g: array<f32>;
@group(0) @binding(1) var<storage, read> u: array<f32>;
// forward: (g, u, h, p); backward: (g, u, dh, dg, du, q)
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> dh: array<f32>;
@group(0) @binding(3) var<storage, read_write> dg: array<f32>;
@group(0) @binding(4) var<storage, read_write> du: array<f32>;
@group(0) @binding(5) var<uniform> q: Params;

fn act(v: f32) -> f32 {
  if (GEGLU) { return gelu(v); }
  return v * sigmoid(v);
}

fn actGrad(v: f32) -> f32 {
  if (GEGLU) { return geluGrad(v); }
  let s = sigmoid(v);
  return s * (1.0 + v * (1.0 - s));
}

@compute @workgroup_size(WG)
fn swiglu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  h[i] = act(g[i]) * u[i];
}

@compute @workgroup_size(WG)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.n) { return; }
  dg[i] = dh[i] * u[i] * actGrad(g[i]);
  du[i] = dh[i] * act(g[i]);
}
