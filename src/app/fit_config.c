/* The recorded configuration of a training run: every option as config.json (and a checkpoint's
 * metadata) holds it, read back with every key checked, and the rules of a resume (which options
 * may change, which must match the checkpoint). One table names each key, its option and type. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/fit_internal.h"
#include "oclseg/dist.h"
#include "oclseg/safetensors.h"
#include "oclseg/weights.h"

typedef enum key_kind {
    K_STR,        /* const char *, null when unset */
    K_PATH,       /* a file or directory: recorded as an absolute path when it exists */
    K_DATA,       /* --data (a K_PATH): null (no data given) is recorded as OCLSEG_SYNTH_DIR */
    K_INT,        /* int in [lo, hi] */
    K_BOOL,       /* int 0/1 */
    K_FLOAT,      /* float in [lo, hi] */
    K_DOUBLE,     /* double in [lo, hi] */
    K_OPT_DOUBLE, /* double in [lo, hi], 0 (unset) recorded as null */
    K_SEED,       /* uint64_t */
    K_ENUM,       /* an enum (int) recorded by name */
    K_OPTIMIZER,  /* oclseg_optimizer_kind recorded by its name in the optimizer table */
} key_kind;

typedef struct option_key {
    const char *section; /* NULL: top level, else the object holding the key */
    const char *key;
    const char *option;  /* the command-line option that sets it */
    key_kind kind;
    size_t offset;       /* in oclseg_fit_options */
    double lo, hi;
    const char *const *names; /* K_ENUM */
    int changeable;      /* may differ when a run is resumed */
} option_key;

static const char *const loss_names[] = {"bce", "dice", "bce+dice", NULL};
static const char *const schedule_names[] = {"constant", "cosine", "onecycle", NULL};

#define OFF(field) offsetof(oclseg_fit_options, field)
#define BIG 1e9
/* Every option of a run. A new option of `oclseg train` gets a line here (and is then recorded,
 * read back by --config and checked on --resume). */
