#include "src/model/kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace deltakit::kernels {

namespace {
int g_threads = 0;
constexpr int64_t kRowBlock = 32;  // GEMM rows per task: fixed, so splits never depend on threads
}  // namespace

void set_threads(int t) {
  g_threads = t > 0 ? t : omp_get_num_procs();
  // OpenBLAS runs single-threaded inside our own row split: two thread pools spinning on two
  // cores slow each other down, and a fixed split keeps results independent of the count.
  openblas_set_num_threads(1);
}

int threads() {
  if (!g_threads) set_threads(0);
  return g_threads;
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t M, int64_t K,
                    int64_t N) {
  const int64_t blocks = (M + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) num_threads(threads()) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t m0 = b * kRowBlock, m = std::min(kRowBlock, M - m0);
    float* o = out + m0 * N;
    if (bias)
      for (int64_t i = 0; i < m; ++i) std::copy(bias, bias + N, o + i * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, N, K, 1.0f, inp + m0 * K, K, weight, K, bias ? 1.0f : 0.0f,
                o, N);
  }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t M, int64_t K, int64_t N) {
  if (dinp) {
    const int64_t blocks = (M + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) num_threads(threads()) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t m0 = b * kRowBlock, m = std::min(kRowBlock, M - m0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, K, N, 1.0f, dout + m0 * N, N, weight, K, 1.0f,
                  dinp + m0 * K, K);
    }
  }
  if (dweight || dbias) {
    const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) num_threads(threads()) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n0 = b * kRowBlock, n = std::min(kRowBlock, N - n0);
      if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, K, M, 1.0f, dout + n0, N, inp, K, 1.0f,
                    dweight + n0 * K, K);
      if (dbias)
        for (int64_t j = n0; j < n0 + n; ++j) {
          float s = 0;
          for (int64_t i = 0; i < M; ++i) s += dout[i * N + j];
          dbias[j] += s;
        }
    }
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t M, int64_t C, float eps) {
#pragma omp parallel for schedule(static) num_threads(threads()) if (M * C > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * C;
    float ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    rstd[m] = r;
    float* o = out + m * C;
    for (int64_t c = 0; c < C; ++c) o[c] = xr[c] * r * weight[c];
  }
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t M, int64_t C) {
#pragma omp parallel num_threads(threads()) if (M * C > 65536)
  {
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const float *xr = x + m * C, *d = dout + m * C;
      const float r = rstd[m];
      float dot = 0;  // Σ_c w_c·dy_c·x_c
      for (int64_t c = 0; c < C; ++c) dot += weight[c] * d[c] * xr[c];
      const float k = r * r * r * dot / static_cast<float>(C);
      float* g = dx + m * C;
      for (int64_t c = 0; c < C; ++c) g[c] += r * weight[c] * d[c] - k * xr[c];
    }
    // dweight by column blocks: each column's sum runs over rows in order on one thread
    constexpr int64_t kCols = 16;
#pragma omp for schedule(static)
    for (int64_t c0 = 0; c0 < C; c0 += kCols) {
      const int64_t c1 = std::min(C, c0 + kCols);
      float acc[kCols] = {};
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dout[m * C + c] * x[m * C + c] * rstd[m];
      for (int64_t c = c0; c < c1; ++c) dweight[c] += acc[c - c0];
    }
  }
}

void rope_tables(float* cos_t, float* sin_t, int64_t positions, int64_t head_dim, double theta) {
  const int64_t half = head_dim / 2;
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
      const double a = static_cast<double>(p) * inv_freq;
      cos_t[p * half + i] = static_cast<float>(std::cos(a));
      sin_t[p * half + i] = static_cast<float>(std::sin(a));
    }
}

namespace {
void rotate(float* x, const int32_t* pos, const float* cos_t, const float* sin_t, int64_t M, int64_t heads,
            int64_t hd, float sign) {
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static) num_threads(threads()) if (M * heads * hd > 65536)
  for (int64_t m = 0; m < M; ++m) {
    const float* c = cos_t + static_cast<int64_t>(pos[m]) * half;
    const float* s = sin_t + static_cast<int64_t>(pos[m]) * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (m * heads + h) * hd;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half], sn = sign * s[i];
        v[i] = a * c[i] - b * sn;
        v[i + half] = b * c[i] + a * sn;
      }
    }
  }
}
}  // namespace

void rope_forward(float* x, const int32_t* pos, const float* cos_t, const float* sin_t, int64_t M, int64_t heads,
                  int64_t head_dim) {
  rotate(x, pos, cos_t, sin_t, M, heads, head_dim, 1.0f);
}

void rope_backward(float* dx, const int32_t* pos, const float* cos_t, const float* sin_t, int64_t M, int64_t heads,
                   int64_t head_dim) {
  // the rotation is orthogonal: its transpose is the rotation by the opposite angle
  rotate(dx, pos, cos_t, sin_t, M, heads, head_dim, -1.0f);
}

