// 16-bit GEMV variant, appended to half.wgsl + gemv_core.wgsl: one row block W_b of a 16-bit
// matrix (the output head while decoding), with gemm_half.wgsl's offsets and pitches:
//   y[:, cOffset + n] (+)= alpha · x[:, aOffset…] · W_b[wOffset/K + n]     x: [M, lda], W_b: [N, K]
// A lane reads whole words (two weights) where rows start on a word (K and wOffset even).

override ACCUMULATE: bool = false;
override EVEN: bool = false;   // K and wOffset even: every row is whole words

struct Params { M: u32, N: u32, K: u32, alpha: f32, lda: u32, ldc: u32, aOffset: u32, cOffset: u32, wOffset: u32 }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn rowDot(m: u32, n: u32, lane: u32) -> f32 {
  let xo = p.aOffset + m * p.lda;
  let e0 = p.wOffset + n * p.K;
  var s = 0.0;
  if (EVEN) {
    for (var j = lane; j < p.K / 2u; j += LANES) {
      let word = W[(e0 >> 1u) + j];
      s += x[xo + 2u * j] * half16(word, 0u) + x[xo + 2u * j + 1u] * half16(word, 1u);
    }
  } else {
    for (var k = lane; k < p.K; k += LANES) { s += x[xo + k] * half16(W[(e0 + k) >> 1u], e0 + k); }
  }
  return s;
}

fn storeY(m: u32, n: u32, v: f32) {
  let i = p.cOffset + m * p.ldc + n;
  if (ACCUMULATE) { y[i] += v; } else { y[i] = v; }
}
