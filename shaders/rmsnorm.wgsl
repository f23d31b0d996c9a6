// RMSNorm with a frozen 16-bit weight, forward and backward (appended to half.wgsl + reduce.wgsl).
//   forward   y = x · r · w,   r = 1 / √(mean(x²) + eps)          x, y: [T, H], w: [H] (+ OFFSET)
//   backward  dx = r · (w ⊙ dy) − x · r³ / H · Σ_j w_j dy_j x_j   (w is frozen: no dw)
// One workgroup per row; the row's sums are reduced in workgroup memory.

override ACCUMULATE: bool = false;   // add into y / dx (Gemma's post-norms feed the residual)
override OFFSET: f32 = 0.0;          // Gemma scales by (1 + w): the weight is stored minus one

fn weight(i: u32) -> f32 { return OFFSET + half16(w[i >> 1u], i); }

struct Params { T: u32, H: u32, eps: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
// forward: (x, w, y, p); backward: (x, w, dy, dx, q). Each entry point sees only its own.
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> q: Params;

fn rowIndex(wid: vec3u, nwg: vec3u) -> u32 { return wid.x + wid.y * nwg.x; }

@compute @workgroup_size(WG)
fn rmsnorm_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                   @builtin(local_invocation_id) lid: vec3u) {
  let row = rowIndex(wid, nwg);
  if (row >= p.T) { return; }
  let base = row * p.H;
  var ss = 0.0;
  for (var i = lid.x; i < p.H; i += WG) { ss += x[base + i] * x[base + i]; }
  let r = inverseSqrt(workgroupSum(ss, lid.x) / f32(p.H) + p.eps);
  for (var i = lid.x; i < p.H; i += WG) {
    let v = x[base + i] * r * weight(i);
    if (ACCUMULATE) { y[base + i] += v; } else { y[base + i] = v; }
  }
}

@compute @workgroup_size(WG)
fn rmsnorm_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                    @builtin(local_invocation_id) lid: vec3u) {
  let row = rowIndex(wid, nwg);
  if (row >= q.T) { return; }
  let base = row * q.H;
  var ss = 0.0;
  var dot = 0.0;
  for (var i = lid.x; i < q.H; i += WG) {
    let xi = x[base + i];
    ss += xi * xi;
    dot += weight(i) * dy[base + i] * xi;
  }
  let r = inverseSqrt(workgroupSum(ss, lid.x) / f32(q.H) + q.eps);
  let c = workgroupSum(dot, lid.x) * r * r * r / f32(q.H);
  for (var i = lid.x; i < q.H; i += WG) {
    let v = r * weight(i) * dy[base + i] - x[base + i] * c;
    if (ACCUMULATE) { dx[base + i] += v; } else { dx[base + i] = v; }
  }
}
