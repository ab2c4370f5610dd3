#include <stdarg.h>
#include <stdio.h>

/* This file implements the switch, so it must see the real functions. */
#undef printf
#undef fprintf

__thread int pdn_console_verbose = 0;

int pdn_console_printf(const char *fmt, ...)
{
    if (!pdn_console_verbose) return 0;
    va_list args;
    va_start(args, fmt);
    int n = vprintf(fmt, args);
    va_end(args);
    return n;
}

int pdn_console_fprintf(FILE *stream, const char *fmt, ...)
{
    if (!pdn_console_verbose && (stream == stdout || stream == stderr)) return 0;
    va_list args;
    va_start(args, fmt);
    int n = vfprintf(stream, fmt, args);
    va_end(args);
    return n;
}
