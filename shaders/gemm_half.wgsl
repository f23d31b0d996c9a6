// GEMM variant with a frozen 16-bit B (the output head, tied embeddings), appended to
// half.wgsl + gemm_core.wgsl:
//   forward     y  = x · Wᵀ   x: [M=T, K=in],  W: 16-bit [N=out, K=in]   (TRANS_B = true)
//   backward    dX = dY · W   dY: [M=T, K=out], W: 16-bit [K=out, N=in]  (TRANS_B = false)
// `wOffset` selects rows of W (a vocabulary chunk of the head) without copying.

override TRANS_B: bool = true;
override ACCUMULATE: bool = false;
override A_K_CONTIGUOUS: bool = true;
override B_K_CONTIGUOUS: bool = TRANS_B;

struct Params { M: u32, N: u32, K: u32, alpha: f32, sA: u32, sB: u32, sC: u32, wOffset: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn loadA(m: u32, k: u32) -> f32 {
  return A[batch * p.sA + m * p.K + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  var e: u32;
  if (TRANS_B) { e = p.wOffset + n * p.K + k; } else { e = p.wOffset + k * p.N + n; }
  return half16(W[e >> 1u], e);
}

fn storeC(m: u32, n: u32, v: f32) {
  let i = batch * p.sC + m * p.N + n;
  if (ACCUMULATE) { C[i] += v; } else { C[i] = v; }
}
