/* ctl_author: `shirctl author testConnection|browse|schema|preview`, which
 * sends an authoring request (specs/authoring-api.md) to a node and prints
 * the answer as aligned tables, or raw with --json. */
#ifndef SHIR_CTL_AUTHOR_H
#define SHIR_CTL_AUTHOR_H

struct cJSON;

/* Prints a table: headers, then rows of cells (strings), columns aligned,
 * each cell cut to maxw display columns. Exposed for tests. */
void ctl_author_table(const char *const *headers, int ncols, char ***rows, int nrows, int maxw);

#endif
