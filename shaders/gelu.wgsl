// GELU, elementwise over [T, I], forward and backward (Falcon: exact; Gemma 2: tanh):
//   exact   h = a · Φ(a),  Φ(a) = ½ erfc(−a / √2)          dh/da = Φ(a) + a · φ(a)
//   tanh    h = ½ a (1 + tanh(u)),  u = √(2/π) (a + 0.044715 a³)
//           dh/da = ½ (1 + tanh u) + ½ a (1 − tanh² u) √(2/π) (1 + 3 · 0.044715 a²)
// WGSL has no erf: erfc comes from the Chebyshev fit of Numerical Recipes (erfcc), whose
// relative error is below 1.2e-7 over the whole line, tails included.

override WG: u32 = 256;
override TANH: bool = false;

struct Params { n: u32 }

@group(0) @binding(0) var<storage, read> a: array<f32>;
// forward: (a, h, p); backward: (a, dh, da, q)
@group(0) @binding(1) var<storage, read_write> h: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dh: array<f32>;
@group(0) @binding(2) var<storage, read_write> da: array<f32>;
@group(0) @binding(3) var<uniform> q: Params;

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2PI = 0.3989422804014327;

fn erfc(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(2.0 - r, r, x >= 0.0);
}

fn tanhArg(v: f32) -> f32 { return clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -15.0, 15.0); }

fn gelu(v: f32) -> f32 {
  if (TANH) { return 0.5 * v * (1.0 + tanh(tanhArg(v))); }
  return v * 0.5 * erfc(-v * 0.7071067811865476);
}

fn geluGrad(v: f32) -> f32 {
  if (TANH) {
    let th = tanh(tanhArg(v));
    return 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
  }
  return 0.5 * erfc(-v * 0.7071067811865476) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
}

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
