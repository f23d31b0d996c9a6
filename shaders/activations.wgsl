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

fn tanhArg(v: f32) -> f32 { return clamp(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v), -15.0, 15.0); }

fn gelu(v: f32) -> f32 {
  if (TANH) { return 0.5 * v * (1.0 + tanh(tanhArg(v))); }
  return v * 0.5 * erfc(-v * 0.7071067811865476);
}

fn geluGrad(v: f32) -> f32 {
  if (TANH) {
    let th = tanh(tanhArg(v));
    return 0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
  }
  return 0.5 * erfc(-v * 0.7071067811865476) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
}

