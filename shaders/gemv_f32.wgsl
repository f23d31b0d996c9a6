// f32 GEMV variant, appended to gemv_core.wgsl: y (+)= alpha · x Wᵀ, x: [M, K], W: [N, K]
// (LoRA's products while decoding: h = x Aᵀ, then y += s · h Bᵀ).

override ACCUMULATE: bool = false;

struct Params { M: u32, N: u32, K: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn rowDot(m: u32, n: u32, lane: u32) -> f32 {
  var s = 0.0;
  for (var k = lane; k < p.K; k += LANES) { s += x[m * p.K + k] * W[n * p.K + k]; }
  return s;
}

fn storeY(m: u32, n: u32, v: f32) {
  let i = m * p.N + n;
  if (ACCUMULATE) { y[i] += v; } else { y[i] = v; }
}
