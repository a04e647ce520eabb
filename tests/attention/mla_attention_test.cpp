// Sparse and dense MLA flash attention against the double-precision references (dsinfer::ref),
// for every ISA this CPU runs. A bf16 cache on a native bf16 dot takes the pair form (the scaled
// query rounded to bf16, P rounded to bf16 before P . V): its reference is the same computation
// on the rounded query, with a tolerance for P's rounding (see expect_close).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/mla_attention.h"
#include "kernels/reference/mla_attention.h"
#include "test_util.h"

namespace dsinfer {
namespace {

using testing::for_each_isa;
using testing::random_floats;

struct Problem {
  int64_t T, N;
  int H, C = 512, R = 64, K = 0;
  DType dtype = DType::f32;
  std::vector<float> q, c, pe;  // c / pe hold the values the kernel sees (bf16-rounded for bf16)
  std::vector<bf16> c16, pe16;
  std::vector<uint8_t> c8;  // 8-bit latent rows (codes then scales), k_pe then in bf16
  std::vector<int32_t> idx, pos;
  float scale;
  bool bf16_products = true;  // MlaAttnArgs::bf16_products (used with a bf16 cache)
};

Problem make_problem(int64_t T, int64_t N, int H, int K, DType dt, uint32_t seed, int C = 512,
                     int R = 64) {
  Problem p;
  p.T = T, p.N = N, p.H = H, p.K = K, p.C = C, p.R = R, p.dtype = dt;
  p.q = random_floats(size_t(T) * H * (C + R), seed);
  p.c = random_floats(size_t(N) * C, seed + 1);
  p.pe = random_floats(size_t(N) * R, seed + 2);
  if (latent_is_coded(dt)) {  // blocks of different magnitudes, so each has its own scale
    const int64_t rb = latent_row_bytes(dt, C);
    p.c8.resize(size_t(N * rb));
    for (int64_t s = 0; s < N; ++s) {
      for (int i = 0; i < C; ++i) p.c[s * C + i] *= float(1 + (s + i / 128) % 4);
      encode_latent_row(dt, &p.c[s * C], C, &p.c8[s * rb]);
      decode_latent_row(dt, &p.c8[s * rb], C, &p.c[s * C]);
    }
  }
  if (dt != DType::f32) {
    p.pe16 = testing::to_bf16(p.pe);
    for (size_t i = 0; i < p.pe.size(); ++i) p.pe[i] = bf16_to_f32(p.pe16[i]);
  }
  if (dt == DType::bf16) {
    p.c16 = testing::to_bf16(p.c);
    for (size_t i = 0; i < p.c.size(); ++i) p.c[i] = bf16_to_f32(p.c16[i]);
  }
  p.scale = 3.0f / std::sqrt(float(C + R));  // peaky enough to exercise the running max
  std::mt19937 rng(seed + 3);
  if (K > 0) {
    p.idx.resize(size_t(T) * K);
    std::vector<int32_t> perm(N);
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t t = 0; t < T; ++t) {
      std::shuffle(perm.begin(), perm.end(), rng);  // distinct keys, as the indexer emits
      for (int j = 0; j < K; ++j) {
        const bool pad = j >= N || rng() % 5 == 0;
        p.idx[t * K + j] = pad ? -1 : perm[j];
      }
      if (T > 1 && t == T - 1)  // one row with nothing valid
        std::fill(p.idx.begin() + t * K, p.idx.begin() + (t + 1) * K, -1);
    }
  }
  p.pos.resize(T);
  for (int64_t t = 0; t < T; ++t) p.pos[t] = int32_t(N - T + t);  // a chunk at the end
  return p;
}

// The cache, contiguous or paged (blocks in a shuffled order with a spare block in between).
struct Cache {
  std::vector<float> c32, pe32;
  std::vector<bf16> c16, pe16;
  std::vector<uint8_t> c8;
  std::vector<int32_t> table;
  MlaCacheView view;
};

Cache make_cache(const Problem& p, bool paged, uint32_t seed = 9) {
  Cache k;
  const int64_t nb = (p.N + kKvBlockTokens - 1) / kKvBlockTokens;
  const int64_t rows = paged ? (2 * nb) * kKvBlockTokens : p.N;
  std::vector<int64_t> where(p.N);
  if (paged) {
    std::vector<int32_t> phys(2 * nb);
    std::iota(phys.begin(), phys.end(), 0);
    std::shuffle(phys.begin(), phys.end(), std::mt19937(seed));
    k.table.assign(phys.begin(), phys.begin() + nb);
  }
  for (int64_t s = 0; s < p.N; ++s)
    where[s] =
        paged ? int64_t(k.table[s / kKvBlockTokens]) * kKvBlockTokens + s % kKvBlockTokens : s;
  auto place = [&](auto& dst, const auto& src, int w) {
    dst.assign(size_t(rows) * w, {});
    for (int64_t s = 0; s < p.N; ++s)
      std::copy(src.begin() + s * w, src.begin() + (s + 1) * w, dst.begin() + where[s] * w);
  };
  k.view.c_dtype = p.dtype;
  k.view.pe_dtype = p.dtype == DType::f32 ? DType::f32 : DType::bf16;
  k.view.ld_c = p.C;
  if (p.dtype == DType::f32) {
    place(k.c32, p.c, p.C), place(k.pe32, p.pe, p.R);
    k.view.c = k.c32.data(), k.view.k_pe = k.pe32.data();
  } else {
    if (p.dtype == DType::bf16) {
      place(k.c16, p.c16, p.C);
      k.view.c = k.c16.data();
    } else {
      k.view.ld_c = latent_row_bytes(p.dtype, p.C);
      place(k.c8, p.c8, int(k.view.ld_c));
      k.view.c = k.c8.data();
    }
    place(k.pe16, p.pe16, p.R);
    k.view.k_pe = k.pe16.data();
  }
  k.view.ld_pe = p.R, k.view.n_tokens = p.N;
  k.view.block_table = paged ? k.table.data() : nullptr;
  return k;
}

struct Out {
  std::vector<float> o, lse;
  std::vector<float> p_norm;  // pair-form references: sqrt(sum_s P[s]^2) per (query, head)
};

// Whether the kernel runs the pair form for this problem's cache on the active ISA.
bool pair_form(const Problem& p) {
  return p.bf16_products && p.dtype == DType::bf16 && active_isa() == Isa::avx512bf16 &&
         bf16_dot_preferred();
}

Out run_kernel(const Problem& p, const MlaCacheView& view, bool dense) {
  Out out;
  out.o.assign(size_t(p.T) * p.H * p.C, 123.0f);
  out.lse.assign(size_t(p.T) * p.H, 123.0f);
  MlaAttnArgs a;
  a.q = p.q.data(), a.n_queries = p.T, a.n_heads = p.H, a.latent_dim = p.C, a.rope_dim = p.R;
  a.scale = p.scale, a.caches = &view, a.o_lat = out.o.data(), a.lse = out.lse.data();
  a.bf16_products = p.bf16_products;
  if (dense)
    dense_mla_attention(a, p.pos.data());
  else
    sparse_mla_attention(a, p.idx.data(), p.K);
  return out;
}

// The reference; with `pairs`, on the query the pair form uses (q * scale rounded to bf16), with
// the norm of each softmax row, which bounds the effect of rounding P.
Out run_ref(const Problem& p, bool dense, bool pairs = false) {
  Out out;
  out.o.resize(size_t(p.T) * p.H * p.C);
  out.lse.resize(size_t(p.T) * p.H);
  ref::MlaDims d{p.H, 128, p.R, 128, p.C};
  std::vector<float> q = p.q;
  float scale = p.scale;
  if (pairs) {
    for (auto& x : q) x = bf16_to_f32(f32_to_bf16(x * p.scale));
    scale = 1.0f;
  }
  if (dense)
    ref::dense_mla_attention(q.data(), p.T, d, p.c.data(), p.pe.data(), p.N, p.pos.data(), scale,
                             out.o.data(), out.lse.data());
  else
    ref::sparse_mla_attention(q.data(), p.T, d, p.c.data(), p.pe.data(), p.N, p.idx.data(), p.K,
                              scale, out.o.data(), out.lse.data());
  if (!pairs) return out;
  const int DQ = p.C + p.R;
  out.p_norm.assign(size_t(p.T) * p.H, 0.0f);
  for (int64_t t = 0; t < p.T; ++t) {
    std::vector<int64_t> keys;
    if (dense)
      for (int64_t s = 0; s <= std::min<int64_t>(p.pos[t], p.N - 1); ++s) keys.push_back(s);
    else
      for (int j = 0; j < p.K; ++j)
        if (p.idx[t * p.K + j] >= 0) keys.push_back(p.idx[t * p.K + j]);
    for (int h = 0; h < p.H; ++h) {
      const float* qh = &q[(t * p.H + h) * DQ];
      std::vector<double> sc;
      for (int64_t s : keys) {
        double x = 0;
        for (int c = 0; c < p.C; ++c) x += double(qh[c]) * p.c[s * p.C + c];
        for (int r = 0; r < p.R; ++r) x += double(qh[p.C + r]) * p.pe[s * p.R + r];
        sc.push_back(x);
      }
      out.p_norm[size_t(t * p.H + h)] = float(testing::softmax_norm(sc));
    }
  }
  return out;
}

// The references a problem's kernel results are checked against: exact, and the pair form's.
struct Want {
  Out exact, pairs;
};
Want run_refs(const Problem& p, bool dense) {
  Want w{run_ref(p, dense), {}};
  if (p.dtype == DType::bf16) w.pairs = run_ref(p, dense, true);
  return w;
}

// Against the reference the kernel's form computes. The pair form rounds every P[s] to bf16 (a
// relative error of at most 2^-8, uniform): o[c] moves by sum_s dP[s] v[s][c], of standard
// deviation at most 2^-8 / sqrt(3) * |P| * max |v| (|v| <= 1 here), allowed six times over.
void expect_close(const Out& got, const Want& want_both, const Problem& p) {
  const bool pairs = pair_form(p);
  const Out& want = pairs ? want_both.pairs : want_both.exact;
  ASSERT_EQ(got.o.size(), want.o.size());
  int bad = 0;
  for (size_t i = 0; i < want.lse.size() && bad < 5; ++i) {
    if (std::isinf(want.lse[i])) {
      if (!(std::isinf(got.lse[i]) && got.lse[i] < 0)) ++bad, ADD_FAILURE() << "lse " << i;
    } else if (!(std::fabs(got.lse[i] - want.lse[i]) <= 1e-4f * (1 + std::fabs(want.lse[i])))) {
      ++bad, ADD_FAILURE() << "lse " << i << ": " << got.lse[i] << " vs " << want.lse[i];
    }
  }
  const float p_sigma = float(testing::kPairRoundingSigmas);
  for (size_t i = 0; i < want.o.size() && bad < 5; ++i) {
    const float tol = 2e-5f + 1e-4f * std::fabs(want.o[i]) +
                      (pairs ? p_sigma * want.p_norm[i / size_t(p.C)] : 0.0f);
    if (!(std::fabs(got.o[i] - want.o[i]) <= tol))
      ++bad, ADD_FAILURE() << "o " << i << ": " << got.o[i] << " vs " << want.o[i];
  }
}

void expect_identical(const Out& a, const Out& b) {
  EXPECT_EQ(0, std::memcmp(a.o.data(), b.o.data(), a.o.size() * 4));
  EXPECT_EQ(0, std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * 4));
}

