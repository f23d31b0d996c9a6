// Workgroup-wide sum and maximum over the WG threads of a 1-D workgroup, prepended to the
// kernels that reduce rows (rmsnorm, cross_entropy, attention, adamw). They hold barriers:
// every thread of the workgroup must call them, in uniform control flow.

override WG: u32 = 256;

var<workgroup> red: array<f32, WG>;

fn workgroupSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();   // red is free for the next reduction
  return total;
}

fn workgroupMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