static const option_key option_keys[] = {
    {NULL, "data", "--data", K_DATA, OFF(data_dir), 0, 0, NULL, 0},
    {NULL, "images", "--images", K_PATH, OFF(images_dir), 0, 0, NULL, 0},
    {NULL, "masks", "--masks", K_PATH, OFF(masks_dir), 0, 0, NULL, 0},
    {NULL, "mask_suffix", "--mask-suffix", K_STR, OFF(mask_suffix), 0, 0, NULL, 0},
    {NULL, "device_option", "--device", K_STR, OFF(device), 0, 0, NULL, 1},
    {NULL, "epochs", "--epochs", K_INT, OFF(epochs), 1, BIG, NULL, 1},
    {NULL, "batch", "--batch", K_INT, OFF(batch), 1, BIG, NULL, 0},
    {NULL, "size", "--size", K_INT, OFF(size), 32, BIG, NULL, 0},
    {NULL, "eval_every", "--eval-every", K_INT, OFF(eval_every), 1, BIG, NULL, 1},
    {NULL, "max_steps", "--max-steps", K_INT, OFF(max_steps), 0, BIG, NULL, 1},
    {NULL, "lr", "--lr", K_FLOAT, OFF(lr), 0, 10, NULL, 0},
    {NULL, "dropout", "--dropout", K_FLOAT, OFF(dropout), 0, 0.99, NULL, 0},
    {NULL, "optimizer", "--optimizer", K_OPTIMIZER, OFF(optimizer), 0, 0, NULL, 0},
    {NULL, "freeze_encoder", "--freeze-encoder", K_BOOL, OFF(frozen_encoder), 0, 0, NULL, 0},
    {NULL, "decoder", "--decoder", K_ENUM, OFF(decoder), 0, 0, oclseg_decoder_names, 0},
    {NULL, "pretrained", "--pretrained", K_PATH, OFF(pretrained), 0, 0, NULL, 0},
    {NULL, "init", "--init", K_PATH, OFF(init), 0, 0, NULL, 0},
    {NULL, "seed", "--seed", K_SEED, OFF(seed), 0, 0, NULL, 0},
    {NULL, "shuffle", "--no-shuffle", K_BOOL, OFF(shuffle), 0, 0, NULL, 0},
    {NULL, "augment", "--no-augment", K_BOOL, OFF(augment), 0, 0, NULL, 0},
    {NULL, "skip_bad", "--skip-bad", K_BOOL, OFF(skip_bad), 0, 0, NULL, 0},
    {NULL, "allow_overlap", "--allow-overlap", K_BOOL, OFF(allow_overlap), 0, 0, NULL, 0},
    {NULL, "threads", "--threads", K_INT, OFF(threads), 0, BIG, NULL, 1},
    {NULL, "loader_threads", "--loader-threads", K_INT, OFF(loader_threads), -1, 256, NULL, 1},
    {NULL, "prefetch", "--prefetch", K_INT, OFF(prefetch), 1, 64, NULL, 1},
    {NULL, "check_numerics", "--check-numerics", K_BOOL, OFF(check_numerics), 0, 0, NULL, 1},
    {NULL, "sync_bn", "--sync-bn", K_BOOL, OFF(sync_bn), 0, 0, NULL, 0},
    {NULL, "balance", "--balance", K_BOOL, OFF(balance), 0, 0, NULL, 0},
    {NULL, "mask_threshold", "--mask-threshold", K_OPT_DOUBLE, OFF(mask_threshold), 1e-6, 65535,
     NULL, 0},
    {NULL, "loss", "--loss", K_ENUM, OFF(loss), 0, 0, loss_names, 0},
    {NULL, "schedule", "--schedule", K_ENUM, OFF(schedule), 0, 0, schedule_names, 0},
    {NULL, "warmup", "--warmup", K_FLOAT, OFF(warmup), 0, 0.9, NULL, 0},
    {NULL, "weight_decay", "--weight-decay", K_FLOAT, OFF(weight_decay), 0, 1, NULL, 0},
    {NULL, "decoupled_wd", "--decoupled-wd", K_BOOL, OFF(decoupled_wd), 0, 0, NULL, 0},
    {NULL, "clip_norm", "--clip-norm", K_FLOAT, OFF(clip_norm), 0, 1e6, NULL, 0},
    {NULL, "val_fraction", "--val-fraction", K_DOUBLE, OFF(val_fraction), 0, 0.9, NULL, 0},
    {NULL, "patience", "--patience", K_INT, OFF(patience), 0, BIG, NULL, 0},
    {"augmentation", "flips", "--no-augment", K_BOOL, OFF(aug.flips), 0, 0, NULL, 0},
    {"augmentation", "dihedral", "--aug-dihedral", K_BOOL, OFF(aug.dihedral), 0, 0, NULL, 0},
    {"augmentation", "rotate_deg", "--aug-affine", K_FLOAT, OFF(aug.rotate_deg), 0, 180, NULL, 0},
    {"augmentation", "scale", "--aug-affine", K_FLOAT, OFF(aug.scale), 0, 0.999999, NULL, 0},
    {"augmentation", "translate", "--aug-affine", K_FLOAT, OFF(aug.translate), 0, 1, NULL, 0},
    {"augmentation", "crop_min", "--aug-crop", K_FLOAT, OFF(aug.crop_min), 0, 1, NULL, 0},
    {"augmentation", "brightness", "--aug-color", K_FLOAT, OFF(aug.brightness), 0, 1, NULL, 0},
    {"augmentation", "contrast", "--aug-color", K_FLOAT, OFF(aug.contrast), 0, 1, NULL, 0},
    {"augmentation", "saturation", "--aug-color", K_FLOAT, OFF(aug.saturation), 0, 1, NULL, 0},
    {"augmentation", "hue", "--aug-color", K_FLOAT, OFF(aug.hue), 0, 0.5, NULL, 0},
    {"predict", "tta_flips", "--tta", K_BOOL, OFF(predict.tta_flips), 0, 0, NULL, 0},
    {"predict", "largest_component", "--largest-component", K_BOOL,
     OFF(predict.largest_component), 0, 0, NULL, 0},
    {"predict", "fill_holes", "--fill-holes", K_BOOL, OFF(predict.fill_holes), 0, 0, NULL, 0},
};
#undef OFF
#define KEY_COUNT (sizeof option_keys / sizeof option_keys[0])

