// GEMM variant with a frozen 16-bit B (the output head, tied embeddings, 16-bit linears), one
// row block of W at a time (src/ops/half-matrix.ts), appended to half.wgsl + gemm_core.wgsl:
//   forward     y[:, c0 : c0+N]  = x · W_bᵀ            x: [M=T, K=in], W_b: 16-bit [N, K]   (TRANS_B)
//   backward    dX (+)= dY[:, a0 : a0+K] · W_b         dY: [M=T, lda],  W_b: 16-bit [K, N=in]
// A and C are read and written through row pitches (lda, ldc) and element offsets (aOffset,
// cOffset), so a block's product lands in, or reads from, its own columns of the full-width
// logits. `wOffset` skips rows of the block (a vocabulary chunk that starts inside it).

override TRANS_B: bool = true;
override ACCUMULATE: bool = false;
override A_K_CONTIGUOUS: bool = true;
override B_K_CONTIGUOUS: bool = TRANS_B;

struct Params { M: u32, N: u32, K: u32, alpha: f32, lda: u32, ldc: u32, aOffset: u32, cOffset: u32, wOffset: u32 }

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn loadA(m: u32, k: u32) -> f32 {
  return A[p.aOffset + m * p.lda + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  var e: u32;
  if (TRANS_B) { e = p.wOffset + n * p.K + k; } else { e = p.wOffset + k * p.N + n; }
  return half16(W[e >> 1u], e);
}

fn storeC(m: u32, n: u32, v: f32) {
  let i = p.cOffset + m * p.ldc + n;
  if (ACCUMULATE) { C[i] += v; } else { C[i] = v; }
}
