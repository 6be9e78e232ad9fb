// The layers of a Llama decoder as plain loops over fp32 row-major arrays, forward and backward
// (the llm.c shape: one function per layer and direction, no autograd). Backward functions
// accumulate (+=) into parameter gradients and into the input gradient unless noted. Work is
// split by output rows or by independent groups, never by a reduction axis, so results do not
// depend on the thread count.
#pragma once

#include <cstdint>

namespace deltakit::kernels {

// Threads for the OpenMP regions and the row-split GEMMs (0: all cores).
void set_threads(int threads);
int threads();

// out[M,N] = inp[M,K] · W[N,K]ᵀ (+ bias[N]).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                    int64_t N);
// dinp[M,K] += dout·W; dweight[N,K] += doutᵀ·inp; dbias[N] += Σ_m dout (any may be null).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t M, int64_t K, int64_t N);

// out = x · rsqrt(mean(x²) + eps) ⊙ w, per row of C; rstd[M] kept for backward.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t M, int64_t C, float eps);
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t M, int64_t C);

// Rotary embedding in Hugging Face's layout (rotate_half: element i pairs with i + head_dim/2),
// in place on x[M, heads*head_dim]; row m is at position pos[m]. cos/sin tables [positions, head_dim/2].
void rope_forward(float* x, const int32_t* pos, const float* cos_t, const float* sin_t, int64_t M, int64_t heads,
                  int64_t head_dim);
void rope_backward(float* dx, const int32_t* pos, const float* cos_t, const float* sin_t, int64_t M, int64_t heads,
                   int64_t head_dim);  // in place: rotates the gradient back
void rope_tables(float* cos_t, float* sin_t, int64_t positions, int64_t head_dim, double theta);

// Causal grouped-query attention over B sequences of T: q[B,T,H,hd], k/v[B,T,KV,hd] -> out[B,T,H,hd];
// att[B,H,T,T] keeps the softmax rows (upper triangle zero).
void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t H, int64_t KV, int64_t hd);
// dq, dk, dv are overwritten (not accumulated).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd);

// out = silu(gate) ⊙ up, elementwise over n.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// dgate, dup overwritten.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// Softmax cross-entropy per row: logits[M,V] are replaced by probabilities; losses[m] = -log p[target]
// (0 where target < 0). Returns the number of rows with a target.
int64_t crossentropy_forward(float* losses, float* logits, const int32_t* targets, int64_t M, int64_t V);
// dlogits[M,V] = (p - onehot(target)) · scale for rows with a target, 0 elsewhere (overwritten).
void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t M, int64_t V,
                           float scale);

}  // namespace deltakit::kernels
