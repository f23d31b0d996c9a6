// LayerNorm with a frozen 16-bit weight and bias (Falcon), forward and backward (appended to
// half.wgsl + reduce.wgsl).
//   forward   y  = x̂ · w + b,   x̂ = (x − μ) · r,   r = 1 / √(var(x) + eps)       x, y: [T, H]
//   backward  dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),   g = w ⊙ dy    (w, b frozen)
// One workgroup per row; the mean is taken first, then the variance around it (two passes over
// the row, as torch does, so a large mean does not cost precision).

override ACCUMULATE: bool = false;   // backward adds into dx (the residual's gradient)

struct Params { T: u32, H: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
// forward: (x, w, b, y, p); backward: (x, w, dy, dx, q). Each entry point sees only its own.
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> q: Params;

/** The row's mean and 1/√(var + eps). */
fn moments(base: u32, H: u32, eps: f32, lid: u32) -> vec2f {
  var s = 0.0;
  for (var i = lid; i < H; i += WG) { s += x[base + i]; }
  let mu = workgroupSum(s, lid) / f32(H);
  var v = 0.0;
  for (var i = lid; i < H; i += WG) { let d = x[base + i] - mu; v += d * d; }
  return vec2f(mu, inverseSqrt(workgroupSum(v, lid) / f32(H) + eps));
}

@compute @workgroup_size(WG)
fn layernorm_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.T) { return; }
  let base = row * p.H;
  let m = moments(base, p.H, p.eps, lid.x);
  for (var i = lid.x; i < p.H; i += WG) {
    y[base + i] = (x[base + i] - m.x) * m.y * half16(w[i >> 1u], i) + half16(b[i >> 1u], i);
  }
}

@compute @workgroup_size(WG)
fn layernorm_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_id) lid: vec3u) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= q.T) { return; }
  let base = row * q.H;
  let m = moments(base, q.H, q.eps, lid.x);
  var sg = 0.0;
  var sgx = 0.0;
  for (var i = lid.x; i < q.H; i += WG) {
    let g = half16(w[i >> 1u], i) * dy[base + i];
    sg += g;
    sgx += g * (x[base + i] - m.x) * m.y;
  }
  let meanG = workgroupSum(sg, lid.x) / f32(q.H);
  let meanGX = workgroupSum(sgx, lid.x) / f32(q.H);
  for (var i = lid.x; i < q.H; i += WG) {
    let xh = (x[base + i] - m.x) * m.y;
    let v = m.y * (half16(w[i >> 1u], i) * dy[base + i] - meanG - xh * meanGX);
    if (ACCUMULATE) { dx[base + i] += v; } else { dx[base + i] = v; }
  }
}