// Sparse, every (H, K) of the issue, f32 cache; few queries for the big cases.
TEST(SparseMlaAttention, MatchesReferenceAcrossShapes) {
  for (int H : {1, 16, 64, 128})
    for (int K : {1, 7, 64, 2048}) {
      SCOPED_TRACE("H " + std::to_string(H) + " K " + std::to_string(K));
      const int64_t T = std::clamp<int64_t>((1 << 17) / (int64_t(H) * K), 2, 6);
      const int64_t N = K == 2048 ? 3000 : 200;
      Problem p = make_problem(T, N, H, K, DType::f32, uint32_t(H * 31 + K));
      const Want want = run_refs(p, false);
      Cache cache = make_cache(p, false);
      for_each_isa([&](Isa) { expect_close(run_kernel(p, cache.view, false), want, p); });
    }
}

// bf16 cache, a 16K-token cache, paged and contiguous give bit-identical results; with and
// without bf16 products (--precision f32 with a bf16 cache keeps f32 products).
TEST(SparseMlaAttention, Bf16PagedLargeCache) {
  Problem p = make_problem(3, 16384, 64, 2048, DType::bf16, 77);
  const Want want = run_refs(p, false);
  Cache flat = make_cache(p, false), paged = make_cache(p, true);
  for (bool products : {true, false}) {
    p.bf16_products = products;
    SCOPED_TRACE(products ? "bf16 products" : "f32 products");
    for_each_isa([&](Isa) {
      const Out a = run_kernel(p, flat.view, false);
      expect_close(a, want, p);
      expect_identical(a, run_kernel(p, paged.view, false));
    });
  }
}

