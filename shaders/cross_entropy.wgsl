// Cross-entropy over a chunk of rows of logits, loss and gradient in one pass, in place:
//   loss[t]   = logsumexp(z_t) − z_t[label_t]                 z: [Tc, V], labels: i32 [Tc]
//   z_t      ← scale · (softmax(z_t) − onehot(label_t))       (the gradient dL/dz)
// A label of −100 is ignored: zero loss, zero gradient. `scale` is 1 / (tokens counted in
// the whole optimizer step), so gradients summed over chunks and micro-batches are those of
// the token-weighted mean, as transformers computes it under gradient accumulation.
// With them, what TRL's SFTTrainer logs of each row, labelled or not (same pass, no extra read):
//   stats[t] = (entropy H(softmax(z_t)) = log s − Σ e_i (z_i − m) / s   with e_i = exp(z_i − m),
//               1 if the first argmax of z_t is the label, else 0 (0 where the label is −100))
// With CAP > 0 (Gemma 2's final_logit_softcapping) the logits are first capped,
// c = CAP · tanh(z / CAP), and the gradient carries the cap's derivative (1 − (c / CAP)²).
// One workgroup per row. Appended to reduce.wgsl.

override CAP: f32 = 0.0;

fn capped(v: f32) -> f32 {
  if (CAP > 0.0) { return CAP * tanh(clamp(v / CAP, -15.0, 15.0)); }
  return v;
}

struct Params { T: u32, V: u32, scale: f32, rowOffset: u32 }

@group(0) @binding(0) var<storage, read_write> z: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<vec2f>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn cross_entropy(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_id) lid: vec3u) {
  let t = wid.x + wid.y * nwg.x;
  if (t >= p.T) { return; }
  let base = t * p.V;
  let label = labels[p.rowOffset + t];
  var m = -3.0e38;
  for (var i = lid.x; i < p.V; i += WG) { m = max(m, capped(z[base + i])); }
  m = workgroupMax(m, lid.x);
  var s = 0.0;
  var sd = 0.0;                 // Σ e_i (z_i − m), for the entropy
  var first = 3.0e38;           // the first index holding the maximum (torch.argmax's pick on ties)
  for (var i = lid.x; i < p.V; i += WG) {
    let d = capped(z[base + i]) - m;
    let e = exp(d);
    s += e;
    sd += e * d;
    if (d == 0.0) { first = min(first, f32(i)); }
  }
  s = workgroupSum(s, lid.x);
  sd = workgroupSum(sd, lid.x);
  first = -workgroupMax(-first, lid.x);   // exact: vocabularies are far below 2^24
  let lse = m + log(s);
  var zl = 0.0;
  if (label >= 0) { zl = capped(z[base + u32(label)]); }
  storageBarrier();   // every thread has read the label's logit before any overwrites it
  if (lid.x == 0u) {
    loss[t] = select(lse - zl, 0.0, label < 0);
    let hit = label >= 0 && u32(first) == u32(label);
    stats[t] = vec2f(log(s) - sd / s, select(0.0, 1.0, hit));
  }
  for (var i = lid.x; i < p.V; i += WG) {
    let c = capped(z[base + i]);
    var gi = exp(c - lse);
    if (i32(i) == label) { gi -= 1.0; }
    if (CAP > 0.0) { gi *= 1.0 - (c / CAP) * (c / CAP); }
    z[base + i] = select(p.scale * gi, 0.0, label < 0);
  }
}
