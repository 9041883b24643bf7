/* The inputs of `oclseg predict`: the image list and the checks of its output names. */
#ifndef OCLSEG_CLI_PREDICT_INPUTS_H
#define OCLSEG_CLI_PREDICT_INPUTS_H

#include <stddef.h>

typedef struct predict_inputs {
    char **paths; /* in argument order; a folder's images sorted by name */
    int count, cap;
} predict_inputs;

/* The images of the n arguments: files as named, folders' .jpg/.jpeg/.png files except those
 * named like predict's outputs (*_mask.png, *_overlay.png: a note says how many were skipped).
 * A folder without images or that cannot be read is an error (printed). */
int predict_inputs_collect(char *const *args, int n, predict_inputs *in);
void predict_inputs_free(predict_inputs *in);

/* The id outputs are named by: "dir/ISIC_0001.jpg" -> "ISIC_0001". */
void predict_output_id(const char *path, char *id, size_t size);

/* Refuses (naming the inputs) two inputs that would write the same out_dir/<id>_mask.png and an
 * input that is one of out_dir's output files; prints what it refuses. */
int predict_inputs_check_outputs(const predict_inputs *in, const char *out_dir);

#endif