/* What config.json records about the run besides its options (ignored when read back, but the
 * counts are checked on resume): name and JSON type. */
static const struct { const char *key; json_type type; } info_keys[] = {
    {"train_images", JSON_INTEGER}, {"val_images", JSON_INTEGER}, {"test_images", JSON_INTEGER},
    {"model", JSON_OBJECT},         {"device", JSON_OBJECT},      {"versions", JSON_OBJECT},
    {"data_health", JSON_OBJECT},   {"ranks", JSON_INTEGER},      {"rank_devices", JSON_ARRAY},
};

const char oclseg_fit_resume_changeable[] =
    "--epochs, --max-steps, --eval-every, --device, --threads, --loader-threads, --prefetch, "
    "--quiet, --check-numerics";

struct oclseg_fit_record {
    json_t *root;                    /* holds the strings the options point to */
    oclseg_fit_options recorded;     /* the options as recorded (on the defaults) */
    int train_images, val_images, test_images; /* -1: not recorded */
    int64_t position[3];             /* a checkpoint's trainer step, epoch, step in the epoch */
    char source[OCLSEG_PATH_MAX];    /* the file, for messages */
};

static void *field(oclseg_fit_options *o, const option_key *k) { return (char *)o + k->offset; }
static const void *cfield(const oclseg_fit_options *o, const option_key *k) {
    return (const char *)o + k->offset;
}

static json_t *key_value(const oclseg_fit_options *o, const option_key *k) {
    const void *p = cfield(o, k);
    switch (k->kind) {
    case K_STR:
    case K_PATH: return *(const char *const *)p ? json_string(*(const char *const *)p) : json_null();
    case K_DATA: {
        const char *d = *(const char *const *)p;
        if (!d && !o->images_dir) d = OCLSEG_SYNTH_DIR;
        return d ? json_string(d) : json_null();
    }
    case K_INT: return json_integer(*(const int *)p);
    case K_BOOL: return json_boolean(*(const int *)p);
    case K_FLOAT: return json_real((double)*(const float *)p);
    case K_DOUBLE: return json_real(*(const double *)p);
    case K_OPT_DOUBLE: return *(const double *)p > 0 ? json_real(*(const double *)p) : json_null();
    case K_SEED: return json_integer((json_int_t)*(const uint64_t *)p);
    case K_ENUM: return json_string(k->names[*(const int *)p]);
    case K_OPTIMIZER: {
        const oclseg_optimizer_desc *d = oclseg_optimizer_get(*(const int *)p);
        return d ? json_string(d->name) : json_null();
    }
    }
    return json_null();
}

json_t *fit_options_json(const oclseg_fit_options *o) {
    json_t *j = json_object();
    for (size_t i = 0; j && i < KEY_COUNT; i++) {
        const option_key *k = &option_keys[i];
        json_t *into = j;
        if (k->section) {
            into = json_object_get(j, k->section);
            if (!into) json_object_set_new(j, k->section, into = json_object());
        }
        json_t *v = key_value(o, k);
        char *abs = NULL;
        if ((k->kind == K_PATH || k->kind == K_DATA) && json_is_string(v) &&
            strcmp(json_string_value(v), OCLSEG_SYNTH_DIR) != 0 &&
            (abs = realpath(json_string_value(v), NULL))) {
            json_decref(v);
            v = json_string(abs); /* a resume or --config from another directory finds it */
            free(abs);
        }
        json_object_set_new(into, k->key, v);
    }
    return j;
}

