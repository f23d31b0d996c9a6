// Heads taken out of a fused projection and put back (Falcon's query_key_value, Phi-3's
// qkv_proj): pure data movement, [T, heads, d] rows, heads chosen by a map.
//   gather    dst[t, j, :] = src[t, map[j], :]      src: [T, Ns, d], dst: [T, n, d], map: u32 [n]
//   scatter   dsrc[t, map[j], :] = ddst[t, j, :]    the backward of gather; the maps of the
//             pieces of one fused row (q, k, v) are disjoint and cover it, so nothing is added

override WG: u32 = 256;

struct Params { T: u32, Ns: u32, n: u32, d: u32 }

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read> map: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn gather_heads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;          // over dst [T, n, d]
  if (i >= p.T * p.n * p.d) { return; }
  let e = i % p.d;
  let j = (i / p.d) % p.n;
  let t = i / (p.d * p.n);
  dst[i] = src[(t * p.Ns + map[j]) * p.d + e];
}

// scatter: (ddst as src, map, dsrc as dst, p), over ddst [T, n, d]
@compute @workgroup_size(WG)
fn scatter_heads(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.T * p.n * p.d) { return; }
  let e = i % p.d;
  let j = (i / p.d) % p.n;
  let t = i / (p.d * p.n);
  dst[(t * p.Ns + map[j]) * p.d + e] = src[i];
}
