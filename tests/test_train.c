/* Tests the training run end to end on a tiny synthetic set: same seed -> bit-identical
 * steps.csv, an interrupted (--max-steps) run resumed from its checkpoint -> bit-identical to an
 * uninterrupted one, frozen mode touches only the decoder, and bad weight files give errors that
 * name the key and leave the model untouched. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "oclseg/data.h"
#include "oclseg/fit.h"
#include "oclseg/safetensors.h"

static char root[64], data_dir[96];

static void make_data(void) {
    if (root[0]) return;
    harness_mkdtemp(root, sizeof root, "train");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    ck_assert_int_eq(oclseg_synth_write(data_dir, 10, 3, 7), OCLSEG_OK);
}

static void base_options(oclseg_fit_options *o, const char *out) {
    oclseg_fit_options_default(o);
    o->data_dir = data_dir;
    o->out_dir = out;
    o->size = 32;
    o->batch = 4; /* 10 images: batches of 4, 4, 2 (the partial batch is kept) */
    o->val_fraction = 0; /* all 10 train (the default would hold 1 out for validation) */
    o->epochs = 2;
    o->quiet = 1;
    o->device = getenv("OCLSEG_TEST_DEVICE");
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)len + 1, 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return b;
}

static char *run_and_read_steps(oclseg_fit_options *o) {
    ck_assert_int_eq(oclseg_fit(o), OCLSEG_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/steps.csv", o->out_dir);
    return slurp(path);
}

START_TEST(same_seed_same_losses) {
    make_data();
    oclseg_fit_options o;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    base_options(&o, a);
    char *sa = run_and_read_steps(&o);
    base_options(&o, b);
    char *sb = run_and_read_steps(&o);
    ck_assert_str_eq(sa, sb);
    int lines = 0;
    for (char *p = sa; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 1 + 2 * 3); /* header + 2 epochs x 3 steps */
    /* another seed changes the losses */
    char c[128];
    snprintf(c, sizeof c, "%s/c", root);
    base_options(&o, c);
    o.seed = 2;
    char *sc = run_and_read_steps(&o);
    ck_assert_str_ne(sa, sc);
    free(sa);
    free(sb);
    free(sc);
}
END_TEST

/* Stops after 4 steps (mid-epoch 2), resumes, and must match the uninterrupted run bit for bit. */
static void check_resume(int frozen) {
    make_data();
    oclseg_fit_options o;
    char full[128], part[128], ckpt[160];
    snprintf(full, sizeof full, "%s/full%d", root, frozen);
    snprintf(part, sizeof part, "%s/part%d", root, frozen);
    base_options(&o, full);
    o.frozen_encoder = frozen;
    char *expected = run_and_read_steps(&o);
    base_options(&o, part);
    o.frozen_encoder = frozen;
    o.max_steps = 4;
    free(run_and_read_steps(&o));
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", part);
    base_options(&o, part);
    o.frozen_encoder = frozen;
    o.resume = ckpt;
    char *resumed = run_and_read_steps(&o);
    ck_assert_str_eq(expected, resumed);
    /* the weights too */
    char wa[160], wb[160];
    snprintf(wa, sizeof wa, "%s/weights.safetensors", full);
    snprintf(wb, sizeof wb, "%s/weights.safetensors", part);
    oclseg_st_file *fa, *fb;
    ck_assert_int_eq(oclseg_st_load(wa, &fa), OCLSEG_OK);
    ck_assert_int_eq(oclseg_st_load(wb, &fb), OCLSEG_OK);
    ck_assert_int_eq(fa->count, fb->count);
    for (int i = 0; i < fa->count; i++) {
        const oclseg_st_tensor *tb = oclseg_st_find(fb, fa->tensors[i].name);
        ck_assert_ptr_nonnull(tb);
        ck_assert_msg(tb->nbytes == fa->tensors[i].nbytes &&
                          memcmp(tb->data, fa->tensors[i].data, tb->nbytes) == 0,
                      "%s differs after resume", fa->tensors[i].name);
    }
    oclseg_st_free(fa);
    oclseg_st_free(fb);
    free(expected);
    free(resumed);
}

START_TEST(resume_is_bit_identical_finetune) { check_resume(0); }
END_TEST
START_TEST(resume_is_bit_identical_frozen) { check_resume(1); }
END_TEST

/* A resumed run with other mode settings is refused instead of silently diverging. */
START_TEST(resume_with_other_mode_refused) {
    make_data();
    char part[128], ckpt[160];
    snprintf(part, sizeof part, "%s/part0", root);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", part);
    if (access(ckpt, F_OK) != 0) check_resume(0);
    oclseg_fit_options o;
    base_options(&o, part);
    o.resume = ckpt;
    o.frozen_encoder = 1;
    ck_assert_int_eq(oclseg_fit(&o), OCLSEG_ERR_INVALID_ARG);
}
END_TEST

/* Frozen mode: encoder weights and BN statistics unchanged after training, decoder changed. */
START_TEST(frozen_trains_only_the_decoder) {
    make_data();
    oclseg_fit_options o;
    char out[128], w[160];
    snprintf(out, sizeof out, "%s/frozen-init", root);
    base_options(&o, out);
    o.frozen_encoder = 1;
    o.epochs = 1;
    ck_assert_int_eq(oclseg_fit(&o), OCLSEG_OK);
    /* the same init (seed 1) without training, for comparison */
    oclseg_ctx *ctx = harness_ctx(0);
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = 32;
    cfg.max_batch = 4;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, 1), OCLSEG_OK);
    snprintf(w, sizeof w, "%s/weights.safetensors", out);
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(w, &f), OCLSEG_OK);
    size_t largest = oclseg_model_max_param_numel(m);
    float *mine = malloc(largest * sizeof *mine), *trained = malloc(largest * sizeof *trained);
    int changed_decoder = 0;
    for (int i = 0; i < m->param_count; i++) {
        const oclseg_param *p = &m->params[i];
        size_t n = oclseg_param_numel(p);
        ck_assert_int_eq(oclseg_model_read_param(m, i, mine), OCLSEG_OK);
        ck_assert_int_eq(oclseg_st_read_f32(f, p->name, trained, n), OCLSEG_OK);
        int same = memcmp(mine, trained, n * sizeof(float)) == 0;
        if (p->in_encoder) ck_assert_msg(same, "frozen encoder entry %s changed", p->name);
        else changed_decoder += !same;
    }
    ck_assert_int_eq(changed_decoder, 8); /* 4 transposed convs: weight and bias each */
    int64_t count;
    ck_assert_int_eq(oclseg_st_read_i64(f, "encoder.0.1.num_batches_tracked", &count, 1), OCLSEG_OK);
    ck_assert(count == 0);
    free(mine);
    free(trained);
    oclseg_st_free(f);
    oclseg_model_free(m);
}
END_TEST

