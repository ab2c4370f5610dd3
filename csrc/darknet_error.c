/* Darknet's recoverable errors and warnings (declared in upstream/darknet_additions.h,
 * called by patches recoverable-errors and unused-key-warnings): darknet_fail()
 * records the error and jumps back to the handler the host pushed, or prints it and
 * exits as upstream's CLI did when none is pushed.
 * Compiled with upstream's sources. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"

static __thread darknet_handler *current_handler;
static __thread darknet_error last_error;
static __thread const char *context_file;
static __thread int context_section = -1;
static __thread int context_line = -1;

void darknet_push_handler(darknet_handler *h)
{
    h->prev = current_handler;
    current_handler = h;
    darknet_set_context(0, -1, -1);
}

void darknet_pop_handler(darknet_handler *h)
{
    current_handler = h->prev;
}

const darknet_error *darknet_last_error(void)
{
    return &last_error;
}

void darknet_set_context(const char *file, int section, int line)
{
    context_file = file;
    context_section = section;
    context_line = line;
}

static __thread char warnings[16384];

/* A warning, placed at the current file, layer and (line > 0 replacing it) cfg line. */
static void warn_at(int line, const char *fmt, va_list args)
{
    char message[1024];
    vsnprintf(message, sizeof(message), fmt, args);
    if (!current_handler) {
        fprintf(stderr, "darknet: warning: %s\n", message);
        return;
    }
    size_t used = strlen(warnings);
    char where[1100] = "";
    if (line <= 0) line = context_line;
    if (context_file) {
        snprintf(where, sizeof(where), "%s:", context_file);
        if (line > 0) snprintf(where + strlen(where), sizeof(where) - strlen(where), "%d:", line);
        strcat(where, " ");
    }
    if (context_section >= 0) {
        snprintf(where + strlen(where), sizeof(where) - strlen(where), "layer %d: ", context_section);
    }
    snprintf(warnings + used, sizeof(warnings) - used, "%s%s\n", where, message);
}

void darknet_warn(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    warn_at(0, fmt, args);
    va_end(args);
}

void darknet_warn_at(int line, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    warn_at(line, fmt, args);
    va_end(args);
}

const char *darknet_warnings(void)
{
    return warnings;
}

void darknet_clear_warnings(void)
{
    warnings[0] = '\0';
}

void darknet_fail(int code, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error.message, sizeof(last_error.message), fmt, args);
    va_end(args);
    last_error.code = code;
    snprintf(last_error.file, sizeof(last_error.file), "%s", context_file ? context_file : "");
    last_error.section = context_section;
    last_error.line = context_line;
    darknet_rethrow();
}

void darknet_rethrow(void)
{
    darknet_handler *h = current_handler;
    if (h) {
        current_handler = h->prev;
        longjmp(h->env, last_error.code);
    }
    fprintf(stderr, "darknet: %s%s%s\n", last_error.file, last_error.file[0] ? ": " : "", last_error.message);
    exit(EXIT_FAILURE);
}
