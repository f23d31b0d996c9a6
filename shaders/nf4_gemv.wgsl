// NF4 GEMV variant for decoding, appended to nf4.wgsl + gemv_core.wgsl:
//   y[m, n] (+)= alpha · Σ_k x[m, k] · W[n, k]      x: [M, K], W: NF4 [N, K], y: [M, N]
// A lane walks its share of row n a u32 (8 codes) at a time, the code table in registers
// (nf4Value). When K % 8 == 0 (every real model) rows are whole words, and a word's 8 codes
// share one absmax; otherwise rows start mid-word and elements outside the row are masked.
// LORA adds the adapter's up-projection to the same sums (gemm_nf4.wgsl): + s · h[m] · B[n],
// h: [M, r], B: [N, r]; H and LB are bound to any buffer without it.

override ACCUMULATE: bool = false;
override ALIGNED: bool = false;  // K % 8 == 0: rows start on word boundaries
override LORA: bool = false;

struct Params { M: u32, N: u32, K: u32, alpha: f32, blockShift: u32, r: u32, scale: f32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> Wq: array<u32>;
@group(0) @binding(2) var<storage, read> absmax: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> H: array<f32>;
@group(0) @binding(5) var<storage, read> LB: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

fn rowDot(m: u32, n: u32, lane: u32) -> f32 {
  let xrow = m * p.K;
  var sum = 0.0;
  if (LORA) {
    for (var j = lane; j < p.r; j += LANES) { sum += p.scale * H[m * p.r + j] * LB[n * p.r + j]; }
  }
  if (ALIGNED) {
    let kw = p.K >> 3u;
    let base = n * kw;
    for (var i = lane; i < kw; i += LANES) {
      let word = Wq[base + i];
      let xo = xrow + i * 8u;
      var acc = 0.0;
      for (var b = 0u; b < 4u; b++) {
        let byte = (word >> (8u * b)) & 0xffu;
        acc += nf4Value(byte >> 4u) * x[xo + 2u * b] + nf4Value(byte & 15u) * x[xo + 2u * b + 1u];
      }
      sum += acc * absmax[((base + i) << 3u) >> p.blockShift];
    }
  } else {
    let e0 = n * p.K;            // first flattened element of the row
    let e1 = e0 + p.K;           // one past the last
    for (var w = (e0 >> 3u) + lane; w <= ((e1 - 1u) >> 3u); w += LANES) {
      let word = Wq[w];
      let scale = absmax[(w * 8u) >> p.blockShift];   // blocks hold a multiple of 8 codes
      for (var j = 0u; j < 8u; j++) {
        let e = w * 8u + j;
        if (e >= e0 && e < e1) { sum += nf4Value(nf4Code(word, e)) * scale * x[xrow + e - e0]; }
      }
    }
  }
  return sum;
}

fn storeY(m: u32, n: u32, v: f32) {
  let i = m * p.N + n;
  if (ACCUMULATE) { y[i] += v; } else { y[i] = v; }
}
