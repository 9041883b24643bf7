// Optimizer steps (torch.optim.NAdam / Adam / SGD of PyTorch 1.13, single-tensor formulas), one
// elementwise pass over a flat parameter range [off, off + count) of param/grad/state buffers.
// Step-dependent scalars (bias corrections, NAdam's mu products, step sizes) are computed in
// double on the host and passed as float. `decay` is decoupled weight decay (AdamW): the
// parameter is first multiplied by 1 - lr * weight_decay (exactly 1.0f when not decoupled, so
// the coupled formulas are unchanged bit for bit). Gradient clipping is in numerics.cl.

// g = grad + weight_decay * param (PyTorch: grad.add(param, alpha=weight_decay) when wd != 0).
static float decayed_grad(float g, float p, float weight_decay) {
    return weight_decay != 0.0f ? g + weight_decay * p : g;
}

// NAdam:
//   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;  denom = sqrt(v / bc2) + eps
//   p += grad_coef * g / denom;  p += avg_coef * m / denom
// with grad_coef = -lr*(1-mu)/(1-mu_product), avg_coef = -lr*mu_next/(1-mu_product_next).
__kernel void nadam_step(__global float *param, __global const float *grad, __global float *exp_avg,
                         __global float *exp_avg_sq, const uint off, const uint count,
                         const float weight_decay, const float beta1, const float one_minus_beta1,
                         const float beta2, const float one_minus_beta2,
                         const float bias_correction2, const float eps, const float grad_coef,
                         const float avg_coef, const float decay) {
    const uint i = get_global_id(0);
    if (i >= count) return;
    const uint e = off + i;
    float p = param[e] * decay;
    const float g = decayed_grad(grad[e], p, weight_decay);
    const float m = beta1 * exp_avg[e] + one_minus_beta1 * g;
    const float v = beta2 * exp_avg_sq[e] + one_minus_beta2 * g * g;
    const float denom = sqrt(v / bias_correction2) + eps;
    p += grad_coef * g / denom;
    p += avg_coef * m / denom;
    exp_avg[e] = m;
    exp_avg_sq[e] = v;
    param[e] = p;
}

// Adam: m, v as NAdam; denom = sqrt(v) / sqrt(bc2) + eps;  p += -(lr / bc1) * m / denom.
__kernel void adam_step(__global float *param, __global const float *grad, __global float *exp_avg,
                        __global float *exp_avg_sq, const uint off, const uint count,
                        const float weight_decay, const float beta1, const float one_minus_beta1,
                        const float beta2, const float one_minus_beta2,
                        const float sqrt_bias_correction2, const float eps,
                        const float neg_step_size, const float decay) {
    const uint i = get_global_id(0);
    if (i >= count) return;
    const uint e = off + i;
    const float p = param[e] * decay;
    const float g = decayed_grad(grad[e], p, weight_decay);
    const float m = beta1 * exp_avg[e] + one_minus_beta1 * g;
    const float v = beta2 * exp_avg_sq[e] + one_minus_beta2 * g * g;
    const float denom = sqrt(v) / sqrt_bias_correction2 + eps;
    exp_avg[e] = m;
    exp_avg_sq[e] = v;
    param[e] = p + neg_step_size * m / denom;
}

// SGD with momentum (momentum_buf may be NULL when use_momentum == 0):
//   buf = first_step ? g : momentum*buf + (1-dampening)*g;  d = nesterov ? g + momentum*buf : buf
//   p += -lr * d.
__kernel void sgd_step(__global float *param, __global const float *grad,
                       __global float *momentum_buf, const uint off, const uint count,
                       const float weight_decay, const int use_momentum, const int first_step,
                       const float momentum, const float one_minus_dampening, const int nesterov,
                       const float neg_lr) {
    const uint i = get_global_id(0);
    if (i >= count) return;
    const uint e = off + i;
    const float p = param[e];
    float d = decayed_grad(grad[e], p, weight_decay);
    if (use_momentum) {
        const float buf = first_step ? d : momentum * momentum_buf[e] + one_minus_dampening * d;
        momentum_buf[e] = buf;
        d = nesterov ? d + momentum * buf : buf;
    }
    param[e] = p + neg_lr * d;
}


// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2), one
// state m (exp_avg):
//   c = beta1*m + (1-beta1)*g;  p = p*decay - lr*sign(c);  m = beta2*m + (1-beta2)*g
// with decay = 1 - lr*weight_decay (the paper's decoupled decay: p -= lr*(sign(c) + wd*p)).
// sign(0) = 0: a parameter whose interpolation c is exactly zero only decays (s = c keeps +-0,
// and keeps a NaN a NaN instead of hiding it).
__kernel void lion_step(__global float *param, __global const float *grad, __global float *exp_avg,
                        const uint off, const uint count, const float beta1,
                        const float one_minus_beta1, const float beta2, const float one_minus_beta2,
                        const float neg_lr, const float decay) {
    const uint i = get_global_id(0);
    if (i >= count) return;
    const uint e = off + i;
    const float g = grad[e], m = exp_avg[e];
    const float c = beta1 * m + one_minus_beta1 * g;
    const float s = c > 0.0f ? 1.0f : (c < 0.0f ? -1.0f : c);
    param[e] = param[e] * decay + neg_lr * s;
    exp_avg[e] = beta2 * m + one_minus_beta2 * g;
}
