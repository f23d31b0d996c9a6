// Activation functions and their derivatives, prepended to the kernels that use them
// (gelu.wgsl, swiglu.wgsl). TANH picks GELU's tanh approximation over the exact one.
// WGSL has no erf: erfc comes from the Chebyshev fit of Numerical Recipes (erfcc), whose
// relative error is below 1.2e-7 over the whole line, tails included.

override TANH: bool = false;

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

const SQRT_2_OVER_PI = 0.7978845608028654;
const INV_SQRT_2PI = 0.3989422804014327;

fn erfc(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
          t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
          t * (-0.82215223 + t * 0.17087277)))))))));
  return select(2.0 - r, r, x >= 0.0);
}

// tanh GELU as x · σ(2u), the same as ½ x (1 + tanh u) without the cancellation in 1 + tanh u
// for negative u (where tanh is near −1 and the difference would keep few correct bits)
fn tanhArg(v: f32) -> f32 { return clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -40.0, 40.0); }

fn gelu(v: f32) -> f32 {
  if (TANH) { return v * sigmoid(2.0 * tanhArg(v)); }
  return v * 0.5 * erfc(-v * 0.7071067811865476);
}

fn geluGrad(v: f32) -> f32 {
  if (TANH) {
    let s = sigmoid(2.0 * tanhArg(v));   // ½ (1 + tanh u);  ½ (1 − tanh² u) = 2 s (1 − s)
    return s + v * 2.0 * s * (1.0 - s) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
  }
  return 0.5 * erfc(-v * 0.7071067811865476) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
}