#define KEY_ERROR(...)                                                                        \
    do {                                                                                      \
        OCLSEG_ERROR(__VA_ARGS__);                                                            \
        return OCLSEG_ERR_FORMAT;                                                             \
    } while (0)

/* Sets the option of key k from v (type and range checked). */
static int read_key(const option_key *k, json_t *v, const char *source, oclseg_fit_options *o) {
    void *p = field(o, k);
    char name[96];
    snprintf(name, sizeof name, "%s%s%s", k->section ? k->section : "", k->section ? "." : "",
             k->key);
    double x = json_number_value(v);
    switch (k->kind) {
    case K_STR:
    case K_PATH:
    case K_DATA:
        if (!json_is_string(v) && !json_is_null(v))
            KEY_ERROR("%s: key '%s' must be a string or null", source, name);
        *(const char **)p = json_string_value(v);
        if (k->kind == K_DATA && json_is_string(v) && strcmp(json_string_value(v),
                                                             OCLSEG_SYNTH_DIR) == 0)
            *(const char **)p = NULL; /* the synthetic set, generated on first use */
        return OCLSEG_OK;
    case K_BOOL:
        if (!json_is_boolean(v)) KEY_ERROR("%s: key '%s' must be true or false", source, name);
        *(int *)p = json_is_true(v);
        return OCLSEG_OK;
    case K_ENUM:
        for (int i = 0; json_is_string(v) && k->names[i]; i++)
            if (strcmp(json_string_value(v), k->names[i]) == 0) {
                *(int *)p = i;
                return OCLSEG_OK;
            }
        KEY_ERROR("%s: key '%s' must be one of the names %s accepts", source, name, k->option);
    case K_OPTIMIZER: {
        const int kind = oclseg_optimizer_find(json_string_value(v));
        if (kind < 0) {
            char names[256];
            oclseg_fit_optimizer_list(names, sizeof names, ", ", 0);
            KEY_ERROR("%s: key '%s' must be one of %s", source, name, names);
        }
        *(int *)p = kind;
        return OCLSEG_OK;
    }
    case K_SEED:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            KEY_ERROR("%s: key '%s' must be an integer >= 0", source, name);
        *(uint64_t *)p = (uint64_t)json_integer_value(v);
        return OCLSEG_OK;
    case K_OPT_DOUBLE:
        if (json_is_null(v)) {
            *(double *)p = 0;
            return OCLSEG_OK;
        }
        /* fall through */
    case K_INT:
    case K_FLOAT:
    case K_DOUBLE:
        if (!json_is_number(v) || (k->kind == K_INT && !json_is_integer(v)) ||
            !(x >= k->lo && x <= k->hi))
            KEY_ERROR("%s: key '%s' must be %s in [%g, %g]", source, name,
                      k->kind == K_INT ? "an integer" : "a number", k->lo, k->hi);
        if (k->kind == K_INT) *(int *)p = (int)x;
        else if (k->kind == K_FLOAT) *(float *)p = (float)x;
        else *(double *)p = x;
        return OCLSEG_OK;
    }
    return OCLSEG_OK;
}

static const option_key *find_key(const char *section, const char *key) {
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(option_keys[i].key, key) == 0 &&
            (section ? option_keys[i].section && strcmp(option_keys[i].section, section) == 0
                     : !option_keys[i].section))
            return &option_keys[i];
    return NULL;
}

