// The optimizer over the flat LoRA buffers: global gradient norm, clipping, AdamW.
// Appended to reduce.wgsl.
// params, grads, m, v: f32 [n], one buffer each, every adapter tensor a view into them, so
// each step is three dispatches whatever the number of tensors.
//
//   sumsq_partial  partial[w] = Σ grads[i]² over workgroup w's slice     (reduction, pass 1)
//   sumsq_final    normSq[0]  = Σ partial[w]                             (reduction, pass 2)
//   adamw_step     torch.optim.AdamW after clip_grad_norm_(max_norm):
//                  g = grads · min(1, max_norm / (‖g‖ + 1e-6))           (max_norm 0: no clip)
//                  p ← p · (1 − lr · wd)
//                  m ← β1 m + (1 − β1) g;   v ← β2 v + (1 − β2) g²
//                  p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)

override ITEMS: u32 = 8;   // elements per thread in the partial sums

struct Params {
  n: u32, parts: u32, maxNorm: f32, lr: f32,
  beta1: f32, beta2: f32, eps: f32, weightDecay: f32,
  bc1: f32, bc2sqrt: f32,
  // 1 − β1 and 1 − β2 rounded from float64, as torch passes them: 1 − f32(0.999) would be
  // 1.3e-5 off in relative terms.
  oneMinusBeta1: f32, oneMinusBeta2: f32,
}

// The reductions' bindings: (grads, partial) for pass 1, (partial, normSq) for pass 2.
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> b: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// a = grads [n], b = partial [parts]
@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_id) lid: vec3u) {
  let w = wid.x + wid.y * nwg.x;
  var s = 0.0;
  let base = w * WG * ITEMS + lid.x;
  for (var k = 0u; k < ITEMS; k++) {
    let i = base + k * WG;   // coalesced: neighbouring threads, neighbouring elements
    if (i < p.n) { s += a[i] * a[i]; }
  }
  let total = workgroupSum(s, lid.x);
  if (lid.x == 0u && w < p.parts) { b[w] = total; }
}

// a = partial [parts], b = normSq [1]; one workgroup
@compute @workgroup_size(WG)
fn sumsq_final(@builtin(local_invocation_id) lid: vec3u) {
  var s = 0.0;
  for (var i = lid.x; i < p.parts; i += WG) { s += a[i]; }
  let total = workgroupSum(s, lid.x);
  if (lid.x == 0u) { b[0] = total; }
}

// The step's own bindings (entry points may reuse binding numbers; each sees only its own).
@group(0) @binding(0) var<storage, read_write> params: array<f32>;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> normSq: array<f32>;
@group(0) @binding(5) var<uniform> q: Params;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.n) { return; }
  var clip = 1.0;
  if (q.maxNorm > 0.0) { clip = min(1.0, q.maxNorm / (sqrt(normSq[0]) + 1e-6)); }
  let g = grads[i] * clip;
  let mi = q.beta1 * m[i] + q.oneMinusBeta1 * g;
  let vi = q.beta2 * v[i] + q.oneMinusBeta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  let decayed = params[i] * (1.0 - q.lr * q.weightDecay);
  params[i] = decayed - (q.lr / q.bc1) * mi / (sqrt(vi) / q.bc2sqrt + q.eps);
}