/* A randomly initialised 32x32 model on the first device for batches of up to max_batch. */
static oclseg_model *small_model(int max_batch, uint64_t seed) {
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = 32;
    cfg.max_batch = max_batch;
    oclseg_model *m;
    ck_assert_int_eq(oclseg_model_create(harness_ctx(0), &cfg, &m), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(m, seed), OCLSEG_OK);
    return m;
}

/* ---- the learning-rate schedule through the trainer ---------------------------------------- */
/* Every trained parameter and its gradient, concatenated (running statistics left out). */
static size_t read_trained(oclseg_model *m, int grads, float *out) {
    size_t at = 0;
    for (int i = 0; i < m->param_count; i++) {
        if (m->params[i].is_buffer) continue;
        ck_assert_int_eq(grads ? oclseg_model_read_grad(m, i, out + at)
                               : oclseg_model_read_param(m, i, out + at), OCLSEG_OK);
        at += oclseg_param_numel(&m->params[i]);
    }
    return at;
}

/* The name of the trained parameter holding element `at` of read_trained's concatenation. */
static const char *param_name_at(const oclseg_model *m, size_t at) {
    for (int i = 0; i < m->param_count; i++) {
        if (m->params[i].is_buffer) continue;
        size_t n = oclseg_param_numel(&m->params[i]);
        if (at < n) return m->params[i].name;
        at -= n;
    }
    return "?";
}

/* One plain-SGD step s through oclseg_trainer_step: every parameter must have moved by exactly
 * -lr(s) * grad, lr(s) the schedule's rate of this step (rounded to float, as the kernel gets
 * it). p_new = p + (-lr) * g rounds once or twice (fma or not), so per element
 * |dp + lr g| <= eps * (|p_new| + |lr g|), eps = FLT_EPSILON (2 ulp of margin). Returns the
 * worst ratio error / tolerance; *fitted gets the least-squares rate -sum(dp g) / sum(g^2). */