/* The keys of one object (section NULL: the top level; its sections are read from here). */
static int read_object(json_t *obj, const char *section, const char *source,
                       oclseg_fit_options *o, oclseg_fit_record *rec) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const option_key *k = find_key(section, key);
        if (k) {
            TRY(read_key(k, v, source, o));
            continue;
        }
        if (!section && (strcmp(key, "augmentation") == 0 || strcmp(key, "predict") == 0)) {
            if (!json_is_object(v)) KEY_ERROR("%s: key '%s' must be an object", source, key);
            TRY(read_object(v, key, source, o, rec));
            continue;
        }
        size_t i = 0, n = section ? 0 : sizeof info_keys / sizeof info_keys[0];
        while (i < n && strcmp(info_keys[i].key, key) != 0) i++;
        if (i == n)
            KEY_ERROR("%s: unknown key '%s%s%s' (not a setting oclseg train records)", source,
                      section ? section : "", section ? "." : "", key);
        if (json_typeof(v) != info_keys[i].type)
            KEY_ERROR("%s: key '%s' has the wrong type", source, key);
        int count = json_is_integer(v) ? (int)json_integer_value(v) : -1;
        if (strcmp(key, "train_images") == 0) rec->train_images = count;
        else if (strcmp(key, "val_images") == 0) rec->val_images = count;
        else if (strcmp(key, "test_images") == 0) rec->test_images = count;
    }
    return OCLSEG_OK;
}

void oclseg_fit_record_free(oclseg_fit_record *rec) {
    if (!rec) return;
    json_decref(rec->root);
    free(rec);
}

int oclseg_fit_options_parse(const char *text, const char *source, oclseg_fit_options *o,
                             oclseg_fit_record **out) {
    *out = NULL;
    json_error_t err;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        OCLSEG_ERROR("%s: not valid JSON (line %d: %s)", source, err.line, err.text);
        return OCLSEG_ERR_FORMAT;
    }
    oclseg_fit_record *rec = calloc(1, sizeof *rec);
    if (!rec) {
        json_decref(root);
        return OCLSEG_ERR_OUT_OF_MEMORY;
    }
    rec->root = root;
    rec->train_images = rec->val_images = rec->test_images = -1;
    snprintf(rec->source, sizeof rec->source, "%s", source);
    oclseg_fit_options read = *o;
    int st = json_is_object(root) ? read_object(root, NULL, source, &read, rec) : OCLSEG_ERR_FORMAT;
    if (!json_is_object(root)) OCLSEG_ERROR("%s: not a JSON object", source);
    if (st == OCLSEG_OK && read.size % 32 != 0) {
        OCLSEG_ERROR("%s: key 'size' must be a multiple of 32 (is %d)", source, read.size);
        st = OCLSEG_ERR_FORMAT;
    }
    if (st != OCLSEG_OK) {
        oclseg_fit_record_free(rec);
        return st;
    }
    read.resume = NULL;
    read.out_dir = NULL;
    *o = read;
    rec->recorded = read;
    *out = rec;
    return OCLSEG_OK;
}

int oclseg_fit_options_read_config(const char *path, oclseg_fit_options *o,
                                   oclseg_fit_record **out) {
    *out = NULL;
    char *text = NULL;
    size_t size = 0;
    int st = oclseg_read_file(path, 16u << 20, &text, &size);
    if (st != OCLSEG_OK) return st;
    st = oclseg_fit_options_parse(text, path, o, out);
    free(text);
    return st;
}

/* The config text of checkpoint `path` and its position (trainer step, epoch, step in the
 * epoch): rank 0 reads the file, every rank gets them. */
static int checkpoint_config_text(const char *path, char **text, int64_t position[3]) {
    int64_t head[5] = {OCLSEG_OK, 0, 0, 0, 0}; /* status, length, position */
    *text = NULL;
    if (oclseg_dist_rank() == 0) {
        oclseg_st_file *f = NULL;
        oclseg_checkpoint_meta meta;
        head[0] = oclseg_st_load(path, &f);
        if (head[0] == OCLSEG_OK) head[0] = oclseg_checkpoint_meta_parse(f, &meta);
        if (head[0] == OCLSEG_OK && !meta.config_json) {
            OCLSEG_ERROR("%s holds no recorded configuration (written by an older oclseg?): "
                         "start a new run", path);
            head[0] = OCLSEG_ERR_FORMAT;
        }
        if (head[0] == OCLSEG_OK) {
            head[1] = (int64_t)strlen(meta.config_json);
            head[2] = meta.trainer_step;
            head[3] = meta.epoch;
            head[4] = meta.step_in_epoch;
            *text = strdup(meta.config_json);
            if (!*text) head[0] = OCLSEG_ERR_OUT_OF_MEMORY;
        }
        oclseg_st_free(f);
    }
    TRY(oclseg_dist_bcast(head, sizeof head, 0));
    if (head[0] != OCLSEG_OK) {
        free(*text);
        *text = NULL;
        return (int)head[0];
    }
    memcpy(position, head + 2, 3 * sizeof *position);
    if (!*text && !(*text = calloc(1, (size_t)head[1] + 1))) return OCLSEG_ERR_OUT_OF_MEMORY;
    return oclseg_dist_bcast(*text, (size_t)head[1], 0);
}

