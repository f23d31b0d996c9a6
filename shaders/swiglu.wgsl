// SwiGLU, the Llama MLP's gate, forward and backward, elementwise over [T, I]:
//   forward   h  = silu(g) ⊙ u,   silu(g) = g · σ(g)           g = gate_proj(x), u = up_proj(x)
//   backward  dg = dh ⊙ u ⊙ σ(g) · (1 + g · (1 − σ(g)))
//             du = dh ⊙ silu(g)

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

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

@compute @workgroup_size(WG)
fn swiglu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  h[i] = g[i] * sigmoid(g[i]) * u[i];
}

@compute @workgroup_size(WG)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.n) { return; }
  let s = sigmoid(g[i]);
  dg[i] = dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
  du[i] = dh[i] * g[i] * s;
}