static double check_sgd_step(oclseg_trainer *t, const float *images, const float *masks, int n,
                             double lr, float *before, float *after, float *grad, double *fitted) {
    oclseg_model *m = t->model;
    size_t count = read_trained(m, 0, before);
    ck_assert_int_eq(oclseg_trainer_step(t, images, masks, n), OCLSEG_OK);
    ck_assert_uint_eq(read_trained(m, 0, after), count);
    ck_assert_uint_eq(read_trained(m, 1, grad), count);
    const double lr_f = (float)lr;
    double worst = 0, dot = 0, g2 = 0;
    size_t moved = 0, worst_at = 0;
    for (size_t i = 0; i < count; i++) {
        const double dp = (double)after[i] - (double)before[i], step = lr_f * grad[i];
        const double tol = FLT_EPSILON * (fabs((double)after[i]) + fabs(step)) + 1e-30;
        if (fabs(dp + step) / tol > worst) {
            worst = fabs(dp + step) / tol;
            worst_at = i;
        }
        moved += fabs(step) > 100 * tol; /* elements where a wrong rate would show */
        dot += dp * grad[i];
        g2 += (double)grad[i] * grad[i];
    }
    ck_assert_msg(moved > 1000, "only %zu parameters moved measurably", moved);
    *fitted = -dot / g2;
    if (worst > 1.0)
        fprintf(stderr, "worst element %zu of %zu (%s): %.9g -> %.9g, gradient %.9g\n", worst_at,
                count, param_name_at(m, worst_at), (double)before[worst_at],
                (double)after[worst_at], (double)grad[worst_at]);
    return worst;
}

/* Plain SGD (no momentum, no weight decay) under cosine with warm-up: the rate of step s is the
 * schedule's at s at every step (warm-up ramp and cosine), also after a checkpoint save and a
 * load into another model (the trainer's step count comes back with it). A schedule read one
 * step late, or a resumed trainer restarting its schedule, moves the parameters by a rate off
 * by a factor (s + 2) / (s + 1) in warm-up. */
START_TEST(sgd_steps_follow_the_schedule_across_a_resume) {
    make_data();
    oclseg_model *m = small_model(2, 3);
    oclseg_trainer_config tc = {.seed = 3};
    oclseg_optim_config_default(&tc.optim, OCLSEG_OPT_SGD);
    tc.optim.lr = 1e-3f;
    tc.optim.momentum = 0.0f; /* plain SGD (the default has momentum 0.9) */
    enum { STEPS = 6, SAVED_AT = 3, N = 2, S = 32 };
    oclseg_schedule_default(&tc.schedule, OCLSEG_SCHED_COSINE, STEPS);
    tc.schedule.warmup_steps = 3; /* rates max/3, 2max/3, max, then the cosine down */
    oclseg_trainer *t;
    ck_assert_int_eq(oclseg_trainer_create(m, &tc, &t), OCLSEG_OK);
    size_t total = m->param_floats;
    float *before = malloc(total * sizeof *before), *after = malloc(total * sizeof *after);
    float *grad = malloc(total * sizeof *grad);
    float images[N * 3 * S * S], masks[N * S * S];
    char ckpt[160];
    snprintf(ckpt, sizeof ckpt, "%s/schedule.ckpt.safetensors", root);
    ck_assert(before && after && grad);
    for (int s = 0; s < STEPS; s++) {
        if (s == SAVED_AT) { /* save, then continue in a fresh model + trainer from the file */
            oclseg_run_position pos = {.step_in_epoch = SAVED_AT, .best_jaccard = -1.0};
            ck_assert_int_eq(oclseg_checkpoint_save(t, &pos, NULL, ckpt), OCLSEG_OK);
            oclseg_trainer_free(t);
            oclseg_model_free(m);
            m = small_model(2, 4);
            ck_assert_int_eq(oclseg_trainer_create(m, &tc, &t), OCLSEG_OK);
            ck_assert_int_eq(oclseg_checkpoint_load(t, ckpt, &pos, NULL), OCLSEG_OK);
            ck_assert_int_eq(t->step, SAVED_AT);
        }
        harness_fill_uniform(images, sizeof images / sizeof *images, -2.0f, 2.0f, 100 + (uint64_t)s);
        harness_fill_uniform(masks, sizeof masks / sizeof *masks, 0.0f, 1.0f, 200 + (uint64_t)s);
        for (size_t i = 0; i < sizeof masks / sizeof *masks; i++) masks[i] = masks[i] < 0.3f;
        const double lr = oclseg_schedule_lr(&tc.schedule, tc.optim.lr, s);
        double fitted;
        double worst = check_sgd_step(t, images, masks, N, lr, before, after, grad, &fitted);
        fprintf(stderr, "schedule through the trainer, step %d: lr %.6g, fitted %.6g, worst "
                "|dp + lr g| %.3g x tolerance\n", s, lr, fitted, worst);
        ck_assert_msg(worst <= 1.0, "step %d: the update is not -lr(%d) * grad (lr %.6g, fitted "
                      "rate %.6g, worst element %.3g x tolerance)", s, s, lr, fitted, worst);
    }
    float losses[OCLSEG_LOSS_RING];
    int64_t first;
    int count;
    ck_assert_int_eq(oclseg_trainer_drain_losses(t, losses, &first, &count), OCLSEG_OK);
    free(before);
    free(after);
    free(grad);
    oclseg_trainer_free(t);
    oclseg_model_free(m);
}
END_TEST

