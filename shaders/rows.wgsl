// Row-wise ops on frozen 16-bit tables, appended to half.wgsl (no backward: both are frozen,
// and nothing upstream of the embedding needs a gradient):
//   embed      x[t, :] = E[ids[t], :] · scale  E: 16-bit [V, H], ids: u32 [T], x: f32 [T, H]
//              (scale: Gemma multiplies the embeddings by √H; 1 elsewhere). One row block
//              of E per dispatch: rows [row0, row0 + rows); tokens outside it are left alone.
//   add_bias   y[t, :] += b                    b: 16-bit [N], y: f32 [T, N]

override WG: u32 = 256;

struct Params { T: u32, N: u32, V: u32, scale: f32, row0: u32, rows: u32 }

@group(0) @binding(0) var<storage, read> table: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// add_bias: (table = b, y, p)
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> q: Params;

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.T * p.N) { return; }
  let t = i / p.N;
  let id = min(ids[t], p.V - 1u);   // ids are checked on the CPU; never read past the table
  if (id < p.row0 || id >= p.row0 + p.rows) { return; }
  let e = (id - p.row0) * p.N + i % p.N;
  x[i] = half16(table[e >> 1u], e) * p.scale;
}

@compute @workgroup_size(WG)
fn add_bias(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= q.T * q.N) { return; }
  let e = i % q.N;
  y[i] += half16(table[e >> 1u], e);
}
