/* The section registry (patch section-registry): which function parses a cfg section
 * "[name]". Built-in names first, then names the host registered at run time
 * (darknet_register_section, declared in darknet.h), such as pydarknet's Python layers.
 * Compiled with upstream's sources. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "darknet.h"
#include "pdn_upstream.h"

/* parser.c's parse functions (each returns a layer, under whatever typedef) */
#define PARSERS(X) X(convolutional) X(deconvolutional) X(local) X(activation) X(logistic) \
    X(l2norm) X(rnn) X(gru) X(lstm) X(crnn) X(connected) X(crop) X(cost) X(region) X(yolo) \
    X(iseg) X(detection) X(softmax) X(normalization) X(batchnorm) X(maxpool) X(reorg) \
    X(avgpool) X(route) X(upsample) X(shortcut) X(dropout) X(flatten)
#define DECLARE(name) layer parse_##name(list *options, size_params params);
PARSERS(DECLARE)

/* The section registry: built-in names first, then names registered at run time. */
typedef struct {
    const char *name;
    darknet_section_parser parse;
} section_entry;

static const section_entry builtin_sections[] = {
    {"convolutional", parse_convolutional}, {"conv", parse_convolutional},
    {"deconvolutional", parse_deconvolutional}, {"deconv", parse_deconvolutional},
    {"local", parse_local}, {"activation", parse_activation}, {"logistic", parse_logistic},
    {"l2norm", parse_l2norm}, {"rnn", parse_rnn}, {"gru", parse_gru}, {"lstm", parse_lstm},
    {"crnn", parse_crnn}, {"connected", parse_connected}, {"conn", parse_connected},
    {"crop", parse_crop}, {"cost", parse_cost}, {"region", parse_region}, {"yolo", parse_yolo},
    {"iseg", parse_iseg}, {"detection", parse_detection}, {"softmax", parse_softmax},
    {"soft", parse_softmax}, {"normalization", parse_normalization}, {"lrn", parse_normalization},
    {"batchnorm", parse_batchnorm}, {"maxpool", parse_maxpool}, {"max", parse_maxpool},
    {"reorg", parse_reorg}, {"avgpool", parse_avgpool}, {"avg", parse_avgpool},
    {"route", parse_route}, {"upsample", parse_upsample}, {"shortcut", parse_shortcut},
    {"dropout", parse_dropout}, {"flatten", parse_flatten},
};

#define MAX_REGISTERED_SECTIONS 64
#define MAX_SECTION_NAME 64
static struct {
    char name[MAX_SECTION_NAME];
    darknet_section_parser parse;
} registered_sections[MAX_REGISTERED_SECTIONS];
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static darknet_section_parser find_builtin(const char *name)
{
    size_t i;
    for(i = 0; i < sizeof(builtin_sections)/sizeof(builtin_sections[0]); ++i){
        if(strcmp(builtin_sections[i].name, name) == 0) return builtin_sections[i].parse;
    }
    return 0;
}

/* The parser for a section header such as "[convolutional]", or 0. */
darknet_section_parser cfg_find_section(const char *header)
{
    size_t len = strlen(header);
    if(len < 3 || header[0] != '[' || header[len-1] != ']' || len - 2 >= MAX_SECTION_NAME) return 0;
    char name[MAX_SECTION_NAME];
    memcpy(name, header + 1, len - 2);
    name[len - 2] = '\0';
    darknet_section_parser parse = find_builtin(name);
    int i;
    pthread_mutex_lock(&registry_lock);
    for(i = 0; !parse && i < MAX_REGISTERED_SECTIONS; ++i){
        if(registered_sections[i].parse && strcmp(registered_sections[i].name, name) == 0){
            parse = registered_sections[i].parse;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return parse;
}

static int set_registered_section(const char *name, darknet_section_parser parse)
{
    if(!name || find_builtin(name) || strlen(name) >= MAX_SECTION_NAME || strcmp(name, "net") == 0
            || strcmp(name, "network") == 0) return -1;
    int i, slot = -1;
    pthread_mutex_lock(&registry_lock);
    for(i = 0; i < MAX_REGISTERED_SECTIONS; ++i){
        if(registered_sections[i].parse && strcmp(registered_sections[i].name, name) == 0){ slot = i; break; }
        if(!registered_sections[i].parse && slot < 0) slot = i;
    }
    if(slot >= 0 && (parse || registered_sections[slot].parse)){
        snprintf(registered_sections[slot].name, MAX_SECTION_NAME, "%s", name);
        registered_sections[slot].parse = parse;
    }else{
        slot = -1;
    }
    pthread_mutex_unlock(&registry_lock);
    return slot >= 0 ? 0 : -1;
}

int darknet_register_section(const char *name, darknet_section_parser parse)
{
    return parse ? set_registered_section(name, parse) : -1;
}

int darknet_unregister_section(const char *name)
{
    return set_registered_section(name, 0);
}