/* Missing key, wrong shape, unexpected key: clear error, model untouched. A tensor stored
 * transposed (Cin and Cout swapped: the same element count, another shape) is refused for one
 * tensor of each kind: a 3x3 convolution, a depthwise 3x3, a 1x1 convolution and a transposed
 * convolution (a loader comparing only sizes would load each of them scrambled). */
START_TEST(bad_weights_rejected_whole) {
    make_data();
    oclseg_model *m = small_model(1, 5);
    char good[160], bad[160];
    snprintf(good, sizeof good, "%s/good.safetensors", root);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", root);
    ck_assert_int_eq(oclseg_weights_save(m, good), OCLSEG_OK);
    oclseg_st_file *f;
    ck_assert_int_eq(oclseg_st_load(good, &f), OCLSEG_OK);
    float before[32 * 3 * 3 * 3], after[32 * 3 * 3 * 3];
    ck_assert_int_eq(oclseg_model_read_param(m, 0, before), OCLSEG_OK);
    /* variant 0: a key missing; 1..4: the tensor named here transposed; 5: an unexpected key */
    static const char *const transposed[] = {
        NULL,
        "encoder.0.0.weight",        /* 3x3 convolution (32, 3, 3, 3) */
        "encoder.1.conv.0.0.weight", /* depthwise 3x3 (32, 1, 3, 3) */
        "encoder.1.conv.1.weight",   /* 1x1 convolution (16, 32, 1, 1) */
        "decoder.3.weight",          /* transposed convolution (Cin, Cout, 2, 2) */
        NULL};
    const int variants = (int)(sizeof transposed / sizeof transposed[0]);
    for (int variant = 0; variant < variants; variant++) {
        oclseg_st_writer *w;
        ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
        int swapped = 0;
        for (int i = 0; i < f->count; i++) {
            const oclseg_st_tensor *t = &f->tensors[i];
            if (variant == 0 && strcmp(t->name, "encoder.5.conv.1.0.weight") == 0) continue;
            int64_t shape[8];
            memcpy(shape, t->shape, sizeof shape);
            int ndim = t->ndim;
            if (transposed[variant] && strcmp(t->name, transposed[variant]) == 0) {
                ck_assert_int_ne(t->shape[0], t->shape[1]); /* the swap changes the shape */
                shape[0] = t->shape[1]; /* swapped Cin/Cout: same size, wrong shape */
                shape[1] = t->shape[0];
                swapped++;
            }
            ck_assert_int_eq(oclseg_st_writer_add(w, t->name, t->dtype, ndim, shape, t->data), OCLSEG_OK);
        }
        ck_assert_int_eq(swapped, transposed[variant] != NULL);
        float extra = 1;
        int64_t one = 1;
        if (variant == variants - 1)
            oclseg_st_writer_add(w, "decoder.9.weight", OCLSEG_ST_F32, 1, &one, &extra);
        ck_assert_int_eq(oclseg_st_writer_write(w, bad), OCLSEG_OK);
        oclseg_st_writer_free(w);
        /* overwrite the first parameter in the model first, so "untouched" is observable */
        int st = oclseg_weights_load(m, bad, OCLSEG_WEIGHTS_FULL, NULL);
        ck_assert_msg(transposed[variant] ? st == OCLSEG_ERR_FORMAT : st != OCLSEG_OK,
                      "variant %d (%s): status %d", variant,
                      transposed[variant] ? transposed[variant] : "-", st);
        ck_assert_int_eq(oclseg_model_read_param(m, 0, after), OCLSEG_OK);
        ck_assert_mem_eq(before, after, sizeof before);
    }
    /* a torchvision file where a full state dict is expected (and vice versa) */
    ck_assert_int_ne(oclseg_weights_load(m, good, OCLSEG_WEIGHTS_TORCHVISION, NULL), OCLSEG_OK);
    ck_assert_int_eq(oclseg_weights_load(m, good, OCLSEG_WEIGHTS_FULL, NULL), OCLSEG_OK);
    /* not a safetensors file at all */
    ck_assert_int_eq(oclseg_weights_load(m, "tests/data/optim_golden.h", OCLSEG_WEIGHTS_FULL, NULL),
                     OCLSEG_ERR_FORMAT);
    oclseg_st_free(f);
    oclseg_model_free(m);
}
END_TEST

