/* Force-included (gcc -include) into every upstream source file: upstream prints
 * layer tables and progress with printf/fprintf at will; routing both through one
 * switch keeps the host quiet unless it asks for the output (verbose=True).
 * Output to real files passes through untouched. */
#ifndef PYDARKNET_CONSOLE_H
#define PYDARKNET_CONSOLE_H
#include <stdio.h>

/* Per thread: whether console output of darknet calls on this thread is shown. */
extern __thread int pdn_console_verbose;

int pdn_console_printf(const char *fmt, ...);
int pdn_console_fprintf(FILE *stream, const char *fmt, ...);

#define printf pdn_console_printf
#define fprintf pdn_console_fprintf
#endif