TEST(SparseMlaAttention, PagedF32AndAllPadding) {
  Problem p = make_problem(5, 700, 16, 64, DType::f32, 5);
  std::fill(p.idx.begin(), p.idx.begin() + 64, -1);  // first row: nothing valid either
  const Want want = run_refs(p, false);
  Cache flat = make_cache(p, false), paged = make_cache(p, true);
  for_each_isa([&](Isa) {
    const Out a = run_kernel(p, flat.view, false);
    expect_close(a, want, p);
    expect_identical(a, run_kernel(p, paged.view, false));
    for (int h = 0; h < p.H; ++h) EXPECT_TRUE(std::isinf(a.lse[h]) && a.lse[h] < 0);
    for (int i = 0; i < p.H * p.C; ++i) ASSERT_EQ(a.o[i], 0.0f);
  });
}

// Decode (one query): split across keys and head groups, at several thread counts.
TEST(SparseMlaAttention, DecodeSplitsAtAnyThreadCount) {
  Problem p = make_problem(1, 5000, 128, 2048, DType::bf16, 11);
  const Want want = run_refs(p, false);
  Cache cache = make_cache(p, true);
  const int saved = num_threads();
  for (int threads : {1, 3, 8}) {
    set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    for_each_isa([&](Isa) { expect_close(run_kernel(p, cache.view, false), want, p); });
  }
  set_num_threads(saved);
}