/* --pretrained: a torchvision mobilenet_v2 state dict (features.*, classifier.*) initialises the
 * encoder only; the decoder keeps its own initialisation. */
START_TEST(torchvision_weights_map_to_the_encoder) {
    make_data();
    oclseg_ctx *ctx = harness_ctx(0);
    oclseg_model_config cfg;
    oclseg_model_config_default(&cfg);
    cfg.size = 32;
    cfg.max_batch = 1;
    oclseg_model *src, *dst;
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &src), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_create(ctx, &cfg, &dst), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(src, 11), OCLSEG_OK);
    ck_assert_int_eq(oclseg_model_init_random(dst, 12), OCLSEG_OK);
    size_t largest = oclseg_model_max_param_numel(src);
    float *a = malloc(largest * sizeof *a), *b = malloc(largest * sizeof *b);
    /* write the encoder as torchvision names it, plus a classifier that must be ignored */
    oclseg_st_writer *w;
    ck_assert_int_eq(oclseg_st_writer_create(&w), OCLSEG_OK);
    for (int i = 0; i < src->param_count; i++) {
        const oclseg_param *p = &src->params[i];
        if (!p->in_encoder) continue;
        char key[160];
        snprintf(key, sizeof key, "features.%s", p->name + strlen("encoder."));
        int64_t shape[4] = {p->n, p->c, p->h, p->w};
        ck_assert_int_eq(oclseg_model_read_param(src, i, a), OCLSEG_OK);
        ck_assert_int_eq(oclseg_st_writer_add(w, key, OCLSEG_ST_F32, p->ndim, shape, a), OCLSEG_OK);
    }
    float cls[10] = {0};
    int64_t cls_shape[2] = {10, 1};
    ck_assert_int_eq(oclseg_st_writer_add(w, "classifier.1.weight", OCLSEG_ST_F32, 2, cls_shape, cls), OCLSEG_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/torchvision.safetensors", root);
    ck_assert_int_eq(oclseg_st_writer_write(w, path), OCLSEG_OK);
    oclseg_st_writer_free(w);
    ck_assert_int_eq(oclseg_weights_load(dst, path, OCLSEG_WEIGHTS_TORCHVISION, NULL), OCLSEG_OK);
    for (int i = 0; i < src->param_count; i++) {
        const oclseg_param *p = &src->params[i];
        size_t n = oclseg_param_numel(p);
        ck_assert_int_eq(oclseg_model_read_param(src, i, a), OCLSEG_OK);
        ck_assert_int_eq(oclseg_model_read_param(dst, i, b), OCLSEG_OK);
        int same = memcmp(a, b, n * sizeof *a) == 0;
        ck_assert_msg(p->in_encoder ? same : !same, "%s %s", p->name,
                      p->in_encoder ? "not loaded" : "overwritten");
    }
    /* a full model state dict is not a torchvision file */
    ck_assert_int_ne(oclseg_weights_load(dst, path, OCLSEG_WEIGHTS_FULL, NULL), OCLSEG_OK);
    free(a);
    free(b);
    oclseg_model_free(src);
    oclseg_model_free(dst);
}
END_TEST