int oclseg_fit_options_read_checkpoint(const char *path, oclseg_fit_options *o,
                                       oclseg_fit_record **out) {
    *out = NULL;
    char *text = NULL;
    int64_t position[3];
    TRY(checkpoint_config_text(path, &text, position));
    char source[OCLSEG_PATH_MAX + 32];
    snprintf(source, sizeof source, "%s (its recorded configuration)", path);
    int st = oclseg_fit_options_parse(text, source, o, out);
    free(text);
    if (st != OCLSEG_OK) return st;
    snprintf((*out)->source, sizeof (*out)->source, "%s", path);
    memcpy((*out)->position, position, sizeof position);
    o->max_steps = 0; /* a stop point of one invocation: a resume runs on unless given again */
    return OCLSEG_OK;
}

/* Two paths name the same file (same text, or both exist and resolve to one path). */
static int same_path(const char *a, const char *b) {
    if (!a || !b) return a == b;
    if (strcmp(a, b) == 0) return 1;
    char *ra = realpath(a, NULL), *rb = realpath(b, NULL);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

/* The value of key k in o as text for messages. */
static void value_text(const oclseg_fit_options *o, const option_key *k, char *out, size_t size) {
    json_t *v = key_value(o, k);
    if (json_is_string(v)) snprintf(out, size, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(out, size, "%s=%s", k->key, json_is_true(v) ? "on" : "off");
    else if (json_is_null(v)) snprintf(out, size, "none");
    else if (json_is_integer(v)) snprintf(out, size, "%lld", (long long)json_integer_value(v));
    else snprintf(out, size, "%g", json_real_value(v));
    json_decref(v);
}

int oclseg_fit_check_resume(const oclseg_fit_record *rec, const oclseg_fit_options *o) {
    const oclseg_fit_options *was = &rec->recorded;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const option_key *k = &option_keys[i];
        if (k->changeable) continue;
        json_t *a = key_value(was, k), *b = key_value(o, k);
        int same = json_equal(a, b);
        if (!same && json_is_string(a) && json_is_string(b) &&
            (k->kind == K_DATA || k->kind == K_PATH))
            same = same_path(json_string_value(a), json_string_value(b));
        json_decref(a);
        json_decref(b);
        if (same) continue;
        char va[OCLSEG_PATH_MAX], vb[OCLSEG_PATH_MAX];
        value_text(was, k, va, sizeof va);
        value_text(o, k, vb, sizeof vb);
        OCLSEG_ERROR("%s: the run was trained with %s, given %s (resuming %s; only %s may change "
                     "on resume)", k->option, va, vb, rec->source, oclseg_fit_resume_changeable);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* a schedule spans every step of every epoch: other epochs would change its rates */
    if (o->epochs != was->epochs && was->schedule != OCLSEG_SCHED_CONSTANT) {
        OCLSEG_ERROR("--epochs: the run was trained with %d, given %d: its %s schedule spans the "
                     "run's %d epochs (resuming %s; only a constant schedule can be extended)",
                     was->epochs, o->epochs, schedule_names[was->schedule], was->epochs,
                     rec->source);
        return OCLSEG_ERR_INVALID_ARG;
    }
    /* where the run is: --epochs and --max-steps must lie ahead */
    const long long step = (long long)rec->position[0];
    const int epoch = (int)rec->position[1], in_epoch = (int)rec->position[2];
    if (o->epochs < epoch || (o->epochs == epoch && in_epoch > 0)) {
        OCLSEG_ERROR("--epochs %d: the run of %s is already at step %lld, %d epochs done%s",
                     o->epochs, rec->source, step, epoch, in_epoch ? " and one begun" : "");
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (o->max_steps > 0 && o->max_steps <= step) {
        OCLSEG_ERROR("--max-steps %d: the run of %s is already at step %lld (epoch %d, %d of its "
                     "steps done): give a larger --max-steps, or none to train to --epochs %d",
                     o->max_steps, rec->source, step, epoch + 1, in_epoch, o->epochs);
        return OCLSEG_ERR_INVALID_ARG;
    }
    return OCLSEG_OK;
}

int fit_record_check_data(const oclseg_fit_record *rec, const fit_data *d) {
    const int now[3] = {d->train->count, d->val ? d->val->count : 0, d->test ? d->test->count : 0};
    const int was[3] = {rec->train_images, rec->val_images, rec->test_images};
    const char *names[3] = {"training", "validation", "test"};
    for (int k = 0; k < 3; k++)
        if (was[k] >= 0 && was[k] != now[k]) {
            OCLSEG_ERROR("%s: the run trained with %d %s images, the data now gives %d: the "
                         "checkpoint does not fit this data (was it changed?)",
                         rec->source, was[k], names[k], now[k]);
            return OCLSEG_ERR_INVALID_ARG;
        }
    return OCLSEG_OK;
}

int fit_check_resume_dir(const oclseg_fit_options *o) {
    if (!o->resume || !o->out_dir) return OCLSEG_OK;
    char dir[OCLSEG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->resume);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (same_path(dir, o->out_dir)) return OCLSEG_OK;
    OCLSEG_ERROR("--out: the run of %s is in %s, given %s (a resumed run continues in its own "
                 "directory; leave --out out)", o->resume, dir, o->out_dir);
    return OCLSEG_ERR_INVALID_ARG;
}

/* ---- the optimizer options ---------------------------------------------------------------- */
int oclseg_fit_optimizer_find(const char *name) { return oclseg_optimizer_find(name); }

void oclseg_fit_optimizer_list(char *out, size_t size, const char *sep, int rows) {
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < OCLSEG_OPT_COUNT && used < size; k++) {
        const oclseg_optimizer_desc *d = oclseg_optimizer_get(k);
        int n = rows ? snprintf(out + used, size - used, "%s%-6s %-6s lr %g, weight decay %g%s",
                                sep, d->name, d->title, (double)d->defaults.lr,
                                (double)d->defaults.weight_decay,
                                d->defaults.decoupled_wd ? " (decoupled)" : "")
                     : snprintf(out + used, size - used, "%s%s", k ? sep : "", d->name);
        if (n < 0) break;
        used += (size_t)n;
    }
}

int oclseg_fit_options_resolve(oclseg_fit_options *o) {
    const oclseg_optimizer_desc *d = oclseg_optimizer_get(o->optimizer);
    if (!d) {
        OCLSEG_ERROR("--optimizer: unknown optimizer kind %d", (int)o->optimizer);
        return OCLSEG_ERR_INVALID_ARG;
    }
    if (o->lr == OCLSEG_FIT_OPTIMIZER_DEFAULT) o->lr = d->defaults.lr;
    if (o->weight_decay == OCLSEG_FIT_OPTIMIZER_DEFAULT) o->weight_decay = d->defaults.weight_decay;
    oclseg_optim_config c;
    fit_optim_config(o, &c);
    return oclseg_optim_config_check(&c);
}

void fit_optim_config(const oclseg_fit_options *o, oclseg_optim_config *c) {
    oclseg_optim_config_default(c, o->optimizer);
    c->lr = o->lr;
    c->weight_decay = o->weight_decay;
    c->decoupled_wd |= o->decoupled_wd; /* AdamW's stays on */
}
