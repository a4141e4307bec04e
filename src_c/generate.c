/* Generation: a model's output fed back as its next input, every step in C.
 *
 * Tokens: the prompt's ids are stepped through the model one by one; then each step turns the
 * output row (scores over the V tokens of the embedding) into the next id (greedy, or sampled
 * at a temperature among the top k) and feeds it back. Forecast: the prompt's rows are stepped
 * through; then each output row (F values, the input's width) is the next forecast and the
 * next input. Arguments are checked by the caller (rnnrt/generate.py).
 *
 * Random numbers: xoshiro256** 1.0 (Blackman and Vigna, 2018), its 256-bit state filled from
 * the 64-bit seed by splitmix64 (Steele, Lea and Flood, 2014), as the xoshiro authors advise.
 * Both use only 64-bit integer arithmetic, so a seed gives the same numbers on every platform. */
#include <math.h>
#include <string.h>
#include "rnnrt.h"

static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rnnrt_rng_seed(rnnrt_rng *g, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        g->s[i] = splitmix64_next(&seed);
    }
}

uint64_t rnnrt_rng_next(rnnrt_rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double rnnrt_rng_uniform(rnnrt_rng *g)
{
    /* The top 53 bits: every multiple of 2^-53 in [0, 1) equally likely. */
    return (double)(rnnrt_rng_next(g) >> 11) * (1.0 / 9007199254740992.0);
}

/* The value at index k of x[0..n) sorted in descending order (Hoare quickselect; x is
 * reordered). x holds no NaN. */
static double kth_largest(double *x, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double a = x[lo], b = x[lo + (hi - lo) / 2], c = x[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int i = lo, j = hi;
        while (i <= j) {
            while (x[i] > pivot) {
                i++;
            }
            while (x[j] < pivot) {
                j--;
            }
            if (i <= j) {
                double tmp = x[i];
                x[i++] = x[j];
                x[j--] = tmp;
            }
        }
        /* x[lo..j] >= pivot >= x[i..hi], and anything between equals the pivot. */
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            return x[k];
        }
    }
    return x[k];
}

/* The next token from one row of V scores, or -1 when no score is usable (all NaN, -inf, or
 * zero probabilities). Scores are logits, or probabilities when g->probs (their log is a
 * logit). Greedy takes the first highest; sampling draws from softmax(logit / temperature)
 * over the top_k highest (ties at the k-th value: the lowest ids). */
static long next_token(const rnnrt_generate_args *g, const float *scores, double *logit,
                       double *weight, rnnrt_rng *rng)
{
    int V = g->width;
    double best = -INFINITY;
    long arg = -1;
    for (int i = 0; i < V; i++) {
        double v = scores[i];
        double l = g->probs ? (v > 0.0 ? log(v) : -INFINITY) : v;
        l = l == l ? l : -INFINITY;                  /* NaN is never chosen */
        logit[i] = l;
        if (l > best) {
            best = l;
            arg = i;
        }
    }
    if (arg < 0 || g->temperature <= 0.0) {
        return arg;
    }
    int k = g->top_k > 0 && g->top_k < V ? g->top_k : V;
    double threshold = -INFINITY;
    if (k < V) {
        memcpy(weight, logit, sizeof(double) * V);
        threshold = kth_largest(weight, V, k - 1);
    }
    int above = 0;
    for (int i = 0; i < V; i++) {
        above += logit[i] > threshold;
    }
    int ties = k - above;                            /* ids at the threshold still admitted */
    double total = 0.0;
    for (int i = 0; i < V; i++) {
        int admitted = logit[i] > threshold || (logit[i] == threshold && ties-- > 0);
        /* The best weighs 1 (also when it is +inf); the others exp((l - best) / T). */
        weight[i] = !admitted ? 0.0
                    : logit[i] == best ? 1.0 : exp((logit[i] - best) / g->temperature);
        total += weight[i];
    }
    double u = rnnrt_rng_uniform(rng) * total, acc = 0.0;
    long last = arg;
    for (int i = 0; i < V; i++) {
        if (weight[i] > 0.0) {
            acc += weight[i];
            last = i;
            if (u < acc) {
                return i;
            }
        }
    }
    return last;                                     /* u rounded up to the total */
}

/* One model step (B = 1, T = 1) with the stream state of the call. */
static int step(const rnnrt_op *ops, int n_ops, rnnrt_call *call)
{
    rnnrt_plan_run(ops, n_ops, call);
    return call->bad_id_op < 0;
}

long rnnrt_generate(const rnnrt_op *ops, int n_ops, rnnrt_call *call, rnnrt_generate_args *g)
{
    long W = g->width;
    int tokens = g->mode == GEN_TOKENS;
    int64_t *in_ids = (int64_t *)call->slots[g->in_slot];
    float *in_row = (float *)call->slots[g->in_slot];
    const float *out = (const float *)call->slots[g->out_slot];
    rnnrt_rng rng;
    rnnrt_rng_seed(&rng, g->seed);
    g->failed_step = -1;
    call->B = 1;

    for (long t = 0; t < g->n_prompt; t++) {
        if (tokens) {
            in_ids[0] = ((const int64_t *)g->prompt)[t];
        } else {
            memcpy(in_row, (const float *)g->prompt + t * W, sizeof(float) * W);
        }
        if (!step(ops, n_ops, call)) {
            return RNNRT_GEN_BAD_ID;
        }
    }
    for (long s = 0; s < g->steps; s++) {
        if (tokens) {
            long id = next_token(g, out, g->scratch, g->scratch + W, &rng);
            if (id < 0) {
                g->failed_step = s;
                return RNNRT_GEN_NO_SCORE;
            }
            ((int64_t *)g->result)[s] = id;
            if (id == g->stop) {
                return s + 1;
            }
            in_ids[0] = id;
        } else {
            memcpy((float *)g->result + s * W, out, sizeof(float) * W);
            memcpy(in_row, out, sizeof(float) * W);
        }
        /* The last output needs no step after it. */
        if (s + 1 < g->steps && !step(ops, n_ops, call)) {
            return RNNRT_GEN_BAD_ID;
        }
    }
    return g->steps;
}
