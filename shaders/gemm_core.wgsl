// Tiled GEMM core, shared by every matmul variant:  C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ C).
//
// A variant file is appended to this one and supplies the bindings and three functions:
//   fn loadA(m: u32, k: u32) -> f32      element (m, k) of op(A), m < M and k < K guaranteed
//   fn loadB(k: u32, n: u32) -> f32      element (k, n) of op(B), k < K and n < N guaranteed
//   fn storeC(m: u32, n: u32, v: f32)    writes alpha·acc (the variant decides accumulate or not)
// and the uniform `p` with fields M, N, K, batch strides and alpha.
//
// Each workgroup computes a TILE×TILE block of C (TILE = WG·4): WG×WG threads, each holding
// a 4×4 register block whose rows and columns are WG apart, so that loads from workgroup
// memory and stores to C are contiguous across neighbouring threads. K advances TK at a time.

override WG: u32 = 16;   // threads per side of the workgroup
override TK: u32 = 16;   // depth of one K step
const R: u32 = 4u;       // register block per thread, per side

var<workgroup> As: array<f32, WG * R * TK>;   // [TK][TILE], op(A) tile, k-major
var<workgroup> Bs: array<f32, WG * R * TK>;   // [TK][TILE], op(B) tile, k-major

@compute @workgroup_size(WG, WG)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let TILE = WG * R;
  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  batch = wid.z;
  let tid = lid.y * WG + lid.x;
  let nthreads = WG * WG;

  var acc: array<vec4f, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Cooperative tile loads; the fast-moving index follows memory order of the source so
    // that neighbouring threads read neighbouring addresses.
    for (var i = tid; i < TILE * TK; i += nthreads) {
      var m: u32; var k: u32;
      if (A_K_CONTIGUOUS) { k = i % TK; m = i / TK; } else { m = i % TILE; k = i / TILE; }
      var a = 0.0;
      if (row0 + m < p.M && k0 + k < p.K) { a = loadA(row0 + m, k0 + k); }
      As[k * TILE + m] = a;

      var n: u32; var kb: u32;
      if (B_K_CONTIGUOUS) { kb = i % TK; n = i / TK; } else { n = i % TILE; kb = i / TILE; }
      var b = 0.0;
      if (col0 + n < p.N && k0 + kb < p.K) { b = loadB(k0 + kb, col0 + n); }
      Bs[kb * TILE + n] = b;
    }
    workgroupBarrier();
    for (var k = 0u; k < TK; k++) {
      let a = vec4f(As[k * TILE + lid.y], As[k * TILE + lid.y + WG],
                    As[k * TILE + lid.y + 2u * WG], As[k * TILE + lid.y + 3u * WG]);
      let b = vec4f(Bs[k * TILE + lid.x], Bs[k * TILE + lid.x + WG],
                    Bs[k * TILE + lid.x + 2u * WG], Bs[k * TILE + lid.x + 3u * WG]);
      acc[0] += a.x * b; acc[1] += a.y * b; acc[2] += a.z * b; acc[3] += a.w * b;
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < R; r++) {
    let m = row0 + lid.y + r * WG;
    if (m >= p.M) { continue; }
    for (var c = 0u; c < R; c++) {
      let n = col0 + lid.x + c * WG;
      if (n < p.N) { storeC(m, n, p.alpha * acc[r][c]); }
    }
  }
}

// The batch index of the current workgroup (grid z), for the variants' address arithmetic.
var<private> batch: u32;