/* Reads the loss column of steps.csv (step,epoch,loss) into losses[0..max). */
static int read_losses(const char *dir, double *losses, int max) {
    char path[256];
    snprintf(path, sizeof path, "%s/steps.csv", dir);
    char *text = slurp(path), *line = strchr(text, '\n');
    int n = 0;
    while (line && *++line && n < max) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        const char *comma = strrchr(line, ',');
        losses[n++] = comma ? atof(comma + 1) : NAN;
        line = end;
    }
    free(text);
    return n;
}

/* The same 3 steps (NAdam, 64x64, batch 4, same seed) on two different OpenCL implementations
 * (PoCL and rusticl in CI). Tolerances, from measurement and docs/numerics.md: step 0's loss is
 * a forward pass only, reductions in a different order: ~1e-7 measured, rtol 1e-5. Steps 1-2
 * follow weight updates whose gradients differ across devices far more than the forward does
 * (BatchNorm over 16 values per channel in the last encoder stages, ReLU6 masks flipping at
 * rounding level; NAdam's first step moves every weight by ~lr whatever the gradient's size):
 * measured up to 3.8e-3 relative (this test's data: 0, 1.4e-4, 6.2e-4), rtol 1e-2. A wrong kernel on one device is off by far more. */
START_TEST(losses_agree_across_devices) {
    oclseg_device_info *devs;
    int count;
    ck_assert_int_eq(oclseg_devices_list(&devs, &count), OCLSEG_OK);
    if (count < 2) {
        fprintf(stderr, "losses_agree_across_devices: only %d OpenCL device: skipped\n", count);
        free(devs);
        return;
    }
    make_data();
    double losses[2][3];
    char names[2][256];
    for (int d = 0; d < 2; d++) {
        char out[128], spec[32];
        snprintf(out, sizeof out, "%s/dev%d", root, d);
        snprintf(spec, sizeof spec, "%d:%d", devs[d].platform_index, devs[d].device_index);
        snprintf(names[d], sizeof names[d], "%s", devs[d].name);
        oclseg_fit_options o;
        base_options(&o, out);
        o.device = spec;
        o.size = 64;
        o.epochs = 1;
        o.max_steps = 3;
        o.eval_every = 1000;
        ck_assert_int_eq(oclseg_fit(&o), OCLSEG_OK);
        ck_assert_int_eq(read_losses(out, losses[d], 3), 3);
    }
    for (int s = 0; s < 3; s++) {
        double rtol = s == 0 ? 1e-5 : 1e-2;
        double rel = fabs(losses[0][s] - losses[1][s]) / fabs(losses[0][s]);
        fprintf(stderr, "step %d: %.9f (%s) vs %.9f (%s): relative difference %.2e (rtol %.0e)\n",
                s, losses[0][s], names[0], losses[1][s], names[1], rel, rtol);
        ck_assert_msg(rel <= rtol, "step %d: losses %.9f and %.9f differ by %.2e > %.0e", s,
                      losses[0][s], losses[1][s], rel, rtol);
    }
    free(devs);
}
END_TEST

int main(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 1800);
    tcase_add_test(tc, same_seed_same_losses);
    tcase_add_test(tc, losses_agree_across_devices);
    tcase_add_test(tc, resume_is_bit_identical_finetune);
    tcase_add_test(tc, resume_is_bit_identical_frozen);
    tcase_add_test(tc, resume_with_other_mode_refused);
    tcase_add_test(tc, frozen_trains_only_the_decoder);
    tcase_add_test(tc, torchvision_weights_map_to_the_encoder);
    suite_add_tcase(s, tc);
    /* one model and trainer in this process, no training run (CK_RUN_CASE=trainer runs them) */
    TCase *direct = tcase_create("trainer");
    tcase_set_timeout(direct, 600);
    tcase_add_test(direct, bad_weights_rejected_whole);
    tcase_add_test(direct, sgd_steps_follow_the_schedule_across_a_resume);
    suite_add_tcase(s, direct);
    return harness_run(s);
}
