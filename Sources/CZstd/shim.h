#ifndef BEMS_CZSTD_SHIM_H
#define BEMS_CZSTD_SHIM_H
#include <zstd.h>
#endif
