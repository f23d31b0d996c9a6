// Tiled GEMM core, shared by every matmul variant:  C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ C).
//
// A variant file is appended to this one and supplies the bindings and three functions:
//   fn loadA(m: u32, k: u32) -> f32      element (m, k) of op(A), m < M and k < K guaranteed
//   fn loadB(k: u32, n: u32) -> f32      element (k, n) of op(B), k < K and n < N guaranteed
//   fn storeC(m: u32, n: u32, v: f32)    writes alpha·acc (the variant decides accumulate or not)
// and the uniform `p` with fields M, N, K, batch strides and alpha.
//
// Each workgroup computes a TM×TN block of C (TM = WGY·4 rows, TN = WGX·4 columns): WGX×WGY
// threads, each holding a 4×4 register block whose rows are WGY and columns WGX apart, so that
// loads from workgroup memory and stores to C are contiguous across neighbouring threads. K
// advances TK at a time. Square 64×64 tiles by default; a product with 16 columns or fewer
// (LoRA's rank side) takes 64×16 tiles (WGX 4, WGY 16), one with 16 rows or fewer 16×64, so
// that no thread computes columns or rows that do not exist (src/ops/matmul.ts: gemmTile).

override WGX: u32 = 16;  // threads along N
override WGY: u32 = 16;  // threads along M
override TK: u32 = 16;   // depth of one K step
const R: u32 = 4u;       // register block per thread, per side

var<workgroup> As: array<f32, WGY * R * TK>;   // [TK][TM], op(A) tile, k-major
var<workgroup> Bs: array<f32, WGX * R * TK>;   // [TK][TN], op(B) tile, k-major

@compute @workgroup_size(WGX, WGY)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let TM = WGY * R;
  let TN = WGX * R;
  let row0 = wid.y * TM;
  let col0 = wid.x * TN;
  batch = wid.z;
  let tid = lid.y * WGX + lid.x;
  let nthreads = WGX * WGY;

  var acc: array<vec4f, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Cooperative tile loads; the fast-moving index follows memory order of the source so
    // that neighbouring threads read neighbouring addresses.
    for (var i = tid; i < TM * TK; i += nthreads) {
      var m: u32; var k: u32;
      if (A_K_CONTIGUOUS) { k = i % TK; m = i / TK; } else { m = i % TM; k = i / TM; }
      var a = 0.0;
      if (row0 + m < p.M && k0 + k < p.K) { a = loadA(row0 + m, k0 + k); }
      As[k * TM + m] = a;
    }
    for (var i = tid; i < TN * TK; i += nthreads) {
      var n: u32; var kb: u32;
      if (B_K_CONTIGUOUS) { kb = i % TK; n = i / TK; } else { n = i % TN; kb = i / TN; }
      var b = 0.0;
      if (col0 + n < p.N && k0 + kb < p.K) { b = loadB(k0 + kb, col0 + n); }
      Bs[kb * TN + n] = b;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let a = vec4f(As[k * TM + lid.y], As[k * TM + lid.y + WGY],
                    As[k * TM + lid.y + 2u * WGY], As[k * TM + lid.y + 3u * WGY]);
      let b = vec4f(Bs[k * TN + lid.x], Bs[k * TN + lid.x + WGX],
                    Bs[k * TN + lid.x + 2u * WGX], Bs[k * TN + lid.x + 3u * WGX]);
      acc[0] += a.x * b; acc[1] += a.y * b; acc[2] += a.z * b; acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < R; r++) {
    let m = row0 + lid.y + r * WGY;
    if (m >= p.M) { continue; }
    for (var c = 0u; c < R; c++) {
      let n = col0 + lid.x + c * WGX;
      if (n < p.N) { storeC(m, n, p.alpha * acc[r][c]); }
    }
  }
}

// The batch index of the current workgroup (grid z), for the variants' address arithmetic.
var<private> batch: u32;