void attention_forward(float* out, float* att, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t H, int64_t KV, int64_t hd) {
  const int64_t group = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads())
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / group;
      for (int64_t t = 0; t < T; ++t) {
        const float* qt = q + ((b * T + t) * H + h) * hd;
        float* a = att + ((b * H + h) * T + t) * T;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= t; ++j) {
          const float* kj = k + ((b * T + j) * KV + kh) * hd;
          float s = 0;
          for (int64_t i = 0; i < hd; ++i) s += qt[i] * kj[i];
          a[j] = s * scale;
          mx = std::max(mx, a[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j <= t; ++j) sum += (a[j] = std::exp(a[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j <= t; ++j) a[j] *= inv;
        for (int64_t j = t + 1; j < T; ++j) a[j] = 0;
        float* o = out + ((b * T + t) * H + h) * hd;
        std::fill(o, o + hd, 0.0f);
        for (int64_t j = 0; j <= t; ++j) {
          const float* vj = v + ((b * T + j) * KV + kh) * hd;
          for (int64_t i = 0; i < hd; ++i) o[i] += a[j] * vj[i];
        }
      }
    }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* att, const float* q,
                        const float* k, const float* v, int64_t B, int64_t T, int64_t H, int64_t KV, int64_t hd) {
  const int64_t group = H / KV;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // one task per (sequence, kv head): the heads that share a kv head write the same dk/dv rows
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads())
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kh = 0; kh < KV; ++kh) {
      for (int64_t t = 0; t < T; ++t) {
        std::fill(dk + ((b * T + t) * KV + kh) * hd, dk + ((b * T + t) * KV + kh + 1) * hd, 0.0f);
        std::fill(dv + ((b * T + t) * KV + kh) * hd, dv + ((b * T + t) * KV + kh + 1) * hd, 0.0f);
      }
      std::vector<float> ds(static_cast<size_t>(T));
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
        for (int64_t t = 0; t < T; ++t) {
          const float* a = att + ((b * H + h) * T + t) * T;
          const float* d = dout + ((b * T + t) * H + h) * hd;
          const float* qt = q + ((b * T + t) * H + h) * hd;
          float dot = 0;
          for (int64_t j = 0; j <= t; ++j) {
            const float* vj = v + ((b * T + j) * KV + kh) * hd;
            float* dvj = dv + ((b * T + j) * KV + kh) * hd;
            float da = 0;
            for (int64_t i = 0; i < hd; ++i) {
              da += d[i] * vj[i];
              dvj[i] += a[j] * d[i];
            }
            ds[j] = da;
            dot += a[j] * da;
          }
          float* dqt = dq + ((b * T + t) * H + h) * hd;
          std::fill(dqt, dqt + hd, 0.0f);
          for (int64_t j = 0; j <= t; ++j) {
            const float g = a[j] * (ds[j] - dot) * scale;  // d(score_j), through the softmax
            const float* kj = k + ((b * T + j) * KV + kh) * hd;
            float* dkj = dk + ((b * T + j) * KV + kh) * hd;
            for (int64_t i = 0; i < hd; ++i) {
              dqt[i] += g * kj[i];
              dkj[i] += g * qt[i];
            }
          }
        }
    }
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(threads()) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(threads()) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], sig = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * sig;
    dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
}

int64_t crossentropy_forward(float* losses, float* logits, const int32_t* targets, int64_t M, int64_t V) {
  int64_t counted = 0;
#pragma omp parallel for schedule(static) num_threads(threads()) reduction(+ : counted) if (M * V > 65536)
  for (int64_t m = 0; m < M; ++m) {
    float* l = logits + m * V;
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, l[i]);
    // log p from the shifted logit, not the log of a rounded probability (finite as p -> 0)
    const float shifted_target = targets[m] >= 0 ? l[targets[m]] - mx : 0.0f;
    double sum = 0;
    for (int64_t i = 0; i < V; ++i) sum += (l[i] = std::exp(l[i] - mx));
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < V; ++i) l[i] *= inv;
    if (targets[m] >= 0) {
      losses[m] = static_cast<float>(std::log(sum)) - shifted_target;
      ++counted;
    } else {
      losses[m] = 0;
    }
  }
  return counted;
}

void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets, int64_t M, int64_t V,
                           float scale) {
#pragma omp parallel for schedule(static) num_threads(threads()) if (M * V > 65536)
  for (int64_t m = 0; m < M; ++m) {
    float* d = dlogits + m * V;
    if (targets[m] < 0) {
      std::fill(d, d + V, 0.0f);
      continue;
    }
    const float* p = probs + m * V;
    for (int64_t i = 0; i < V; ++i) d[i] = p[i] * scale;
    d[targets[m]] -= scale;
  }
}

}  // namespace deltakit::kernels
