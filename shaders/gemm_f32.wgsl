// f32 GEMM variant, appended to gemm_core.wgsl. The three products of a linear layer
// y = x Wᵀ, with x: [T, in], W: [out, in], y: [T, out]:
//   forward     y  = x · Wᵀ   A = x  [M=T, K=in],   B = W [N=out, K=in] read transposed (TRANS_B)
//   backward    dX = dY · W   A = dY [M=T, K=out],  B = W [K=out, N=in]
//   backward    dW = dYᵀ · X  A = dY [K=T, M=out] read transposed (TRANS_A), B = X [K=T, N=in]
// ACCUMULATE adds into C (gradients summed over micro-batches or branches).
// Batched over grid z with element strides sA, sB, sC (a stride of 0 broadcasts an operand);
// rows of A, B, C are lda, ldb, ldc elements apart, so per-head slices of [T, heads, d] are
// operands as they lie. Batch z reads B's batch z / groupB (grouped-query attention).

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override A_K_CONTIGUOUS: bool = !TRANS_A;
override B_K_CONTIGUOUS: bool = TRANS_B;

struct Params {
  M: u32, N: u32, K: u32, alpha: f32, sA: u32, sB: u32, sC: u32, lda: u32, ldb: u32, ldc: u32, groupB: u32,
}

@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn loadA(m: u32, k: u32) -> f32 {
  if (TRANS_A) { return A[batch * p.sA + k * p.lda + m]; }
  return A[batch * p.sA + m * p.lda + k];
}

fn loadB(k: u32, n: u32) -> f32 {
  let b = (batch / p.groupB) * p.sB;
  if (TRANS_B) { return B[b + n * p.ldb + k]; }
  return B[b + k * p.ldb + n];
}

fn storeC(m: u32, n: u32, v: f32) {
  let i = batch * p.sC + m * p.ldc + n;
  if (ACCUMULATE) { C[i] += v; } else { C[i] = v; }
}
