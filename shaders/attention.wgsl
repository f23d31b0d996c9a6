// The non-matmul parts of causal grouped-query attention; the products are the strided,
// batched GEMM (ops/attention.ts):
//   S = scale · Q Kᵀ  →  P = softmax_forward(S)  →  O = P V                    per query head
//   dP = dO Vᵀ  →  dS = softmax_backward(P, dP)  →  dQ = scale · dS K,  dK, dV per head → group_sum
// Token t attends to s in [start[t], t]: causal, and within its own packed sequence. With a KV
// cache the Tq queries are the last Tq of Tk positions: query i sits at t = i + Tk − Tq.
//
//   softmax_forward   S: [H, Tq, Tk] in place → P (zeros outside the mask)
//   softmax_backward  dP: [H, T, T] in place → dS = P ⊙ (dP − Σ_s dP ⊙ P)
//   group_sum         out[t, j, :] = Σ_{g < group} x[t, j·group + g, :]   (KV-head gradients)
// Appended to reduce.wgsl.

struct Params { T: u32, H: u32, d: u32, group: u32, Tk: u32 }   // T: query rows

@group(0) @binding(0) var<storage, read_write> s: array<f32>;   // S → P, or dP → dS
@group(0) @binding(1) var<storage, read> start: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;
// softmax_backward: (dP, P, p)
@group(0) @binding(1) var<storage, read> P: array<f32>;
// group_sum: (x, out, r)
@group(0) @binding(0) var<storage, read> gx: array<f32>;
@group(0) @binding(1) var<storage, read_write> gout: array<f32>;
@group(0) @binding(2) var<uniform> r: Params;

// One workgroup per row (head h, query t) of S.
@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.H * p.T) { return; }
  let i = row % p.T;
  let t = i + p.Tk - p.T;       // the query's position among the keys
  let base = row * p.Tk;
  let lo = start[i];
  var m = -3.0e38;
  for (var j = lo + lid.x; j <= t; j += WG) { m = max(m, s[base + j]); }
  m = workgroupMax(m, lid.x);
  var sum = 0.0;
  for (var j = lo + lid.x; j <= t; j += WG) { sum += exp(s[base + j] - m); }
  sum = workgroupSum(sum, lid.x);
  for (var j = lid.x; j < p.Tk; j += WG) {
    var v = 0.0;
    if (j >= lo && j <= t) { v = exp(s[base + j] - m) / sum; }
    s[base + j] = v;
  }
}

// Training only (Tq = Tk).
@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.H * p.T) { return; }
  let base = row * p.T;
  var dot = 0.0;
  for (var j = lid.x; j < p.T; j += WG) { dot += s[base + j] * P[base + j]; }
  dot = workgroupSum(dot, lid.x);
  for (var j = lid.x; j < p.T; j += WG) { s[base + j] = P[base + j] * (s[base + j] - dot); }
}

@compute @workgroup_size(WG)
fn group_sum(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;          // over [T, H / group, d]
  let kvh = r.H / r.group;
  if (i >= r.T * kvh * r.d) { return; }
  let e = i % r.d;
  let j = (i / r.d) % kvh;
  let t = i / (r.d * kvh);
  var acc = 0.0;
  for (var g = 0u; g < r.group; g++) { acc += gx[(t * r.H + j * r.group + g) * r.d + e]; }
  gout[i] = acc;
}