// Many queries (prefill): one unit per query, written straight to the output, at 1 and 2
// threads; dense causal too.
TEST(SparseMlaAttention, PrefillManyQueries) {
  Problem p = make_problem(48, 500, 16, 64, DType::bf16, 31);
  Problem d = make_problem(40, 200, 16, 0, DType::f32, 32);
  for (int64_t t = 0; t < d.T; ++t) d.pos[t] = int32_t(t * 5);
  const Want want = run_refs(p, false), want_d = run_refs(d, true);
  Cache cache = make_cache(p, true), cache_d = make_cache(d, false);
  const int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    for_each_isa([&](Isa) {
      expect_close(run_kernel(p, cache.view, false), want, p);
      expect_close(run_kernel(d, cache_d.view, true), want_d, d);
    });
  }
  set_num_threads(saved);
}

// Small latent / rope widths (test models) with tails in every micro-tile.
TEST(SparseMlaAttention, SmallDims) {
  Problem p = make_problem(4, 90, 5, 37, DType::f32, 3, /*C=*/42, /*R=*/6);
  const Want want = run_refs(p, false);
  Cache cache = make_cache(p, false);
  for_each_isa([&](Isa) { expect_close(run_kernel(p, cache.view, false), want, p); });
}

// The same with a bf16 cache (the pair form where the dot is native): an odd query width (a
// zero-padded last pair), a latent width that is not whole vectors (the scalar zip tail), odd
// key counts (an unpartnered last key in a block), sparse and dense.
TEST(SparseMlaAttention, SmallDimsBf16) {
  Problem p = make_problem(4, 91, 5, 37, DType::bf16, 6, /*C=*/42, /*R=*/5);
  Problem d = make_problem(5, 53, 3, 0, DType::bf16, 7, /*C=*/70, /*R=*/3);
  for (int64_t t = 0; t < d.T; ++t) d.pos[t] = int32_t(t * 11 + 2);
  const Want want = run_refs(p, false), want_d = run_refs(d, true);
  Cache cache = make_cache(p, true), cache_d = make_cache(d, false);
  for_each_isa([&](Isa) {
    expect_close(run_kernel(p, cache.view, false), want, p);
    expect_close(run_kernel(d, cache_d.view, true), want_d, d);
  });
}

