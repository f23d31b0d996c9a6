// Soft-capping (Gemma 2): scores and logits squashed smoothly into (−cap, cap), elementwise:
//   softcap            x ← cap · tanh(x / cap)                      in place
//   softcap_backward   g ← g · (1 − tanh²(x / cap))                  g: the gradient w.r.t. the
//                      capped values, x: the values before capping (recomputed by the caller)

override WG: u32 = 256;

struct Params { n: u32, cap: f32 }

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
// backward: (g, x, q)
@group(0) @binding(0) var<storage, read_write> g: array<f32>;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<uniform> q: Params;

@compute @workgroup_size(WG)
fn softcap(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  x[i] = p.cap * tanh(clamp(x[i] / p.cap, -15.0, 15.0));
}

@compute @workgroup_size(WG)
fn softcap_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.n) { return; }
  let t = tanh(clamp(xs[i] / q.cap, -15.0, 15.0));
  g[i] = g[i] * (1.0 - t * t);
}
