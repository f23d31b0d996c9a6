// GELU, elementwise over [T, I], forward and backward (Falcon: exact; Gemma 2: tanh):
//   exact   h = a · Φ(a),  Φ(a) = ½ erfc(−a / √2)          dh/da = Φ(a) + a · φ(a)
//   tanh    h = ½ a (1 + tanh(u)) = a · σ(2u),  u = √(2/π) (a + 0.044715 a³)
//           dh/da = ½ (1 + tanh u) + ½ a (1 − tanh² u) √(2/π) (1 + 3 · 0.044715 a²)
// The functions are shaders/activations.wgsl, prepended.

override WG: u32 = 256;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
// forward: (a, h, p); backward: (a, dh, da, q)
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read_write> da: array<f32>;
@group(0) @binding(3) var<uniform> q: Params;

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  h[i] = gelu(a[i]);
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.n) { return; }
  da[i] = dh[i] * geluGrad(a[i]);
}