// Two sequences decoded in one call, each with its own cache.
TEST(SparseMlaAttention, SeveralCaches) {
  Problem a = make_problem(1, 300, 16, 64, DType::bf16, 21),
          b = make_problem(1, 500, 16, 64, DType::bf16, 22);
  const Want wa = run_refs(a, false), wb = run_refs(b, false);
  Cache ca = make_cache(a, true), cb = make_cache(b, false);
  MlaCacheView views[2] = {cb.view, ca.view};
  std::vector<float> q = a.q;
  q.insert(q.end(), b.q.begin(), b.q.end());
  std::vector<int32_t> idx = a.idx;
  idx.insert(idx.end(), b.idx.begin(), b.idx.end());
  const int32_t which[2] = {1, 0};
  for_each_isa([&](Isa) {
    Out got;
    got.o.resize(2 * 16 * 512);
    got.lse.resize(2 * 16);
    MlaAttnArgs args;
    args.q = q.data(), args.n_queries = 2, args.n_heads = 16, args.scale = a.scale;
    args.caches = views, args.cache_of_query = which;
    args.bf16_products = a.bf16_products;
    args.o_lat = got.o.data(), args.lse = got.lse.data();
    sparse_mla_attention(args, idx.data(), 64);
    Out ga{{got.o.begin(), got.o.begin() + 16 * 512}, {got.lse.begin(), got.lse.begin() + 16}, {}};
    Out gb{{got.o.begin() + 16 * 512, got.o.end()}, {got.lse.begin() + 16, got.lse.end()}, {}};
    expect_close(ga, wa, a);
    expect_close(gb, wb, b);
  });
}

// C8: the latent as FP8 / INT8 codes with a scale per 128 values (k_pe bf16), decoded in the
// kernel's gather: the same result as the reference on the decoded values, sparse and dense,
// paged and contiguous (bit-identical), decode splits and prefill, and a latent width that is
// not a multiple of 128 (a short last scale block).
TEST(SparseMlaAttention, EightBitLatentCache) {
  for (DType dt : {DType::fp8_e4m3, DType::i8}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Problem dec = make_problem(1, 3000, 64, 2048, dt, 41);
    Problem pre = make_problem(20, 400, 16, 64, dt, 42);
    Problem den = make_problem(6, 300, 16, 0, dt, 43);
    Problem odd = make_problem(4, 90, 5, 37, dt, 44, /*C=*/200, /*R=*/6);
    const Want w_dec = run_refs(dec, false), w_pre = run_refs(pre, false),
               w_den = run_refs(den, true), w_odd = run_refs(odd, false);
    Cache c_dec = make_cache(dec, true), f_dec = make_cache(dec, false),
          c_pre = make_cache(pre, true), c_den = make_cache(den, false),
          c_odd = make_cache(odd, true);
    for_each_isa([&](Isa) {
      const Out a = run_kernel(dec, c_dec.view, false);
      expect_close(a, w_dec, dec);
      expect_identical(a, run_kernel(dec, f_dec.view, false));
      expect_close(run_kernel(pre, c_pre.view, false), w_pre, pre);
      expect_close(run_kernel(den, c_den.view, true), w_den, den);
      expect_close(run_kernel(odd, c_odd.view, false), w_odd, odd);
    });
  }
}

TEST(SparseMlaAttention, RejectsOutOfRangeIndex) {
  Problem p = make_problem(1, 100, 16, 7, DType::f32, 1);
  p.idx[3] = 100;
  Cache cache = make_cache(p, false);
  EXPECT_THROW(run_kernel(p, cache.view, false), std::out_of_range);
  cache.view.c_dtype = DType::u8;
  p.idx[3] = 1;
  EXPECT_THROW(run_kernel(p, cache.view, false), std::invalid_argument);
  Problem q = make_problem(1, 100, 16, 7, DType::i8, 1);
  Cache coded = make_cache(q, false);
  coded.view.ld_c = 512;  // no room for the scales
  EXPECT_THROW(run_kernel(q, coded.view, false), std::invalid_argument);
}

TEST(DenseMlaAttention, MatchesReference) {
  for (auto [T, N, H] :
       {std::tuple<int64_t, int64_t, int>{7, 300, 16}, {1, 2000, 128}, {3, 1500, 1}}) {
    SCOPED_TRACE("T " + std::to_string(T) + " N " + std::to_string(N));
    Problem p = make_problem(T, N, H, 0, DType::bf16, uint32_t(N));
    if (T > 1) p.pos[0] = 0;  // the first token of a sequence sees only itself
    const Want want = run_refs(p, true);
    Cache flat = make_cache(p, false), paged = make_cache(p, true);
    for (bool products : {true, false}) {
      p.bf16_products = products;
      SCOPED_TRACE(products ? "bf16 products" : "f32 products");
      for_each_isa([&](Isa) {
        const Out a = run_kernel(p, flat.view, true);
        expect_close(a, want, p);
        expect_identical(a, run_kernel(p, paged.view, true));
      });
    }
  }
}

}  // namespace
}  // namespace dsinfer
